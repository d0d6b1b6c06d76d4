"""Train = serve: `pain3d evaluate` (the console script, in a fresh process) predicts, row by row, what
`pipeline("pain-estimation")` returns for the row's image (and neutral image or 16-bit heatmap PNG)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from test_training import write_tiny_dataset

MODEL_SIZE = 24  # the dataset's images are 32 px: both paths resize through the model's processor


def _save_model(folder: Path, modality: str, use_neutral_reference: bool) -> Path:
    from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel, save_model_folder

    torch.manual_seed(0)
    config = ViTPainConfig(
        backbone_config={"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64, "image_size": MODEL_SIZE, "patch_size": 8},
        input_modality=modality, use_neutral_reference=use_neutral_reference, head_hidden_size=16,
        au_head_hidden_size=16,
    )
    model = ViTPainModel(config).eval()
    save_model_folder(model, ViTPainImageProcessor.from_model_config(config, heatmap_scale_mm=3.0), folder)
    return folder


@pytest.mark.parametrize("modality, neutral", [("rgb", True), ("heatmap", False)])
def test_evaluate_predictions_equal_the_pipeline(tmp_path, modality, neutral):
    from datasets import load_dataset
    from transformers import pipeline

    dataset = write_tiny_dataset(tmp_path / "data")
    model = _save_model(tmp_path / "model", modality, neutral)
    predictions, metrics = tmp_path / "predictions.jsonl", tmp_path / "metrics.json"
    pain3d = shutil.which("pain3d")
    assert pain3d, "the pain3d console script is not installed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [pain3d, "evaluate", "--model", str(model), "--dataset", str(dataset), "--split", "test",
         "--predictions", str(predictions), "--output", str(metrics), "--calibration-samples", "0"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    evaluation = json.loads(metrics.read_text())
    assert evaluation["num_samples"] == len(lines) == 12 and evaluation["split"] == "test"

    rows = {row["sample_id"]: row for row in load_dataset(str(dataset), split="test", cache_dir=str(tmp_path / "c"))}
    pain = pipeline("pain-estimation", model=str(model), trust_remote_code=True)  # the folder ships the pipeline
    for line in lines:
        row = rows[line["sample_id"]]
        if modality == "heatmap":  # the dataset's own 16-bit PNG (micrometres), read straight from its bytes
            heatmap = row["heatmap"]
            assert heatmap.mode.startswith("I")
            served = pain(heatmap)
        else:
            served = pain(row["image"], neutral_images=row["neutral_image"])
        assert served["pspi"] == pytest.approx(line["pspi"], abs=1e-4)
        assert line["pspi_label"] == pytest.approx(row["pspi"])
        for name, value in served["action_units"].items():
            assert value == pytest.approx(line["action_units"][name], abs=1e-4)
        for threshold, value in served["pain_probability"].items():
            assert value == pytest.approx(line["pain_probability"][threshold], abs=1e-4)
    mae = sum(abs(line["pspi"] - line["pspi_label"]) for line in lines) / len(lines)
    assert evaluation["metrics"]["pspi_mae"] == pytest.approx(mae, abs=1e-5)


def test_pipeline_names_neutral_images_when_the_neutral_is_missing(tmp_path):
    import numpy as np
    from transformers import pipeline

    pain = pipeline("pain-estimation", model=str(_save_model(tmp_path / "model", "rgb", True)), trust_remote_code=True)
    with pytest.raises(ValueError, match="neutral_images="):
        pain(np.zeros((32, 32, 3), np.uint8))


def test_processor_reads_16_bit_heatmap_pngs_in_micrometres():
    import numpy as np
    from PIL import Image

    from generation.columns import HEATMAP_UNITS_PER_MM
    from modeling_vitpain import ViTPainImageProcessor
    from modeling_vitpain.image_processing_vitpain import HEATMAP_PNG_UNITS_PER_MM

    assert HEATMAP_PNG_UNITS_PER_MM == HEATMAP_UNITS_PER_MM  # the copy pinned to the dataset's contract
    micrometres = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 250).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(micrometres).save(buffer, format="PNG")
    png = Image.open(io.BytesIO(buffer.getvalue()))
    assert png.mode == "I;16"
    processor = ViTPainImageProcessor(input_modality="heatmap", size=8, heatmap_scale_mm=2.0)
    pixels = processor(png)["pixel_values"][0, 0]
    assert torch.allclose(pixels, torch.from_numpy(micrometres / 1000.0 / 2.0).float())


def test_evaluate_replaces_only_its_own_earlier_results(tmp_path):
    dataset = write_tiny_dataset(tmp_path / "data")
    model = _save_model(tmp_path / "model", "rgb", False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}

    def evaluate(output, predictions):
        return subprocess.run(
            [shutil.which("pain3d"), "evaluate", "--model", str(model), "--dataset", str(dataset), "--output",
             str(output), "--predictions", str(predictions), "--calibration-samples", "0"],
            env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
        )

    notes, metrics, predictions = tmp_path / "notes.txt", tmp_path / "metrics.json", tmp_path / "predictions.jsonl"
    notes.write_text("my notes\n")
    training = tmp_path / "evaluation.json"  # a training run's evaluation: metrics too, but not evaluate's
    training.write_text(json.dumps({"metrics": {"pspi_mae": 1.0}, "num_samples": 3, "validation": {}}))
    for output, preds, problem in ((notes, predictions, "notes.txt exists and is not an earlier evaluation"),
                                   (training, predictions, "evaluation.json exists and is not an earlier evaluation"),
                                   (metrics, notes, "notes.txt exists and is not an earlier predictions"),
                                   (metrics, metrics, "give them different paths"),
                                   (tmp_path, predictions, "is a folder")):
        result = evaluate(output, preds)
        assert result.returncode == 2 and problem in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert notes.read_text() == "my notes\n" and not metrics.exists() and not predictions.exists()
    assert json.loads(training.read_text())["num_samples"] == 3
    assert evaluate(metrics, predictions).returncode == 0
    fresh = json.loads(metrics.read_text())
    assert fresh["tool"] == "pain3d evaluate" and fresh["num_samples"] == 12
    metrics.write_text(json.dumps({**fresh, "num_samples": 0}))  # an earlier result of the same kind ...
    predictions.write_text(predictions.read_text().splitlines()[0] + "\n")
    assert evaluate(metrics, predictions).returncode == 0  # ... is replaced
    assert json.loads(metrics.read_text())["num_samples"] == 12 and len(predictions.read_text().splitlines()) == 12
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith((".json", ".jsonl", ".partial"))) == [
        "evaluation.json", "metrics.json", "predictions.jsonl"]
