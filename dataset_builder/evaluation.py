"""Evaluate a pain model on a dataset in the column contract: per-row predictions and the evaluation JSON.

    dataset = load_pain_dataset("3dpain-mini")
    rows = with_transform(dataset["test"], processor)                      # the model's own preprocessing
    evaluation, predictions = evaluate_split(model, rows, collator, ...)  # metrics (+ fairness) and per-row outputs

The model is anything whose call takes `pixel_values` (+ `neutral_pixel_values`) and returns `pspi`, `action_units`
and `pain_logits`, with `config.pain_thresholds` / `config.au_names` / `config.input_modality`: the data side never
imports the model side. Metrics come from `dataset_builder/pain_metrics.py`, the `evaluate` module (the same code `evaluate.load` runs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from generation.manifest import replacing

from generation.errors import Pain3DError

from .collator import PainCollator
from .fairness import INTERVAL_METHOD, fairness_table
from .integrity import IncompleteDatasetError
from .transforms import TRAINING_COLUMNS, PainTransform, prepare_dataset

FAIRNESS_ATTRIBUTES = ("age_group", "gender", "ethnicity")
PREDICTION_KEYS = ("pspi", "action_units", "pain_probability", "pspi_labels", "action_unit_labels")


class DatasetSourceError(Pain3DError, ValueError):
    """A dataset argument that is neither a readable folder nor a Hub dataset this machine can load."""


def load_pain_dataset(source: str, split_csv: str | None = None):
    """A `DatasetDict` (train / validation / test) in the column contract from a generated folder, a folder in the
    official 3D-Pain layout (images + per-expression JSON) or a Hub dataset id."""
    import datasets
    import pyarrow as pa

    path = Path(source)
    if path.is_dir() and not (path / "data").is_dir() and not any(path.glob("*.parquet")):
        from .official import load_official_layout

        return load_official_layout(path, split_csv=split_csv)
    if path.is_dir():
        try:
            return datasets.load_dataset(str(path))
        except (datasets.exceptions.DatasetGenerationError, pa.ArrowException, OSError) as error:
            cause = error.__cause__ or error
            raise IncompleteDatasetError(
                f"cannot read the dataset {path} ({type(cause).__name__}: {str(cause).splitlines()[0][:300]}): a shard "
                f"is truncated or corrupt; `pain3d verify {path}` names it and `pain3d generate --resume` renders it again"
            ) from None
    if path.exists():
        raise DatasetSourceError(f"{path} is a file: pass the dataset folder (the one holding data/), or a Hub dataset id")
    try:
        return datasets.load_dataset(source)  # a Hub id (needs the network or a warm cache)
    except (OSError, ValueError) as error:  # ConnectionError and FileNotFoundError are OSErrors
        raise DatasetSourceError(
            f"dataset {source!r} is neither a folder here nor a Hub dataset that can be loaded "
            f"({str(error).splitlines()[0][:300]}); pass a folder written by `pain3d generate`, a folder in the "
            "official 3D-Pain layout, or a Hub dataset id"
        ) from None


def select_rows(dataset, max_rows: int | None, seed: int = 0):
    """A deterministic random subset of at most `max_rows` rows (all of them when `max_rows` is None or larger)."""
    if max_rows is None or max_rows >= len(dataset):
        return dataset
    rows = np.random.default_rng(seed).choice(len(dataset), size=max_rows, replace=False)
    return dataset.select(sorted(rows.tolist()))


class TransformedRows(torch.utils.data.Dataset):
    """Rows of any indexable source that is not a `datasets.Dataset` (e.g. frames read from another archive), with a
    `PainTransform` applied as `set_transform` would: `rows[i]` one row, `rows.__getitems__(indices)` one batch."""

    def __init__(self, rows, transform: PainTransform):
        self.rows, self.transform = rows, transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices) -> list[dict]:
        rows = [self.rows[int(i)] for i in indices]
        batch = self.transform({key: [row[key] for row in rows] for key in rows[0]})
        return [{key: value[i] for key, value in batch.items()} for i in range(len(rows))]

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]


def with_transform(dataset, image_processor, *, train: bool = False, seed: int = 0, return_ids: bool = False,
                   au_names: Sequence[str] | None = None):
    """`dataset` with the columns training and the fairness table need, images undecoded, and a `PainTransform`
    built from `image_processor` attached (`set_transform`): indexing gives model-ready tensors, with AU labels in
    the order of `au_names` (the model config's; default the pain AUs)."""
    from datasets import ClassLabel

    options = dict(train=train, seed=seed, return_ids=return_ids)
    if au_names is not None:
        options["au_names"] = tuple(au_names)
    if not hasattr(dataset, "set_transform"):
        return TransformedRows(dataset, PainTransform.from_image_processor(image_processor, **options))
    columns = tuple(TRAINING_COLUMNS) + tuple(c for c in FAIRNESS_ATTRIBUTES if c in dataset.column_names)
    dataset = prepare_dataset(dataset, columns=columns)
    view = dataset.features.get("view")
    transform = PainTransform.from_image_processor(
        image_processor, view_names=view.names if isinstance(view, ClassLabel) else None, **options
    )
    dataset.set_transform(transform)
    return dataset


@torch.no_grad()
def predict(model, dataset, collator: PainCollator, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Model outputs over `dataset` (a `with_transform` dataset; one process, in order): pspi, action_units,
    pain_probability and the labels."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collator.stack)
    collected: dict[str, list] = {key: [] for key in PREDICTION_KEYS}
    for batch in loader:
        inputs = collator(batch)
        output = model(**{k: v for k, v in inputs.items() if k in ("pixel_values", "neutral_pixel_values")})
        collected["pspi"].append(output.pspi.float().numpy())
        collected["action_units"].append(output.action_units.float().numpy())
        collected["pain_probability"].append(torch.sigmoid(output.pain_logits).float().numpy())
        collected["pspi_labels"].append(inputs["pspi_labels"].numpy())
        collected["action_unit_labels"].append(inputs["action_unit_labels"].numpy())
    return {key: np.concatenate(values) for key, values in collected.items()}


def demographic_groups(dataset) -> dict[str, list[str]]:
    """Group names per row for each demographic ClassLabel column the dataset has (names, not integer ids)."""
    from datasets import ClassLabel

    if not hasattr(dataset, "with_format"):
        return {}
    dataset = dataset.with_format(None)  # plain columns, not the attached training transform
    groups = {}
    for attribute in FAIRNESS_ATTRIBUTES:
        if attribute not in dataset.column_names:
            continue
        feature, values = dataset.features[attribute], dataset[attribute]
        if isinstance(feature, ClassLabel):
            values = [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
        if any(v is not None for v in values):
            groups[attribute] = [None if v is None else str(v) for v in values]
    return groups


def row_identities(dataset) -> list[str] | None:
    """The identity of every row (`identity_id`), for intervals that resample people; None without the column."""
    if not hasattr(dataset, "with_format") or "identity_id" not in dataset.column_names:
        return None
    return [str(v) for v in dataset.with_format(None)["identity_id"]]


def _metrics_module():
    from . import pain_metrics

    return pain_metrics


def evaluate_split(
    model,
    dataset,
    collator: PainCollator,
    *,
    calibration=None,
    dataset_name: str = "3DPain",
    split: str = "test",
    protocol: str = "identity-disjoint; checkpoint picked on the validation split",
    batch_size: int = 64,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(evaluation JSON, per-row predictions): metrics on `dataset`, F1 cut-offs calibrated on the predictions over
    `calibration` (a `with_transform` subset of the training split) when given, and a fairness table by group."""
    metrics_module = _metrics_module()
    config = model.config
    result = predict(model, dataset, collator, batch_size)
    kwargs = {}
    if calibration is not None and len(calibration):
        train = predict(model, calibration, collator, batch_size)
        kwargs = {"train_predictions": train["pspi"], "train_references": train["pspi_labels"]}
    metrics = metrics_module.pain_metrics(
        result["pspi"],
        result["pspi_labels"],
        thresholds=tuple(config.pain_thresholds),
        au_predictions=result["action_units"],
        au_references=result["action_unit_labels"],
        au_names=list(config.au_names),
        **kwargs,
    )
    evaluation = {
        "dataset": dataset_name,
        "split": split,
        "num_samples": int(len(dataset)),
        "protocol": protocol,
        "input_modality": config.input_modality,
        "metrics": _nan_to_none(metrics),
        "f1_calibration": "train-split predictions" if kwargs else "uncalibrated (PSPI >= t)",
    }
    groups = demographic_groups(dataset)
    if groups:
        fairness = fairness_table(
            result["pspi"], result["pspi_labels"], groups, row_identities(dataset), tuple(config.pain_thresholds)
        )
        evaluation["fairness"] = _nan_to_none(fairness)
        evaluation["fairness_intervals"] = INTERVAL_METHOD
    return evaluation, result


EVALUATION_TOOL = "pain3d evaluate"  # marks the metrics JSON `evaluate_model` writes (and may replace)


def _earlier_result(path: Path, kind: str) -> bool:
    """Whether the file at `path` is an earlier `kind` ("evaluation" JSON or "predictions" JSON lines) written by
    `evaluate_model`, which a new run may replace."""
    try:
        with path.open() as stream:
            first = json.loads(stream.read() if kind == "evaluation" else stream.readline())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if kind == "evaluation":  # written by `evaluate_model`, not a training run's evaluation.json
        return isinstance(first, dict) and first.get("tool") == EVALUATION_TOOL
    return isinstance(first, dict) and all(key in first for key in ("sample_id", "pspi", "pspi_label"))


def check_result_paths(output: str | Path | None, predictions: str | Path | None) -> None:
    """Raise ValueError, before anything is computed, unless the evaluation JSON `output` and the `predictions` file
    can be written: not folders, not the same file, and either new or an earlier result of the same kind (anything
    else there is the user's and is never replaced)."""
    paths = {"evaluation": output, "predictions": predictions}
    if output is not None and predictions is not None and Path(output).resolve() == Path(predictions).resolve():
        raise ValueError(f"the metrics JSON and the predictions file are both {output}: give them different paths")
    for kind, path in paths.items():
        if path is None:
            continue
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"the {kind} path {path} is a folder: give a file path")
        if path.exists() and not _earlier_result(path, kind):
            raise ValueError(f"{path} exists and is not an earlier {kind} file: choose another path (it is left as is)")


def _write_replacing(path: str | Path, write) -> Path:
    """`write(stream)` into a temporary file beside `path`, then swap it in (`files.replacing`)."""
    with replacing(path) as partial, open(partial, "w") as stream:
        write(stream)
    return Path(path)


def write_predictions(path: str | Path, sample_ids, result: Mapping[str, np.ndarray], config) -> Path:
    """One JSON line per row: `sample_id`, `pspi`, `action_units` {name: intensity}, `pain_probability`
    {">=t": p}, and the labels (`pspi_label`, `action_unit_labels`)."""
    thresholds = [f">={t:g}" for t in config.pain_thresholds]

    def write(stream):
        for i, sample_id in enumerate(sample_ids):
            row = {
                "sample_id": sample_id,
                "pspi": float(result["pspi"][i]),
                "action_units": dict(zip(config.au_names, map(float, result["action_units"][i]), strict=True)),
                "pain_probability": dict(zip(thresholds, map(float, result["pain_probability"][i]), strict=True)),
                "pspi_label": float(result["pspi_labels"][i]),
                "action_unit_labels": dict(
                    zip(config.au_names, map(float, result["action_unit_labels"][i]), strict=True)
                ),
            }
            stream.write(json.dumps(row) + "\n")

    return _write_replacing(path, write)


def evaluate_stills(
    model,
    image_processor,
    splits,
    *,
    split: str = "test",
    dataset_name: str = "",
    max_samples: int | None = None,
    calibration_samples: int = 1000,
    batch_size: int = 64,
    output: str | Path | None = None,
    predictions: str | Path | None = None,
    collator: PainCollator | None = None,
) -> dict[str, Any]:
    """`model` on `splits[split]`, one row per image, through `image_processor`'s preprocessing (see
    `dataset_builder.model_evaluation.evaluate_model`, the entry point, which checks the paths and loads `splits`)."""
    dataset = dataset_name
    rows = select_rows(splits[split], max_samples)
    config = model.config
    calibration = None
    if "train" in splits and split != "train" and calibration_samples > 0:
        calibration = with_transform(select_rows(splits["train"], calibration_samples, seed=1), image_processor,
                                     au_names=config.au_names)
    collator = collator or PainCollator.for_model(config, image_processor)
    evaluation, result = evaluate_split(
        model, with_transform(rows, image_processor, au_names=config.au_names), collator, calibration=calibration,
        dataset_name=dataset, split=split, protocol="identity-disjoint split", batch_size=batch_size,
    )
    evaluation = {"tool": EVALUATION_TOOL, **evaluation}
    if output is not None:
        _write_replacing(output, lambda stream: stream.write(json.dumps(evaluation, indent=2) + "\n"))
    if predictions is not None:
        sample_ids = rows["sample_id"] if "sample_id" in rows.column_names else [str(i) for i in range(len(rows))]
        write_predictions(predictions, sample_ids, result, config)
    return evaluation


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


__all__ = [
    "demographic_groups",
    "evaluate_split",
    "evaluate_stills",
    "load_pain_dataset",
    "predict",
    "row_identities",
    "select_rows",
    "with_transform",
    "write_predictions",
]
