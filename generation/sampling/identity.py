"""Everything random about one identity, decided from (seed, index) alone: demographics, appearance, shape,
lighting, split and pain expressions (`identity_spec`), so sharded, parallel or resumed runs agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import GenerationConfig
from ..demographics import Demographics, identity_demographics
from ..face.model import FaceModel
from ..face.rig import demographic_identity
from ..facs import validate_action_units
from ..rng import stream
from ..views import Lighting
from .appearance import Appearance, sample_appearance
from .au_sampling import pspi_target, sample_pain_action_units
from .splits import dealt_split


@dataclass(frozen=True)
class IdentitySpec:
    index: int
    identity_id: str
    split: str
    demographics: Demographics
    appearance: Appearance
    coefficients: np.ndarray
    lighting: Lighting
    expressions: tuple[dict, ...]  # pain AU intensities, expression_index 1..K
    camera: tuple[float, float] = (0.0, 1.0)  # roll (degrees) and distance factor of this identity's camera


def identity_id(index: int) -> str:
    return f"id_{index:05d}"


def identity_split(config: GenerationConfig, index: int) -> str:
    """Identity-disjoint split of identity `index`, balanced by age group, gender and ethnicity (`splits`): from
    (seed, index, split fractions, test identities) alone, never from the number of identities."""
    return dealt_split(config.seed, index, config.split_fractions, config.test_identities)


# Fill light colours: neutral most often, else warm lamp, cool window or daylight, greenish or pinkish walls.
FILL_TINTS = ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (1.0, 0.85, 0.65), (0.75, 0.85, 1.0),
              (0.85, 1.0, 0.85), (1.0, 0.85, 0.9))


def sample_camera(rng: np.random.Generator) -> tuple[float, float]:
    """Small per-identity camera differences, as between photo sessions: roll (+/- 3 degrees) and distance (+/- 7%).
    Yaw and pitch stay those of the named view, so the `yaw` / `pitch` columns hold for every identity."""
    return float(rng.uniform(-3, 3)), float(rng.uniform(0.93, 1.07))


def sample_lighting(rng: np.random.Generator) -> Lighting:
    warmth = rng.uniform(-0.08, 0.08)
    return Lighting(
        key_direction=(float(rng.uniform(-60, 60)), float(rng.uniform(0, 50))),
        key_intensity=float(rng.uniform(2.2, 4.0)),
        fill_direction=(float(rng.uniform(-70, 70)), float(rng.uniform(-10, 30))),
        fill_intensity=float(rng.uniform(0.5, 1.6)),
        ambient=float(rng.uniform(0.2, 0.5)),
        color=(1.0 + warmth, 1.0, 1.0 - warmth),
        fill_color=tuple(float(c) for c in FILL_TINTS[int(rng.integers(len(FILL_TINTS)))]),
    )


def identity_spec(
    config: GenerationConfig, face_model: FaceModel, index: int, demographics: Demographics | None = None
) -> IdentitySpec:
    """Everything random about identity `index`, from (seed, index) alone. `demographics` replaces the dealt ones
    (the demo's chosen age, gender and ethnicity); every draw stays on its own stream."""
    rng = stream("identity", config.seed, index)
    demographics = demographics or identity_demographics(config.seed, index)
    appearance = sample_appearance(demographics, rng)
    coefficients = demographic_identity(
        face_model, appearance.male, rng, age_factor=appearance.age_factor, ethnicity=demographics.ethnicity
    )
    lighting = sample_lighting(rng)
    expressions = tuple(
        sample_pain_action_units(
            pspi_target(config.seed, index, k, config.expressions_per_identity), rng, config.distractor_probability
        )
        | validate_action_units(config.au_overrides, fill=False)
        for k in range(config.expressions_per_identity)
    )
    return IdentitySpec(
        index=index,
        identity_id=identity_id(index),
        split=identity_split(config, index),
        demographics=demographics,
        appearance=appearance,
        coefficients=coefficients,
        lighting=lighting,
        expressions=expressions,
        camera=sample_camera(stream("camera", config.seed, index)),
    )
