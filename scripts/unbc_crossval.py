"""Subject-disjoint k-fold cross-validation on UNBC-McMaster (or any real pain data in the same HDF5 layout),
fine-tuning a synthetic-pretrained ViTPain.

    accelerate launch scripts/unbc_crossval.py --data_dir datasets/UNBC-McMaster --init_from runs/rgb \
        --output_dir runs/unbc --folds 0,1,2,3,4

Layout (the one the official Pain-in-3D code reads, `data/unbc_loader.py`), three files in `--data_dir`:

    frames_unbc_2020-09-21-05-42-04.hdf5        image (N, H, W, 3) or (N, H, W) uint8; index (N,)
    annotations_unbc_2020-10-13-22-55-04.hdf5   index, subject_name ("042-ll042": subject number before "-"),
                                                label_AU_4/6/7/9/10/43 (a value or a per-frame sequence, NaN = 0),
                                                label_pspi (optional: else PSPI from the AUs)
    UNBC_CVFolds_2019-05-16-15-16-36.hdf5       fold-K/train_subjects, fold-K/validation_subjects (subject numbers)

Annotation row i describes frame i (rows pointing past the last frame are dropped, as the official loader does).
Protocol per fold K: the fold's `validation_subjects` are the held-out TEST subjects; a seeded `--inner_val_ratio` of
the fold's `train_subjects` becomes the VALIDATION subjects that pick the checkpoint; the rest train. The three sets
are disjoint by subject, and the test fold never picks a checkpoint. Writes `<output_dir>/fold-K/` (model folder,
evaluation.json, model card) and `<output_dir>/summary.json` (mean and std over folds).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import HfArgumentParser, TrainingArguments

from dataset_builder.evaluation import select_rows
from training_args import DataArguments, ModelArguments, parse_args
from training_common import as_dict, build_model, image_processor_for, init_source, rank_info, run_training
from training_common import setup_logging

FRAMES_FILE = "frames_unbc_2020-09-21-05-42-04.hdf5"
ANNOTATIONS_FILE = "annotations_unbc_2020-10-13-22-55-04.hdf5"
FOLDS_FILE = "UNBC_CVFolds_2019-05-16-15-16-36.hdf5"
AU_KEYS = {"AU4": "label_AU_4", "AU6": "label_AU_6", "AU7": "label_AU_7", "AU9": "label_AU_9",
           "AU10": "label_AU_10", "AU43": "label_AU_43"}
SUMMARY_METRICS = ("pspi_mae", "pspi_rmse", "pspi_pearson", "pspi_icc", "auroc_ge1", "auroc_ge2", "auroc_ge3",
                   "f1_ge1", "f1_ge2", "f1_ge3")
logger = logging.getLogger("pain3d.unbc")


def _h5py():
    try:
        import h5py
    except ImportError as error:
        raise ImportError("Reading UNBC HDF5 files needs h5py: `pip install h5py`.") from error
    return h5py


def _value(entry) -> float:
    """One annotation value: a number or a per-frame sequence (its maximum); NaN counts as 0, as officially."""
    array = np.asarray(entry, dtype=np.float64).ravel()
    if array.size == 0 or np.all(np.isnan(array)):
        return 0.0
    return float(np.nanmax(array))


def pspi_from_aus(aus: dict) -> float:
    """PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 (Prkachin & Solomon)."""
    return aus["AU4"] + max(aus["AU6"], aus["AU7"]) + max(aus["AU9"], aus["AU10"]) + aus["AU43"]


@dataclass
class UNBCAnnotations:
    """Per-frame labels of the whole archive: subject numbers, AU dicts and PSPI (frame i = annotation row i)."""

    subjects: np.ndarray  # int subject number per frame
    action_units: list[dict]
    pspi: np.ndarray
    num_frames: int


def read_annotations(data_dir: str | Path) -> UNBCAnnotations:
    h5py = _h5py()
    data_dir = Path(data_dir)
    missing = [name for name in (FRAMES_FILE, ANNOTATIONS_FILE, FOLDS_FILE) if not (data_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{data_dir} lacks {missing}: the UNBC layout needs {FRAMES_FILE}, {ANNOTATIONS_FILE} and {FOLDS_FILE} "
            "(as the official Pain-in-3D code reads them)."
        )
    with h5py.File(data_dir / FRAMES_FILE, "r") as frames, h5py.File(data_dir / ANNOTATIONS_FILE, "r") as ann:
        num_frames = len(frames["image"])
        names = ann["subject_name"][:]
        keep = ann["index"][:] <= num_frames - 1 if "index" in ann else np.ones(len(names), bool)
        names = names[keep]
        subjects = np.array([int((n.decode() if isinstance(n, bytes) else str(n)).split("-")[0]) for n in names])
        columns = {au: (ann[key][:][keep] if key in ann else np.zeros(len(names))) for au, key in AU_KEYS.items()}
        action_units = []
        for i in range(len(names)):
            aus = {au: _value(columns[au][i]) for au in AU_KEYS}
            aus["AU43"] = 1.0 if aus["AU43"] > 0 else 0.0  # eyes closed is binary, as the official loader keeps it
            action_units.append(aus)
        if "label_pspi" in ann:
            pspi = np.array([_value(v) for v in ann["label_pspi"][:][keep]])
        else:
            pspi = np.array([pspi_from_aus(aus) for aus in action_units])
    return UNBCAnnotations(subjects, action_units, pspi, num_frames)


def read_fold(data_dir: str | Path, fold: int) -> tuple[list[int], list[int]]:
    """(train_subjects, held-out subjects) of fold `fold` from the CV folds file."""
    h5py = _h5py()
    with h5py.File(Path(data_dir) / FOLDS_FILE, "r") as folds:
        key = f"fold-{int(fold)}"
        if key not in folds:
            raise KeyError(f"{FOLDS_FILE} has no {key!r}; it has {sorted(folds)}.")
        return sorted(int(s) for s in folds[key]["train_subjects"][:]), sorted(
            int(s) for s in folds[key]["validation_subjects"][:]
        )


def list_folds(data_dir: str | Path) -> list[int]:
    h5py = _h5py()
    with h5py.File(Path(data_dir) / FOLDS_FILE, "r") as folds:
        return sorted(int(key.split("-")[1]) for key in folds if key.startswith("fold-"))


def fold_subjects(data_dir, fold: int, inner_val_ratio: float = 0.2, seed: int = 0) -> dict[str, list[int]]:
    """Subject lists of one fold: `test` = the fold's held-out subjects, `validation` = a seeded `inner_val_ratio` of
    its training subjects (at least one), `train` = the other training subjects. Disjoint by construction."""
    train_pool, test = read_fold(data_dir, fold)
    overlap = set(train_pool) & set(test)
    if overlap:
        raise ValueError(f"fold-{fold} lists subjects {sorted(overlap)} as both training and held-out.")
    order = np.array(train_pool)
    np.random.default_rng(seed + int(fold)).shuffle(order)
    n_val = max(1, min(len(order) - 1, int(round(len(order) * inner_val_ratio))))
    return {"train": sorted(order[n_val:].tolist()), "validation": sorted(order[:n_val].tolist()), "test": test}


class UNBCFrames:
    """Frames of some subjects as rows the training collator reads (`image`, `neutral_image`, `pspi`,
    `action_units`, `identity_id`, `sample_id`); `dataset[i]` is a row, `dataset[a:b]` a dict of columns. With
    `neutral_reference`, each row's neutral image is the subject's first PSPI = 0 frame (deterministic)."""

    def __init__(self, data_dir, annotations: UNBCAnnotations, subjects, neutral_reference: bool = False):
        self.frames_path = Path(data_dir) / FRAMES_FILE
        self.annotations = annotations
        self.indices = np.flatnonzero(np.isin(annotations.subjects, list(subjects)))
        self.neutral_reference = neutral_reference
        self.neutral_of: dict[int, int] = {}
        for i in np.flatnonzero(annotations.pspi == 0):
            self.neutral_of.setdefault(int(annotations.subjects[i]), int(i))
        self._file = None

    def __len__(self) -> int:
        return len(self.indices)

    def _image(self, frame: int):
        from PIL import Image

        if self._file is None:  # opened lazily, once per process (DataLoader workers get their own)
            self._file = _h5py().File(self.frames_path, "r")
        array = np.asarray(self._file["image"][frame]).astype(np.uint8)
        return Image.fromarray(array).convert("RGB")

    def row(self, i: int) -> dict:
        frame = int(self.indices[i])
        subject = int(self.annotations.subjects[frame])
        row = {
            "image": self._image(frame),
            "neutral_image": None,
            "pspi": float(self.annotations.pspi[frame]),
            "action_units": self.annotations.action_units[frame],
            "identity_id": f"{subject:03d}",
            "sample_id": f"unbc_{frame}",
        }
        if self.neutral_reference and subject in self.neutral_of:
            row["neutral_image"] = self._image(self.neutral_of[subject])
        return row

    def __getitem__(self, key):
        if isinstance(key, slice):
            rows = [self.row(i) for i in range(*key.indices(len(self)))]
            return {name: [row[name] for row in rows] for name in rows[0]} if rows else {}
        return self.row(int(key))

    def select(self, rows):
        subset = UNBCFrames.__new__(UNBCFrames)
        subset.__dict__.update(self.__dict__)
        subset.indices = self.indices[np.asarray(list(rows), dtype=int)]
        subset._file = None
        return subset

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        return state


@dataclass
class CrossValArgs:
    data_dir: str = "datasets/UNBC-McMaster"
    folds: str = "all"  # "all" or a comma-separated list of fold numbers
    inner_val_ratio: float = 0.2
    split_seed: int = 0


def run_fold(cv: CrossValArgs, fold: int, annotations, model_args, data_args, loop_args) -> dict | None:
    subjects = fold_subjects(cv.data_dir, fold, cv.inner_val_ratio, cv.split_seed)
    model = build_model(model_args, seed=loop_args.seed)
    if model.config.input_modality != "rgb":
        raise ValueError("UNBC frames are RGB: fine-tune an RGB ViTPain (--init_from an RGB model folder).")
    neutral = model.config.use_neutral_reference
    splits = {name: UNBCFrames(cv.data_dir, annotations, subjects[name], neutral) for name in subjects}
    splits["calibration"] = select_rows(splits["train"], data_args.calibration_samples, loop_args.seed + 1)
    logger.info("fold %d subjects: train %s, validation %s, test %s", fold, *subjects.values())
    fold_loop = dataclasses.replace(loop_args, output_dir=str(Path(loop_args.output_dir) / f"fold-{fold}"))
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
    return evaluation


def summarise(evaluations: dict[int, dict]) -> dict:
    summary = {"folds": sorted(evaluations), "per_fold": {}, "mean": {}, "std": {}}
    for fold, evaluation in evaluations.items():
        summary["per_fold"][fold] = {k: evaluation["metrics"].get(k) for k in SUMMARY_METRICS}
    for key in SUMMARY_METRICS:
        values = [v[key] for v in summary["per_fold"].values() if v.get(key) is not None]
        if values:
            summary["mean"][key] = float(np.mean(values))
            summary["std"][key] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return summary


def main(argv: list[str] | None = None) -> dict | None:
    setup_logging()
    parser = HfArgumentParser((CrossValArgs, ModelArguments, DataArguments, TrainingArguments))
    cv, model_args, data_args, loop_args = parse_args(parser, argv)
    data_args.dataset = cv.data_dir
    if not model_args.init_from:
        logger.warning("No --init_from: training from random weights instead of a synthetic-pretrained ViTPain.")
    annotations = read_annotations(cv.data_dir)
    folds = list_folds(cv.data_dir) if cv.folds == "all" else [int(f) for f in cv.folds.split(",")]
    evaluations = {}
    for fold in folds:
        evaluation = run_fold(cv, fold, annotations, model_args, data_args, loop_args)
        if evaluation is not None:
            evaluations[fold] = evaluation
    if rank_info()[0] != 0:
        return None
    summary = summarise(evaluations)
    Path(loop_args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(loop_args.output_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("UNBC cross-validation:", json.dumps({k: round(v, 4) for k, v in summary["mean"].items()}))
    return summary


if __name__ == "__main__":
    main()
