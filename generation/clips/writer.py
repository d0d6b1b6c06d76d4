"""`generate_clips`: a clip dataset folder, written by the stills' writer (`generation.writer`: shard plan,
identity-disjoint splits, manifest, workers, ranks, resume, refusal to overwrite) with the clips' config, columns and
rows (`CLIPS`)."""

from __future__ import annotations

from pathlib import Path

from ..columns import clip_features
from ..writer import DatasetKind, generate_dataset
from .config import ClipConfig
from .rows import ClipRows

CLIP_TOOL = "pain3d clips"


def _clip_features(config: ClipConfig):
    return clip_features([view.name for view in config.views], heatmaps=config.heatmaps)


CLIPS = DatasetKind("clips", CLIP_TOOL, ClipConfig, _clip_features, ClipRows)


def generate_clips(output: str | Path, config: ClipConfig, face_model_path: str | Path, **options) -> dict:
    """Write (this rank's share of) the clip dataset into `output`; `options` as `generation.writer.generate_dataset`
    (workers, resume, overwrite, rank, world_size, barrier, progress, face_model_sha256, device). Returns its summary
    with `frames` and `frames_per_second` added."""
    summary = generate_dataset(output, config, face_model_path, kind=CLIPS, **options)
    summary["clips"] = summary["rows"]
    summary["frames"] = summary["rows"] * config.num_frames
    summary["frames_per_second"] = summary["frames"] / summary["seconds"] if summary["seconds"] > 0 else 0.0
    return summary
