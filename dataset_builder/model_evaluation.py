"""`evaluate_model`: a ViTPain model on one split of a dataset folder or Hub id, whatever its rows are: still images
(`evaluation.evaluate_stills`) or clips (`clip_evaluation.evaluate_clips`, every frame and each clip over time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .clip_evaluation import evaluate_clips
from .clips import is_clip_dataset
from .collator import PainCollator
from .evaluation import check_result_paths, evaluate_stills, load_pain_dataset


def evaluate_model(
    model,
    image_processor,
    dataset: str,
    *,
    split: str = "test",
    split_csv: str | None = None,
    max_samples: int | None = None,
    calibration_samples: int = 1000,
    batch_size: int = 64,
    output: str | Path | None = None,
    predictions: str | Path | None = None,
    collator: PainCollator | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on `split` of `dataset` through `image_processor`'s preprocessing: writes the evaluation JSON
    to `output` (when given) and one JSON line per row (or clip) to `predictions` (when given), each replacing only an
    earlier result of its kind (see `check_result_paths`). `max_samples` counts rows, or clips."""
    check_result_paths(output, predictions)
    splits = load_pain_dataset(dataset, split_csv)
    if split not in splits:
        raise ValueError(f"{dataset} has no split {split!r}; it has {sorted(splits)}.")
    options = dict(split=split, dataset_name=dataset, calibration_samples=calibration_samples, batch_size=batch_size,
                   output=output, predictions=predictions, collator=collator)
    if is_clip_dataset(splits[split]):  # a `pain3d clips` folder
        return evaluate_clips(model, image_processor, splits, max_clips=max_samples, **options)
    return evaluate_stills(model, image_processor, splits, max_samples=max_samples, **options)
