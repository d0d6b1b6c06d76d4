"""The real-data protocol on a small synthetic HDF5 archive in the UNBC-McMaster layout the official code reads:
frames read by `load_unbc` as the archive's are, subject-disjoint folds, validation subjects apart from test subjects,
fine-tuning from a pretrained ViTPain."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import unbc_crossval  # noqa: E402
from dataset_builder import UNBCLayoutError, load_unbc  # noqa: E402
from dataset_builder.unbc_hdf5 import (  # noqa: E402
    ANNOTATIONS_FILE,
    FOLDS_FILE,
    FRAMES_FILE,
    read_annotations,
    read_folds,
)

SUBJECTS = [42, 43, 47, 48, 52, 59]  # subject numbers as in "042-ll042"
FRAMES_PER_SUBJECT = 5
PAST_THE_END = 2  # annotation rows that point past the last frame (dropped, as the official loader does)


def write_unbc_layout(folder: Path) -> Path:
    """Frames (N, 24, 24, 3) uint8, per-frame AU sequences (with NaNs, as the archive has), no stored PSPI, two
    annotation rows past the last frame, and three folds holding out two subjects each."""
    rng = np.random.default_rng(0)
    n = len(SUBJECTS) * FRAMES_PER_SUBJECT
    rows = n + PAST_THE_END
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / FRAMES_FILE, "w") as frames:
        frames["image"] = rng.integers(0, 255, (n, 24, 24, 3), dtype=np.uint8)
        frames["index"] = np.arange(n)
    with h5py.File(folder / ANNOTATIONS_FILE, "w") as ann:
        names = [f"{s:03d}-xx{s:03d}".encode() for s in SUBJECTS for _ in range(FRAMES_PER_SUBJECT)]
        ann["subject_name"] = np.array(names + names[-1:] * PAST_THE_END)
        ann["index"] = np.arange(rows)
        for au in (4, 6, 7, 9, 10):
            values = rng.integers(0, 4, (rows, 2)).astype(np.float64)
            values[::FRAMES_PER_SUBJECT] = 0.0  # each subject's first frame is neutral
            values[1, 1] = np.nan
            ann[f"label_AU_{au}"] = values
        au43 = np.zeros((rows, 2))
        au43[2] = [np.nan, 1.0]
        ann["label_AU_43"] = au43
    with h5py.File(folder / FOLDS_FILE, "w") as folds:
        for k in range(3):
            held_out = SUBJECTS[2 * k : 2 * k + 2]
            group = folds.create_group(f"fold-{k}")
            group["validation_subjects"] = np.array(held_out)
            group["train_subjects"] = np.array([s for s in SUBJECTS if s not in held_out])
    return folder


@pytest.fixture(scope="module")
def unbc_dir(tmp_path_factory) -> Path:
    return write_unbc_layout(tmp_path_factory.mktemp("unbc"))


def test_annotations_follow_the_official_reading(unbc_dir):
    annotations = read_annotations(unbc_dir)
    n = len(SUBJECTS) * FRAMES_PER_SUBJECT
    assert annotations.num_frames == n and len(annotations.pspi) == n and annotations.dropped == PAST_THE_END
    assert sorted(set(annotations.subjects.tolist())) == SUBJECTS
    with h5py.File(unbc_dir / ANNOTATIONS_FILE, "r") as ann:
        au4 = np.nan_to_num(np.nanmax(ann["label_AU_4"][:n], axis=1))
        au6 = np.nan_to_num(np.nanmax(ann["label_AU_6"][:n], axis=1))
        au7 = np.nan_to_num(np.nanmax(ann["label_AU_7"][:n], axis=1))
        au9 = np.nan_to_num(np.nanmax(ann["label_AU_9"][:n], axis=1))
        au10 = np.nan_to_num(np.nanmax(ann["label_AU_10"][:n], axis=1))
    expected = au4 + np.maximum(au6, au7) + np.maximum(au9, au10) + (np.arange(len(au4)) == 2)
    np.testing.assert_allclose(annotations.pspi, expected)
    assert annotations.action_units[2]["AU43"] == 1.0 and annotations.action_units[3]["AU43"] == 0.0
    assert annotations.pspi[0] == 0.0


def test_folds_are_subject_disjoint_with_separate_validation(unbc_dir):
    folds = read_folds(unbc_dir)
    assert sorted(folds) == [0, 1, 2]
    tested = []
    for fold in range(3):
        subjects = unbc_crossval.split_fold(*folds[fold], fold, inner_val_ratio=0.25, seed=0)
        train, validation, test = (set(subjects[k]) for k in ("train", "validation", "test"))
        assert test == set(SUBJECTS[2 * fold : 2 * fold + 2])
        assert validation and train and not (train & validation or train & test or validation & test)
        assert train | validation | test == set(SUBJECTS)
        tested += sorted(test)
    assert sorted(tested) == SUBJECTS  # every subject is tested exactly once across folds
    assert unbc_crossval.split_fold(*folds[1], 1, 0.25, 0) == unbc_crossval.split_fold(*folds[1], 1, 0.25, 0)


def test_load_unbc_reads_the_hdf5_frames_as_archive_rows(unbc_dir, tmp_path, monkeypatch):
    """The HDF5 frames become rows of the archive's columns, with the archive's choice of neutral frame."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    dataset = load_unbc(unbc_dir, progress=False)
    annotations = read_annotations(unbc_dir)
    assert len(dataset) == len(SUBJECTS) * FRAMES_PER_SUBJECT and dataset.report.layout == "hdf5"
    assert dataset.report.problems["annotation_without_frame"] == [f"{PAST_THE_END} rows point past frame 29"]
    assert dataset.report.subjects == len(SUBJECTS) and "missing_neutral" not in dataset.report.problems
    with h5py.File(unbc_dir / FRAMES_FILE, "r") as f:
        frames = f["image"][:]
    for i, row in enumerate(dataset):
        assert row["identity_id"] == f"{annotations.subjects[i]:03d}-xx{annotations.subjects[i]:03d}"
        assert (row["sample_id"], row["frame_index"], row["sequence_id"]) == (f"unbc_{i}", i, None)
        assert row["pspi"] == pytest.approx(annotations.pspi[i]) and row["action_units"]["AU43"] in (0.0, 1.0)
        np.testing.assert_array_equal(np.asarray(row["image"]), frames[i])
        first = SUBJECTS.index(annotations.subjects[i]) * FRAMES_PER_SUBJECT  # each subject's neutral first frame
        np.testing.assert_array_equal(np.asarray(row["neutral_image"]), frames[first])
    assert load_unbc(unbc_dir, image_size=16, progress=False)[0]["image"].size == (16, 16)
    with pytest.raises(UNBCLayoutError, match="no AAM landmarks"):
        load_unbc(unbc_dir, align=True)


def test_crossval_fine_tunes_and_never_picks_on_test(unbc_dir, tmp_path, monkeypatch):
    from modeling_vitpain import ViTPainConfig, ViTPainModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    pretrained = tmp_path / "pretrained"
    config = ViTPainConfig(
        backbone_config={"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64, "image_size": 32, "patch_size": 8},
        head_hidden_size=16, au_head_hidden_size=16,
    )
    ViTPainModel(config).save_pretrained(pretrained)
    output = tmp_path / "cv"
    summary = unbc_crossval.main([
        "--data_dir", str(unbc_dir), "--init_from", str(pretrained), "--folds", "0,2", "--inner_val_ratio", "0.25",
        "--output_dir", str(output), "--max_steps", "2", "--eval_steps", "2", "--per_device_train_batch_size", "4",
        "--calibration_samples", "8", "--report_to", "none",
    ])
    assert summary["folds"] == [0, 2] and "pspi_mae" in summary["mean"] and "pspi_mae" in summary["std"]
    assert json.loads((output / "summary.json").read_text())["mean"] == summary["mean"]
    for fold in (0, 2):
        evaluation = json.loads((output / f"fold-{fold}" / "evaluation.json").read_text())
        subjects = evaluation["subjects"]
        assert evaluation["num_samples"] == len(subjects["test"]) * FRAMES_PER_SUBJECT
        assert evaluation["validation"]["num_samples"] == len(subjects["validation"]) * FRAMES_PER_SUBJECT
        assert not set(subjects["validation"]) & set(subjects["test"])
        assert set(subjects["test"]) == {f"{s:03d}-xx{s:03d}" for s in SUBJECTS[2 * fold : 2 * fold + 2]}
        run = json.loads((output / f"fold-{fold}" / "training_config.json").read_text())
        assert run["init_from"] == str(pretrained)
        assert (output / f"fold-{fold}" / "model.safetensors").is_file()


def test_missing_files_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=ANNOTATIONS_FILE):
        read_annotations(tmp_path)
    with h5py.File(tmp_path / FOLDS_FILE, "w"):
        pass
    with pytest.raises(UNBCLayoutError, match=FRAMES_FILE):  # the folds alone are not the layout's frames
        load_unbc(tmp_path)
    from safe_output import UsageError

    with pytest.raises(UsageError, match=ANNOTATIONS_FILE):
        unbc_crossval.main(["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "cv")])
    assert not (tmp_path / "cv").exists()
