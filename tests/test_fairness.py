"""Fairness tables you can read (dataset_builder.fairness, modeling_vitpain.model_card.fairness_markdown, `pain3d
evaluate`): identities per group, PSPI MAE with a 95% bootstrap interval that resamples identities, the largest gap
between groups with its interval, and groups of fewer than 3 identities marked too small, not ranked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dataset_builder.fairness import MIN_IDENTITIES, fairness_table
from modeling_vitpain.model_card import fairness_markdown

# six identities of two rows each: absolute errors a (0, 1), b (0, 1), c (2, 2), d (0, 2), e (1, 0), f (1, 0)
IDENTITIES = ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e", "f", "f"]
PREDICTIONS = np.array([0.0, 2, 4, 1, 1, 5, 3, 3, 1, 2, 0, 1])
REFERENCES = np.array([0.0, 3, 4, 0, 3, 3, 3, 1, 0, 2, 1, 1])
GROUPS = {"gender": ["female"] * 6 + ["male"] * 6, "age_group": ["20-34"] * 6 + ["35-49"] * 4 + ["80-90"] * 2}


def test_groups_carry_identities_rows_and_a_pinned_interval():
    table = fairness_table(PREDICTIONS, REFERENCES, GROUPS, IDENTITIES, thresholds=(1,))
    female, male = table["gender"]["groups"]["female"], table["gender"]["groups"]["male"]
    assert female == {"identities": 3, "rows": 6, "pspi_mae": pytest.approx(1.0), "pspi_mae_ci": [0.5, 2.0],
                      "ranked": True, "auroc_ge1": pytest.approx(0.9375)}
    assert male["pspi_mae"] == pytest.approx(2 / 3) and male["pspi_mae_ci"] == pytest.approx([0.5, 1.0])
    gap = table["gender"]["largest_gap"]
    assert gap["higher"] == "female" and gap["lower"] == "male" and gap["pspi_mae"] == pytest.approx(1 / 3)
    assert gap["pspi_mae_ci"] == pytest.approx([-1 / 3, 4 / 3])  # includes 0: these data cannot tell them apart


def test_groups_of_fewer_than_three_identities_are_too_small_and_left_out_of_the_gap():
    ages = fairness_table(PREDICTIONS, REFERENCES, GROUPS, IDENTITIES, thresholds=(1,))["age_group"]
    assert MIN_IDENTITIES == 3
    assert ages["groups"]["35-49"]["identities"] == 2 and ages["groups"]["35-49"]["ranked"] is False
    assert ages["groups"]["35-49"]["pspi_mae_ci"] is None and ages["groups"]["80-90"]["pspi_mae_ci"] is None
    assert np.isnan(ages["groups"]["80-90"]["auroc_ge1"])  # one class only
    assert ages["largest_gap"] is None  # a single ranked group: nothing to compare


def test_intervals_resample_identities_not_rows():
    # three people with errors 0, 1 and 2 on both their rows: resampling people gives means in thirds only
    people = fairness_table([0, 0, 1, 1, 2, 2], [0] * 6, {"g": ["x"] * 6}, ["a", "a", "b", "b", "c", "c"])
    rows = fairness_table([0, 0, 1, 1, 2, 2], [0] * 6, {"g": ["x"] * 6})  # no identities: each row its own
    assert people["g"]["groups"]["x"]["identities"] == 3 and rows["g"]["groups"]["x"]["identities"] == 6
    assert people["g"]["groups"]["x"]["pspi_mae_ci"] == pytest.approx([0.0, 2.0])
    assert rows["g"]["groups"]["x"]["pspi_mae_ci"] == pytest.approx([1 / 3, 5 / 3])  # narrower: rows look independent
    # the same three people seen ten times as often: the interval stays as wide (they are still three people)
    tenfold = fairness_table([0, 0, 1, 1, 2, 2] * 10, [0] * 60, {"g": ["x"] * 60}, ["a", "a", "b", "b", "c", "c"] * 10)
    assert tenfold["g"]["groups"]["x"]["pspi_mae_ci"] == pytest.approx([0.0, 2.0])


def test_same_inputs_same_numbers_and_the_seed_is_the_only_randomness():
    rng = np.random.default_rng(7)
    predictions, references = rng.uniform(0, 8, 400), rng.uniform(0, 8, 400)
    identities = [f"id{i // 4}" for i in range(400)]
    groups = {"ethnicity": [("A", "B", "C")[i // 4 % 3] for i in range(400)]}
    first = fairness_table(predictions, references, groups, identities)
    assert fairness_table(predictions, references, groups, identities) == first
    other = fairness_table(predictions, references, groups, identities, seed=1)
    assert other["ethnicity"]["groups"]["A"]["pspi_mae"] == first["ethnicity"]["groups"]["A"]["pspi_mae"]
    assert other["ethnicity"]["groups"]["A"]["pspi_mae_ci"] != first["ethnicity"]["groups"]["A"]["pspi_mae_ci"]
    low, high = first["ethnicity"]["groups"]["A"]["pspi_mae_ci"]
    assert low < first["ethnicity"]["groups"]["A"]["pspi_mae"] < high
    with pytest.raises(ValueError, match="one prediction, reference and identity per row"):
        fairness_table(predictions, references, groups, identities[:10])


def test_markdown_shows_identities_intervals_too_small_groups_and_the_gap():
    text = fairness_markdown(fairness_table(PREDICTIONS, REFERENCES, GROUPS, IDENTITIES, thresholds=(1,)))
    assert "| Attribute | Group | Identities | Rows | PSPI MAE (95% interval) | AUROC (PSPI >= 1) |" in text
    assert "| gender | female | 3 | 6 | 1.000 (0.500 to 2.000) | 0.938 |" in text
    assert "| age_group | 35-49 | 2 | 4 | 0.750, too small to rank (2 identities) | 1.000 |" in text
    assert "| age_group | 80-90 | 1 | 2 | 0.500, too small to rank (1 identity) | undefined |" in text
    assert "| gender | 0.333 | female - male | -0.333 to 1.333 |" in text
    assert "resamples identities" in text


def test_markdown_reads_an_evaluation_written_before_identity_counts():
    legacy = {"gender": {"f": {"n": 3, "pspi_mae": 0.5, "auroc_ge1": 1.0}, "m": {"n": 3, "pspi_mae": 1.5,
                                                                             "auroc_ge1": None}}}
    text = fairness_markdown(legacy)
    assert "| gender | f | - | 3 | 0.500 | 1.000 |" in text and "| gender | m | - | 3 | 1.500 | undefined |" in text
    assert "Largest gap" not in text


def test_pain3d_evaluate_prints_and_writes_identity_counts_and_intervals(tmp_path):
    import torch

    from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel
    from test_training import write_tiny_dataset

    dataset = write_tiny_dataset(tmp_path / "data", identities_per_split=(2, 2, 10), expressions=2, seed=3)
    backbone = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
                "intermediate_size": 37, "image_size": 32, "patch_size": 8}
    torch.manual_seed(0)
    model = ViTPainModel(ViTPainConfig(backbone_config=backbone, head_hidden_size=16, au_head_hidden_size=16))
    model.save_pretrained(tmp_path / "model")
    ViTPainImageProcessor.from_model_config(model.config).save_pretrained(tmp_path / "model")
    output = tmp_path / "evaluation.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-m", "pain3d", "evaluate", "--model", str(tmp_path / "model"),
                             "--dataset", str(dataset), "--output", str(output), "--calibration-samples", "0"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads(output.read_text())
    assert set(evaluation["fairness"]) == {"age_group", "gender", "ethnicity"}
    assert "resampling identities" in evaluation["fairness_intervals"]
    genders = evaluation["fairness"]["gender"]["groups"]
    assert sum(row["identities"] for row in genders.values()) == 10
    assert sum(row["rows"] for row in genders.values()) == evaluation["num_samples"] == 10 * 2 * 2
    ranked = [row for table in evaluation["fairness"].values() for row in table["groups"].values() if row["ranked"]]
    assert ranked and all(row["pspi_mae_ci"][0] <= row["pspi_mae"] <= row["pspi_mae_ci"][1] for row in ranked)
    small = [row for table in evaluation["fairness"].values() for row in table["groups"].values() if not row["ranked"]]
    assert small and all(row["identities"] < 3 and row["pspi_mae_ci"] is None for row in small)
    assert "| Attribute | Group | Identities | Rows | PSPI MAE (95% interval) |" in result.stdout
    assert "too small to rank" in result.stdout
