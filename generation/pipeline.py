"""From an identity spec to finished dataset rows: rigging, texturing, backgrounds, rendering and encoding.

`sampling.identity.identity_spec(config, face_model, index)` decides everything random about one identity from
(seed, index) alone, and `PainFaceGenerator` turns a spec into rows with explicit parts (face model, texturer,
background inpainter, renderer), so sharded, parallel or resumed runs produce the same bytes as a single run.
"""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

from dataset_builder.features import HEATMAP_UNITS_PER_MM

from .background.inpaint import SOURCE_BACKGROUND, BackgroundInpainter
from .background.procedural import sample_background
from .background.prompts import scene_prompt
from .config import BACKGROUNDS, GenerationConfig
from .face.accessories import build_earrings, combine
from .face.hair import COVERINGS, build_hair
from .face.model import FaceModel
from .face.rig import identity_extras, pose_face
from .facs import PAIN_AUS, pspi
from .render import FaceRenderer, displacement_mm
from .rng import stream
from .sampling.appearance import GREY_HAIR_RGB, Appearance
from .sampling.identity import IdentitySpec, identity_id, identity_spec, identity_split, sample_lighting
from .texture import create_texturer
from .views import View

__all__ = [
    "BACKGROUNDS", "GenerationConfig", "IdentitySpec", "PainFaceGenerator", "encode_heatmap", "encode_png",
    "identity_hair", "identity_id", "identity_spec", "identity_split", "sample_lighting",
]


def encode_png(array: np.ndarray, compress_level: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def encode_heatmap(heatmap_mm: np.ndarray, compress_level: int) -> bytes:
    """Millimetres -> 16-bit PNG of micrometres (lossless to 1 um up to 65.535 mm)."""
    micrometres = np.clip(np.rint(heatmap_mm * HEATMAP_UNITS_PER_MM), 0, 65535).astype(np.uint16)
    return encode_png(micrometres, compress_level)


def identity_hair(face_model: FaceModel, neutral: np.ndarray, appearance: Appearance, rng: np.random.Generator):
    """The hair or head covering and the earrings an `appearance` asks for, as one `HairMesh` (None for a bald head
    without earrings), fitted to the identity's neutral head (mm); hair greyed by age (strand by strand), coverings
    fabric-coloured."""
    a = appearance
    covering = a.hair_style in COVERINGS
    color = a.covering_rgb if covering else a.hair_rgb
    brow_top = float(neutral[face_model.landmarks][17:27, 1].max())
    hair = build_hair(
        face_model, neutral, a.hair_style, tuple(color), front_hairline_y=brow_top + a.hairline_mm, rng=rng,
        temple_dip=a.temple_dip_mm, tilt=a.hairline_tilt, volume=a.hair_volume, length_scale=a.hair_length_scale,
        roughness=0.8 if covering else 0.7, grey=0.0 if covering else a.grey_fraction, grey_rgb=GREY_HAIR_RGB,
    )
    return combine(hair, build_earrings(face_model, neutral, a.earrings, a.earring_rgb) if a.earrings else None)


class PainFaceGenerator:
    """Renders every row of one identity: per view, a neutral image and K pain images with heatmaps.

    Parts are explicit: the face model, a texture backend (by registry name), the renderer and, for
    `background="inpaint"`, a background inpainter. `device` is where diffusion models run (default: this
    process's GPU, else the CPU); rendering always uses the CPU's OpenGL.
    """

    def __init__(
        self, config: GenerationConfig, face_model: FaceModel, renderer: FaceRenderer | None = None,
        device: str | None = None,
    ):
        self.config = config
        self.face_model = face_model
        self.texturer = create_texturer(
            config.texture, face_model, atlas_size=max(256, config.image_size), device=device,
            relief=config.appearance_detail, **config.texture_options,
        )
        self.inpainter = None
        if config.background == "inpaint":
            self.inpainter = BackgroundInpainter(config.background_options, device=device)
        self.renderer = renderer or FaceRenderer(face_model, image_size=config.image_size, msaa=config.msaa,
                                                 eyelashes=config.appearance_detail)
        self.render_seconds = 0.0  # time spent in the renderer (RGB and heatmap passes), for benchmarks
        self._zero_heatmap = encode_heatmap(np.zeros((config.image_size,) * 2, np.float32), config.png_compress_level)

    def close(self) -> None:
        self.renderer.close()
        if hasattr(self.texturer, "close"):
            self.texturer.close()

    def meshes(self, spec: IdentitySpec) -> tuple[np.ndarray, list[np.ndarray]]:
        """Neutral and pain vertices (mm) of an identity; ageing and build are part of the identity, so they never
        show in the heatmap."""
        a = spec.appearance
        sag = identity_extras(self.face_model, a.sag_mm, a.male, a.ageing)
        neutral = pose_face(self.face_model, spec.coefficients) + sag
        pains = [pose_face(self.face_model, spec.coefficients, aus) + sag for aus in spec.expressions]
        return neutral, pains

    def hair(self, spec: IdentitySpec, neutral: np.ndarray):
        """The identity's hair or head covering (a `HairMesh`, or None for a bald head)."""
        return identity_hair(self.face_model, neutral, spec.appearance, stream("hair", self.config.seed, spec.index))

    def background(
        self, spec: IdentitySpec, view_number: int, view: View, neutral: np.ndarray, texture, hair=None
    ) -> np.ndarray:
        """The background of one (identity, view), shared by its neutral and pain renders: procedural, or a scene
        inpainted around the neutral render."""
        config = self.config
        rng = stream("background", config.seed, spec.index, view_number)
        if self.inpainter is None:
            return sample_background(config.image_size, rng)
        source = self.renderer.render(
            neutral, view, lighting=spec.lighting, texture=texture, background=SOURCE_BACKGROUND, hair=hair
        )
        prompt = scene_prompt(rng, self.inpainter.options.scenes)
        return self.inpainter(source.image, source.mask, prompt, seed=int(rng.integers(0, 2**63 - 1)))

    def __call__(self, spec: IdentitySpec) -> list[dict]:
        config, level = self.config, self.config.png_compress_level
        # 1. rig: the neutral and pain meshes of the identity
        neutral, pains = self.meshes(spec)
        # 2. texture: one skin texture for the identity, and per pain expression the wrinkles it folds into the skin
        texture = self.texturer(
            spec.appearance, stream("texture", config.seed, spec.index),
            neutral_vertices=neutral, demographics=spec.demographics,
        )
        expressions = [(neutral, None, {}, texture)] + [
            (pain, displacement_mm(pain, neutral), aus, texture.expressing(aus))
            for pain, aus in zip(pains, spec.expressions)
        ]
        # 3. hair: geometry fitted to the neutral head, drawn over every expression
        hair = self.hair(spec, neutral) if config.appearance_detail else None
        # 4. background: one per view, shared by its neutral and pain renders
        views = [named_view.jittered(*spec.camera) for named_view in config.views]
        backgrounds = [self.background(spec, number, view, neutral, texture, hair) for number, view in enumerate(views)]
        # 5. render and encode, expression by expression (the renderer keeps each one's skin uploaded across the
        # views); rows come out view by view
        encoded = {}
        for expression_index, (vertices, displacement, aus, skin) in enumerate(expressions):
            for view_number, view in enumerate(views):
                started = time.perf_counter()
                out = self.renderer.render(
                    vertices, view, displacement=displacement, lighting=spec.lighting, texture=skin,
                    background=backgrounds[view_number], hair=hair,
                )
                self.render_seconds += time.perf_counter() - started
                heatmap = self._zero_heatmap if displacement is None else encode_heatmap(out.heatmap, level)
                encoded[view_number, expression_index] = (encode_png(out.image, level), heatmap, out.landmarks_2d)
        return [
            self._row(spec, view, expression_index, aus, *encoded[view_number, expression_index],
                      neutral_bytes=encoded[view_number, 0][0])
            for view_number, view in enumerate(views)
            for expression_index, (_, _, aus, _) in enumerate(expressions)
        ]

    def _row(self, spec: IdentitySpec, view: View, expression_index: int, aus: dict, image_bytes: bytes,
             heatmap_bytes: bytes, landmarks_2d: np.ndarray, neutral_bytes: bytes) -> dict:
        demographics = spec.demographics
        return {
            "image": {"bytes": image_bytes, "path": None},
            "neutral_image": {"bytes": neutral_bytes, "path": None},
            "heatmap": {"bytes": heatmap_bytes, "path": None},
            "sample_id": f"{spec.identity_id}_e{expression_index:02d}_{view.name}",
            "identity_id": spec.identity_id,
            "expression_index": expression_index,
            "view": view.name,
            "yaw": view.yaw,
            "pitch": view.pitch,
            "action_units": {name: float(aus.get(name, 0.0)) for name in (*PAIN_AUS, *self.config.extended_aus)},
            "pspi": float(pspi(aus)),
            "age": demographics.age,
            "age_group": demographics.age_group,
            "gender": demographics.gender,
            "ethnicity": demographics.ethnicity,
            "landmarks_2d": landmarks_2d.tolist(),
        }
