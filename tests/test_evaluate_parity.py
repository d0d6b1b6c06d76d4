"""Train = serve: `pain3d evaluate` (the console script, in a fresh process) predicts, row by row, what
`pipeline("pain-estimation")` returns for the row's image (and neutral image or 16-bit heatmap PNG), with the whole
image or with the aligned face crop (`face_crop="aligned"`, cut by the row's landmarks_2d)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from test_training import write_tiny_dataset

MODEL_SIZE = 24  # the dataset's images are 32 px: both paths resize through the model's processor


def _save_model(folder: Path, modality: str, use_neutral_reference: bool, face_crop: str = "none") -> Path:
    from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel, save_model_folder

    torch.manual_seed(0)
    config = ViTPainConfig(
        backbone_config={"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64, "image_size": MODEL_SIZE, "patch_size": 8},
        input_modality=modality, use_neutral_reference=use_neutral_reference, head_hidden_size=16,
        au_head_hidden_size=16,
    )
    model = ViTPainModel(config).eval()
    processor = ViTPainImageProcessor.from_model_config(config, heatmap_scale_mm=3.0, face_crop=face_crop)
    save_model_folder(model, processor, folder)
    return folder


def _face_landmarks(rng, side: int):
    """68 landmarks of a face somewhere in a `side` px image: the crop template's anchors under a random similarity
    (scale, rotation, shift), eye points around their centres, the rest anywhere."""
    from modeling_vitpain.image_processing_vitpain import ALIGNED_TEMPLATE

    angle, scale = rng.uniform(-0.3, 0.3), rng.uniform(0.6, 1.1)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([side / 2, side / 2]) + rng.uniform(-3, 3, 2)
    anchors = (np.asarray(ALIGNED_TEMPLATE) * side - side / 2) @ rotation.T + centre
    points = rng.uniform(0, side, (68, 2))
    for eye, centre_point in ((range(36, 42), anchors[0]), (range(42, 48), anchors[1])):
        offsets = rng.normal(0, 1, (6, 2))
        points[list(eye)] = centre_point + offsets - offsets.mean(0)
    points[48], points[54] = anchors[2], anchors[3]
    return points.astype(np.float32).tolist()


def _with_landmarks(dataset: Path, seed: int = 0) -> Path:
    """The tiny dataset with a plausible, different face position per row in landmarks_2d."""
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    for shard in sorted((dataset / "data").glob("*.parquet")):
        rows = Dataset.from_parquet(str(shard))
        rows = rows.map(lambda row: {"landmarks_2d": _face_landmarks(rng, rows[0]["image"].size[0])})
        rows.to_parquet(str(shard.with_suffix(".new")))
        shard.with_suffix(".new").replace(shard)
    return dataset


@pytest.mark.parametrize("modality, neutral, face_crop", [("rgb", True, "none"), ("heatmap", False, "none"),
                                                          ("rgb", True, "aligned"), ("heatmap", False, "aligned")])
def test_evaluate_predictions_equal_the_pipeline(tmp_path, modality, neutral, face_crop):
    from datasets import load_dataset
    from transformers import pipeline

    dataset = write_tiny_dataset(tmp_path / "data")
    if face_crop == "aligned":
        dataset = _with_landmarks(dataset)
    model = _save_model(tmp_path / "model", modality, neutral, face_crop)
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
    assert pain.image_processor.face_crop == face_crop  # the crop travels with the model folder
    for line in lines:
        row = rows[line["sample_id"]]
        crop = {"landmarks": row["landmarks_2d"]} if face_crop == "aligned" else {}
        if modality == "heatmap":  # the dataset's own 16-bit PNG (micrometres), read straight from its bytes
            heatmap = row["heatmap"]
            assert heatmap.mode.startswith("I")
            served = pain({"image": heatmap, **crop})
        else:
            served = pain({"image": row["image"], "neutral_image": row["neutral_image"], **crop})
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


def test_the_aligned_crop_is_the_unbc_alignment():
    """The processor's crop template is the data side's (UNBC align=True, align_photo), by value: same anchors, same
    template, same matrix, nearly the same pixels (PIL's and torch's bilinear sampling differ at the edges)."""
    from PIL import Image

    from dataset_builder import alignment
    from modeling_vitpain import ViTPainImageProcessor
    from modeling_vitpain import image_processing_vitpain as processing

    assert np.array_equal(np.asarray(processing.ALIGNED_TEMPLATE), alignment.TEMPLATE)
    assert (processing.RIGHT_EYE_POINTS, processing.LEFT_EYE_POINTS, processing.MOUTH_CORNER_POINTS) == (
        alignment.RIGHT_EYE, alignment.LEFT_EYE, alignment.MOUTH_CORNERS)
    assert round(processing.ALIGNED_FILL * 255) == alignment.FILL[0] == alignment.FILL[1] == alignment.FILL[2]
    rng = np.random.default_rng(1)
    landmarks = np.asarray(_face_landmarks(rng, 96), np.float64)
    anchors = alignment.anchor_points(landmarks)
    assert np.allclose(processing.similarity_matrix(anchors, np.asarray(processing.ALIGNED_TEMPLATE) * 48),
                       alignment.alignment_matrix(landmarks, 48))
    photo = Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).resize((96, 96), Image.BICUBIC)
    processor = ViTPainImageProcessor(size=48, face_crop="aligned", do_normalize=False)
    served = processor(photo, landmarks=landmarks)["pixel_values"][0].numpy()
    aligned = np.asarray(alignment.align_face(photo, landmarks, 48).image, np.float32).transpose(2, 0, 1) / 255
    assert np.abs(served - aligned).mean() < 0.02
    with pytest.raises(ValueError, match="needs the face's 68 landmarks"):
        processor(photo)
    with pytest.raises(ValueError, match="face_crop must be one of"):
        ViTPainImageProcessor(face_crop="tight")
