"""Training / distillation / evaluation entry points on a tiny dataset in the column contract (built directly, no
rendering), and two CPU processes under `accelerate launch` (slow)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

IMAGE = 32
TINY_MODEL = ["--image_size", "32", "--patch_size", "8", "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2",
              "--head_hidden_size", "16"]
TINY_LOOP = ["--max_steps", "2", "--eval_steps", "2", "--logging_steps", "1", "--per_device_train_batch_size", "4",
             "--calibration_samples", "8", "--report_to", "none"]


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tiny_dataset(folder: Path, identities_per_split=(4, 2, 2), expressions: int = 3, seed: int = 0) -> Path:
    """A generated-style dataset folder (data/<split>-00000-of-00001.parquet) with `pain_features` columns: random
    faces whose brightness grows with PSPI and heatmaps in micrometres, 2 views, demographics."""
    from datasets import Dataset

    from dataset_builder import pain_features
    from generation.demographics import AGE_GROUP_NAMES, ETHNICITIES, GENDERS
    from generation.facs import PAIN_AUS

    rng = np.random.default_rng(seed)
    features = pain_features()
    views = features["view"].names
    (folder / "data").mkdir(parents=True, exist_ok=True)
    identity = 0
    for split, count in zip(("train", "validation", "test"), identities_per_split):
        rows = []
        for _ in range(count):
            identity += 1
            demographics = {"age": int(rng.integers(18, 80)), "age_group": int(rng.integers(len(AGE_GROUP_NAMES))),
                            "gender": int(rng.integers(len(GENDERS))), "ethnicity": int(rng.integers(len(ETHNICITIES)))}
            for view in range(2):
                neutral = rng.integers(0, 120, (IMAGE, IMAGE, 3), dtype=np.uint8)
                for expression in range(expressions):
                    aus = {au: (0.0 if expression == 0 else float(rng.integers(0, 6))) for au in PAIN_AUS}
                    aus["AU43"] = float(expression > 0 and rng.random() < 0.5)
                    pspi = aus["AU4"] + max(aus["AU6"], aus["AU7"]) + max(aus["AU9"], aus["AU10"]) + aus["AU43"]
                    image = np.clip(neutral.astype(int) + int(8 * pspi), 0, 255).astype(np.uint8)
                    heatmap = (rng.random((IMAGE, IMAGE)) * 300 * pspi).astype(np.uint16)  # micrometres
                    rows.append({
                        "image": {"bytes": _png(image), "path": None},
                        "neutral_image": {"bytes": _png(neutral), "path": None},
                        "heatmap": {"bytes": _png(heatmap), "path": None},
                        "sample_id": f"id{identity:03d}_e{expression}_v{view}", "identity_id": f"id{identity:03d}",
                        "expression_index": expression, "view": view, "yaw": 0.0, "pitch": 0.0,
                        "action_units": aus, "pspi": pspi, "landmarks_2d": [[0.0, 0.0]] * 68, **demographics,
                    })
        dataset = (Dataset.from_list(rows, features=features) if rows
                   else Dataset.from_dict({name: [] for name in features}, features=features))
        dataset.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    assert views
    return folder


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-pain3d"))


@pytest.fixture(autouse=True)
def offline_hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def _processor(modality="rgb", **kwargs):
    from modeling_vitpain import ViTPainImageProcessor

    return ViTPainImageProcessor(input_modality=modality, **{"size": IMAGE, **kwargs})


def test_collator_gives_each_modality_its_input(tiny_dataset):
    import torch

    from dataset_builder.collator import PainCollator
    from dataset_builder.evaluation import with_transform
    from training_common import DataArguments, dataset_splits

    splits = dataset_splits(DataArguments(dataset=str(tiny_dataset)))
    assert {"train", "validation", "test", "calibration"} <= set(splits)
    train_ids = set(splits["train"]["identity_id"])
    assert not train_ids & set(splits["validation"]["identity_id"]) and not train_ids & set(splits["test"]["identity_id"])
    test = with_transform(splits["test"], _processor())
    rows = [test[i] for i in range(4)]
    rgb = PainCollator("rgb", teacher_modality="heatmap", teacher_heatmap_scale_mm=10.0)(rows)
    heat = PainCollator("heatmap", heatmap_scale_mm=2.0, use_neutral_reference=True)(rows)
    assert rgb["pixel_values"].shape == (4, 3, IMAGE, IMAGE)
    assert rgb["teacher_pixel_values"].shape == (4, 1, IMAGE, IMAGE)
    assert heat["pixel_values"].shape == (4, 1, IMAGE, IMAGE)
    assert torch.allclose(heat["pixel_values"] * 2.0, rgb["teacher_pixel_values"] * 10.0)  # each at its own scale
    assert torch.equal(heat["neutral_pixel_values"], torch.zeros_like(heat["pixel_values"]))
    assert torch.equal(rgb["pspi_labels"], torch.tensor([float(r) for r in splits["test"]["pspi"][:4]]))


def test_training_transform_is_built_from_the_image_processor(tiny_dataset):
    """Train = serve: evaluation rows are exactly what the model's processor makes of the row's images, with the
    processor's normalisation (ViT: 0.5 / 0.5), and the training view normalises with the same statistics."""
    import torch

    from dataset_builder.evaluation import with_transform
    from training_common import DataArguments, dataset_splits

    processor = _processor(image_mean=[0.2, 0.3, 0.4], image_std=[0.5, 0.6, 0.7])
    raw = dataset_splits(DataArguments(dataset=str(tiny_dataset)))["test"]
    served = processor(raw[0]["image"])["pixel_values"][0]  # a decoded PIL image, as the pipeline gets it
    assert torch.equal(with_transform(raw, processor)[0]["pixel_values"], served)
    bigger = _processor(image_mean=[0.2, 0.3, 0.4], image_std=[0.5, 0.6, 0.7], size=48)
    assert with_transform(raw, bigger)[0]["pixel_values"].shape == (3, 48, 48)  # the processor's size and resize
    transform = with_transform(raw, processor, train=True).format["format_kwargs"]["transform"]
    assert transform.image_mean == (0.2, 0.3, 0.4) and transform.image_std == (0.5, 0.6, 0.7)


def test_fairness_table_pins_group_numbers():
    from dataset_builder.pain_metrics import fairness_table
    from modeling_vitpain.model_card import fairness_markdown

    predictions = np.array([0.0, 2.0, 4.0, 1.0, 1.0, 5.0])
    references = np.array([0.0, 3.0, 4.0, 0.0, 3.0, 3.0])
    table = fairness_table(predictions, references, {"gender": ["f", "f", "f", "m", "m", "m"]}, thresholds=(1,))
    assert table["gender"]["f"] == {"n": 3, "pspi_mae": pytest.approx(1 / 3), "auroc_ge1": 1.0}
    assert table["gender"]["m"]["pspi_mae"] == pytest.approx(5 / 3)  # errors 1, 2, 2
    assert table["gender"]["m"]["auroc_ge1"] == pytest.approx(0.75)  # (1 tie * 0.5 + 1 win) / 2 pairs
    one_class = fairness_table(predictions[:1], references[:1], {"gender": ["f"]}, thresholds=(1,))
    assert np.isnan(one_class["gender"]["f"]["auroc_ge1"])
    assert "| gender | m | - | 3 |" in fairness_markdown(table)  # rows; identities: dataset_builder.fairness


def _check_model_folder(folder: Path, modality: str) -> dict:
    import torch
    from transformers import AutoModel

    from modeling_vitpain.model_card import load_evaluation

    model = AutoModel.from_pretrained(folder)  # registered by importing modeling_vitpain
    assert model.config.input_modality == modality
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    evaluation = load_evaluation(folder / "evaluation.json")  # the model card's shape
    assert evaluation["split"] == "test" and evaluation["validation"]["best_checkpoint"] == "checkpoint-2"
    assert set(evaluation["fairness"]) == {"age_group", "gender", "ethnicity"}
    assert "## Fairness" in (folder / "README.md").read_text()
    channels = 1 if modality == "heatmap" else 3
    with torch.no_grad():
        assert model(pixel_values=torch.zeros(1, channels, IMAGE, IMAGE)).pspi.shape == (1,)
    return evaluation


def test_train_distill_evaluate(tiny_dataset, tmp_path):
    import distill_vitpain
    import evaluate_vitpain
    import train_vitpain

    teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "student"
    data = ["--dataset", str(tiny_dataset)]
    train_vitpain.main([*data, *TINY_MODEL, *TINY_LOOP, "--modality", "heatmap", "--output_dir", str(teacher_dir),
                        "--report_to", "tensorboard"])
    teacher_eval = _check_model_folder(teacher_dir, "heatmap")
    teacher_card = (teacher_dir / "README.md").read_text()
    assert "| Training | supervised, on the loss below |" in teacher_card
    assert "| Backbone weights | trained from random initialisation |" in teacher_card
    assert teacher_eval["num_samples"] == 12 and teacher_eval["f1_calibration"] == "train-split predictions"
    assert list((teacher_dir / "tensorboard").glob("events.out.tfevents*"))
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # the log folder is handed to the callback, not the process

    teacher_weights = (teacher_dir / "model.safetensors").read_bytes()
    distill_vitpain.main([*data, *TINY_MODEL, *TINY_LOOP, "--teacher", str(teacher_dir), "--attention_weight", "0.5",
                          "--init_student_from_teacher", "true", "--output_dir", str(student_dir)])
    _check_model_folder(student_dir, "rgb")
    assert (teacher_dir / "model.safetensors").read_bytes() == teacher_weights
    config = json.loads((student_dir / "training_config.json").read_text())
    assert config["teacher"] == str(teacher_dir) and config["attention_weight"] == 0.5
    assert config["init_student_from_teacher"] is True
    student_card = (student_dir / "README.md").read_text()
    assert f"| Backbone weights | initialised from the teacher `{teacher_dir}` (all but the patch projection) |" in (
        student_card
    )
    assert (f"| Training | distilled from the frozen heatmap teacher `{teacher_dir}`: task x1 + [CLS] feature x1 + "
            "token x8 + prediction x1 + AU attention x0.5 (temperature 2) |") in student_card

    output = tmp_path / "eval.json"
    assert evaluate_vitpain.main(["--model", str(student_dir), *data, "--split", "validation",
                                  "--output", str(output)]) == 0
    evaluation = json.loads(output.read_text())
    assert evaluation["split"] == "validation" and evaluation["num_samples"] == 12
    assert evaluation["metrics"]["pspi_mae"] >= 0 and set(evaluation["fairness"]) == {"age_group", "gender", "ethnicity"}


def test_heatmap_model_needs_heatmaps(tiny_dataset):
    from dataset_builder.collator import PainCollator
    from dataset_builder.evaluation import with_transform
    from training_common import DataArguments, dataset_splits

    test = dataset_splits(DataArguments(dataset=str(tiny_dataset)))["test"].remove_columns("heatmap")
    rows = [with_transform(test, _processor())[i] for i in range(2)]
    with pytest.raises(ValueError, match="heatmap"):
        PainCollator("heatmap", heatmap_scale_mm=10.0)(rows)


def test_heatmap_scale_comes_from_the_processor():
    """The collator has no heatmap scale of its own: `for_model` reads the processor's, a bare heatmap side fails."""
    from dataset_builder.collator import PainCollator
    from modeling_vitpain import ViTPainConfig

    for arguments in ({"modality": "heatmap"}, {"modality": "rgb", "teacher_modality": "heatmap"}):
        with pytest.raises(ValueError, match="heatmap_scale_mm"):
            PainCollator(**arguments)
    heatmap = ViTPainConfig(input_modality="heatmap", use_neutral_reference=True)
    student = PainCollator.for_model(heatmap, _processor("heatmap", heatmap_scale_mm=3.0))
    assert (student.modality, student.heatmap_scale_mm, student.use_neutral_reference) == ("heatmap", 3.0, True)
    distilled = PainCollator.for_model(ViTPainConfig(), _processor(), teacher_config=heatmap,
                                       teacher_processor=_processor("heatmap", heatmap_scale_mm=7.0))
    assert (distilled.teacher_modality, distilled.teacher_heatmap_scale_mm) == ("heatmap", 7.0)
    assert distilled.teacher_neutral_reference


def test_validation_metrics_read_the_model_config():
    """Validation metrics use the config's AU names and pain thresholds, as the test evaluation does."""
    from types import SimpleNamespace

    from modeling_vitpain import ViTPainConfig
    from training_common import pain_metrics_for

    config = ViTPainConfig(au_names=["AU4", "AU6"], pain_thresholds=[2.0])
    rng = np.random.default_rng(0)
    pspi, labels = rng.uniform(0, 6, 8), np.array([0, 1, 2, 3, 4, 0, 5, 2.0])
    aus, au_labels = rng.uniform(0, 5, (8, 2)), rng.uniform(0, 5, (8, 2))
    prediction = SimpleNamespace(predictions=(pspi, aus), label_ids=(labels, au_labels))
    metrics = pain_metrics_for(config)(prediction)
    assert {"au_AU4_mae", "au_AU6_mae", "auroc_ge2", "f1_ge2"} <= set(metrics)
    assert not {"auroc_ge1", "au_AU7_mae"} & set(metrics) and not any(k.startswith("f1_cutoff") for k in metrics)


@pytest.mark.slow
def test_two_cpu_processes_train_and_distill(tiny_dataset, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on CPU: both ranks train, their weights agree, rank 0 saves
    a model that loads."""
    accelerate = shutil.which("accelerate")  # the console script users type, not `python -m`
    assert accelerate, "the accelerate console script is not installed"
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    data = ["--dataset", str(tiny_dataset), *TINY_MODEL, *TINY_LOOP]
    runs = {
        "teacher": [str(REPO / "scripts" / "train_vitpain.py"), *data, "--modality", "heatmap"],
        "student": [str(REPO / "scripts" / "distill_vitpain.py"), *data, "--teacher", str(tmp_path / "teacher")],
    }
    for name, command in runs.items():
        result = subprocess.run([*launch, *command, "--output_dir", str(tmp_path / name)], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # The two processes share stdout, so a rank's line may be glued to the other's log output: match, don't split.
        reports = dict(re.findall(r"\[rank (\d)/2\] trained 2 steps, weight checksum (-?[\d.]+)", result.stdout))
        assert set(reports) == {"0", "1"}, result.stdout[-2000:]
        assert len(set(reports.values())) == 1, reports  # DDP kept the two replicas identical
        evaluation = _check_model_folder(tmp_path / name, "heatmap" if name == "teacher" else "rgb")
        assert evaluation["training"]["world_size"] == 2


def test_accelerate_console_script_starts(tmp_path):
    """`accelerate env` imports what `accelerate launch` imports (a broken optional timm once made it crash)."""
    accelerate = shutil.which("accelerate")
    assert accelerate, "the accelerate console script is not installed"
    result = subprocess.run([accelerate, "env"], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                            env={**os.environ, "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "`Accelerate` version" in result.stdout


def test_a_launch_that_runs_one_process_instead_of_several_is_detected():
    import torch
    from training_args import single_process_launch

    if torch.cuda.is_available():
        pytest.skip("with a GPU, accelerate starts the processes it was asked for")
    launcher = ["/venv/bin/accelerate", "launch", "--num_processes", "2", "scripts/train_vitpain.py", "--seed", "0"]
    assert single_process_launch(launcher, world_size=1) == 2
    assert single_process_launch([*launcher[:2], "--num_processes=3", *launcher[4:]], world_size=1) == 3
    assert single_process_launch([*launcher[:2], "--multi_gpu", *launcher[2:]], world_size=1) is None
    assert single_process_launch(launcher, world_size=2) is None  # it did start two
    assert single_process_launch(["/venv/bin/accelerate", "launch", "script.py"], world_size=1) is None


@pytest.mark.slow
def test_single_process_launch_warns(tiny_dataset, tmp_path):
    accelerate = shutil.which("accelerate")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [accelerate, "launch", "--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no",
         str(REPO / "scripts" / "train_vitpain.py"), "--dataset", str(tiny_dataset), *TINY_MODEL, *TINY_LOOP,
         "--output_dir", str(tmp_path / "run")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "asked for 2 processes but started one: on CPU add --multi_gpu" in result.stderr


def test_trains_on_the_official_layout(tiny_dataset, tmp_path):
    """The same script reads a folder in the published 3D-Pain layout (no heatmaps, no demographics there)."""
    import train_vitpain
    from dataset_builder import export_official

    official = tmp_path / "official"
    export_official(str(tiny_dataset), official)
    evaluation = train_vitpain.main([
        "--dataset", str(official), "--split_csv", str(official / "splits.csv"), *TINY_MODEL, *TINY_LOOP,
        "--modality", "rgb", "--output_dir", str(tmp_path / "rgb"),
    ])
    assert evaluation["num_samples"] == 12 and "fairness" not in evaluation
    assert (tmp_path / "rgb" / "model.safetensors").is_file()


def test_results_table_reports_mean_spread_and_change_over_seeds(tmp_path):
    import results_table

    for arm, maes in {"rgb": (2.0, 3.0), "student": (1.5, 1.5)}.items():
        for seed, mae in enumerate(maes):
            run = tmp_path / f"{arm}_s{seed}"
            run.mkdir()
            metrics = {"pspi_mae": mae, "pspi_pearson": 0.5 + seed / 10, "auroc_ge3": 0.9}
            validation = {"best_pspi_mae": mae + 0.5}
            (run / "evaluation.json").write_text(json.dumps({"metrics": metrics, "validation": validation}))
    plot = tmp_path / "results.png"
    table = results_table.main([f"RGB={tmp_path}/rgb_s*", f"student={tmp_path}/student_s*", "--reference", "RGB",
                                "--plot", str(plot)])
    from PIL import Image

    assert Image.open(plot).size[0] > 500
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[2:]}
    assert table.splitlines()[0].startswith("| arm | seeds | validation PSPI MAE | test PSPI MAE |")
    assert rows["RGB"][:3] == ["2", "3.000 +/- 0.707", "2.500 +/- 0.707"] and rows["RGB"][-1] == "+0.0%"
    assert rows["student"][2] == "1.500 +/- 0.000" and rows["student"][3] == "0.550 +/- 0.071"
    assert rows["student"][-1] == "-40.0%"  # 1.5 against 2.5
    with pytest.raises(SystemExit, match="no evaluation.json"):
        results_table.main([f"missing={tmp_path}/nothing_*"])


def test_the_seed_sets_the_initial_weights():
    import torch
    from training_common import ModelArguments, build_model

    args = ModelArguments(image_size=IMAGE, patch_size=8, hidden_size=16, num_layers=1, num_heads=2)
    first, again, other = (build_model(args, seed=s).state_dict() for s in (0, 0, 1))
    assert all(torch.equal(first[k], again[k]) for k in first)
    projection = "backbone.embeddings.patch_embeddings.projection.weight"
    assert not torch.equal(first[projection], other[projection])


@pytest.mark.parametrize("script", ["train_vitpain.py", "distill_vitpain.py"])
def test_training_scripts_explain_their_flags(script):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--help"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "what the model reads" in result.stdout and "--per_device_train_batch_size" in result.stdout
    assert "accelerate launch" in result.stdout  # the script's own usage text
    if script == "distill_vitpain.py":
        assert "token-by-token feature distillation" in result.stdout


# ------------------------------------------------------------------------------------- bad input, nothing lost
def _script(name: str, *args, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _one_line_error(result, *words):
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for word in words:
        assert word in result.stderr, result.stderr[-3000:]


def test_existing_output_dir_is_refused_and_only_recorded_files_are_replaced(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.md").write_text("my notes")
    args = ["--dataset", tiny_dataset, *TINY_MODEL, *TINY_LOOP, "--modality", "rgb", "--output_dir", out]
    _one_line_error(_script("train_vitpain.py", *args, tmp_path=tmp_path), "not empty", "--overwrite")
    _one_line_error(_script("train_vitpain.py", *args, "--overwrite", tmp_path=tmp_path), "notes.md")
    assert [p.name for p in out.iterdir()] == ["notes.md"] and (out / "notes.md").read_text() == "my notes"

    (out / "notes.md").unlink()
    import train_vitpain

    train_vitpain.main([*map(str, args)])
    assert (out / "model.safetensors").is_file() and (out / "checkpoints").is_dir()
    _one_line_error(_script("train_vitpain.py", *args, tmp_path=tmp_path), "not empty")
    train_vitpain.main([*map(str, args), "--overwrite", "true"])  # replaces its own earlier run
    assert json.loads((out / "pain3d_manifest.json").read_text())["files"]["model.safetensors"]["size"] > 0


def test_an_empty_split_is_refused_before_training(tmp_path):
    dataset = write_tiny_dataset(tmp_path / "no-test", identities_per_split=(4, 2, 0))
    out = tmp_path / "run"
    result = _script("train_vitpain.py", "--dataset", dataset, *TINY_MODEL, *TINY_LOOP, "--output_dir", out,
                     tmp_path=tmp_path)
    _one_line_error(result, "no rows in the test split")
    assert not out.exists()  # refused before anything was written or trained


def test_training_argument_errors_are_one_line(tiny_dataset, tmp_path):
    teacher = tmp_path / "teacher"
    result = _script("distill_vitpain.py", "--dataset", tiny_dataset, "--teacher", teacher, "--modality", "heatmap",
                     "--output_dir", tmp_path / "student", tmp_path=tmp_path)
    _one_line_error(result, "RGB model")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dataset": str(tiny_dataset), "output_dir": str(tmp_path / "x"), "max_step": 2}))
    _one_line_error(_script("train_vitpain.py", config, tmp_path=tmp_path), "max_step")
