"""Subject-disjoint k-fold cross-validation on UNBC-McMaster, from scratch or fine-tuning a 3DPain-pretrained ViTPain.

    python scripts/unbc_crossval.py --data_dir UNBC-McMaster --output_dir runs/unbc                       # from scratch
    python scripts/unbc_crossval.py --data_dir UNBC-McMaster --init_from exp/student_s0 --output_dir runs/unbc-ft

`--data_dir` is either of two layouts, both read by `dataset_builder.load_unbc` (same columns, same neutral frame):

- **The archive as its authors ship it** (`Images/`, `Frame_Labels/{PSPI,FACS}/`, `AAM_landmarks/`,
  `Sequence_Labels/`). Frames are aligned to the 3DPain framing from their AAM landmarks (`--align false` keeps the
  raw frames). Folds: the subjects, shuffled with `--split_seed`, dealt into `--num_folds` groups; fold K tests
  group K.
- **The HDF5 files the official Pain-in-3D code reads** (`data/unbc_loader.py`; see `dataset_builder.unbc_hdf5`):
  frames, annotations and the CV folds file. Frames are used as stored (there are no landmarks to align with);
  fold K tests the folds file's `fold-K/validation_subjects` and trains on its `fold-K/train_subjects`.

Protocol per fold K: the fold's held-out subjects are the TEST subjects; a seeded `--inner_val_ratio` of the other
subjects become the VALIDATION subjects that pick the checkpoint; the rest train. The three sets are disjoint by
subject, and the test subjects never pick anything. Writes `<output_dir>/fold-K/` (model folder, evaluation.json,
model card), `<output_dir>/summary.json` (per fold, mean and std) and `<output_dir>/results.md` (the results table:
PSPI MAE, PCC, ICC, AUROC and F1 at PSPI >= 1/2/3, per fold and overall, and what was tuned on validation).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from transformers import HfArgumentParser, TrainingArguments

from dataset_builder import UNBCLayoutError, load_unbc
from dataset_builder.evaluation import select_rows
from dataset_builder.unbc_hdf5 import FOLDS_FILE, FRAMES_FILE, is_hdf5_layout, read_folds, subject_number
from generation.manifest import record
from safe_output import UsageError, check_training_output, finish_training_run, prepare_output_dir, run_main
from safe_output import start_training_run, usage_errors
from training_args import DataArguments, ModelArguments, output_policy, parse_args
from training_common import as_dict, build_model, image_processor_for, init_source, rank_info, run_training
from training_common import setup_logging

SUMMARY_METRICS = ("pspi_mae", "pspi_rmse", "pspi_pearson", "pspi_icc", "auroc_ge1", "auroc_ge2", "auroc_ge3",
                   "f1_ge1", "f1_ge2", "f1_ge3")
logger = logging.getLogger("pain3d.unbc")


def split_fold(train_pool, test, fold: int, inner_val_ratio: float = 0.2, seed: int = 0) -> dict[str, list]:
    """Subject lists of one fold: `test` = the fold's held-out subjects, `validation` = a seeded `inner_val_ratio` of
    its other subjects (at least one), `train` = the rest. Disjoint by construction."""
    train_pool, test = sorted(train_pool), sorted(test)
    if len(train_pool) < 2:
        raise ValueError(f"fold {fold} leaves {len(train_pool)} subject(s) outside its test set: training and "
                         "validation need at least one subject each (use fewer folds or more subjects).")
    overlap = set(train_pool) & set(test)
    if overlap:
        raise ValueError(f"fold-{fold} lists subjects {sorted(overlap)} as both training and held-out.")
    order = np.array(train_pool, dtype=object)
    np.random.default_rng(seed + int(fold)).shuffle(order)
    n_val = max(1, min(len(order) - 1, int(round(len(order) * inner_val_ratio))))
    return {"train": sorted(order[n_val:].tolist()), "validation": sorted(order[:n_val].tolist()), "test": test}


def archive_folds(subjects, num_folds: int, seed: int = 0) -> list[list[str]]:
    """Test subjects of each fold for the archive layout: the sorted subjects, shuffled with `seed`, dealt round-robin
    into `num_folds` groups (every subject is tested exactly once)."""
    subjects = sorted(set(subjects))
    largest_test = -(-len(subjects) // max(num_folds, 1))
    if not 2 <= num_folds <= len(subjects) or len(subjects) - largest_test < 2:
        raise ValueError(f"--num_folds {num_folds} does not fit {len(subjects)} subjects: use 2 to "
                         f"{len(subjects)} folds (leave-one-subject-out), with at least 2 subjects outside each "
                         "fold's test group to train and validate.")
    order = np.random.default_rng(seed).permutation(len(subjects))
    return [sorted(subjects[i] for i in order[k::num_folds]) for k in range(num_folds)]


class UNBCSource:
    """UNBC frames read by `dataset_builder.load_unbc` (either layout) and the folds of their subjects: fold number ->
    (subjects that train or validate, held-out test subjects), subjects named as the rows' `identity_id`."""

    def __init__(self, dataset, folds: dict[int, tuple[list[str], list[str]]]):
        self.dataset, self._folds = dataset, folds
        self.report = dataset.report
        self.subject_of_row = np.asarray(dataset["identity_id"], dtype=object)

    def folds(self) -> list[int]:
        return sorted(self._folds)

    def fold(self, fold: int) -> tuple[list, list]:
        if fold not in self._folds:
            raise KeyError(f"fold {fold} does not exist: the data has folds {self.folds()}")
        return self._folds[fold]

    def frames(self, subjects, neutral_reference: bool):
        rows = np.flatnonzero(np.isin(self.subject_of_row, list(subjects)))
        frames = self.dataset.select(rows.tolist())  # the training transform picks and decodes the columns it needs
        return frames if neutral_reference else frames.remove_columns("neutral_image")


def hdf5_folds(data_dir, subjects) -> dict[int, tuple[list[str], list[str]]]:
    """The folds file's folds, its subject numbers mapped to the subject names of the frames (a number with no
    frames is left out, with a warning)."""
    by_number = {subject_number(name): name for name in subjects}
    folds = {}
    for fold, (train, test) in read_folds(data_dir).items():
        unknown = sorted(set(train + test) - set(by_number))
        if unknown:
            logger.warning("fold %d lists subjects %s that have no frames: left out", fold, unknown)
        folds[fold] = tuple(sorted(by_number[n] for n in numbers if n in by_number) for numbers in (train, test))
    return folds


def open_source(cv: "CrossValArgs", image_size: int) -> UNBCSource:
    path = Path(cv.data_dir)
    archive = (path / "Images").is_dir()
    if not archive and not is_hdf5_layout(path):
        raise FileNotFoundError(
            f"{path} is neither layout: the archive as shipped has Images/, Frame_Labels/, AAM_landmarks/ and "
            f"Sequence_Labels/; the official code's layout has {FRAMES_FILE}, its annotations and {FOLDS_FILE}."
        )
    align = cv.align and archive  # the HDF5 frames have no landmarks: they are used as stored
    dataset = load_unbc(path, align=align, image_size=image_size if align else None)
    subjects = sorted(set(dataset["identity_id"]))
    if not archive:
        return UNBCSource(dataset, hdf5_folds(path, subjects))
    tests = archive_folds(subjects, cv.num_folds, cv.split_seed)
    return UNBCSource(dataset, {k: (sorted(set(subjects) - set(test)), test) for k, test in enumerate(tests)})


@dataclass
class CrossValArgs:
    data_dir: str = "datasets/UNBC-McMaster"
    folds: str = "all"  # "all" or a comma-separated list of fold numbers
    num_folds: int = 5  # archive layout: subject-disjoint folds (the HDF5 layout brings its own)
    align: bool = True  # archive layout: align frames to the 3DPain framing from their AAM landmarks
    inner_val_ratio: float = 0.2
    split_seed: int = 0


def model_input(model_args) -> tuple[str, int]:
    """What the model to train reads: its input modality and image size (an `--init_from` folder's config wins)."""
    if model_args.init_from:
        from modeling_vitpain import ViTPainConfig

        config = ViTPainConfig.from_pretrained(model_args.init_from)
        return str(config.input_modality), int(config.image_size)
    return str(model_args.modality), int(model_args.image_size)


def run_fold(cv: CrossValArgs, fold: int, source, model_args, data_args, loop_args) -> dict | None:
    subjects = split_fold(*source.fold(fold), fold, cv.inner_val_ratio, cv.split_seed)
    model = build_model(model_args, seed=loop_args.seed)  # an RGB model: `main` checked
    neutral = model.config.use_neutral_reference
    splits = {name: source.frames(subjects[name], neutral) for name in subjects}
    splits["calibration"] = select_rows(splits["train"], data_args.calibration_samples, loop_args.seed + 1)
    logger.info("fold %d subjects: train %s, validation %s, test %s", fold, *subjects.values())
    fold_loop = dataclasses.replace(loop_args, output_dir=str(Path(loop_args.output_dir) / f"fold-{fold}"))
    fold_output = SimpleNamespace(output_dir=fold_loop.output_dir, overwrite=False)  # emptied by `main`
    start_training_run(fold_output, "scripts/unbc_crossval.py")
    evaluation = run_training(
        model, image_processor_for(model, model_args, data_args), splits, data_args, fold_loop,
        run_config={**as_dict(cv, model_args, data_args, fold_loop), "fold": fold, "subjects": subjects},
        dataset_name=Path(cv.data_dir).name or "UNBC-McMaster",
        protocol=f"subject-disjoint CV fold {fold}: test = held-out subjects, checkpoint picked on "
        f"{len(subjects['validation'])} separate validation subjects",
        initialised_from=init_source(model_args),
    )
    if evaluation is not None:
        evaluation["subjects"] = subjects
        (Path(fold_loop.output_dir) / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    finish_training_run(fold_output, evaluation)
    return evaluation


TUNED = (
    "Tuned on the validation subjects of each fold: the checkpoint (lowest validation PSPI MAE, evaluated every "
    "`eval_steps`). F1 cut-offs: calibrated on predictions for training subjects. Nothing was chosen on test "
    "subjects; the other settings (learning rate, steps, batch size, augmentation) are the command line's, not tuned."
)
TABLE_COLUMNS = (("pspi_mae", "PSPI MAE"), ("pspi_pearson", "PCC"), ("pspi_icc", "ICC"), ("auroc_ge1", "AUROC>=1"),
                 ("auroc_ge2", "AUROC>=2"), ("auroc_ge3", "AUROC>=3"), ("f1_ge1", "F1>=1"), ("f1_ge2", "F1>=2"),
                 ("f1_ge3", "F1>=3"))


def summarise(evaluations: dict[int, dict], init_from: str | None = None) -> dict:
    summary = {"folds": sorted(evaluations), "per_fold": {}, "mean": {}, "std": {}, "tuned_on_validation": TUNED,
               "initialised_from": init_from}
    for fold, evaluation in evaluations.items():
        row = {k: evaluation["metrics"].get(k) for k in SUMMARY_METRICS}
        row["num_test_frames"] = evaluation["num_samples"]
        row["test_subjects"] = evaluation.get("subjects", {}).get("test")
        row["validation_subjects"] = evaluation.get("subjects", {}).get("validation")
        row["best_checkpoint"] = evaluation.get("validation", {}).get("best_checkpoint")
        summary["per_fold"][fold] = row
    for key in SUMMARY_METRICS:
        values = [v[key] for v in summary["per_fold"].values() if v.get(key) is not None]
        if values:
            summary["mean"][key] = float(np.mean(values))
            summary["std"][key] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return summary


def results_markdown(summary: dict) -> str:
    """The results table: one row per fold, then the mean +/- std over folds, and what was tuned on validation."""
    cell = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731 - n/a: one class only among a fold's tests
    header = "| fold | test subjects | test frames | " + " | ".join(name for _, name in TABLE_COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (3 + len(TABLE_COLUMNS))]
    for fold, row in summary["per_fold"].items():
        subjects = ", ".join(str(s) for s in row.get("test_subjects") or [])
        cells = [cell(row.get(key)) for key, _ in TABLE_COLUMNS]
        lines.append(f"| {fold} | {subjects} | {row['num_test_frames']} | " + " | ".join(cells) + " |")
    overall = [f"{summary['mean'][k]:.3f} +/- {summary['std'][k]:.3f}" if k in summary["mean"] else "n/a"
               for k, _ in TABLE_COLUMNS]
    total = sum(row["num_test_frames"] for row in summary["per_fold"].values())
    lines.append(f"| mean +/- std | all | {total} | " + " | ".join(overall) + " |")
    start = f"fine-tuned from `{summary['initialised_from']}`" if summary.get("initialised_from") else "from scratch"
    return "\n".join(lines) + f"\n\nTraining {start}. {summary['tuned_on_validation']}\n"


def checked_folds(cv: CrossValArgs, source) -> list[int]:
    """The folds `--folds` names, each once and each one the data has (a `UsageError` otherwise)."""
    available = source.folds()
    if cv.folds == "all":
        return available
    try:
        folds = [int(fold) for fold in cv.folds.split(",")]
    except ValueError:
        raise UsageError(f"--folds must be 'all' or fold numbers separated by commas (e.g. 0,2), got {cv.folds!r}") \
            from None
    if len(set(folds)) != len(folds):
        raise UsageError(f"--folds names a fold twice ({cv.folds}): give each fold once")
    missing = [fold for fold in folds if fold not in available]
    if missing:
        raise UsageError(f"fold(s) {missing} do not exist: {cv.data_dir} has folds {available}")
    return folds


def main(argv: list[str] | None = None) -> dict | None:
    setup_logging()
    parser = HfArgumentParser((CrossValArgs, ModelArguments, DataArguments, TrainingArguments))
    with usage_errors():
        cv, model_args, data_args, loop_args = parse_args(parser, argv)
    data_args.dataset = cv.data_dir
    output = output_policy(loop_args, data_args)
    check_training_output(output)  # before anything is read or written
    if not model_args.init_from:
        logger.warning("No --init_from: training from random weights instead of a synthetic-pretrained ViTPain.")
    modality, image_size = model_input(model_args)
    if modality != "rgb":
        raise UsageError(f"UNBC frames are RGB, and this model reads {modality}: fine-tune an RGB ViTPain (the "
                         "distilled student) or train one with --modality rgb")
    try:
        source = open_source(cv, image_size)
    except (FileNotFoundError, UNBCLayoutError) as error:
        raise UsageError(str(error)) from None
    folds = checked_folds(cv, source)
    if rank_info()[0] == 0:  # the folds' folders belong to this run: replaced whole with --overwrite
        prepare_output_dir(output.output_dir, output.overwrite, tool="scripts/unbc_crossval.py",
                           owned=[f"fold-{fold}" for fold in folds])
    evaluations = {}
    for fold in folds:
        evaluation = run_fold(cv, fold, source, model_args, data_args, loop_args)
        if evaluation is not None:
            evaluations[fold] = evaluation
    if rank_info()[0] != 0:
        return None
    summary = summarise(evaluations, model_args.init_from)
    output_dir = Path(loop_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = results_markdown(summary)
    (output_dir / "results.md").write_text(table)
    record(output_dir, ["summary.json", "results.md"])  # the fold folders are recorded as this run's, with their own
    print("UNBC cross-validation:\n" + table)
    return summary


if __name__ == "__main__":
    sys.exit(run_main(main, "unbc_crossval.py"))
