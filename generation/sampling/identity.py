"""Everything random about one identity, decided from (seed, index) alone: demographics, appearance, shape,
lighting, split and pain expressions (`identity_spec`), so sharded, parallel or resumed runs agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dataset_builder.features import SPLITS

from ..config import GenerationConfig
from ..demographics import Demographics, identity_demographics
from ..face.model import FaceModel
from ..face.rig import demographic_identity
from ..facs import validate_action_units
from ..rng import stream
from ..views import Lighting
from .appearance import Appearance, sample_appearance
from .au_sampling import pspi_target, sample_pain_action_units


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


def identity_id(index: int) -> str:
    return f"id_{index:05d}"


def identity_split(config: GenerationConfig, index: int) -> str:
    """Identity-disjoint split: identities come in blocks of 10, each block a seeded permutation dealt out
    by the split fractions (70/20/10 gives exactly 7, 2 and 1 of every 10)."""
    counts = [round(f * 10) for f in config.split_fractions]
    block, offset = divmod(index, 10)
    slot = int(stream("split", config.seed, block).permutation(10)[offset])
    return SPLITS[int(np.searchsorted(np.cumsum(counts), slot, side="right"))]


def sample_lighting(rng: np.random.Generator) -> Lighting:
    warmth = rng.uniform(-0.08, 0.08)
    return Lighting(
        key_direction=(float(rng.uniform(-60, 60)), float(rng.uniform(0, 50))),
        key_intensity=float(rng.uniform(2.2, 4.0)),
        fill_direction=(float(rng.uniform(-70, 70)), float(rng.uniform(-10, 30))),
        fill_intensity=float(rng.uniform(0.5, 1.6)),
        ambient=float(rng.uniform(0.2, 0.5)),
        color=(1.0 + warmth, 1.0, 1.0 - warmth),
    )


def identity_spec(config: GenerationConfig, face_model: FaceModel, index: int) -> IdentitySpec:
    """Everything random about identity `index`, from (seed, index) alone."""
    rng = stream("identity", config.seed, index)
    demographics = identity_demographics(config.seed, index)
    appearance = sample_appearance(demographics, rng)
    coefficients = demographic_identity(face_model, appearance.male, rng)
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
    )
