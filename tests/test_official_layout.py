"""The reader of the published 3D-Pain layout: pairing, labels, splits, the cache, and every malformed-input case."""

from __future__ import annotations

import io
import json
import logging
import os

import numpy as np
import pytest
from datasets import Image as ImageFeature
from PIL import Image

from dataset_builder.official import (
    OfficialLayoutError,
    identity_splits,
    load_official_layout,
)
from generation.facs import PAIN_AUS, pspi


def _image_bytes(seed: int, fmt: str = "PNG", size: int = 8) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def write_official(root, identities=4, expressions=2, views=3, ext="png", seed=0) -> dict:
    """A small folder in the official layout; returns {annotation base: AU dict (with PSPI)}."""
    rng = np.random.default_rng(seed)
    images, annotations = root / "meshes_inpainted", root / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    labels = {}
    fmt = "JPEG" if ext == "jpg" else "PNG"
    for i in range(identities):
        identity = f"flame_sample_{i:04d}"
        for v in range(views):
            (images / f"{identity}_neutral_textured_view_{v:03d}_inpainted.{ext}").write_bytes(
                _image_bytes(1000 * i + v, fmt)
            )
        for e in range(1, expressions + 1):
            aus = {name: int(rng.integers(0, 2 if name == "AU43" else 6)) for name in PAIN_AUS}
            aus["PSPI"] = int(pspi(aus))
            base = f"{identity}_pain_{e}"
            labels[base] = aus
            (annotations / f"{base}_annotations.json").write_text(json.dumps(aus))
            for v in range(views):
                (images / f"{base}_textured_view_{v:03d}_inpainted.{ext}").write_bytes(
                    _image_bytes(1000 * i + 10 * e + v, fmt)
                )
    return labels


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")  # default index location
    return tmp_path / "index-cache"


def test_reads_pairs_and_labels(tmp_path, cache_dir):
    labels = write_official(tmp_path / "root")
    result = load_official_layout(tmp_path / "root", cache_dir=cache_dir)
    rows = [row for split in result.values() for row in split.cast_column("image", ImageFeature(decode=False))
            .cast_column("neutral_image", ImageFeature(decode=False))]
    assert len(rows) == 4 * 3 * (2 + 1)  # identities x views x (pain expressions + neutral)
    assert result["train"].features["view"].names == ["view_000", "view_001", "view_002"]
    for row in rows:
        name = os.path.basename(row["image"]["path"])
        neutral = os.path.basename(row["neutral_image"]["path"])
        assert row["image"]["bytes"] is None  # referenced by path, decoded lazily
        assert neutral == f"{row['identity_id']}_neutral_textured_view_{row['view']:03d}_inpainted.png"
        assert row["sample_id"] == name.rsplit(".", 1)[0]
        assert row["heatmap"] is None and row["landmarks_2d"] is None and row["gender"] is None
        if row["expression_index"] == 0:
            assert name == neutral and row["pspi"] == 0 and set(row["action_units"].values()) == {0.0}
        else:
            expected = labels[f"{row['identity_id']}_pain_{row['expression_index']}"]
            assert row["action_units"] == {name: float(expected[name]) for name in PAIN_AUS}
            assert row["pspi"] == expected["PSPI"]
    assert result.report.num_problems == 0
    image = result["train"][0]["image"]
    assert image.size == (8, 8) and image.mode == "RGB"


def test_jpeg_input(tmp_path, cache_dir):
    write_official(tmp_path / "root", identities=2, ext="jpg")
    result = load_official_layout(tmp_path / "root", cache_dir=cache_dir)
    assert sum(result.num_rows.values()) == 2 * 3 * 3
    row = result["train"][0]
    assert row["image"].format == "JPEG" and row["neutral_image"].size == (8, 8)


def test_malformed_json_is_reported_not_fatal(tmp_path, cache_dir):
    write_official(tmp_path / "root")
    (tmp_path / "root/annotations/flame_sample_0001_pain_2_annotations.json").write_text('{"AU4": 3,')
    (tmp_path / "root/annotations/flame_sample_0002_pain_1_annotations.json").write_text("[1, 2]")
    (tmp_path / "root/annotations/flame_sample_0003_pain_1_annotations.json").write_text('{"AU43": 3, "AU4": 1}')
    result = load_official_layout(tmp_path / "root", cache_dir=cache_dir)
    report = result.report
    assert report.count("malformed_annotation") == 2
    assert report.count("invalid_action_units") == 1 and "AU43" in report.problems["invalid_action_units"][0]
    assert report.count("missing_action_units") == 1
    bad = {"flame_sample_0001_pain_2", "flame_sample_0002_pain_1", "flame_sample_0003_pain_1"}
    kept = {f"{r['identity_id']}_pain_{r['expression_index']}" for s in result.values() for r in s}
    assert not bad & kept
    assert sum(result.num_rows.values()) == 4 * 3 * 3 - 3 * 3


def test_missing_neutral_keeps_row_with_none(tmp_path, cache_dir):
    write_official(tmp_path / "root")
    os.remove(tmp_path / "root/meshes_inpainted/flame_sample_0000_neutral_textured_view_001_inpainted.png")
    result = load_official_layout(tmp_path / "root", cache_dir=cache_dir)
    assert result.report.count("missing_neutral") == 2  # two pain expressions of that identity and view
    rows = [r for s in result.values() for r in s.select_columns(["sample_id", "neutral_image"])
            .cast_column("neutral_image", ImageFeature(decode=False))
            if r["sample_id"].startswith("flame_sample_0000_pain") and "view_001" in r["sample_id"]]
    assert len(rows) == 2 and all(r["neutral_image"] is None for r in rows)


def test_unmatched_unrecognised_and_orphans(tmp_path, cache_dir):
    write_official(tmp_path / "root")
    images = tmp_path / "root/meshes_inpainted"
    (images / "flame_sample_0009_pain_4_textured_view_000_inpainted.png").write_bytes(_image_bytes(1))
    (images / "notes.txt").write_text("hello")
    (images / "face_0001.png").write_bytes(_image_bytes(2))
    (tmp_path / "root/annotations/flame_sample_0000_pain_7_annotations.json").write_text('{"AU4": 1, "PSPI": 1}')
    report = load_official_layout(tmp_path / "root", cache_dir=cache_dir).report
    assert report.problems["unmatched_image"] == ["flame_sample_0009_pain_4_textured_view_000_inpainted.png"]
    assert sorted(report.problems["unrecognised_file"]) == ["face_0001.png", "notes.txt"]
    assert report.problems["orphan_annotation"] == ["flame_sample_0000_pain_7_annotations.json"]


def test_pspi_mismatch_reported_and_recomputed(tmp_path, cache_dir, caplog):
    write_official(tmp_path / "root")
    path = tmp_path / "root/annotations/flame_sample_0000_pain_1_annotations.json"
    path.write_text(json.dumps({"AU4": 2, "AU6": 1, "AU7": 3, "AU9": 0, "AU10": 2, "AU43": 1, "PSPI": 4}))
    with caplog.at_level(logging.WARNING, logger="dataset_builder.official"):
        result = load_official_layout(tmp_path / "root", cache_dir=cache_dir)
    assert result.report.problems["pspi_mismatch"] == ["flame_sample_0000_pain_1: PSPI 4 in file, 8 from its AUs"]
    assert "1 annotations whose stored PSPI differs" in caplog.text
    rows = [r for s in result.values() for r in s.select_columns(["sample_id", "pspi"])
            if r["sample_id"].startswith("flame_sample_0000_pain_1_")]
    assert [r["pspi"] for r in rows] == [8.0, 8.0, 8.0]


def test_split_csv_is_applied_and_neutrals_follow_identity(tmp_path, cache_dir, monkeypatch):
    write_official(tmp_path / "root")
    csv = tmp_path / "split.csv"
    assignment = {0: 0, 1: 0, 2: 1, 3: 2}
    csv.write_text("annotation_base_name,split\n" + "".join(
        f"flame_sample_{i:04d}_pain_{e},{s}\n" for i, s in assignment.items() for e in (1, 2)
    ))
    result = load_official_layout(tmp_path / "root", csv, cache_dir=cache_dir)
    # As the README shows it: a CSV name relative to the layout's root, from another working directory.
    (tmp_path / "root" / "splits.csv").write_text(csv.read_text())
    monkeypatch.chdir(tmp_path / "root" / "..")
    relative = load_official_layout(tmp_path / "root", split_csv="splits.csv", cache_dir=cache_dir)
    assert {split: sorted(d["sample_id"]) for split, d in relative.items()} == {
        split: sorted(d["sample_id"]) for split, d in result.items()}
    names = {0: "train", 1: "validation", 2: "test"}
    for split, dataset in result.items():
        expected = {f"flame_sample_{i:04d}" for i, s in assignment.items() if names[s] == split}
        assert set(dataset["identity_id"]) == expected
        assert 0 in dataset["expression_index"]  # neutral rows come along with their identity
    assert result.report.num_problems == 0


def test_bad_split_csv_rows_are_reported(tmp_path, cache_dir):
    write_official(tmp_path / "root")
    csv = tmp_path / "split.csv"
    csv.write_text(
        "annotation_base_name,split\n"
        "flame_sample_0000_pain_1,0\nflame_sample_0000_pain_2,0\n"
        "flame_sample_0001_pain_1,5\nflame_sample_0001_pain_2,x\n"  # invalid split ids
        "flame_sample_0002_pain_1,1\nflame_sample_0002_pain_2,2\n"  # one identity in two splits
        "flame_sample_0002_pain_1,0\n"  # conflicting repeat
        "flame_sample_0099_pain_1,0\n"  # not in the folder
    )
    result = load_official_layout(tmp_path / "root", csv, cache_dir=cache_dir)
    report = result.report
    assert report.count("bad_split_row") == 3
    assert report.problems["split_csv_unknown_name"] == ["flame_sample_0099_pain_1"]
    assert report.count("identity_in_several_splits") == 1
    # identity 1 (bad rows) and 3 (absent from the CSV): pain rows and neutral rows left out, and reported
    assert report.count("not_in_split_csv") == 2 * (2 * 3 + 3)
    assert "flame_sample_0001" not in {i for s in result.values() for i in s["identity_id"]}


def test_split_csv_without_header_is_a_clear_error(tmp_path, cache_dir):
    write_official(tmp_path / "root", identities=1)
    csv = tmp_path / "split.csv"
    csv.write_text("flame_sample_0000_pain_1,0\n")
    with pytest.raises(OfficialLayoutError, match="annotation_base_name,split"):
        load_official_layout(tmp_path / "root", csv, cache_dir=cache_dir)
    with pytest.raises(OfficialLayoutError, match="split CSV not found"):
        load_official_layout(tmp_path / "root", tmp_path / "missing.csv", cache_dir=cache_dir)
    with pytest.raises(OfficialLayoutError, match="no 3D-Pain images"):
        (tmp_path / "empty").mkdir()
        load_official_layout(tmp_path / "empty", cache_dir=cache_dir)


def test_default_split_is_deterministic_identity_disjoint_70_20_10(tmp_path, cache_dir):
    write_official(tmp_path / "root", identities=10, expressions=1, views=1)
    first = load_official_layout(tmp_path / "root", use_cache=False)
    second = load_official_layout(tmp_path / "root", use_cache=False)
    identities = {split: set(first[split]["identity_id"]) for split in first}
    assert [len(identities[s]) for s in ("train", "validation", "test")] == [7, 2, 1]
    assert not (identities["train"] & identities["validation"] or identities["train"] & identities["test"])
    assert {s: second[s]["sample_id"] for s in second} == {s: first[s]["sample_id"] for s in first}
    assert identity_splits(["b", "a", "c"], seed=3) == identity_splits(["c", "b", "a"], seed=3)


def test_index_cache_reused_and_refreshed(tmp_path, cache_dir):
    write_official(tmp_path / "root")
    first = load_official_layout(tmp_path / "root", cache_dir=cache_dir)
    assert len(list(cache_dir.iterdir())) == 1
    again = load_official_layout(tmp_path / "root", cache_dir=cache_dir)
    assert again["train"].cache_files  # memory-mapped from the cached index
    assert again["train"]["sample_id"] == first["train"]["sample_id"]
    # A new image changes the folder listing: the index is rebuilt and sees it.
    (tmp_path / "root/meshes_inpainted/stray.png").write_bytes(_image_bytes(3))
    refreshed = load_official_layout(tmp_path / "root", cache_dir=cache_dir)
    assert refreshed.report.problems["unrecognised_file"] == ["stray.png"]
    assert len(list(cache_dir.iterdir())) == 2


def test_view_names_and_extended_action_units(tmp_path, cache_dir):
    write_official(tmp_path / "root", identities=2, expressions=1)
    (tmp_path / "root/annotations/flame_sample_0000_pain_1_annotations.json").write_text(
        json.dumps({"AU4": 1, "AU6": 0, "AU7": 0, "AU9": 0, "AU10": 0, "AU43": 0, "AU12": 3, "PSPI": 1})
    )
    result = load_official_layout(tmp_path / "root", view_names=["frontal", "left", "right"], cache_dir=cache_dir)
    features = result["train"].features
    assert features["view"].names == ["frontal", "left", "right"]
    assert list(features["action_units"]) == [*PAIN_AUS, "AU12"]
    with pytest.raises(OfficialLayoutError, match="one name per view number"):
        load_official_layout(tmp_path / "root", view_names=["frontal"], cache_dir=cache_dir)


def test_annotations_without_a_recognised_action_unit_are_problems_not_zero_pain(tmp_path, cache_dir):
    write_official(tmp_path, identities=3, expressions=1, views=1)
    annotations = tmp_path / "annotations"
    (annotations / "flame_sample_0000_pain_1_annotations.json").write_text(json.dumps({"brow_lowerer": 3}))
    (annotations / "flame_sample_0001_pain_1_annotations.json").write_text(json.dumps({**{a: 0 for a in PAIN_AUS},
                                                                                       "AU4": "3"}))
    (annotations / "flame_sample_0002_pain_1_annotations.json").write_text(json.dumps({**{a: 0 for a in PAIN_AUS},
                                                                                       "AU43": True}))
    loaded = load_official_layout(tmp_path, cache_dir=cache_dir)
    report = loaded.report
    assert report.count("no_action_units") == 1 and "flame_sample_0000_pain_1" in report.problems["no_action_units"][0]
    invalid = " ".join(report.problems["invalid_action_units"])
    assert "flame_sample_0001_pain_1" in invalid and "flame_sample_0002_pain_1" in invalid
    pain_rows = [row for split in loaded.values() for row in split.select_columns(["expression_index"])
                 if row["expression_index"] > 0]
    assert pain_rows == []  # none of the three is kept as a zero-pain (or any other) label


def test_empty_and_truncated_images_are_reported_at_index_time(tmp_path, cache_dir):
    write_official(tmp_path, identities=2, expressions=1, views=1)
    images = tmp_path / "meshes_inpainted"
    (images / "flame_sample_0000_pain_1_textured_view_000_inpainted.png").write_bytes(b"")
    truncated = images / "flame_sample_0001_pain_1_textured_view_000_inpainted.png"
    truncated.write_bytes(truncated.read_bytes()[:-20])
    jpeg = _image_bytes(7, "JPEG")
    (images / "flame_sample_0001_neutral_textured_view_000_inpainted.png").write_bytes(jpeg[: len(jpeg) // 2])
    loaded = load_official_layout(tmp_path, cache_dir=cache_dir)
    unreadable = " ".join(loaded.report.problems.get("unreadable_image", []))
    assert "flame_sample_0000_pain_1" in unreadable and "flame_sample_0001_pain_1" in unreadable
    assert "flame_sample_0001_neutral" in unreadable
    for split in loaded.values():  # every image the dataset serves decodes
        for row in split:
            row["image"].load()
            if row["neutral_image"] is not None:
                row["neutral_image"].load()


def test_truncated_views_file_and_non_utf8_split_csv_are_clear_errors(tmp_path, cache_dir):
    write_official(tmp_path, identities=2, expressions=1, views=1)
    views = tmp_path / "meshes_inpainted" / "pain3d_views.json"
    views.write_text('[{"index": 0, "name": "fron')
    with pytest.raises(OfficialLayoutError, match="pain3d_views.json is unreadable"):
        load_official_layout(tmp_path, cache_dir=cache_dir)
    views.unlink()
    split_csv = tmp_path / "splits.csv"
    split_csv.write_bytes("annotation_base_name,split\nflame_sample_0000_pain_1,0\n".encode("utf-16"))
    with pytest.raises(OfficialLayoutError, match="not UTF-8"):
        load_official_layout(tmp_path, split_csv=split_csv, cache_dir=cache_dir)
