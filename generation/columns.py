"""The column contract of every 3DPain dataset (generated or official layout), as `datasets.Features`, with the
split names and the heatmap's stored unit.

A contract leaf: it imports only the other leaves (`facs`, `demographics`, `views`), and both the generator's
writer and the data side (`dataset_builder`: builders, readers, card, transforms) import it, so `generation`
never needs to reach up into `dataset_builder`.
"""

from __future__ import annotations

import io
import zlib
from typing import Sequence

import numpy as np
from PIL import Image as PILImage

from datasets import ClassLabel, Features, Image, List, Value, Video

from .demographics import AGE_GROUP_NAMES, ETHNICITIES, GENDERS
from .facs import ACTION_UNITS, BLINK_AU, EXTENDED_AUS, PAIN_AUS
from .views import DEFAULT_VIEWS

# Heatmaps are 16-bit PNGs holding micrometres: heatmap_mm = pixel / HEATMAP_UNITS_PER_MM (lossless for
# 0-65.535 mm at 1 um resolution; never normalised per sample).
HEATMAP_UNITS_PER_MM = 1000
# Colour scale of heatmaps for viewing only (sheets, cards, the demo); stored heatmaps are raw millimetres.
HEATMAP_VIEW_MAX_MM = 12.0
HEATMAP_CMAP = "inferno"
NUM_LANDMARKS = 68
DEFAULT_VIEW_NAMES: tuple[str, ...] = tuple(view.name for view in DEFAULT_VIEWS)

IMAGE_COLUMNS = ("image", "neutral_image", "heatmap")
ID_COLUMNS = ("sample_id", "identity_id", "expression_index")
CAMERA_COLUMNS = ("view", "yaw", "pitch")
LABEL_COLUMNS = ("action_units", "pspi")
DEMOGRAPHIC_COLUMNS = ("age", "age_group", "gender", "ethnicity")
COLUMNS: tuple[str, ...] = (
    IMAGE_COLUMNS + ID_COLUMNS + CAMERA_COLUMNS + LABEL_COLUMNS + DEMOGRAPHIC_COLUMNS + ("landmarks_2d",)
)
SPLITS = ("train", "validation", "test")

# Ground truth of generated rows (docs/ground_truth.md). Always on: the camera, the head pose, 3D landmarks with
# their visibility and the rig's blendshape weights; opt-in (`--passes`): per-pixel PNG passes.
GEOMETRY_COLUMNS = (
    "camera_intrinsics", "camera_extrinsics", "head_pose", "landmarks_3d", "landmarks_visible", "blendshape_weights",
)
PASSES = ("depth", "normals", "segmentation")  # each pass is a column of its name
# Depth PNGs are 16-bit camera z: depth_mm = pixel / DEPTH_UNITS_PER_MM (0.05 mm steps up to 3.27 m; 0: background).
DEPTH_UNITS_PER_MM = 20
# Segmentation class ids: FaceSynthetics' numbering (0-18) where our faces have the part, plus earrings (19).
# Right and left are the person's own. Glasses and facewear are never drawn; beard and clothing are painted on the
# skin texture, not geometry, so their pixels are skin (see docs/ground_truth.md).
SEGMENTATION_CLASSES: tuple[str, ...] = (
    "background", "skin", "nose", "right_eye", "left_eye", "right_brow", "left_brow", "right_ear", "left_ear",
    "mouth_interior", "upper_lip", "lower_lip", "neck", "hair", "beard", "clothing", "glasses", "headwear",
    "facewear", "earrings",
)
# The rig's blendshapes (ARKit names) that the action units drive, in a fixed order: `blendshape_weights`' fields.
BLENDSHAPE_NAMES: tuple[str, ...] = tuple(sorted({shape for unit in ACTION_UNITS.values() for shape in unit.blendshapes}))


def pain_features(view_names: Sequence[str] = DEFAULT_VIEW_NAMES, extended_aus: Sequence[str] = ()) -> Features:
    """Features of one row per rendered image. `view_names` sets the `view` ClassLabel; `extended_aus` adds
    non-pain AUs to the `action_units` struct (they never enter PSPI)."""
    return Features(
        {
            "image": Image(),
            "neutral_image": Image(),
            "heatmap": Image(),
            "sample_id": Value("string"),
            "identity_id": Value("string"),
            "expression_index": Value("int32"),
            "view": ClassLabel(names=list(view_names)),
            "yaw": Value("float32"),
            "pitch": Value("float32"),
            "action_units": {name: Value("float32") for name in (*PAIN_AUS, *extended_aus)},
            "pspi": Value("float32"),
            "age": Value("int32"),
            "age_group": ClassLabel(names=list(AGE_GROUP_NAMES)),
            "gender": ClassLabel(names=list(GENDERS)),
            "ethnicity": ClassLabel(names=list(ETHNICITIES)),
            "landmarks_2d": List(List(Value("float32"), length=2), length=NUM_LANDMARKS),
        }
    )


def _matrix(rows: int, cols: int) -> List:
    return List(List(Value("float32"), length=cols), length=rows)


def ground_truth_features(passes: Sequence[str] = ()) -> Features:
    """Features of the ground truth of generated rows (besides `pain_features`): the always-on geometry columns and
    the opt-in `passes` (names in `PASSES`). Camera space is OpenCV's: x right, y down, z forward, millimetres."""
    unknown = sorted(set(passes) - set(PASSES))
    if unknown:
        raise ValueError(f"unknown passes {unknown}; valid: {', '.join(PASSES)}")
    features = {
        "camera_intrinsics": _matrix(3, 3),  # pixels; pixel centres at .5 as in landmarks_2d
        "camera_extrinsics": _matrix(4, 4),  # head (world, mm) -> camera (mm)
        "head_pose": {"yaw": Value("float32"), "pitch": Value("float32"), "roll": Value("float32"),
                      "distance_mm": Value("float32"), "rotation": _matrix(3, 3)},
        "landmarks_3d": _matrix(NUM_LANDMARKS, 3),  # mm, camera space
        "landmarks_visible": List(Value("bool"), length=NUM_LANDMARKS),
        "blendshape_weights": {name: Value("float32") for name in BLENDSHAPE_NAMES},
    }
    features.update({name: Image() for name in PASSES if name in passes})  # in PASSES order, whatever was asked
    return Features(features)


def colorize_heatmap(heatmap: np.ndarray, vmax: float = HEATMAP_VIEW_MAX_MM) -> np.ndarray:
    """uint8 (H, W, 3) view of a millimetre heatmap on a fixed scale (0 .. vmax mm)."""
    from matplotlib import colormaps

    return (colormaps[HEATMAP_CMAP](np.clip(heatmap / vmax, 0.0, 1.0))[..., :3] * 255).astype(np.uint8)


# --- clip datasets (`pain3d clips`): one row per clip; per-frame columns are lists of length num_frames
CLIP_AUS: tuple[str, ...] = (*PAIN_AUS, *EXTENDED_AUS, BLINK_AU)  # every AU a clip moves, blinks (AU45) included
HEAD_POSE_AXES = ("yaw", "pitch", "roll")
CLIP_COLUMNS: tuple[str, ...] = (
    "clip_id", "identity_id", "clip_index", "view", "fps", "num_frames", "video", "neutral_image", "pspi",
    "action_units", "landmarks_2d", "head_pose", "apex_pspi", "episodes", "blinks", *DEMOGRAPHIC_COLUMNS,
)


def clip_features(view_names: Sequence[str] = DEFAULT_VIEW_NAMES[:1], heatmaps: bool = False) -> Features:
    """Features of one row per clip. `video` is H.264 MP4 bytes, stored as a `Video` feature that does not decode
    on access (datasets decodes video with torchcodec, which is not installed offline): `dataset_builder.clip_frames`
    decodes it with PyAV. Per frame: `pspi`, `action_units` (a float list per AU, AU45 blinks outside PSPI),
    `landmarks_2d` (pixels), `head_pose` (degrees, the stills' `head_pose` angles: `views.View`) and, with
    `heatmaps`, `heatmap` (the stills' 16-bit PNG of micrometres, one per frame). `episodes` are the pain episodes'
    phase boundaries in seconds from the clip's start, `blinks` the spontaneous blinks (start, duration in seconds)."""
    frames = lambda feature: List(feature)  # noqa: E731 (one entry per frame)
    optional = {"heatmap": frames(Image())} if heatmaps else {}
    return Features(
        {
            "clip_id": Value("string"),
            "identity_id": Value("string"),
            "clip_index": Value("int32"),
            "view": ClassLabel(names=list(view_names)),
            "fps": Value("int32"),
            "num_frames": Value("int32"),
            "video": Video(decode=False),
            "neutral_image": Image(),
            "pspi": frames(Value("float32")),
            "action_units": {name: frames(Value("float32")) for name in CLIP_AUS},
            "landmarks_2d": frames(List(List(Value("float32"), length=2), length=NUM_LANDMARKS)),
            "head_pose": {axis: frames(Value("float32")) for axis in HEAD_POSE_AXES},
            **optional,
            "apex_pspi": Value("int32"),
            "episodes": List({name: Value("float32") for name in ("onset_start", "apex_start", "apex_end",
                                                                   "offset_end", "apex_pspi")}),
            "blinks": List({"start": Value("float32"), "duration": Value("float32")}),
            "age": Value("int32"),
            "age_group": ClassLabel(names=list(AGE_GROUP_NAMES)),
            "gender": ClassLabel(names=list(GENDERS)),
            "ethnicity": ClassLabel(names=list(ETHNICITIES)),
        }
    )


# How the RGB image columns (`image`, `neutral_image`) are stored (`GenerationConfig.image_format`); heatmaps and
# passes are always lossless PNG. Chosen by measurement at 256 px (docs/benchmarks.md#image-encoding).
LOSSLESS_IMAGE_FORMATS = ("webp-lossless", "png")
LOSSY_IMAGE_CODECS = ("webp", "jpeg")  # as "<codec>:<quality 1-100>"
DEFAULT_IMAGE_FORMAT = "webp-lossless"
# libwebp's lossless effort: method 2 is the knee (method 3 saves 3% more for 1.5x the time, method 4 5% for 3.6x)
WEBP_LOSSLESS_METHOD = 2
IMAGE_FORMAT_FORMS = "webp-lossless (default), png, webp:Q or jpeg:Q (lossy, Q an integer 1-100)"


def parse_image_format(spec: str) -> tuple[str, int | None]:
    """`image_format` -> (codec, quality): ("webp-lossless", None), ("png", None), ("webp", Q) or ("jpeg", Q).
    Raises ValueError naming the valid forms."""
    if isinstance(spec, str) and spec in LOSSLESS_IMAGE_FORMATS:
        return spec, None
    codec, _, quality = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if codec in LOSSY_IMAGE_CODECS and quality.isdigit() and 1 <= int(quality) <= 100:
        return codec, int(quality)
    raise ValueError(f"--image-format must be {IMAGE_FORMAT_FORMS}, got {spec!r}")


def encode_image(array: np.ndarray, image_format: str, compress_level: int) -> bytes:
    """An RGB image column's stored bytes (uint8 (H, W, 3)) in `image_format` (`parse_image_format`); PNG at
    `compress_level`."""
    codec, quality = parse_image_format(image_format)
    if codec == "png":
        return encode_png(array, compress_level)
    buffer = io.BytesIO()
    if codec == "webp-lossless":  # quality is libwebp's lossless effort here: 0 is as small, and faster
        PILImage.fromarray(array).save(buffer, format="WEBP", lossless=True, quality=0, method=WEBP_LOSSLESS_METHOD)
    else:
        PILImage.fromarray(array).save(buffer, format=codec.upper(), quality=quality)
    return buffer.getvalue()


def encode_png(array: np.ndarray, compress_level: int) -> bytes:
    """A lossless PNG column's stored bytes (uint8 RGB or grey, or uint16 for millimetre-valued maps). zlib's
    run-length strategy: on renders it is smaller and faster than the default one at level 1 (docs/benchmarks.md);
    with it every level 1-9 gives the same bytes, 0 stores them uncompressed."""
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG", compress_level=compress_level, compress_type=zlib.Z_RLE)
    return buffer.getvalue()


def encode_heatmap(heatmap_mm: np.ndarray, compress_level: int) -> bytes:
    """Millimetres -> the `heatmap` column: a 16-bit PNG of micrometres (lossless to 1 um up to 65.535 mm)."""
    micrometres = np.clip(np.rint(heatmap_mm * HEATMAP_UNITS_PER_MM), 0, 65535).astype(np.uint16)
    return encode_png(micrometres, compress_level)
