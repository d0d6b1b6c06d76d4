"""The column contract of every 3DPain dataset (generated or official layout), as `datasets.Features`.

This module is the one place that names the columns; the generator's writer, the builders, the official-layout
reader and the training transforms all import it.
"""

from __future__ import annotations

from typing import Sequence

from datasets import ClassLabel, Features, Image, List, Value

from generation.demographics import AGE_GROUP_NAMES, ETHNICITIES, GENDERS
from generation.facs import PAIN_AUS
from generation.views import DEFAULT_VIEWS

# Heatmaps are 16-bit PNGs holding micrometres: heatmap_mm = pixel / HEATMAP_UNITS_PER_MM (lossless for
# 0-65.535 mm at 1 um resolution; never normalised per sample).
HEATMAP_UNITS_PER_MM = 1000
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
