"""UNBC-McMaster as its authors ship it: a small archive-layout folder built from real renders (with the archive's
quirks: empty FACS files, non-pain and unknown AU rows, an AU43 row, a PSPI file that disagrees with its FACS rows,
an image with no labels, a label with no image, a broken landmark file, .DS_Store files), read by `load_unbc`,
aligned to the render template, and cross-validated by `scripts/unbc_crossval.py` from scratch and from a tiny
pretrained ViTPain."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_builder import UNBCLayoutError, align_face, load_unbc, write_unbc_layout
from dataset_builder.alignment import TEMPLATE, anchor_points, similarity_matrix, template_from_landmarks
from dataset_builder.unbc import INNER_MOUTH_CORNERS, read_facs, read_landmarks, read_value

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import unbc_crossval  # noqa: E402

NUM_IDENTITIES, PAIN_EXPRESSIONS, FRAMES_PER_SEQUENCE = 6, 4, 3  # per subject: sequence 1 neutral + 2 pain, 2 pain


@pytest.fixture(scope="module")
def renders(tmp_path_factory, face_model_file):
    """Frontal 3DPain rows (neutral + 4 pain expressions for 6 identities, 128 px) from the real generator."""
    import datasets

    out = tmp_path_factory.mktemp("renders") / "data"
    command = [sys.executable, "-m", "pain3d", "generate", "-o", str(out), "--num-identities",
               str(NUM_IDENTITIES), "--expressions-per-identity", str(PAIN_EXPRESSIONS), "--views", "frontal",
               "--image-size", "128", "--face-model", str(face_model_file), "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in out.glob("data/*.parquet")),
                                 split="train")
    return [dict(row) for row in rows]


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.fixture(scope="module")
def archive(renders, tmp_path_factory):
    """The archive layout, with every quirk the loader must report. Returns (root, frames, quirks)."""
    root = tmp_path_factory.mktemp("unbc") / "UNBC-McMaster"
    frames = write_unbc_layout(renders, root, frames_per_sequence=FRAMES_PER_SEQUENCE, seed=3)
    by_frame = {f["frame"]: f for f in frames}
    source = {row["sample_id"]: row for row in renders}
    pain = [f for f in frames if source[f["source"]]["pspi"] > 0]

    def labels(kind: str, f: dict) -> Path:
        return root / "Frame_Labels" / kind / f["subject"] / f["sequence"] / f"{f['frame']}_facs.txt"


    # An AU43 row (coded as present, intensity 0, as the archive does) on a frame without eye closure; PSPI follows.
    eyes = next(f for f in pain if not source[f["source"]]["action_units"]["AU43"])
    _append(labels("FACS", eyes), f"{43:15.7e}{0:15.7e}{0:15.7e}{0:15.7e}\n")
    labels("PSPI", eyes).write_text(f"{source[eyes['source']]['pspi'] + 1:15.7e}\n")
    # Non-pain AU rows: AU12 (an extended AU) and AU27 (outside the project's table), PSPI unchanged.
    smile = next(f for f in pain if f is not eyes)
    _append(labels("FACS", smile), f"{12:15.7e}{3:15.7e}{0:15.7e}{0:15.7e}\n{27:15.7e}{2:15.7e}{0:15.7e}{0:15.7e}\n")
    # A PSPI file that disagrees with its FACS rows.
    wrong = next(f for f in pain if f not in (eyes, smile) and source[f["source"]]["pspi"] <= 14)
    labels("PSPI", wrong).write_text(f"{source[wrong['source']]['pspi'] + 2:15.7e}\n")
    # An image with no labels, and a label file with no image.
    first = frames[0]
    stray = Path(first["path"]).with_name(f"{first['sequence']}099.png")
    shutil.copy(first["path"], stray)
    ghost = labels("PSPI", {**first, "frame": f"{first['sequence']}098"})
    ghost.write_text(f"{0:15.7e}\n")
    # A broken landmark file (the frame stays without alignment, is left out with it).
    broken = next(f for f in pain if f not in (eyes, smile, wrong) and f["subject"] != eyes["subject"])
    broken_aam = root / "AAM_landmarks" / broken["subject"] / broken["sequence"] / f"{broken['frame']}_aam.txt"
    broken_aam.write_text("12.0 13.0\n")
    # Operating-system litter and a stray file.
    for folder in (root, root / "Images" / first["subject"], root / "Frame_Labels" / "PSPI"):
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "notes.txt").write_text("not part of the archive\n")
    # A sequence without its SEN label.
    no_sen = frames[-1]
    (root / "Sequence_Labels" / "SEN" / no_sen["subject"] / f"{no_sen['sequence']}.txt").unlink()
    quirks = {"no_sen": (no_sen["subject"], no_sen["sequence"]), "eyes": eyes["frame"], "smile": smile["frame"], "wrong": wrong["frame"], "stray": stray,
              "ghost": ghost, "broken": broken["frame"]}
    return root, by_frame, source, quirks


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path_factory, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.getbasetemp() / "hf-datasets")


def test_labels_and_report(archive):
    root, frames, source, quirks = archive
    dataset = load_unbc(root, progress=False)
    report = dataset.report
    assert len(dataset) == len(frames)  # every written frame; the stray image is not a labelled frame
    assert report.images_found == len(frames) + 1 and report.subjects == NUM_IDENTITIES
    assert report.sequences == NUM_IDENTITIES * 2
    assert set(dataset.column_names) >= {"image", "neutral_image", "action_units", "pspi", "identity_id", "sample_id",
                                         "sequence_id", "frame_index", "landmarks_aam", "vas", "opr", "aff", "sen"}
    assert "AU12" in dataset.features["action_units"]
    for row in dataset:
        frame = frames[row["sample_id"]]
        truth = source[frame["source"]]
        expected = {name: float(truth["action_units"].get(name) or 0.0) for name in row["action_units"]}
        if row["sample_id"] == quirks["eyes"]:
            expected["AU43"] = 1.0
        if row["sample_id"] == quirks["smile"]:
            expected["AU12"] = 3.0
        assert row["action_units"] == pytest.approx(expected), row["sample_id"]
        assert row["identity_id"] == frame["subject"] and row["sequence_id"] == frame["sequence"]
        assert row["frame_index"] == int(row["sample_id"][-3:])
        label_dir = root / "Frame_Labels" / "PSPI" / frame["subject"] / frame["sequence"]
        assert row["pspi"] == pytest.approx(read_value(str(label_dir / f"{row['sample_id']}_facs.txt")))
        vas = read_value(str(root / "Sequence_Labels" / "VAS" / frame["subject"] / f"{frame['sequence']}.txt"))
        assert row["vas"] == pytest.approx(vas)
        if (frame["subject"], frame["sequence"]) == quirks["no_sen"]:
            assert row["sen"] is None and row["aff"] is not None
        if row["sample_id"] == quirks["broken"]:
            assert row["landmarks_aam"] is None
        else:
            aam = root / "AAM_landmarks" / frame["subject"] / frame["sequence"] / f"{row['sample_id']}_aam.txt"
            np.testing.assert_allclose(row["landmarks_aam"], read_landmarks(str(aam)), atol=1e-3)
    by_id = {row["sample_id"]: row for row in dataset}
    assert by_id[quirks["wrong"]]["pspi"] == source[frames[quirks["wrong"]]["source"]]["pspi"] + 2  # the file wins
    assert by_id[quirks["eyes"]]["pspi"] == source[frames[quirks["eyes"]]["source"]]["pspi"] + 1

    assert report.problems["pspi_mismatch"] == [
        f"{quirks['wrong']}: PSPI file {by_id[quirks['wrong']]['pspi']:g}, FACS rows give "
        f"{by_id[quirks['wrong']]['pspi'] - 2:g}"
    ]
    assert len(report.problems["image_without_labels"]) == 1 and quirks["stray"].name in report.problems[
        "image_without_labels"][0]
    assert report.problems["labels_without_image"] == [str(quirks["ghost"].relative_to(root))]
    assert report.problems["other_action_units"] == ["AU27 in 1 frames"]
    assert len(report.problems["unreadable_file"]) == 1 and quirks["broken"] in report.problems["unreadable_file"][0]
    assert report.count("system_file") == 3 and report.problems["unknown_file"] == ["notes.txt"]
    assert report.problems["missing_sequence_label"] == ["/".join(quirks["no_sen"]) + ": SEN"]
    assert "missing_neutral" not in report.problems
    summary = report.summary()
    assert "1 frames whose PSPI file differs" in summary and ".DS_Store" in summary


def test_facs_parsing_empty_and_au43():
    from dataset_builder.unbc import facs_action_units

    assert facs_action_units([]) == ({}, [])
    aus, others = facs_action_units([(4, 2.0), (43, 0.0), (12, 1.0), (27, 3.0), (4, 1.0)])
    assert aus == {"AU4": 2.0, "AU43": 1.0, "AU12": 1.0} and others == ["AU27"]


def test_neutral_choice_rules():
    from dataset_builder.unbc import choose_neutrals

    def record(subject, sequence, index, score, coded):
        return {"subject": subject, "sequence": sequence, "frame_index": index, "frame": f"{sequence}{index:03d}",
                "pspi": score, "coded": coded}

    records = [
        record("a", "s1", 1, 3.0, True), record("a", "s1", 2, 0.0, True), record("a", "s1", 3, 0.0, False),
        record("a", "s2", 1, 2.0, True), record("a", "s3", 5, 0.0, True), record("b", "s9", 1, 4.0, True),
    ]
    neutrals = choose_neutrals(records)
    assert neutrals[0] == 2 and neutrals[1] == 2  # same sequence, a frame with no AU coded first
    assert neutrals[3] == 2  # no PSPI 0 frame in s2: the subject's best (no AU coded beats an earlier sequence)
    assert neutrals[4] == 4  # its own sequence's PSPI 0 frame
    assert neutrals[5] is None  # subject b has none


def test_resized_frames_scale_their_landmarks(archive):
    root, frames, source, quirks = archive
    raw, resized = load_unbc(root, progress=False), load_unbc(root, image_size=64, progress=False)
    assert resized[0]["image"].size == (64, 64) and resized[0]["sample_id"] == raw[0]["sample_id"]
    np.testing.assert_allclose(resized[0]["landmarks_aam"], np.asarray(raw[0]["landmarks_aam"]) * [64 / 320, 64 / 240],
                               atol=1e-3)


def test_neutral_is_a_pspi0_frame_of_the_same_subject_preferably_same_sequence(archive):
    from datasets import Image as ImageFeature

    root, frames, source, quirks = archive
    dataset = load_unbc(root, progress=False).cast_column("neutral_image", ImageFeature(decode=False))
    by_path = {f["path"]: f for f in frames.values()}
    for row in dataset:
        neutral = by_path[row["neutral_image"]["path"]]
        assert neutral["subject"] == row["identity_id"]
        assert source[neutral["source"]]["pspi"] == 0
        first_sequence = f"{row['identity_id'][4:]}t1aaaff"  # the only sequence with a PSPI 0 frame
        assert neutral["sequence"] == first_sequence
        if row["sequence_id"] == first_sequence:
            assert neutral["sequence"] == row["sequence_id"]
    # Deterministic: a second read picks the same frames.
    again = load_unbc(root, progress=False).cast_column("neutral_image", ImageFeature(decode=False))
    assert [r["path"] for r in again["neutral_image"]] == [r["path"] for r in dataset["neutral_image"]]


def test_aligned_frames_land_on_the_template(archive):
    root, frames, source, quirks = archive
    size = 96
    dataset = load_unbc(root, align=True, image_size=size, progress=False)
    assert quirks["broken"] not in dataset["sample_id"]  # no landmarks, no alignment: left out and reported
    assert len(dataset) == len(frames) - 1
    assert any(quirks["broken"] in item for item in dataset.report.problems["unreadable_file"])
    errors, neutral_errors, chain_errors = [], [], []
    for row in dataset:
        assert row["image"].size == (size, size) and row["neutral_image"].size == (size, size)
        anchors = anchor_points(row["landmarks_aam"])
        errors.append(np.linalg.norm(anchors - TEMPLATE * size, axis=1).mean() / size)
        render = source[frames[row["sample_id"]]["source"]]
        if render["pspi"] == 0 and not any(render["action_units"].values()):
            neutral_errors.append(errors[-1])
        # Aligning the archive frame equals aligning the original render: landmarks and pixels.
        direct = align_face(render["image"], render["landmarks_2d"], size)
        chain = np.delete(direct.landmarks, INNER_MOUTH_CORNERS, axis=0) - np.asarray(row["landmarks_aam"])
        chain_errors.append(np.linalg.norm(chain, axis=1).max() / size)
        a, b = (np.asarray(im, np.float64)[16:-16, 16:-16].ravel() for im in (row["image"], direct.image))
        assert np.corrcoef(a, b)[0, 1] > 0.95, row["sample_id"]
    # Anchor error after alignment, as a fraction of the image side: what is left is the face's own shape and
    # expression (a stretched mouth cannot sit on the neutral template), so the 2% bound holds on average, over
    # neutral frames and over all frames; a single identity's own eye-to-mouth proportions may add up to 2.5%.
    print(f"anchor error after alignment: mean {np.mean(errors):.2%}, max {max(errors):.2%}, neutral frames max "
          f"{max(neutral_errors):.2%}; archive vs direct alignment: max {max(chain_errors):.3%} of the image size")
    assert len(neutral_errors) == NUM_IDENTITIES
    assert np.mean(neutral_errors) < 0.02 and np.mean(errors) < 0.02 and max(neutral_errors) < 0.025
    assert max(chain_errors) < 0.005


def test_template_matches_the_renders_and_66_point_markup(renders):
    neutral = [row["landmarks_2d"] for row in renders if row["expression_index"] == 0]
    np.testing.assert_allclose(template_from_landmarks(neutral, 128), TEMPLATE, atol=0.02)
    points = np.asarray(renders[0]["landmarks_2d"])
    np.testing.assert_allclose(anchor_points(np.delete(points, INNER_MOUTH_CORNERS, axis=0)), anchor_points(points))
    with pytest.raises(ValueError, match="68, 2"):
        anchor_points(points[:50])


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 100, (6, 2))
    angle, scale, shift = np.radians(17), 1.7, np.array([5.0, -3.0])
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity_matrix(source, source @ linear.T + shift)
    np.testing.assert_allclose(matrix, np.c_[linear, shift], atol=1e-9)


def test_align_photo_finds_the_face_with_dlib(archive):
    pytest.importorskip("dlib")  # the [audit] extra: dlib-bin + face-recognition-models
    from dataset_builder import align_photo

    root, frames, source, quirks = archive
    frame = next(f for f in frames.values() if source[f["source"]]["pspi"] == 0)
    photo = Image.open(frame["path"])
    aam = root / "AAM_landmarks" / frame["subject"] / frame["sequence"] / f"{frame['frame']}_aam.txt"
    detected, truth = align_photo(photo, 128), align_face(photo, read_landmarks(str(aam)), 128)
    error = np.linalg.norm(anchor_points(detected.landmarks) - anchor_points(truth.landmarks), axis=1).mean()
    print(f"dlib-aligned anchors are {error / 128:.2%} of the image size from the AAM-aligned ones")
    assert error / 128 < 0.03


def test_archive_folds_deal_every_subject_once():
    subjects = [f"{n:03d}-sy{n:03d}" for n in range(1, 26)]
    for num_folds in (2, 5, 25):  # 25: leave one subject out
        folds = unbc_crossval.archive_folds(subjects, num_folds, seed=1)
        assert len(folds) == num_folds and sorted(s for fold in folds for s in fold) == subjects
        assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert unbc_crossval.archive_folds(subjects, 5, seed=1) == unbc_crossval.archive_folds(subjects, 5, seed=1)
    assert unbc_crossval.archive_folds(subjects, 5, seed=1) != unbc_crossval.archive_folds(subjects, 5, seed=2)
    with pytest.raises(ValueError, match="num_folds 26"):
        unbc_crossval.archive_folds(subjects, 26)
    with pytest.raises(ValueError, match="num_folds 2 does not fit 3"):
        unbc_crossval.archive_folds(subjects[:3], 2)


def test_not_the_archive_is_one_clear_error(tmp_path):
    with pytest.raises(UNBCLayoutError, match="Images/"):
        load_unbc(tmp_path)
    from safe_output import UsageError

    with pytest.raises(UsageError, match="Sequence_Labels"):
        unbc_crossval.main(["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "cv")])
    assert not (tmp_path / "cv").exists()


def test_facs_files_round_trip(archive):
    root, frames, source, quirks = archive
    frame = frames[quirks["smile"]]
    rows = read_facs(str(root / "Frame_Labels" / "FACS" / frame["subject"] / frame["sequence"] /
                         f"{frame['frame']}_facs.txt"))
    assert (12, 3.0) in rows and (27, 2.0) in rows


TINY = ["--max_steps", "2", "--eval_steps", "2", "--per_device_train_batch_size", "4", "--calibration_samples", "8",
        "--report_to", "none", "--num_folds", "3", "--inner_val_ratio", "0.25"]


def _check_run(output: Path, summary: dict, folds: list[int], dataset) -> list[str]:
    rows_of = {s: dataset["identity_id"].count(s) for s in set(dataset["identity_id"])}
    assert summary["folds"] == folds
    tested = []
    for fold in folds:
        evaluation = json.loads((output / f"fold-{fold}" / "evaluation.json").read_text())
        subjects = evaluation["subjects"]
        train, validation, test = (set(subjects[k]) for k in ("train", "validation", "test"))
        assert train and validation and test and not (train & validation or train & test or validation & test)
        assert evaluation["num_samples"] == sum(rows_of[s] for s in test)
        assert evaluation["validation"]["num_samples"] == sum(rows_of[s] for s in validation)
        tested += sorted(test)
    table = (output / "results.md").read_text()
    for name in ("PSPI MAE", "PCC", "ICC", "AUROC>=1", "AUROC>=3", "F1>=2", "mean +/- std", "Tuned on the validation"):
        assert name in table
    assert table.count("\n| ") == len(folds) + 2  # separator, one row per fold, the overall row
    return tested


def test_crossval_from_scratch_on_the_archive(archive, tmp_path):
    root = archive[0]
    output = tmp_path / "scratch"
    summary = unbc_crossval.main([
        "--data_dir", str(root), "--output_dir", str(output), "--image_size", "32", "--patch_size", "8",
        "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--head_hidden_size", "16", *TINY,
    ])
    dataset = load_unbc(root, align=True, image_size=32, progress=False)
    tested = _check_run(output, summary, [0, 1, 2], dataset)
    assert sorted(tested) == sorted(set(dataset["identity_id"]))  # every subject tested exactly once
    assert "from scratch" in (output / "results.md").read_text()

    # an earlier run is never replaced by accident, and --overwrite replaces only what a run recorded
    from safe_output import UsageError

    args = ["--data_dir", str(root), "--output_dir", str(output), "--image_size", "32", "--patch_size", "8",
            "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--head_hidden_size", "16", *TINY]
    before = {p: p.stat().st_mtime_ns for p in output.rglob("*")}
    with pytest.raises(UsageError, match="not empty.*--overwrite"):
        unbc_crossval.main(args + ["--folds", "1"])
    (output / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="notes.txt"):
        unbc_crossval.main(args + ["--folds", "1", "--overwrite"])
    assert {p: p.stat().st_mtime_ns for p in output.rglob("*") if p.name != "notes.txt"} == before
    (output / "notes.txt").unlink()
    for extra, problem in ((["--folds", "1,1"], "twice"), (["--folds", "7"], "do not exist"),
                           (["--folds", "one"], "fold numbers"), (["--modality", "heatmap"], "reads heatmap")):
        with pytest.raises(UsageError, match=problem):  # refused before the earlier run is touched
            unbc_crossval.main(args + extra + ["--overwrite"])
    assert {p: p.stat().st_mtime_ns for p in output.rglob("*")} == before
    (output / "fold-1" / "checkpoints" / "left-by-an-interrupted-run").mkdir(parents=True)  # empty folders only
    summary = unbc_crossval.main(args + ["--folds", "1", "--overwrite"])
    assert summary["folds"] == [1] and sorted(p.name for p in output.glob("fold-*")) == ["fold-1"]


def test_crossval_fine_tunes_a_pretrained_vitpain_on_the_archive(archive, tmp_path):
    from modeling_vitpain import ViTPainConfig, ViTPainModel

    root = archive[0]
    pretrained = tmp_path / "pretrained"
    config = ViTPainConfig(
        backbone_config={"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64, "image_size": 48, "patch_size": 16},
        head_hidden_size=16, au_head_hidden_size=16, use_neutral_reference=True,
    )
    ViTPainModel(config).save_pretrained(pretrained)
    output = tmp_path / "finetuned"
    summary = unbc_crossval.main(["--data_dir", str(root), "--init_from", str(pretrained), "--output_dir",
                                  str(output), "--folds", "1", *TINY])
    _check_run(output, summary, [1], load_unbc(root, align=True, image_size=48, progress=False))
    run = json.loads((output / "fold-1" / "training_config.json").read_text())
    assert run["init_from"] == str(pretrained) and run["align"] is True
    assert f"fine-tuned from `{pretrained}`" in (output / "results.md").read_text()
