"""Reading clip datasets (`pain3d clips`): a row's frames (`clip_frames`), and clip rows as frame rows with the
stills' columns (`clips_to_frames`), so ViTPain trains and evaluates on clip frames unchanged."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value

from generation.clips.video import decode_video
from generation.columns import HEAD_POSE_AXES, encode_png, pain_features
from generation.errors import Pain3DError
from generation.facs import EXTENDED_AUS, PAIN_AUS

CLIP_ROW_COLUMNS = ("video", "num_frames")  # what makes a row a clip's


class ClipRowError(Pain3DError, ValueError):
    """A row that is not a clip dataset's row."""


def _check_clip_row(row) -> None:
    if not isinstance(row, Mapping) or any(name not in row for name in CLIP_ROW_COLUMNS):
        columns = ", ".join(sorted(row)) if isinstance(row, Mapping) else type(row).__name__
        raise ClipRowError(
            f"not a clip row (it has {columns}): clip_frames and clips_to_frames read rows of a clip dataset written "
            "by `pain3d clips` (columns video, num_frames, ...); a still's row holds its image in row['image']"
        )


def clip_frames(row: Mapping) -> np.ndarray:
    """The frames of one clip row as uint8 (num_frames, H, W, 3) RGB; the length is always the row's num_frames
    (a video that decodes to another count is a `VideoError`)."""
    _check_clip_row(row)
    video = row["video"]
    if isinstance(video, Mapping):  # Video(decode=False): {"bytes", "path"}
        data = video.get("bytes")
        if data is None and video.get("path"):
            with open(video["path"], "rb") as handle:
                data = handle.read()
    elif isinstance(video, (bytes, bytearray)):
        data = bytes(video)
    else:
        raise ClipRowError(
            f"row['video'] is a {type(video).__name__}, not the encoded clip: load the dataset with its own features "
            "(video is Video(decode=False)) or cast it back with dataset.cast_column('video', Video(decode=False))"
        )
    return decode_video(data, int(row["num_frames"]))


def frame_features(view_names, extended_aus=EXTENDED_AUS, heatmap: bool = False) -> Features:
    """The frame rows' columns: the stills' image, neutral_image, action_units, pspi, landmarks_2d and, with
    `heatmap`, heatmap (as `pain_features` defines them), plus where each frame comes from, its head pose (the
    stills' angles) and the person's demographics."""
    stills = pain_features(view_names, extended_aus)
    optional = {"heatmap": stills["heatmap"]} if heatmap else {}
    return Features({
        **optional,
        "image": Image(), "neutral_image": stills["neutral_image"],
        "sample_id": Value("string"), "identity_id": Value("string"), "clip_id": Value("string"),
        "frame_index": Value("int32"), "view": ClassLabel(names=list(view_names)),
        "action_units": stills["action_units"], "pspi": stills["pspi"], "landmarks_2d": stills["landmarks_2d"],
        "head_pose": {axis: Value("float32") for axis in HEAD_POSE_AXES},
        "age": stills["age"], "age_group": stills["age_group"], "gender": stills["gender"],
        "ethnicity": stills["ethnicity"],
    })


def _frame_rows(dataset: Dataset, every: int, compress_level: int):
    for row in dataset:
        frames = clip_frames(row)
        for n in range(0, int(row["num_frames"]), every):
            action_units = {name: float(row["action_units"][name][n]) for name in (*PAIN_AUS, *EXTENDED_AUS)}
            optional = {"heatmap": row["heatmap"][n]} if "heatmap" in row else {}
            yield {
                **optional,
                "image": {"bytes": encode_png(frames[n], compress_level), "path": None},
                "neutral_image": row["neutral_image"],
                "sample_id": f"{row['clip_id']}_f{n:04d}",
                "identity_id": row["identity_id"],
                "clip_id": row["clip_id"],
                "frame_index": n,
                "view": row["view"],
                "action_units": action_units,
                "pspi": float(row["pspi"][n]),
                "landmarks_2d": row["landmarks_2d"][n],
                "head_pose": {axis: float(values[n]) for axis, values in row["head_pose"].items()},
                **{name: row[name] for name in ("age", "age_group", "gender", "ethnicity")},
            }


def clips_to_frames(dataset: Dataset | DatasetDict, every: int = 1, compress_level: int = 1) -> Dataset | DatasetDict:
    """Every `every`-th frame of every clip as a row with the stills' columns (`frame_features`): the decoded frame
    as a PNG `image`, the clip's `neutral_image`, that frame's `action_units`, `pspi`, `landmarks_2d` and, in a
    dataset made with `--heatmaps`, `heatmap`. A DatasetDict gives a DatasetDict of the same splits."""
    if isinstance(dataset, DatasetDict):
        return DatasetDict({split: clips_to_frames(part, every, compress_level) for split, part in dataset.items()})
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ClipRowError(f"every must be a positive integer (1: every frame), got {every!r}")
    _check_clip_row({name: None for name in dataset.column_names})
    view = dataset.features["view"]
    views = view.names if isinstance(view, ClassLabel) else sorted(set(dataset["view"]))
    dataset = dataset.cast_column("neutral_image", Image(decode=False))  # PNG bytes pass through, not re-encoded
    if "heatmap" in dataset.column_names:
        dataset = dataset.cast_column("heatmap", List(Image(decode=False)))
    rows = list(_frame_rows(dataset, every, compress_level))
    features = frame_features(views, heatmap="heatmap" in dataset.column_names)
    return Dataset.from_list(rows, features=features)


def is_clip_dataset(dataset) -> bool:
    """Whether `dataset`'s rows are clips (`pain3d clips`: a video and its frame count per row)."""
    return all(name in getattr(dataset, "column_names", ()) for name in CLIP_ROW_COLUMNS)
