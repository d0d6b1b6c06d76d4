"""The dataset card: YAML the Hub and `load_dataset` read, figures computed from the shards, plots, notices."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from test_dataset_builder import generated_rows, write_generated_dataset

from dataset_builder import pain_features, write_dataset_card
from dataset_builder.card import DatasetCardError

CONFIG = {"seed": 1234, "num_identities": 6, "versions": {"pain3d": "0.1.0", "datasets": "5.2.0"}}


@pytest.fixture
def folder(tmp_path):
    folder = write_generated_dataset(tmp_path / "generated", identities=6, expressions=3, seed=5)
    Image.new("RGB", (12, 8)).save(folder / "preview.png")
    return folder


def _front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with YAML front matter"
    return yaml.safe_load(match.group(1))


def test_yaml_metadata(folder):
    text = write_dataset_card(folder, CONFIG).read_text()
    meta = _front_matter(text)
    assert meta["license"] == "mit"
    assert {"pain", "facs", "synthetic"} <= set(meta["tags"])
    assert meta["task_categories"]
    columns = generated_rows(identities=6, expressions=3, seed=5)
    rows = {split: len(c["sample_id"]) for split, c in columns.items()}
    config = meta["configs"][0]
    assert config["data_files"] == [{"split": s, "path": f"data/{s}-*.parquet"} for s in rows if rows[s]]
    info = meta["dataset_info"]
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {s: n for s, n in rows.items() if n}
    assert info["download_size"] == sum(p.stat().st_size for p in (folder / "data").glob("*.parquet"))
    from datasets import Features

    assert Features._from_yaml_list(info["features"]) == pain_features()
    assert "$" not in text.replace("$$", "")  # every template field filled


def test_figures_come_from_the_data(folder):
    text = write_dataset_card(folder, CONFIG).read_text()
    columns = generated_rows(identities=6, expressions=3, seed=5)
    for split, c in columns.items():
        neutral = sum(1 for e in c["expression_index"] if e == 0)
        line = f"| {split} | {len(c['sample_id'])} | {len(set(c['identity_id']))} | {neutral} | "
        assert line in text
        pain = np.array([p for p, e in zip(c["pspi"], c["expression_index"]) if e > 0])
        assert f"| {split} | {pain.mean():.2f} | {np.median(pain):g} | {pain.max():g} |" in text
    identities = {}
    for c in columns.values():
        for identity, gender, ethnicity in zip(c["identity_id"], c["gender"], c["ethnicity"]):
            identities[identity] = (gender, ethnicity)
    genders = Counter(g for g, _ in identities.values())
    assert f"female {genders['female']} ({genders['female'] / 6:.0%})" in text
    assert "- seed: `1234`" in text and "datasets 5.2.0, pain3d 0.1.0" in text
    assert "- image size: 16 x 16 px" in text and "- identities: 6" in text


def test_plots_preview_and_notices(folder):
    text = write_dataset_card(folder).read_text()  # no config given and none on disk
    for name in ("pspi_histogram.png", "action_units.png", "demographics.png"):
        path = folder / "plots" / name
        assert f"(plots/{name})" in text
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 800
    assert "![Preview: neutral, pain and heatmap per view](preview.png)" in text
    assert "ICT-FaceKit Light, MIT License, Copyright (c) 2020 USC Institute for Creative Technologies" in text
    assert "arXiv:2509.16727" in text and "Pain in 3D" in text
    assert "intended attributes of synthetic faces" in text and "Not for diagnosing" in text
    assert "generation config: not recorded" in text


def test_generation_config_file_is_used(folder):
    (folder / "generation_config.json").write_text(json.dumps(CONFIG))
    assert "- seed: `1234`" in write_dataset_card(folder).read_text()


def test_image_columns_are_never_read(folder, monkeypatch):
    requested = []
    original = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, columns=None, **kw: requested.append(columns) or original(
        path, columns=columns, **kw))
    write_dataset_card(folder)
    assert requested and all(cols and not {"image", "neutral_image", "heatmap"} & set(cols) for cols in requested)


def test_no_shards_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetCardError, match="no parquet shards"):
        write_dataset_card(tmp_path)
