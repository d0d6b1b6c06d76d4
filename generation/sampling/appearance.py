"""Per-identity appearance drawn from the intended demographics: skin, hair, eyes, age and gender cues, shape.

Everything is sampled from a `numpy.random.Generator`, so an identity's look depends only on its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..demographics import Demographics

# Skin albedo ranges (sRGB 0-255, darkest .. lightest) per intended ethnicity; a tone is drawn along each range.
SKIN_TONES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "Black": ((92, 58, 42), (158, 108, 80)),
    "East Asian": ((196, 154, 122), (236, 198, 168)),
    "Hispanic/Latino": ((164, 114, 84), (222, 172, 136)),
    "Middle Eastern": ((172, 126, 96), (226, 180, 146)),
    "South Asian": ((128, 86, 60), (196, 146, 110)),
    "White": ((212, 166, 140), (246, 212, 192)),
}
# Hair colours (sRGB) and their probabilities per ethnicity, before greying with age.
HAIR_COLORS: dict[str, tuple[tuple[tuple[int, int, int], float], ...]] = {
    "dark": (((24, 20, 18), 1.0),),
    "White": (((30, 24, 20), 0.25), ((88, 60, 40), 0.35), ((150, 116, 78), 0.25), ((120, 60, 32), 0.15)),
    "Hispanic/Latino": (((26, 21, 18), 0.6), ((70, 48, 32), 0.4)),
}
IRIS_COLORS: dict[str, tuple[tuple[tuple[float, float, float], float], ...]] = {
    "dark": (((0.22, 0.13, 0.07), 0.8), ((0.32, 0.20, 0.10), 0.2)),
    "White": (((0.30, 0.19, 0.10), 0.45), ((0.30, 0.45, 0.62), 0.35), ((0.35, 0.42, 0.25), 0.2)),
}


@dataclass(frozen=True)
class Appearance:
    """What the texturer and the rig need to make one identity look like its demographics."""

    skin_rgb: tuple[float, float, float]  # sRGB 0-1
    hair_rgb: tuple[float, float, float]
    iris_rgb: tuple[float, float, float]
    grey_fraction: float  # 0 (none) .. 1 (white hair and brows)
    age_factor: float  # 0 at 25 years .. 1 at 90: wrinkles, spots, sagging
    male: bool
    beard_density: float  # 0 clean-shaven .. 1 full stubble shadow
    brow_thickness_mm: float
    hairline_mm: float  # height of the hairline above the top of the brows, mm (vertical)
    balding: float  # 0 .. 1 recession of the hair cap (older men)
    hair_length: float  # 0 (ends at the ear lobes at the back) .. 1 (covers the back of the neck)
    lip_redness: float
    texture_seed: int
    sag_mm: float  # downward sag of the lower face (age)


def _pick(options, rng: np.random.Generator):
    colors, weights = zip(*options)
    return colors[rng.choice(len(colors), p=np.asarray(weights) / sum(weights))]


def sample_appearance(demographics: Demographics, rng: np.random.Generator) -> Appearance:
    low, high = (np.asarray(c, dtype=np.float64) for c in SKIN_TONES[demographics.ethnicity])
    tone = rng.beta(2.0, 2.0)
    skin = (low + tone * (high - low)) / 255.0
    age = demographics.age
    age_factor = float(np.clip((age - 25) / 65, 0.0, 1.0))
    skin = skin * (1.0 - 0.06 * age_factor) + np.array([0.02, 0.015, -0.01]) * age_factor  # older skin: duller
    hair = np.asarray(_pick(HAIR_COLORS.get(demographics.ethnicity, HAIR_COLORS["dark"]), rng), float) / 255.0
    iris = _pick(IRIS_COLORS.get(demographics.ethnicity, IRIS_COLORS["dark"]), rng)
    grey = float(np.clip((age - 38) / 40 + rng.normal(0, 0.12), 0.0, 1.0))
    male = demographics.gender == "male"
    return Appearance(
        skin_rgb=tuple(np.clip(skin, 0, 1)),
        hair_rgb=tuple(hair),
        iris_rgb=tuple(iris),
        grey_fraction=grey,
        age_factor=age_factor,
        male=male,
        beard_density=float(rng.uniform(0.25, 0.9) if male and rng.random() < 0.7 else 0.0),
        brow_thickness_mm=float(rng.uniform(5.5, 7.5) if male else rng.uniform(3.8, 5.5)),
        hairline_mm=float((rng.uniform(32, 40) + 6 * age_factor) if male else rng.uniform(28, 36)),
        balding=float(np.clip(rng.uniform(-0.5, 1.3) * age_factor, 0, 1) if male else 0.0),
        hair_length=float(rng.uniform(0.5, 1.0) if not male else rng.uniform(0.0, 0.2)),
        lip_redness=float(rng.uniform(0.2, 0.6) if not male else rng.uniform(0.05, 0.3)),
        texture_seed=int(rng.integers(2**31)),
        sag_mm=float(3.5 * age_factor**1.5 * rng.uniform(0.7, 1.2)),
    )
