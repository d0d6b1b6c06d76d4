"""The one identity path: from (config, identity i) to renders and to finished dataset rows.

`sampling.identity.identity_spec(config, face_model, index)` decides everything random about one identity from
(seed, index) alone; `PainFaceGenerator` builds it (rig, texture, hair, cameras, backgrounds) with explicit parts
(face model, texturer, background inpainter, renderer), poses and renders it. Sharded, parallel or resumed runs
produce the same bytes as a single run, and the preview, the demo and clips show exactly what the dataset stores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .background.inpaint import SOURCE_BACKGROUND, BackgroundInpainter
from .background.procedural import sample_background
from .background.prompts import scene_prompt
from .columns import encode_heatmap, encode_image, encode_png
from .config import BACKGROUNDS, GenerationConfig
from .face.accessories import identity_hair
from .face.model import FaceModel
from .demographics import Demographics
from .face.rig import identity_extras, pose_face
from .facs import PAIN_AUS, pspi
from .ground_truth import geometry_columns, hair_classes, pass_images
from .render import FaceRenderer, displacement_mm
from .rng import stream
from .sampling.identity import IdentitySpec, identity_id, identity_spec, identity_split, sample_lighting
from .texture import create_texturer
from .views import View

# the generator's timed stages besides rendering (`render_seconds`): identity = building one (rig, texture, hair,
# cameras), texture = its skin texture alone (part of identity); ground_truth = the geometry columns and pass images
# of finished renders; encoding = the image columns' bytes
STAGES = ("identity", "texture", "background", "posing", "ground_truth", "encoding")

__all__ = [
    "BACKGROUNDS", "Expression", "GenerationConfig", "Identity", "IdentitySpec", "PainFaceGenerator", "encode_heatmap", "encode_png",
    "identity_hair", "identity_id", "identity_spec", "identity_split", "sample_lighting",
]


@dataclass
class Identity:
    """Identity i of a config, built: everything that stays while the expression and the view change."""

    spec: IdentitySpec
    neutral: np.ndarray  # (V, 3) neutral vertices, mm, ageing and build included
    sag: np.ndarray  # (V, 3) ageing and build (mm), added to every posed mesh so it never shows in a heatmap
    texture: object  # the skin; `texture.expressing(aus)` folds an expression's wrinkles into it
    hair: object | None  # a HairMesh (hair or covering, earrings), or None
    views: tuple[View, ...]  # the config's views through this identity's camera (roll, distance)
    backgrounds: dict[int, np.ndarray] = field(default_factory=dict)  # view number -> background, made on first use


@dataclass(frozen=True)
class Expression:
    """One posed expression of an identity: its mesh, its heatmap source and its skin."""

    action_units: dict
    vertices: np.ndarray  # (V, 3) mm
    displacement: np.ndarray | None  # (V,) mm moved from neutral; None for the neutral face
    skin: object


class PainFaceGenerator:
    """The one path from (config, identity i) to pixels: `identity(i)` builds identity i (shape, texture, hair,
    light, camera, background), `expression(identity, aus)` poses it and `render(identity, expression, view_number)`
    renders it. `__call__(spec)` gives the dataset's rows of one identity; `pain3d preview`, the demo and clips
    render through the same three methods, so what they show is what the dataset stores.

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
        # seconds spent in the other stages of the rows (scripts/bench_generate.py's table): cheap counters only
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)
        self._hair_classes = (None, None)  # (hair, its triangles' segmentation classes) of the identity drawn last
        self._zero_heatmap = encode_heatmap(np.zeros((config.image_size,) * 2, np.float32), config.png_compress_level)

    def close(self) -> None:
        self.renderer.close()
        if hasattr(self.texturer, "close"):
            self.texturer.close()

    def __enter__(self) -> "PainFaceGenerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- the identity path
    def spec(self, index: int, demographics: Demographics | None = None) -> IdentitySpec:
        """Everything random about identity `index` of this config (`demographics` overrides the dealt ones)."""
        return identity_spec(self.config, self.face_model, index, demographics=demographics)

    def identity(self, spec: IdentitySpec | int) -> Identity:
        """Build identity `spec` (or index): rig its neutral head, texture it, fit its hair, place its cameras."""
        spec = self.spec(spec) if isinstance(spec, (int, np.integer)) else spec
        started = time.perf_counter()
        config, a = self.config, spec.appearance
        sag = identity_extras(self.face_model, a.sag_mm, a.male, a.ageing)
        neutral = pose_face(self.face_model, spec.coefficients) + sag
        textured = time.perf_counter()
        texture = self.texturer(
            a, stream("texture", config.seed, spec.index), neutral_vertices=neutral, demographics=spec.demographics,
        )
        self.stage_seconds["texture"] += time.perf_counter() - textured
        hair = None
        if config.appearance_detail:  # geometry fitted to the neutral head, drawn over every expression
            hair = identity_hair(self.face_model, neutral, a, stream("hair", config.seed, spec.index))
        views = tuple(named_view.jittered(*spec.camera) for named_view in config.views)
        self.stage_seconds["identity"] += time.perf_counter() - started  # texture included
        return Identity(spec, neutral, sag, texture, hair, views)

    def expression(self, identity: Identity, action_units: dict | None = None) -> Expression:
        """Identity posed with `action_units` (None or empty: the neutral face, which has no heatmap)."""
        if not action_units:
            return Expression({}, identity.neutral, None, identity.texture)
        started = time.perf_counter()
        aus = dict(action_units)
        vertices = pose_face(self.face_model, identity.spec.coefficients, aus) + identity.sag
        out = Expression(aus, vertices, displacement_mm(vertices, identity.neutral), identity.texture.expressing(aus))
        self.stage_seconds["posing"] += time.perf_counter() - started
        return out

    def background(self, identity: Identity, view_number: int) -> np.ndarray:
        """The background of one (identity, view), shared by all its expressions: procedural, or a scene inpainted
        around the neutral render."""
        if view_number not in identity.backgrounds:
            started = time.perf_counter()
            config, spec = self.config, identity.spec
            rng = stream("background", config.seed, spec.index, view_number)
            if self.inpainter is None:
                background = sample_background(config.image_size, rng)
            else:
                source = self.renderer.render(
                    identity.neutral, identity.views[view_number], lighting=spec.lighting, texture=identity.texture,
                    background=SOURCE_BACKGROUND, hair=identity.hair,
                )
                prompt = scene_prompt(rng, self.inpainter.options.scenes)
                background = self.inpainter(source.image, source.mask, prompt, seed=int(rng.integers(0, 2**63 - 1)))
            identity.backgrounds[view_number] = background
            self.stage_seconds["background"] += time.perf_counter() - started
        return identity.backgrounds[view_number]

    def render(self, identity: Identity, expression: Expression, view_number: int, view: View | None = None,
               passes: tuple[str, ...] | None = None):
        """Render `expression` of `identity` in the config's view `view_number` (its background; `view` moves the
        camera, e.g. a clip's head motion). Returns the renderer's `Render` (image, mask, heatmap, landmarks, ground
        truth) with the per-pixel `passes` (names in columns.PASSES; default: the config's) filled."""
        background = self.background(identity, view_number)
        if self._hair_classes[0] is not identity.hair:
            self._hair_classes = (identity.hair, hair_classes(self.face_model, identity))
        started = time.perf_counter()
        out = self.renderer.render(
            expression.vertices, view or identity.views[view_number], displacement=expression.displacement,
            lighting=identity.spec.lighting, texture=expression.skin, background=background, hair=identity.hair,
            ground_truth=True, hair_classes=self._hair_classes[1],
            passes=self.config.passes if passes is None else tuple(passes),
        )
        self.render_seconds += time.perf_counter() - started
        return out

    # ------------------------------------------------------------------------------------------------ dataset rows
    def __call__(self, spec: IdentitySpec) -> list[dict]:
        """The dataset rows of one identity: per view, its neutral image and K pain images with heatmaps."""
        level, image_format, stages = self.config.png_compress_level, self.config.image_format, self.stage_seconds
        identity = self.identity(spec)
        expressions = [self.expression(identity)] + [self.expression(identity, aus) for aus in spec.expressions]
        for view_number in range(len(identity.views)):  # backgrounds first, as inpainting renders the neutral face
            self.background(identity, view_number)
        # render and encode expression by expression (the renderer keeps each one's skin uploaded across the views);
        # rows come out view by view
        encoded = {}
        for expression_index, expression in enumerate(expressions):
            for view_number in range(len(identity.views)):
                out = self.render(identity, expression, view_number)
                started = time.perf_counter()
                view = identity.views[view_number]
                truth = geometry_columns(out, view, self.renderer.distance * view.distance_scale,
                                         expression.action_units)
                passes = pass_images(out, self.config.passes)
                encoding = time.perf_counter()
                heatmap = self._zero_heatmap if expression.displacement is None else encode_heatmap(out.heatmap, level)
                truth.update({name: {"bytes": encode_png(image, level), "path": None} for name, image in passes.items()})
                encoded[view_number, expression_index] = (encode_image(out.image, image_format, level), heatmap,
                                                          out.landmarks_2d, truth)
                stages["ground_truth"] += encoding - started
                stages["encoding"] += time.perf_counter() - encoding
        return [
            self._row(spec, view, expression_index, aus, *encoded[view_number, expression_index],
                      neutral_bytes=encoded[view_number, 0][0])
            for view_number, view in enumerate(identity.views)
            for expression_index, aus in enumerate(({}, *spec.expressions))
        ]

    def _row(self, spec: IdentitySpec, view: View, expression_index: int, aus: dict, image_bytes: bytes,
             heatmap_bytes: bytes, landmarks_2d: np.ndarray, truth: dict, neutral_bytes: bytes) -> dict:
        """One row; `truth` holds the ground-truth columns (`ground_truth.geometry_columns` and the passes)."""
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
            **truth,
        }
