"""Generated folder <-> datasets <-> official layout round trips, the builder, Hub folders and pushing offline."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict, load_dataset
from PIL import Image

from dataset_builder import (
    HEATMAP_UNITS_PER_MM,
    Pain3D,
    build_hub_folder,
    export_official,
    identity_splits,
    load_official_layout,
    pain_features,
    push_to_hub,
)
from dataset_builder.export import ExportError
from dataset_builder.card import write_dataset_card
from dataset_builder.hub import HubError, write_parquet_shards
from generation.demographics import identity_demographics
from generation.facs import PAIN_AUS, pspi

VIEWS = ("frontal", "left", "right")
CAMERA = {"frontal": (0.0, 0.0), "left": (35.0, 5.0), "right": (-35.0, 5.0)}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def generated_rows(identities: int = 5, expressions: int = 2, size: int = 16, seed: int = 0) -> dict[str, dict]:
    """Columns per split of a tiny generated dataset in the `pain_features()` contract (random images, exact labels)."""
    rng = np.random.default_rng(seed)
    ids = [f"id_{i:05d}" for i in range(identities)]
    split_of = identity_splits(ids, seed=seed)
    columns = {split: {name: [] for name in pain_features()} for split in ("train", "validation", "test")}
    for index, identity in enumerate(ids):
        demographics = identity_demographics(seed, index)
        neutrals = {view: _png(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for view in VIEWS}
        for expression in range(expressions + 1):
            if expression == 0:
                aus = {name: 0.0 for name in PAIN_AUS}
            else:
                aus = {name: float(rng.integers(0, 2 if name == "AU43" else 6)) for name in PAIN_AUS}
            for view_index, view in enumerate(VIEWS):
                heatmap = np.zeros((size, size), np.uint16) if expression == 0 else rng.integers(
                    0, 8 * HEATMAP_UNITS_PER_MM, (size, size)).astype(np.uint16)
                row = {
                    "image": {"bytes": neutrals[view] if expression == 0 else _png(
                        rng.integers(0, 255, (size, size, 3), dtype=np.uint8)), "path": None},
                    "neutral_image": {"bytes": neutrals[view], "path": None},
                    "heatmap": {"bytes": _png(heatmap), "path": None},
                    "sample_id": f"{identity}_e{expression:02d}_{view}",
                    "identity_id": identity,
                    "expression_index": expression,
                    "view": view_index,
                    "yaw": CAMERA[view][0],
                    "pitch": CAMERA[view][1],
                    "action_units": aus,
                    "pspi": pspi(aus),
                    "age": demographics.age,
                    "age_group": demographics.age_group,
                    "gender": demographics.gender,
                    "ethnicity": demographics.ethnicity,
                    "landmarks_2d": rng.uniform(0, size, (68, 2)).tolist(),
                }
                for name, value in row.items():
                    columns[split_of[identity]][name].append(value)
    return columns


def write_generated_dataset(folder: Path, **kwargs) -> Path:
    """A tiny generated dataset folder: data/<split>-00000-of-00001.parquet in the pain_features() contract."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, columns in generated_rows(**kwargs).items():
        Dataset.from_dict(columns, features=pain_features()).to_parquet(
            str(folder / "data" / f"{split}-00000-of-00001.parquet")
        )
    return folder


@pytest.fixture
def generated(tmp_path) -> Path:
    return write_generated_dataset(tmp_path / "generated")


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch) -> Path:
    """Every Hugging Face cache of these tests (load_dataset, builders, the official-layout index) under tmp_path."""
    import datasets.config

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    return tmp_path / "hf" / "datasets"


def _labels(dataset_dict: DatasetDict, identity_map: dict | None = None) -> dict:
    """(split, identity, expression, view) -> (AUs, PSPI, yaw, pitch) over all rows."""
    labels = {}
    for split, dataset in dataset_dict.items():
        names = dataset.features["view"].names
        for row in dataset.select_columns(
            ["identity_id", "expression_index", "view", "action_units", "pspi", "yaw", "pitch"]
        ):
            identity = identity_map[row["identity_id"]] if identity_map else row["identity_id"]
            key = (split, identity, row["expression_index"], names[row["view"]])
            labels[key] = (row["action_units"], row["pspi"], row["yaw"], row["pitch"])
    return labels


def test_round_trip_generated_to_official_and_back(generated, hf_cache, tmp_path):
    loaded = load_dataset(str(generated), cache_dir=str(hf_cache))
    report = export_official(loaded, tmp_path / "official")
    assert report.pain_images == 5 * 2 * 3 and report.neutral_images == 5 * 3 and report.annotations == 5 * 2
    assert report.identity_map["id_00003"] == "flame_sample_0003"

    back = load_official_layout(tmp_path / "official", report.split_csv, cache_dir=tmp_path / "index")
    assert back.report.num_problems == 0
    assert back["train"].features["view"].names == list(VIEWS)  # from the export's views file
    assert _labels(back) == _labels(loaded, report.identity_map)  # labels, identities, splits, views, cameras
    # Image bytes are copied untouched: the official pain image is the generated one, same for the neutral.
    source = {r["sample_id"]: r for r in loaded["test"].cast_column("image", _undecoded())
              .cast_column("neutral_image", _undecoded())}
    ours = {official: identity for identity, official in report.identity_map.items()}
    for row in back["test"].cast_column("image", _undecoded()).cast_column("neutral_image", _undecoded()):
        view = back["test"].features["view"].names[row["view"]]
        original = source[f"{ours[row['identity_id']]}_e{row['expression_index']:02d}_{view}"]
        assert Path(row["image"]["path"]).read_bytes() == original["image"]["bytes"]
        assert Path(row["neutral_image"]["path"]).read_bytes() == original["neutral_image"]["bytes"]


def _undecoded():
    from datasets import Image as ImageFeature

    return ImageFeature(decode=False)


def test_export_from_folder_matches_export_from_datasetdict(generated, hf_cache, tmp_path):
    from_folder = export_official(generated, tmp_path / "a")
    from_dict = export_official(load_dataset(str(generated), cache_dir=str(hf_cache)), tmp_path / "b")
    files = lambda root: sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())  # noqa: E731
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert (tmp_path / "a/splits.csv").read_text() == (tmp_path / "b/splits.csv").read_text()
    first = json.loads((tmp_path / "a/annotations/flame_sample_0000_pain_1_annotations.json").read_text())
    assert set(first) == {*PAIN_AUS, "PSPI"} and first["PSPI"] == pspi({k: first[k] for k in PAIN_AUS})
    assert from_folder.split_identities == from_dict.split_identities


def test_export_refuses_non_empty_target(generated, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty.*overwrite=True"):
        export_official(generated, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # nothing written
    export_official(generated, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine" and (out / "splits.csv").is_file()
    with pytest.raises(ExportError, match="no parquet shards"):
        export_official(tmp_path / "nowhere", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_builder_generated_and_official_configs(generated, tmp_path):
    builder = Pain3D(config_name="generated", data_dir=str(generated), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    prepared = builder.as_dataset()
    assert prepared["train"].features == pain_features()
    assert {s: d.num_rows for s, d in prepared.items()} == {
        s: sum(1 for _ in Dataset.from_parquet(str(p), cache_dir=str(tmp_path / "pq")))
        for s, p in ((s, next((generated / "data").glob(f"{s}-*"))) for s in prepared)
    }
    assert prepared["train"][0]["heatmap"].mode.startswith("I")  # 16-bit micrometres

    export = export_official(generated, tmp_path / "official")
    official = Pain3D(config_name="official", data_dir=str(tmp_path / "official"), split_csv=str(export.split_csv),
                      cache_dir=str(tmp_path / "cache"))
    official.download_and_prepare()
    prepared_official = official.as_dataset()
    shutil.rmtree(tmp_path / "official")  # images were embedded: the prepared dataset stands alone
    assert _labels(prepared_official) == _labels(prepared, export.identity_map)
    assert prepared_official["validation"][0]["image"].size == (16, 16)


def test_hub_folders_load_in_a_fresh_process(generated, tmp_path):
    (generated / "preview.png").write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    (generated / "generation_config.json").write_text(json.dumps({"seed": 0, "num_identities": 5}))
    from_generated = build_hub_folder(generated, tmp_path / "hub_generated")
    export = export_official(generated, tmp_path / "official")
    from_official = build_hub_folder(tmp_path / "official", tmp_path / "hub_official", split_csv=export.split_csv)
    assert (from_generated / "preview.png").is_file() and (from_generated / "README.md").is_file()
    sharded = tmp_path / "hub_sharded"
    write_parquet_shards(load_official_layout(tmp_path / "official", export.split_csv, use_cache=False), sharded,
                         max_shard_bytes=4000, row_group_size=5)
    write_dataset_card(sharded)
    shards = sorted(p.name for p in (sharded / "data").glob("train-*"))
    assert len(shards) > 1 and shards[-1] == f"train-{len(shards) - 1:05d}-of-{len(shards):05d}.parquet"
    shutil.rmtree(tmp_path / "official")  # the Hub folders embed the images

    script = textwrap.dedent("""
        import json, sys
        from datasets import load_dataset
        out = {}
        for folder in sys.argv[1:]:
            d = load_dataset(folder)
            row = d["train"][0]
            out[folder] = {"rows": {s: d[s].num_rows for s in d}, "views": d["train"].features["view"].names,
                           "image": list(row["image"].size), "neutral": list(row["neutral_image"].size)}
        print(json.dumps(out))
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "fresh-hf"), "HF_HUB_OFFLINE": "1"}
    folders = [str(from_generated), str(from_official), str(sharded)]
    done = subprocess.run([sys.executable, "-c", script, *folders], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected_rows = {s: len(c["sample_id"]) for s, c in generated_rows().items()}
    assert result[str(from_generated)]["rows"] == expected_rows
    assert result[str(from_official)]["rows"] == result[str(sharded)]["rows"] == expected_rows
    for folder in result.values():
        assert folder["views"] == list(VIEWS) and folder["image"] == [16, 16] and folder["neutral"] == [16, 16]


def test_push_to_hub_offline_says_so(generated, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = build_hub_folder(generated, tmp_path / "hub")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):
        push_to_hub(folder, "someone/3dpain")
    with pytest.raises(HubError, match="not a Hub-ready dataset folder"):
        push_to_hub(tmp_path, "someone/3dpain")
    with pytest.raises(HubError, match="not empty"):
        build_hub_folder(generated, folder)


def _generator_available() -> bool:
    if shutil.which("pain3d") is None:
        return False
    return subprocess.run(["pain3d", "generate", "--help"], capture_output=True, text=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _generator_available(), reason="`pain3d generate` is not available")
def test_real_generation_round_trip(tmp_path, face_model_file):
    """A tiny real generation -> load_dataset -> official layout -> load_official_layout -> same labels and splits;
    and its heatmaps reach the training tensors in millimetres."""
    out = tmp_path / "generated"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        ["pain3d", "generate", "--output", str(out), "--num-identities", "3", "--expressions-per-identity", "2",
         "--image-size", "48", "--face-model", str(face_model_file), "--quiet"],
        check=True, env=env, timeout=900, capture_output=True,
    )
    assert (out / "README.md").is_file() and (out / "plots" / "pspi_histogram.png").is_file()
    loaded = load_dataset(str(out), cache_dir=str(tmp_path / "hf" / "datasets"))
    assert sum(loaded.num_rows.values()) == 3 * 3 * (2 + 1)
    report = export_official(loaded, tmp_path / "official")
    back = load_official_layout(tmp_path / "official", report.split_csv, cache_dir=tmp_path / "index")
    assert back.report.num_problems == 0
    assert _labels(back) == _labels(loaded, report.identity_map)

    from dataset_builder.transforms import PainTransform

    train = loaded["train"]
    transform = PainTransform.for_dataset(train, image_size=48, image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
    batch = train.with_transform(transform)[: len(train)]
    pain = torch.tensor(train["expression_index"]) > 0
    assert batch["heatmap"][~pain].abs().max() == 0  # neutral rows: no displacement
    assert 0.5 < batch["heatmap"][pain].amax().item() < 50  # millimetres, not micrometres or 0-1


def test_push_to_hub_without_network_is_one_clear_error(generated, tmp_path, monkeypatch):
    folder = build_hub_folder(generated, tmp_path / "hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(HubError, match="not reachable|could not be reached"):
        push_to_hub(folder, "someone/3dpain", token="hf_not_a_real_token")
