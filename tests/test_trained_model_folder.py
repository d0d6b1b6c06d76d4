"""A model folder as `scripts/train_vitpain.py` writes it, on the paths a user takes with the package installed: the
README's pipeline snippet (no trust_remote_code), the demo's Estimate tab, and `pain3d evaluate`, which refuses an
edited folder (weights that do not fit, a config or processor value out of range) and unclear arguments in one line.

Issue 33: high 6 (weights that do not fit), 7 (NaN in, NaN out), 10 (no remote code with the package), 11 (the demo
loads what the training scripts wrote), low (unclear evaluate arguments)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_training import TINY_LOOP, TINY_MODEL, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Do you wish to run the custom code"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, model folder): two training steps of a tiny RGB model with a neutral reference."""
    import train_vitpain

    root = tmp_path_factory.mktemp("trained_folder")
    dataset = write_tiny_dataset(root / "data")
    folder = root / "student_s0"
    train_vitpain.main(["--dataset", str(dataset), *TINY_MODEL, *TINY_LOOP, "--modality", "rgb",
                        "--use_neutral_reference", "--output_dir", str(folder)])
    assert "pain-estimation" in json.loads((folder / "config.json").read_text())["custom_pipelines"]
    return dataset, folder


def _face(value: int) -> Image.Image:
    return Image.fromarray(np.full((32, 32, 3), value, np.uint8))


README_SNIPPET = textwrap.dedent(
    """
    import sys
    import numpy as np
    import modeling_vitpain  # registers ViTPain with AutoConfig / AutoModel / AutoImageProcessor and the pipeline
    from transformers import pipeline
    estimate = pipeline("pain-estimation", model=sys.argv[1])
    face, neutral = np.full((32, 32, 3), 90, np.uint8), np.full((32, 32, 3), 60, np.uint8)
    print(type(estimate).__module__, estimate(face, neutral_images=neutral)["pspi"])
    """
)


def test_readme_snippet_loads_a_training_folder_without_remote_code(trained, tmp_path):
    """High 10: with the package installed the folder's own code never runs, and nothing asks to trust it (stdin
    is closed: a prompt would fail)."""
    _, folder = trained
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-c", README_SNIPPET, str(folder)], cwd=tmp_path, env=env, text=True,
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert PROMPT not in result.stdout + result.stderr
    module, pspi = result.stdout.split()[-2:]
    assert module == "modeling_vitpain.pipeline_vitpain" and 0 <= float(pspi) <= 16
    assert not (tmp_path / "hf" / "modules" / "transformers_modules").exists()  # no folder code was even copied


def test_the_demo_loads_a_training_folder(trained):
    """High 11: `python demo/app.py --model <folder the training script wrote>` failed with the trust-remote-code
    error; the Estimate tab then told the user to start the demo with --model."""
    sys.path.insert(0, str(REPO / "demo"))
    import app

    _, folder = trained
    assert isinstance(app.PainEstimator(str(folder)), app.PainEstimator)  # raised the trust-remote-code error
    estimator, problem = app.load_estimator(str(folder))  # what `python demo/app.py --model FOLDER` runs
    assert problem is None and estimator is not None
    estimate = estimator(_face(90), _face(60), is_crop=True)
    assert 0 <= estimate.pspi <= 16 and set(estimate.action_units) == set(estimator.config.au_names)
    assert len(estimate.attention_maps) == len(estimator.config.au_names)


def _evaluate(capsys, *arguments: str) -> tuple[int, str]:
    """`pain3d evaluate ARGUMENTS` (the console script's `main`): its exit status and what it wrote to stderr."""
    from pain3d.cli import main

    capsys.readouterr()
    status = main(["evaluate", *arguments])
    return status, capsys.readouterr().err


def _edited(folder: Path, target: Path, config=None, processor=None, drop: str | None = None) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, target)
    for name, edit in (("config.json", config), ("preprocessor_config.json", processor)):
        if edit:
            values = json.loads((target / name).read_text())
            values.update(edit)
            (target / name).write_text(json.dumps(values))
    if drop:
        state = {k: v for k, v in load_file(str(target / "model.safetensors")).items() if not k.startswith(drop)}
        save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        pytest.param({"drop": "pspi_head."}, "misses pspi_head.mlp.0.bias", id="no PSPI head"),
        pytest.param({"config": {"au_max_intensity": [float("nan")] * 6}}, "au_max_intensity must", id="NaN bound"),
        pytest.param({"config": {"use_neutral_reference": "false"}}, "use_neutral_reference must", id="'false'"),
        pytest.param({"processor": {"image_std": [0, 0, 0]}}, "image_std must be positive", id="zero image_std"),
        pytest.param({"processor": {"image_mean": [float("nan")] * 3}}, "image_mean must", id="NaN image_mean"),
    ],
)
def test_evaluate_refuses_an_edited_folder_in_one_line(trained, tmp_path, capsys, edit, named):
    """High 6 and 7: metrics from random heads or NaN predictions were written with exit 0."""
    dataset, folder = trained
    model = _edited(folder, tmp_path / "model", **edit)
    status, stderr = _evaluate(capsys, "--model", str(model), "--dataset", str(dataset), "--calibration-samples", "0")
    errors = [line for line in stderr.splitlines() if line.startswith("pain3d evaluate: error:")]
    assert status == 2 and len(errors) == 1 and named in errors[0], stderr[-3000:]
    assert not list(model.glob("evaluation_*.json"))  # nothing written


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--batch-size", "-3"], "--batch-size must be at least 1, got -3"),
        (["--max-samples", "0"], "--max-samples must be at least 1, got 0"),
        (["--max-samples", "-2"], "--max-samples must be at least 1, got -2"),
        (["--calibration-samples", "-1"], "--calibration-samples must be at least 0, got -1"),
    ],
)
def test_evaluate_names_a_bad_argument(trained, tmp_path, capsys, arguments, message):
    """Low: these gave torch's "batch_size should be a positive integer value", numpy's "need at least one array
    to concatenate" and "negative dimensions are not allowed", or were taken silently."""
    dataset, folder = trained
    output = tmp_path / "evaluation.json"
    status, stderr = _evaluate(capsys, "--model", str(folder), "--dataset", str(dataset), "--output", str(output),
                               *arguments)
    assert status == 2 and stderr.strip() == f"pain3d evaluate: error: {message}", stderr
    assert not output.exists()


def test_evaluate_runs_on_the_unedited_folder(trained, tmp_path, capsys):
    dataset, folder = trained
    output = tmp_path / "evaluation.json"
    status, stderr = _evaluate(capsys, "--model", str(folder), "--dataset", str(dataset), "--output", str(output),
                               "--calibration-samples", "0", "--batch-size", "4")
    assert status == 0, stderr[-3000:]
    assert np.isfinite(json.loads(output.read_text())["metrics"]["pspi_mae"])


@pytest.mark.parametrize("script", ["train_vitpain", "distill_vitpain", "push_model"])
def test_scripts_refuse_a_folder_that_does_not_fit_in_one_line(trained, tmp_path, capsys, script):
    """High 6 for the scripts that read a model folder (--init_from, --teacher, the folder to push): the heads would
    have started random and training, distillation or the upload gone on."""
    import importlib

    dataset, folder = trained
    model = _edited(folder, tmp_path / "model", drop="pain_heads.")
    module = importlib.import_module(script)
    output = tmp_path / "out"
    if script == "push_model":
        status = module.main([str(model), "--repo-id", "me/vitpain", "--stage-only", str(output)])
    else:
        flag = "--teacher" if script == "distill_vitpain" else "--init_from"
        status = module.run_main(lambda: module.main(["--dataset", str(dataset), *TINY_MODEL, *TINY_LOOP, flag,
                                                      str(model), "--output_dir", str(output)]), script)
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith(f"{script}:")]  # (and transformers' progress)
    assert status in (1, 2) and len(lines) == 1 and "misses pain_heads.classifier.bias" in lines[0], stderr[-3000:]
    assert "Traceback" not in stderr
    assert not output.exists()
