"""The "Rig a pain face" engine: the generator's one identity path (`PainFaceGenerator`) behind a small cache of
identities, so a new pain expression only re-rigs and renders (the identity's mesh, texture, hair and neutral renders
are kept). Identity `seed` with the chosen demographics is identity `seed` of a seed-0 dataset, dealt those
demographics: the same draws, the same renderer, the same background."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from generation import DEFAULT_VIEWS, FaceModel, View, pspi
from generation.clips.dynamics import ClipDynamics, clip_dynamics
from generation.clips.rows import render_clip
from generation.columns import HEATMAP_VIEW_MAX_MM, PASSES, colorize_heatmap
from generation.config import GenerationConfig
from generation.demographics import AGE_GROUPS, Demographics
from generation.facs import EXTENDED_AUS, PAIN_AUS, validate_action_units
from generation.pipeline import Identity, PainFaceGenerator
from generation.views import DEFAULT_IMAGE_SIZE

logger = logging.getLogger("pain3d.demo")
VIEWS: dict[str, View] = {view.name: view for view in DEFAULT_VIEWS}
VIEW_NUMBERS = {view.name: number for number, view in enumerate(DEFAULT_VIEWS)}
MIN_AGE, MAX_AGE = AGE_GROUPS[0][1], AGE_GROUPS[-1][2]
# the Clip tab's clips: the shortest the dynamics allow (a 1 s lead-in and one 1.3 s episode, docs/clips.md), at a
# frame rate that renders them in a few seconds on a CPU
CLIP_SECONDS, CLIP_FPS = 2.5, 10


def demographics_for(age: int, gender: str, ethnicity: str) -> Demographics:
    """The intended demographics of a demo identity (the age picks its group)."""
    age = int(age)
    group = next((name for name, low, high in AGE_GROUPS if low <= age <= high), None)
    if group is None:
        raise ValueError(f"age must be within {MIN_AGE}-{MAX_AGE} years, got {age}")
    return Demographics(age_group=group, gender=gender, ethnicity=ethnicity, age=age)


def pspi_formula(action_units: dict[str, float]) -> str:
    """'PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 = 3 + max(2, 4) + ... = 9' with the value from `pspi`."""
    au = validate_action_units(action_units)
    filled = f"{au['AU4']:g} + max({au['AU6']:g}, {au['AU7']:g}) + max({au['AU9']:g}, {au['AU10']:g}) + {au['AU43']:g}"
    return f"PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 = {filled} = {pspi(au):g}"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def heatmap_with_colorbar(heatmap_mm: np.ndarray, vmax: float = HEATMAP_VIEW_MAX_MM) -> np.ndarray:
    """The colourised heatmap (fixed 0..vmax mm scale) with a labelled colour bar on its right; uint8 RGB."""
    size = heatmap_mm.shape[0]
    bar_width, margin = max(10, size // 20), max(56, size // 4)
    canvas = Image.new("RGB", (size + margin, size), (255, 255, 255))
    canvas.paste(Image.fromarray(colorize_heatmap(heatmap_mm, vmax)), (0, 0))
    pad = max(8, size // 24)
    ramp = np.linspace(vmax, 0.0, size - 2 * pad, dtype=np.float32)[:, None].repeat(bar_width, axis=1)
    x0 = size + 6
    canvas.paste(Image.fromarray(colorize_heatmap(ramp, vmax)), (x0, pad))
    draw, font = ImageDraw.Draw(canvas), _font(max(9, size // 22))
    for tick in np.linspace(0.0, vmax, 5):
        y = pad + (1 - tick / vmax) * (size - 2 * pad - 1)
        draw.line([(x0 + bar_width, y), (x0 + bar_width + 3, y)], fill=(40, 40, 40))
        label = f"{tick:g} mm" if tick == vmax else f"{tick:g}"
        draw.text((x0 + bar_width + 5, y), label, fill=(40, 40, 40), font=font, anchor="lm")
    return np.asarray(canvas)


def draw_landmarks(image: np.ndarray, landmarks_2d: np.ndarray, color=(53, 208, 255)) -> np.ndarray:
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    radius = max(1.0, image.shape[0] / 200)
    for x, y in landmarks_2d:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    return np.asarray(canvas)


@dataclass
class FaceRender:
    neutral: np.ndarray  # uint8 RGB
    pain: np.ndarray
    heatmap: np.ndarray  # colourised, with its colour bar
    heatmap_mm: np.ndarray  # float32 millimetres
    action_units: dict[str, float]
    pspi: float
    seconds: float
    identity_cached: bool
    passes: dict[str, np.ndarray] | None = None  # the pain face's depth, normals, segmentation as uint8 RGB views


def pass_views(render) -> dict[str, np.ndarray]:
    """A render's ground-truth passes as uint8 RGB images to look at, as the dataset card draws them: depth grey
    (near is bright, black background), normals as stored ((n + 1) / 2), segmentation in the card's class colours."""
    from dataset_builder.card import SEGMENTATION_COLORS
    from generation.ground_truth import pass_images

    stored = pass_images(render, PASSES)
    depth = render.depth
    foreground = depth > 0
    near, far = np.percentile(depth[foreground], (1, 99)) if foreground.any() else (0.0, 1.0)
    grey = np.where(foreground, 1 - np.clip((depth - near) / max(far - near, 1e-6), 0, 1) * 0.85, 0)
    palette = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in SEGMENTATION_COLORS], np.uint8)
    return {
        "depth": np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2),
        "normals": stored["normals"],
        "segmentation": palette[np.minimum(stored["segmentation"], len(palette) - 1)],
    }


@dataclass
class ClipPreview:
    frames: np.ndarray  # uint8 (N, H, W, 3) RGB, lossless
    dynamics: ClipDynamics  # per-frame AUs, PSPI, blinks and head motion
    head_pose: np.ndarray  # (N, 3) yaw, pitch, roll of each frame's camera, degrees (the stills' angles)
    seconds: float
    identity_cached: bool


class FaceStudio:
    """Renders (identity, AUs, view) -> neutral, pain and heatmap images.

    OpenGL contexts belong to the thread that made them, and web servers answer from a pool of threads, so every
    OpenGL call runs on one private thread; the lock keeps one render at a time. At most `max_identities` built
    identities are kept (least recently used first out), so memory stays bounded however many are asked for.
    """

    def __init__(self, face_model: FaceModel, image_size: int = DEFAULT_IMAGE_SIZE, max_identities: int = 8):
        self.face_model = face_model
        self.image_size = image_size
        self.max_identities = max_identities
        config = GenerationConfig(num_identities=1, image_size=image_size, views=DEFAULT_VIEWS)
        self._gl = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pain3d-gl")
        self.generator: PainFaceGenerator = self._gl.submit(PainFaceGenerator, config, face_model).result()
        self._identities: OrderedDict[tuple, tuple[Identity, dict]] = OrderedDict()  # key -> (identity, neutrals)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._gl.submit(self.generator.close).result()
        self._gl.shutdown()

    def identity(self, age: int, gender: str, ethnicity: str, seed: int) -> tuple[tuple[Identity, dict], bool]:
        """The identity for these demographics and seed with its neutral renders by view (cached); also whether it
        came from the cache."""
        key = (int(age), gender, ethnicity, int(seed))
        if key in self._identities:
            self._identities.move_to_end(key)
            return self._identities[key], True
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        spec = self.generator.spec(int(seed), demographics=demographics_for(age, gender, ethnicity))
        entry = self._identities[key] = (self._gl.submit(self.generator.identity, spec).result(), {})
        while len(self._identities) > self.max_identities:  # least recently used out: memory stays bounded
            self._identities.popitem(last=False)
        logger.info("identity cache: %d of at most %d built identities", len(self._identities), self.max_identities)
        return entry, False

    def render(
        self,
        action_units: dict[str, float],
        *,
        age: int = 45,
        gender: str = "female",
        ethnicity: str = "White",
        seed: int = 0,
        view: str = "frontal",
        landmarks: bool = False,
        passes: bool = False,
    ) -> FaceRender:
        """The identity neutral and posed with `action_units` in `view`; `passes` adds the posed face's depth,
        normals and segmentation (`pass_views`)."""
        started = time.perf_counter()
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        aus = validate_action_units({name: value for name, value in action_units.items() if value})
        with self._lock:
            (identity, neutrals), cached = self.identity(age, gender, ethnicity, seed)
            neutral_render, pain_render = self._gl.submit(self._render_pair, identity, neutrals, aus, view,
                                                          PASSES if passes else ()).result()
        neutral_image, pain_image = neutral_render.image, pain_render.image
        if landmarks:
            neutral_image = draw_landmarks(neutral_image, neutral_render.landmarks_2d)
            pain_image = draw_landmarks(pain_image, pain_render.landmarks_2d)
        all_aus = {name: float(aus.get(name, 0.0)) for name in (*PAIN_AUS, *EXTENDED_AUS)}
        return FaceRender(
            neutral=neutral_image,
            pain=pain_image,
            heatmap=heatmap_with_colorbar(pain_render.heatmap),
            heatmap_mm=pain_render.heatmap,
            action_units=all_aus,
            pspi=float(pspi(aus)),
            seconds=time.perf_counter() - started,
            identity_cached=cached,
            passes=pass_views(pain_render) if passes else None,
        )

    def clip(self, apex_pspi: int, *, age: int = 45, gender: str = "female", ethnicity: str = "White", seed: int = 0,
             view: str = "frontal") -> ClipPreview:
        """A CLIP_SECONDS clip of the identity acting pain up to `apex_pspi` (1..16): clip 0 of identity `seed` of a
        seed-0 `pain3d clips` dataset, its apex set to `apex_pspi`, rendered as `pain3d clips` renders."""
        started = time.perf_counter()
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        dynamics = clip_dynamics(0, int(seed), 0, CLIP_SECONDS, CLIP_FPS, apex_pspi=apex_pspi)
        with self._lock:
            (identity, _), cached = self.identity(age, gender, ethnicity, seed)
            clip = self._gl.submit(render_clip, self.generator, identity, dynamics, VIEW_NUMBERS[view]).result()
        return ClipPreview(clip.frames, dynamics, clip.head_pose, time.perf_counter() - started, cached)

    def _render_pair(self, identity: Identity, neutrals: dict, aus: dict, view_name: str, passes: tuple = ()):
        number = VIEW_NUMBERS[view_name]
        if view_name not in neutrals:
            neutrals[view_name] = self.generator.render(identity, self.generator.expression(identity), number)
        pain = self.generator.expression(identity, aus)
        return neutrals[view_name], self.generator.render(identity, pain, number, passes=passes)
