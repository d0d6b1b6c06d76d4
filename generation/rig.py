"""The FACS rig: identity coefficients + AU intensities -> posed face-model vertices (mm)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .face_model import FaceModel
from .facs import blendshape_weights


def sample_identity(rng: np.random.Generator, num_components: int = 100, scale: float = 1.0) -> np.ndarray:
    """Identity PCA coefficients (in standard deviations) drawn from N(0, scale^2)."""
    return rng.normal(0.0, scale, size=num_components).astype(np.float32)


def pose_face(
    face_model: FaceModel, identity: np.ndarray | None, action_units: Mapping[str, float] | None = None
) -> np.ndarray:
    """Vertices (V, 3) in mm of an identity showing the given AU intensities (0-5; AU43 0/1). Validates the AUs."""
    return face_model.vertices(identity, blendshape_weights(action_units or {}))
