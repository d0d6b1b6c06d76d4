"""Results with their provenance: `scripts/results_table.py` keeps one commit and one dataset per table, and
`scripts/reproduce_results.py` makes the whole table (dataset, three arms, table, plot, JSON) in one command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import provenance  # noqa: E402
import results_table  # noqa: E402


def _run(folder: Path, mae: float, seed: int, commit: str = "c0ffee", fingerprint: str = "f1") -> Path:
    folder.mkdir(parents=True)
    evaluation = {"metrics": {"pspi_mae": mae, "pspi_pearson": 0.9, "auroc_ge3": 0.95},
                  "validation": {"best_pspi_mae": mae + 0.1}, "training": {"seed": seed},
                  "provenance": {"commit": commit, "dirty": False, "dataset_fingerprint": fingerprint}}
    (folder / "evaluation.json").write_text(json.dumps(evaluation))
    return folder


def test_results_table_refuses_runs_of_other_code_or_data_and_names_its_provenance(tmp_path, capsys):
    for seed in (0, 1):
        _run(tmp_path / f"teacher_s{seed}", 1.0 + seed / 10, seed)
        _run(tmp_path / f"rgb_s{seed}", 2.0 + seed / 10, seed)
    arms = [f"teacher={tmp_path}/teacher_s*", f"RGB baseline={tmp_path}/rgb_s*"]
    table = results_table.main(arms)
    assert "| teacher | 2 | 1.150 +/- 0.071 | 1.050 +/- 0.071 |" in table and "| -48.8% |" in table
    assert capsys.readouterr().out.splitlines()[-1] == "commit c0ffee | dataset fingerprint f1"  # under the table

    for name, kwargs, problem in (("rgb_s2", {"commit": "bad"}, "different code (commit c0ffee vs bad)"),
                                  ("rgb_s3", {"fingerprint": "f2"}, "different data (dataset fingerprint f1 vs f2)")):
        stale = _run(tmp_path / name, 2.0, 2, **kwargs)
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_table.py"), *arms],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and result.stdout == "", result
        assert problem in result.stderr and result.stderr.count("\n") == 1, result.stderr
        shutil.rmtree(stale)


def test_the_dataset_fingerprint_is_the_config_and_the_shard_hashes(tmp_path):
    folder = tmp_path / "data"
    (folder / "data").mkdir(parents=True)
    config = {"config": {"num_identities": 2, "image_size": 64}, "versions": {"pain3d": "0"}}
    manifest = {"planned": ["data/train-00000-of-00001.parquet", "README.md"],
                "files": {"data/train-00000-of-00001.parquet": {"sha256": "aa", "size": 1},
                          "README.md": {"sha256": "bb", "size": 1}, "generation_config.json": {"sha256": "cc"}}}
    (folder / "generation_config.json").write_text(json.dumps(config))
    (folder / "pain3d_manifest.json").write_text(json.dumps(manifest))
    first = provenance.dataset_fingerprint(folder)
    assert len(first) == 64
    manifest["files"]["README.md"]["sha256"] = "dd"  # the card is not the data
    config["versions"]["pain3d"] = "1"  # nor is the software that wrote it
    (folder / "generation_config.json").write_text(json.dumps(config))
    (folder / "pain3d_manifest.json").write_text(json.dumps(manifest))
    assert provenance.dataset_fingerprint(folder) == first
    manifest["files"]["data/train-00000-of-00001.parquet"]["sha256"] = "ab"
    (folder / "pain3d_manifest.json").write_text(json.dumps(manifest))
    assert provenance.dataset_fingerprint(folder) != first
    config["config"]["image_size"] = 112
    (folder / "generation_config.json").write_text(json.dumps(config))
    assert len({first, provenance.dataset_fingerprint(folder)}) == 2
    del manifest["files"]["README.md"]  # an unfinished generation has no fingerprint
    (folder / "pain3d_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(provenance.ProvenanceError, match="unfinished"):
        provenance.dataset_fingerprint(folder)
    assert provenance.dataset_fingerprint(tmp_path) is None  # not a generated folder


def _snapshot(destination: Path) -> str:
    """The working tree's source (tracked and untracked, not ignored) as its own one-commit git checkout: the
    end-to-end run needs a commit nobody moves while it trains."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    git = ["git", "-C", str(destination), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q", str(destination)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_reproduce_results_end_to_end(tmp_path):
    """12 identities at 64 px, 20 steps, one seed, the three arms with the aligned face crop, in a fresh process:
    the table, the plot and the JSON's provenance; a second run reuses every arm."""
    code = tmp_path / "code"
    commit = _snapshot(code)
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    output, dataset = tmp_path / "results", tmp_path / "data"
    argv = [sys.executable, str(code / "scripts" / "reproduce_results.py"), "--seeds", "0", "--num-identities", "12",
            "--image-size", "64", "--dataset", str(dataset), "--output", str(output), "--generate-args",
            "--expressions-per-identity 2", "--max-steps", "20", "--eval-steps", "10", "--face-crops", "aligned",
            "--train-args", "--hidden_size 32 --num_layers 1 --num_heads 2 --head_hidden_size 16 "
            "--per_device_train_batch_size 8 --calibration_samples 20", "--progress-every", "20"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((output / "results.json").read_text())
    fingerprint = provenance.dataset_fingerprint(dataset)
    assert record["commit"] == commit and record["dirty"] is False
    assert record["dataset"]["fingerprint"] == fingerprint and record["dataset"]["generated_now"] is True
    assert record["dataset"]["config"]["num_identities"] == 12 and record["dataset"]["config"]["image_size"] == 64
    assert record["versions"]["torch"] and record["versions"]["transformers"] and record["versions"]["python"]
    commands = record["commands"]
    assert [c["status"] for c in commands] == ["ran"] * 4 and "generate" in commands[0]["argv"]
    scripts = [Path(c["argv"][1]).name for c in commands[1:]]
    assert scripts == ["train_vitpain.py", "train_vitpain.py", "distill_vitpain.py"]
    assert all(c["argv"][c["argv"].index("--face_crop") + 1] == "aligned" for c in commands[1:])
    arms = record["results"]["aligned"]["arms"]
    assert list(arms) == ["teacher (heatmap)", "RGB baseline", "distilled student"]
    for label, runs in arms.items():
        evaluation = json.loads((Path(runs[0]["folder"]) / "evaluation.json").read_text())
        assert evaluation["provenance"] == {"commit": commit, "dirty": False, "dataset_fingerprint": fingerprint}
        assert runs[0]["metrics"]["pspi_mae"] == evaluation["metrics"]["pspi_mae"] >= 0
        processor = json.loads((Path(runs[0]["folder"]) / "preprocessor_config.json").read_text())
        assert processor["face_crop"] == "aligned"
    markdown = (output / "results.md").read_text()
    assert "## Face crop: aligned" in markdown and "| distilled student | 1 |" in markdown
    assert f"commit {commit} | dataset fingerprint {fingerprint}" in markdown
    assert (output / "results_aligned.png").stat().st_size > 1000
    assert "[reproduce" in result.stdout and "done in" in result.stdout

    again = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
                           cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads((output / "results.json").read_text())
    assert [c["status"] for c in rerun["commands"]] == ["reused"] * 3  # the dataset too: no generate command
    assert rerun["results"]["aligned"]["table"] == record["results"]["aligned"]["table"]
