"""Skin textures: a registry of texture backends (filled here) and `create_texturer`.

A backend turns an identity's `Appearance` (and, for backends that need them, its neutral mesh and demographics)
into a `SkinTexture`: an sRGB albedo image over the skin UV atlas (`uv_atlas`) plus per-vertex colours for the parts
that are not skin (eyes, teeth, mouth), and with relief a normal map. The same albedo is used for the neutral and
every pain expression of the identity; `SkinTexture.expressing(action_units)` adds the creases an expression folds
into the normal map. Backends: `procedural` (CPU) and `diffusion` (depth-ControlNet Stable Diffusion baked into the atlas by
`bake`; it imports torch and diffusers only when one is built).
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..demographics import Demographics
from ..errors import ConfigError
from ..face.model import FaceModel
from ..sampling.appearance import Appearance
from .diffusion import DiffusionTexturer
from .procedural import ProceduralTexturer, SkinTexture


class Texturer(Protocol):
    def __call__(
        self,
        appearance: Appearance,
        rng: np.random.Generator,
        *,
        neutral_vertices: np.ndarray | None = None,  # (V, 3) mm, the identity's neutral mesh
        demographics: Demographics | None = None,
    ) -> SkinTexture: ...


# `pain3d generate --texture NAME` chooses from here; one parametrised test builds every entry.
TEXTURE_BACKENDS: dict[str, Callable[..., Texturer]] = {
    "procedural": ProceduralTexturer,
    "diffusion": DiffusionTexturer,
}


def create_texturer(name: str, face_model: FaceModel, **options) -> Texturer:
    """Build backend `name`; every backend takes `atlas_size` and `device` (ignored by CPU-only ones) and its own
    options."""
    if name not in TEXTURE_BACKENDS:
        raise ConfigError(f"unknown texture backend {name!r}; available: {', '.join(sorted(TEXTURE_BACKENDS))}")
    return TEXTURE_BACKENDS[name](face_model, **options)


__all__ = ["TEXTURE_BACKENDS", "DiffusionTexturer", "ProceduralTexturer", "SkinTexture", "Texturer", "create_texturer"]
