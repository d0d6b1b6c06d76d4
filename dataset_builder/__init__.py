"""3DPain datasets: the column contract (`pain_features`) and readers/builders for generated and official layouts."""

from pathlib import Path

from generation.columns import COLUMNS, HEATMAP_UNITS_PER_MM, SPLITS, pain_features

# The `evaluate` module of the pain metrics, shipped inside this package: `evaluate.load(str(PAIN_METRICS_PATH))`.
PAIN_METRICS_PATH = Path(__file__).with_name("pain_metrics.py")

__all__ = ["PAIN_METRICS_PATH", "COLUMNS", "HEATMAP_UNITS_PER_MM", "SPLITS", "pain_features"]

# Readers, writers and the builder (issue 4).
from .builder import Pain3D, Pain3DConfig  # noqa: E402
from .card import write_dataset_card  # noqa: E402
from .export import export_official  # noqa: E402
from .hub import build_hub_folder, push_to_hub  # noqa: E402
from .official import OfficialLayoutError, OfficialLayoutReport, identity_splits, load_official_layout  # noqa: E402

# Real data as it ships (UNBC-McMaster) and the face aligner to the synthetic framing (issue 16).
from .alignment import AlignedFace, FaceNotFoundError, align_face, align_photo  # noqa: E402
from .unbc import UNBCLayoutError, UNBCReport, load_unbc, write_unbc_layout  # noqa: E402

# Clip datasets (pain3d clips): a row's frames, and clip rows as the stills' frame rows (issue 31).
from .clips import ClipRowError, clip_frames, clips_to_frames  # noqa: E402

# Training views import torch: loaded on first use so `import dataset_builder` stays light.
_LAZY = {"Augmentation": "transforms", "PainTransform": "transforms", "pain_dataloader": "transforms"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ += [
    "AlignedFace",
    "ClipRowError",
    "clip_frames",
    "clips_to_frames",
    "Augmentation",
    "FaceNotFoundError",
    "UNBCLayoutError",
    "UNBCReport",
    "align_face",
    "align_photo",
    "load_unbc",
    "write_unbc_layout",
    "OfficialLayoutError",
    "OfficialLayoutReport",
    "Pain3D",
    "Pain3DConfig",
    "PainTransform",
    "build_hub_folder",
    "export_official",
    "identity_splits",
    "load_official_layout",
    "pain_dataloader",
    "push_to_hub",
    "write_dataset_card",
]
