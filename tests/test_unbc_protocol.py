"""The real-data protocol on a small synthetic HDF5 archive in the UNBC-McMaster layout the official code reads:
subject-disjoint folds, validation subjects apart from test subjects, fine-tuning from a pretrained ViTPain."""

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
from unbc_crossval import ANNOTATIONS_FILE, FOLDS_FILE, FRAMES_FILE  # noqa: E402

SUBJECTS = [42, 43, 47, 48, 52, 59]  # subject numbers as in "042-ll042"
FRAMES_PER_SUBJECT = 5


def write_unbc_layout(folder: Path) -> Path:
    """Frames (N, 24, 24, 3) uint8, per-frame AU sequences (with NaNs, as the archive has), no stored PSPI, and three
    folds holding out two subjects each."""
    rng = np.random.default_rng(0)
    n = len(SUBJECTS) * FRAMES_PER_SUBJECT
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / FRAMES_FILE, "w") as frames:
        frames["image"] = rng.integers(0, 255, (n, 24, 24, 3), dtype=np.uint8)
        frames["index"] = np.arange(n)
    with h5py.File(folder / ANNOTATIONS_FILE, "w") as ann:
        names = [f"{s:03d}-xx{s:03d}".encode() for s in SUBJECTS for _ in range(FRAMES_PER_SUBJECT)]
        ann["subject_name"] = np.array(names)
        ann["index"] = np.arange(n + 2)[:n]
        for au in (4, 6, 7, 9, 10):
            values = rng.integers(0, 4, (n, 2)).astype(np.float64)
            values[::FRAMES_PER_SUBJECT] = 0.0  # each subject's first frame is neutral
            values[1, 1] = np.nan
            ann[f"label_AU_{au}"] = values
        au43 = np.zeros((n, 2))
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
    annotations = unbc_crossval.read_annotations(unbc_dir)
    assert annotations.num_frames == len(SUBJECTS) * FRAMES_PER_SUBJECT
    assert sorted(set(annotations.subjects.tolist())) == SUBJECTS
    with h5py.File(unbc_dir / ANNOTATIONS_FILE, "r") as ann:
        au4 = np.nan_to_num(np.nanmax(ann["label_AU_4"][:], axis=1))
        au6 = np.nan_to_num(np.nanmax(ann["label_AU_6"][:], axis=1))
        au7 = np.nan_to_num(np.nanmax(ann["label_AU_7"][:], axis=1))
        au9 = np.nan_to_num(np.nanmax(ann["label_AU_9"][:], axis=1))
        au10 = np.nan_to_num(np.nanmax(ann["label_AU_10"][:], axis=1))
    expected = au4 + np.maximum(au6, au7) + np.maximum(au9, au10) + (np.arange(len(au4)) == 2)
    np.testing.assert_allclose(annotations.pspi, expected)
    assert annotations.action_units[2]["AU43"] == 1.0 and annotations.action_units[3]["AU43"] == 0.0
    assert annotations.pspi[0] == 0.0


def test_folds_are_subject_disjoint_with_separate_validation(unbc_dir):
    assert unbc_crossval.list_folds(unbc_dir) == [0, 1, 2]
    tested = []
    for fold in range(3):
        subjects = unbc_crossval.fold_subjects(unbc_dir, fold, inner_val_ratio=0.25, seed=0)
        train, validation, test = (set(subjects[k]) for k in ("train", "validation", "test"))
        assert test == set(SUBJECTS[2 * fold : 2 * fold + 2])
        assert validation and train and not (train & validation or train & test or validation & test)
        assert train | validation | test == set(SUBJECTS)
        tested += sorted(test)
    assert sorted(tested) == SUBJECTS  # every subject is tested exactly once across folds
    assert unbc_crossval.fold_subjects(unbc_dir, 1, 0.25, 0) == unbc_crossval.fold_subjects(unbc_dir, 1, 0.25, 0)


def test_frames_rows_and_neutral_reference(unbc_dir):
    annotations = unbc_crossval.read_annotations(unbc_dir)
    frames = unbc_crossval.UNBCFrames(unbc_dir, annotations, [43], neutral_reference=True)
    assert len(frames) == FRAMES_PER_SUBJECT
    row = frames[1]
    assert row["identity_id"] == "043" and row["image"].size == (24, 24) and row["image"].mode == "RGB"
    with h5py.File(unbc_dir / FRAMES_FILE, "r") as f:
        np.testing.assert_array_equal(np.asarray(row["neutral_image"]), f["image"][FRAMES_PER_SUBJECT])
    columns = frames[0:3]
    assert len(columns["pspi"]) == 3 and len(frames.select([0, 2])) == 2


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
        run = json.loads((output / f"fold-{fold}" / "training_config.json").read_text())
        assert run["init_from"] == str(pretrained)
        assert (output / f"fold-{fold}" / "model.safetensors").is_file()


def test_missing_files_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=FOLDS_FILE):
        unbc_crossval.read_annotations(tmp_path)
