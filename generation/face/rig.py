"""The FACS rig: identity coefficients + AU intensities -> posed face-model vertices (mm)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .model import FaceModel
from ..facs import blendshape_weights


def sample_identity(rng: np.random.Generator, num_components: int = 100, scale: float = 1.0) -> np.ndarray:
    """Identity PCA coefficients (in standard deviations) drawn from N(0, scale^2)."""
    return rng.normal(0.0, scale, size=num_components).astype(np.float32)


def pose_face(
    face_model: FaceModel, identity: np.ndarray | None, action_units: Mapping[str, float] | None = None
) -> np.ndarray:
    """Vertices (V, 3) in mm of an identity showing the given AU intensities (0-5; AU43 0/1). Validates the AUs."""
    return face_model.vertices(identity, blendshape_weights(action_units or {}))


def dimorphism_direction(face_model: FaceModel, num_components: int = 100) -> np.ndarray:
    """Unit direction in identity-coefficient space that widens the jaw and deepens the brow ridge relative to
    the eyes: shifting along it makes a face read more male, against it more female (a crude, documented cue)."""
    lm = face_model.landmarks
    basis = face_model.identity_basis[:num_components]
    jaw_width = basis[:, lm[12], 0] - basis[:, lm[4], 0]
    brow_ridge = basis[:, lm[[19, 24]], 2].mean(axis=1) - basis[:, lm[[37, 44]], 2].mean(axis=1)
    gradient = jaw_width + 1.5 * brow_ridge
    return (gradient / np.linalg.norm(gradient)).astype(np.float32)


def demographic_identity(
    face_model: FaceModel, male: bool, rng: np.random.Generator, spread: float = 0.85, dimorphism: float = 1.2
) -> np.ndarray:
    """Identity coefficients: N(0, spread^2) plus a shift of `dimorphism` standard deviations along the
    dimorphism direction (+ for male, - for female)."""
    coefficients = sample_identity(rng, scale=spread)
    return coefficients + (dimorphism if male else -dimorphism) * dimorphism_direction(face_model, len(coefficients))


def age_sag_offsets(face_model: FaceModel, sag_mm: float) -> np.ndarray:
    """Downward sag (V, 3) in mm of the lower cheeks and jowls, strongest beside the mouth, fading to zero at the
    cheekbones, chin centre and neck: the geometric part of ageing."""
    offsets = np.zeros_like(face_model.neutral)
    if sag_mm <= 0:
        return offsets
    lm = face_model.neutral[face_model.landmarks]
    face = face_model.region("face")
    p = face_model.neutral[face]
    weight = np.zeros(len(face), dtype=np.float32)
    for corner, jaw in ((lm[48], lm[5]), (lm[54], lm[11])):  # one jowl each side, between mouth corner and jaw
        centre = (corner + jaw) / 2 + (0.0, 4.0, 0.0)
        weight += np.exp(-np.sum((p - centre) ** 2, axis=1) / (2 * 16.0**2))
    offsets[face, 1] = -sag_mm * np.clip(weight, 0, 1)
    return offsets
