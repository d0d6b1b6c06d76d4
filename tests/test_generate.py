"""The dataset generator: sampling balance, determinism across workers / ranks / resumes, the written folder."""

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from generation.sampling.au_sampling import PSPI_LEVELS, pspi_target, sample_pain_action_units
from generation.demographics import AGE_GROUPS, ETHNICITIES, GENDERS, assign_demographics
from generation.errors import ConfigError
from generation.facs import EXTENDED_AUS, pspi
from generation.pipeline import GenerationConfig, identity_spec, identity_split

TINY = ["--num-identities", "6", "--expressions-per-identity", "2", "--image-size", "48", "--identities-per-shard", "2"]


def run_generate(output, *extra, env=None, face_model=None, launcher=None, timeout=600):
    command = [*(launcher or [sys.executable, "-m"]), "pain3d", "generate", "-o", str(output), *TINY, *extra]
    if face_model:
        command += ["--face-model", str(face_model)]
    return subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "data").glob("*.parquet"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, face_model_file):
    out = tmp_path_factory.mktemp("gen") / "reference"
    result = run_generate(out, face_model=face_model_file)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


# ----------------------------------------------------------------------------------------------- sampling
def test_demographics_exactly_balanced_on_full_cross_products():
    cells = len(AGE_GROUPS) * len(GENDERS) * len(ETHNICITIES)
    counts = Counter((d.age_group, d.gender, d.ethnicity) for d in assign_demographics(2 * cells, seed=7))
    assert len(counts) == cells and set(counts.values()) == {2}
    uneven = Counter((d.age_group, d.gender, d.ethnicity) for d in assign_demographics(cells + 13, seed=7))
    assert max(uneven.values()) - min(uneven.values()) <= 1
    ages = [d.age for d in assign_demographics(cells, seed=1)]
    assert min(ages) >= 20 and max(ages) <= 90 and sum(a >= 80 for a in ages) == cells // len(AGE_GROUPS)
    with pytest.raises(ValueError, match="positive"):
        assign_demographics(0, seed=0)


def test_pspi_levels_cover_1_to_16_evenly():
    counts = Counter(pspi_target(3, i, k, 10) for i in range(32) for k in range(10))
    assert sorted(counts) == list(PSPI_LEVELS) and set(counts.values()) == {20}


@pytest.mark.parametrize("target", PSPI_LEVELS)
def test_sampled_action_units_hit_their_pspi(target):
    rng = np.random.default_rng(target)
    for _ in range(30):
        aus = sample_pain_action_units(target, rng, distractor_probability=0.5)
        assert pspi(aus) == target
        assert all(float(v).is_integer() and 0 <= v <= 5 for v in aus.values()) and aus["AU43"] in (0, 1)
        assert set(aus) - {"AU4", "AU6", "AU7", "AU9", "AU10", "AU43"} <= set(EXTENDED_AUS)


def test_identity_depends_only_on_seed_and_index(face_model):
    small, large = GenerationConfig(num_identities=8), GenerationConfig(num_identities=800)
    a, b = identity_spec(small, face_model, 5), identity_spec(large, face_model, 5)
    assert a.demographics == b.demographics and a.expressions == b.expressions and a.split == b.split
    np.testing.assert_array_equal(a.coefficients, b.coefficients)
    other = identity_spec(GenerationConfig(num_identities=8, seed=1), face_model, 5)
    assert not np.array_equal(a.coefficients, other.coefficients)


def test_splits_are_70_20_10_and_identity_disjoint():
    config = GenerationConfig(num_identities=100)
    counts = Counter(identity_split(config, i) for i in range(100))
    assert counts == {"train": 70, "validation": 20, "test": 10}


def test_invalid_generation_parameters():
    for kwargs, message in (
        ({"num_identities": 0}, "--num-identities must be within 1-"),
        ({"num_identities": 5, "image_size": 8}, "--image-size"),
        ({"num_identities": 5, "split_fractions": (0.75, 0.15, 0.1)}, "split fractions"),
        ({"num_identities": 5, "au_overrides": {"AU4": 9}}, "--au: AU4"),
        ({"num_identities": 5, "au_overrides": {"AU99": 1}}, "unknown action unit"),
    ):
        with pytest.raises(ConfigError, match=message):
            GenerationConfig(**kwargs)


# ----------------------------------------------------------------------------------------------- the written folder
def test_written_folder_loads_with_datasets(reference, tmp_path):
    script = f"""
import json, numpy as np
from datasets import load_dataset
ds = load_dataset({str(reference)!r})
out = {{"splits": {{k: len(v) for k, v in ds.items()}}, "columns": ds["train"].column_names}}
ids = {{k: set(v["identity_id"]) for k, v in ds.items()}}
out["overlap"] = sum(len(ids[a] & ids[b]) for a in ids for b in ids if a < b)
row = ds["train"][0]
pain = next(r for r in ds["train"] if r["expression_index"] > 0)
out["image"] = [row["image"].mode, row["image"].size[0]]
out["neutral_heat_max"] = int(np.asarray(row["heatmap"]).max())
out["pain_heat_max_mm"] = float(np.asarray(pain["heatmap"]).max()) / 1000
out["pspi_ok"] = all(abs(r["pspi"] - (r["action_units"]["AU4"] + max(r["action_units"]["AU6"], r["action_units"]["AU7"])
    + max(r["action_units"]["AU9"], r["action_units"]["AU10"]) + r["action_units"]["AU43"])) < 1e-6 for r in ds["train"])
out["landmarks"] = np.asarray(row["landmarks_2d"]).shape
out["view_names"] = ds["train"].features["view"].names
print(json.dumps(out, default=list))
"""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    per_identity = 3 * (2 + 1)  # views x (neutral + pain expressions)
    assert sum(info["splits"].values()) == 6 * per_identity
    assert all(count % per_identity == 0 for count in info["splits"].values())
    assert info["overlap"] == 0
    assert info["columns"][:3] == ["image", "neutral_image", "heatmap"] and "landmarks_2d" in info["columns"]
    assert info["image"] == ["RGB", 48]
    assert info["pspi_ok"] and info["landmarks"] == [68, 2]
    assert info["view_names"] == ["frontal", "left", "right"]
    assert info["pain_heat_max_mm"] > 1.0
    assert (reference / "README.md").is_file() and (reference / "preview.png").is_file()
    record = json.loads((reference / "generation_config.json").read_text())
    assert record["config"]["num_identities"] == 6 and record["versions"]["numpy"] == np.__version__


def test_two_workers_write_identical_bytes(reference, tmp_path, face_model_file):
    result = run_generate(tmp_path / "two", "--workers", "2", face_model=face_model_file)
    assert result.returncode == 0, result.stderr[-3000:]
    assert digests(tmp_path / "two") == digests(reference) and len(digests(reference)) >= 3


@pytest.mark.slow
def test_accelerate_ranks_write_identical_bytes(reference, tmp_path, face_model_file):
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m",
    ]
    result = run_generate(tmp_path / "ranks", face_model=face_model_file, launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1:" in result.stdout and "rank 0:" in result.stdout
    assert digests(tmp_path / "ranks") == digests(reference)


def test_resume_after_killed_run_gives_identical_bytes(reference, tmp_path, face_model_file):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "pain3d", "generate", "-o", str(out), *TINY, "--face-model", str(face_model_file)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((out / "data").glob("*.parquet")):
        time.sleep(0.2)
    process.kill()
    process.wait()
    finished = list((out / "data").glob("*.parquet"))
    assert 1 <= len(finished) < len(digests(reference)), "the run should be interrupted part-way"
    refused = run_generate(out, face_model=face_model_file)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = run_generate(out, "--resume", face_model=face_model_file)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert digests(out) == digests(reference)
    changed = run_generate(out, "--resume", "--seed", "3", face_model=face_model_file)
    assert changed.returncode == 2 and "different parameters (seed)" in changed.stderr


def test_overwrite_rules(tmp_path, face_model_file):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my own work")
    refused = run_generate(out, face_model=face_model_file)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    refused = run_generate(out, "--overwrite", face_model=face_model_file)
    assert refused.returncode == 2 and "did not write" in refused.stderr
    assert (out / "notes.txt").read_text() == "my own work"
    both = run_generate(out, "--overwrite", "--resume", face_model=face_model_file)
    assert both.returncode == 2 and "contradict" in both.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-identities", "0"], "--num-identities must be within 1-"),
        (["--views", "frontal,top"], "unknown view 'top'"),
        (["--views", "frontal,side:abc"], "must be numbers"),
        (["--au", "AU4=9"], "within 0-5"),
        (["--au", "AU44=1"], "unknown action unit"),
        (["--texture", "oil-paint"], "invalid choice: 'oil-paint'"),  # the registry's names are the choices
        (["--workers", "0"], "--workers"),
    ],
)
def test_invalid_arguments_are_one_clear_error(tmp_path, face_model_file, args, message):
    result = run_generate(tmp_path / "out", *args, face_model=face_model_file)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_unwritable_output(tmp_path, face_model_file):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_generate(blocker / "out", face_model=face_model_file)
    assert result.returncode == 2 and "choose a writable folder" in result.stderr and "Traceback" not in result.stderr


def test_action_unit_names_are_normalised_in_the_config():
    config = GenerationConfig(num_identities=2, distractor_probability=0, au_overrides={"au12": 3})
    assert config.au_overrides == {"AU12": 3.0} and config.extended_aus == ("AU12",)
    with pytest.raises(ConfigError, match="--seed"):
        GenerationConfig(num_identities=2, seed=-1)


def test_identity_sheet_labels_every_identity_of_a_dataset(reference, tmp_path):
    from dataset_builder.preview import identity_sheet

    sheet = identity_sheet(reference, count=24, columns=4, tile=64)
    identities = {i for shard in (reference / "data").glob("*.parquet")
                  for i in pq.read_table(shard, columns=["identity_id"]).column("identity_id").to_pylist()}
    assert sheet.width == 4 * 64 and sheet.height == -(-min(len(identities), 24) // 4) * 64  # one tile each
    with pytest.raises(ValueError, match="no neutral 'top' images"):
        identity_sheet(reference, view="top")
    ages = sorted({a for shard in (reference / "data").glob("*.parquet")
                   for a in pq.read_table(shard, columns=["age"]).column("age").to_pylist()})
    older = identity_sheet(reference, count=24, columns=4, tile=64, min_age=ages[-1])  # the oldest only
    assert older.height == 64 and older.width == 4 * 64
    with pytest.raises(ValueError, match=f"aged {ages[-1] + 1} or more"):
        identity_sheet(reference, min_age=ages[-1] + 1)
    out = tmp_path / "sheet.png"
    result = subprocess.run([sys.executable, "scripts/identity_sheet.py", f"mini={reference}", "--output", str(out)],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert out.exists() and out.stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    (["--texture", "diffusion", "--guidance-scale", "nan"], "guidance scale must be a finite number"),
    (["--texture", "diffusion", "--texture-views", "0:nan"], "--texture-views item '0:nan'"),
    (["--texture", "diffusion", "--diffusion-resolution", "0"], "resolution must be a multiple of 8"),
])
def test_non_finite_and_zero_diffusion_values_are_refused(tmp_path, face_model_file, args, message):
    result = run_generate(tmp_path / "out", *args, face_model=face_model_file)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
