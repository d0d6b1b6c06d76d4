"""UNBC-McMaster as the official Pain-in-3D code stores it (`data/unbc_loader.py`): three HDF5 files in one folder.

    frames_unbc_2020-09-21-05-42-04.hdf5        image (N, H, W, 3) or (N, H, W) uint8; index (N,)
    annotations_unbc_2020-10-13-22-55-04.hdf5   index, subject_name ("042-ll042": subject number before "-"),
                                                label_AU_4/6/7/9/10/43 (a value or a per-frame sequence, NaN = 0),
                                                label_pspi (optional: else PSPI from the AUs)
    UNBC_CVFolds_2019-05-16-15-16-36.hdf5       fold-K/train_subjects, fold-K/validation_subjects (subject numbers)

Annotation row i describes frame i; rows pointing past the last frame are dropped, as the official loader does.
This module reads the files only: `unbc.load_unbc` turns the frames into rows, with the archive's rules (neutral
frame, columns), so both layouts give the same dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.facs import pspi

FRAMES_FILE = "frames_unbc_2020-09-21-05-42-04.hdf5"
ANNOTATIONS_FILE = "annotations_unbc_2020-10-13-22-55-04.hdf5"
FOLDS_FILE = "UNBC_CVFolds_2019-05-16-15-16-36.hdf5"
AU_KEYS = {"AU4": "label_AU_4", "AU6": "label_AU_6", "AU7": "label_AU_7", "AU9": "label_AU_9",
           "AU10": "label_AU_10", "AU43": "label_AU_43"}


def h5py():
    """The h5py module, or one ImportError saying how to install it (it is in the train and test extras)."""
    try:
        import h5py as module
    except ImportError as error:
        message = "Reading the UNBC HDF5 files needs h5py: `pip install h5py` (or the [train] extra)."
        raise ImportError(message) from error
    return module


def is_hdf5_layout(folder: str | Path) -> bool:
    """Whether `folder` holds any of the three files (a partial set is reported when it is read)."""
    return any((Path(folder) / name).is_file() for name in (FRAMES_FILE, ANNOTATIONS_FILE, FOLDS_FILE))


def _value(entry) -> float:
    """One annotation value: a number or a per-frame sequence (its maximum); NaN counts as 0, as officially."""
    array = np.asarray(entry, dtype=np.float64).ravel()
    if array.size == 0 or np.all(np.isnan(array)):
        return 0.0
    return float(np.nanmax(array))


@dataclass
class UNBCAnnotations:
    """Per-frame labels: subject name ("042-ll042"), AU dict and PSPI of frame i = annotation row i."""

    subject_names: list[str]
    action_units: list[dict]
    pspi: np.ndarray
    num_frames: int
    dropped: int  # annotation rows pointing past the last frame

    @property
    def subjects(self) -> np.ndarray:
        """The subject number of each frame (the part of the name before "-"), as the folds file lists them."""
        return np.array([subject_number(name) for name in self.subject_names], dtype=int)


def subject_number(name: str) -> int:
    """The subject number of a subject name: "042-ll042" -> 42."""
    return int(name.split("-")[0])


def read_annotations(folder: str | Path) -> UNBCAnnotations:
    """The labels of every frame, read as the official loader reads them (AU43 binary, NaN = 0)."""
    folder = Path(folder)
    missing = [name for name in (FRAMES_FILE, ANNOTATIONS_FILE) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks {missing}: the UNBC HDF5 layout needs {FRAMES_FILE} and {ANNOTATIONS_FILE} (and "
            f"{FOLDS_FILE} for its cross-validation folds), as the official Pain-in-3D code reads them"
        )
    with h5py().File(folder / FRAMES_FILE, "r") as frames, h5py().File(folder / ANNOTATIONS_FILE, "r") as ann:
        num_frames = len(frames["image"])
        names = ann["subject_name"][:]
        keep = ann["index"][:] <= num_frames - 1 if "index" in ann else np.ones(len(names), bool)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names[keep]]
        columns = {au: (ann[key][:][keep] if key in ann else np.zeros(len(names))) for au, key in AU_KEYS.items()}
        action_units = []
        for i in range(len(names)):
            aus = {au: _value(columns[au][i]) for au in AU_KEYS}
            aus["AU43"] = 1.0 if aus["AU43"] > 0 else 0.0  # eyes closed is binary, as the official loader keeps it
            action_units.append(aus)
        if "label_pspi" in ann:
            scores = np.array([_value(v) for v in ann["label_pspi"][:][keep]])
        else:
            scores = np.array([pspi(aus) for aus in action_units])
    return UNBCAnnotations(names, action_units, scores, num_frames, int((~keep).sum()))


def read_folds(folder: str | Path) -> dict[int, tuple[list[int], list[int]]]:
    """Fold number -> (train subjects, held-out subjects), subject numbers as the folds file lists them."""
    path = Path(folder) / FOLDS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} lacks {FOLDS_FILE}: the UNBC HDF5 layout's cross-validation folds")
    with h5py().File(path, "r") as folds:
        return {
            int(key.split("-")[1]): (sorted(int(s) for s in folds[key]["train_subjects"][:]),
                                     sorted(int(s) for s in folds[key]["validation_subjects"][:]))
            for key in folds if key.startswith("fold-")
        }


class FrameReader:
    """Frames of the frames file by row, as RGB PIL images; the file opens on first use, once per process."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / FRAMES_FILE
        self._file = None

    def __call__(self, row: int):
        from PIL import Image

        if self._file is None:
            self._file = h5py().File(self.path, "r")
        return Image.fromarray(np.asarray(self._file["image"][int(row)]).astype(np.uint8)).convert("RGB")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


__all__ = [
    "ANNOTATIONS_FILE",
    "FOLDS_FILE",
    "FRAMES_FILE",
    "FrameReader",
    "UNBCAnnotations",
    "is_hdf5_layout",
    "read_annotations",
    "read_folds",
    "subject_number",
]
