"""ViTPain on the Hub: model card filling, the push script (offline refusal, staging, upload), the benchmark script."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel
from modeling_vitpain.model_card import EvaluationError, describe_metric, fill_model_card, load_evaluation

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))  # scripts import their siblings, as when run from scripts/
TEMPLATE = REPO_ROOT / "hub_cards" / "model_card.md"
EVALUATION = {  # "metrics" as metrics/pain_metrics returns them
    "dataset": {"id": "SoroushMehraban/3D-Pain", "name": "3D-Pain (synthetic)"},
    "split": "test",
    "num_samples": 4210,
    "protocol": "identity-disjoint 70/20/10",
    "metrics": {
        "pspi_mae": 0.8123,
        "pspi_rmse": 1.1234,
        "pspi_pearson": 0.861,
        "pspi_icc": 0.842,
        "auroc_ge1": 0.931,
        "f1_ge1": 0.851,
        "f1_cutoff_ge1": 1.37,
        "auroc_ge2": 0.912,
        "f1_ge2": 0.802,
        "f1_cutoff_ge2": 2.2,
        "auroc_ge3": float("nan"),  # undefined: one class only
        "f1_ge3": 0.0,
        "f1_cutoff_ge3": 3.0,
        "au_AU4_mae": 0.41,
        "au_AU4_pearson": 0.77,
        "au_AU43_mae": 0.12,
    },
}
NUM_SCORES = 12  # in the model-index: all but the three cut-offs and the undefined AUROC


def tiny_config(**kwargs) -> ViTPainConfig:
    backbone = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 37, "image_size": 32, "patch_size": 8}  # fmt: skip
    return ViTPainConfig(backbone_config=backbone, head_hidden_size=16, au_head_hidden_size=16, **kwargs)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"vitpain_script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf_home"))


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A saved tiny model (weights, processor) with its evaluation JSON, as the training script leaves it."""
    folder = tmp_path_factory.mktemp("trained") / "vitpain-tiny"
    torch.manual_seed(0)
    model = ViTPainModel(tiny_config(use_lora=True))
    model.save_pretrained(folder)
    ViTPainImageProcessor.from_model_config(model.config).save_pretrained(folder)
    (folder / "evaluation.json").write_text(json.dumps(EVALUATION))
    return folder


# -------------------------------------------------------------------------------------------------- model card


def test_card_fills_model_index_from_the_evaluation():
    config = tiny_config(use_lora=True, use_neutral_reference=True, backbone_checkpoint="facebook/dinov2-small")
    text = fill_model_card(EVALUATION, config, "someone/vitpain-tiny", num_parameters=123456, template_path=TEMPLATE)
    assert not re.search(r"\{\{|\{%|More Information Needed", text)
    card = ModelCard(text)
    results = card.data.eval_results
    assert len(results) == NUM_SCORES
    by_name = {result.metric_name: result for result in results}
    assert by_name["PSPI MAE"].metric_value == pytest.approx(0.8123)
    assert by_name["PSPI MAE"].metric_type == "mae"
    assert by_name["AUROC (PSPI >= 2)"].metric_value == pytest.approx(0.912)
    assert by_name["AU43 MAE"].metric_value == pytest.approx(0.12)
    assert by_name["AU4 Pearson r"].metric_type == "pearsonr"
    assert "AUROC (PSPI >= 3)" not in by_name and not any("cut-off" in name for name in by_name)
    assert "| AUROC (PSPI >= 3) | undefined |" in text and "| F1 decision cut-off (PSPI >= 1) | 1.37 |" in text
    assert {r.dataset_type for r in results} == {"SoroushMehraban/3D-Pain"} and {r.dataset_split for r in results} == {
        "test"
    }
    assert card.data.base_model == "facebook/dinov2-small" and card.data.license == "mit"
    assert "model-index" in text and "| PSPI ICC(3,1) | 0.842 |" in text
    assert "4,210 images" in text and "123,456" in text and "neutral_images=" in text
    assert "LoRA (rank 8" in text and "AU4, AU6, AU7, AU9, AU10, AU43" in text


def test_card_names_the_provenance_of_its_numbers():
    """The card says which code and data its numbers come from, as the training scripts record them."""
    origin = {"commit": "2595d52aa1b2c3d4e5f6", "dirty": True, "dataset_fingerprint": "6f32923a0423" + "0" * 52}
    text = fill_model_card({**EVALUATION, "provenance": origin}, tiny_config(), "me/vitpain", template_path=TEMPLATE)
    assert "at commit `2595d52aa1b2` with uncommitted changes, on the dataset with fingerprint `6f32923a0423`" in text
    clean = fill_model_card({**EVALUATION, "provenance": {**origin, "dirty": False}}, tiny_config(), "me/vitpain",
                            template_path=TEMPLATE)  # fmt: skip
    assert "at commit `2595d52aa1b2`, on the dataset" in clean
    assert "commit" not in fill_model_card(EVALUATION, tiny_config(), "me/vitpain", template_path=TEMPLATE)


def test_card_reads_what_the_metrics_module_writes():
    from dataset_builder import PAIN_METRICS_PATH as module_path

    spec = importlib.util.spec_from_file_location("pain_metrics_for_card", module_path)
    pain_metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pain_metrics)
    generator = torch.Generator().manual_seed(0)
    references = torch.randint(0, 8, (40,), generator=generator).double()
    predictions = (references + torch.randn(40, generator=generator, dtype=torch.float64)).clamp(0, 16)
    au_references = torch.rand(40, 6, generator=generator, dtype=torch.float64) * 5
    metrics = pain_metrics.pain_metrics(
        predictions.tolist(),
        references.tolist(),
        train_predictions=predictions.tolist(),
        train_references=references.tolist(),
        au_predictions=(au_references + 0.3).numpy(),
        au_references=au_references.numpy(),
        au_names=["AU4", "AU6", "AU7", "AU9", "AU10", "AU43"],
    )
    evaluation = {"dataset": "local-3dpain", "split": "test", "metrics": json.loads(json.dumps(metrics))}
    text = fill_model_card(evaluation, tiny_config(), "me/vitpain", template_path=TEMPLATE)
    names = {result.metric_name for result in ModelCard(text).data.eval_results}
    assert {"PSPI MAE", "PSPI ICC(3,1)", "AUROC (PSPI >= 1)", "F1 (PSPI >= 3)", "AU43 MAE", "AU10 Pearson r"} <= names
    assert not any(name in metrics for name in names)  # every key got a readable name


def test_card_accepts_a_plain_dataset_name_and_unknown_metrics():
    evaluation = {"dataset": "local-3dpain", "split": "validation", "metrics": {"pspi_mae": 1, "my_metric": 0.5}}
    text = fill_model_card(evaluation, tiny_config(input_modality="heatmap"), "me/teacher", template_path=TEMPLATE)
    results = ModelCard(text).data.eval_results
    assert [(r.metric_type, r.metric_name) for r in results] == [("mae", "PSPI MAE"), ("my_metric", "my_metric")]
    assert "heatmap" in text and "card_data" not in text


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ([], "JSON object"),
        ({"split": "test", "metrics": {"pspi_mae": 1}}, "dataset"),
        ({"dataset": "d", "metrics": {"pspi_mae": 1}}, "split"),
        ({"dataset": "d", "split": "test", "metrics": {}}, "metrics"),
        ({"dataset": "d", "split": "test", "metrics": {"pspi_mae": float("nan"), "f1_ge1": None}}, "undefined"),
        ({"dataset": "d", "split": "test", "metrics": {"pspi_mae": "0.8"}}, "'pspi_mae' must be a number"),
        ({"dataset": "d", "split": "test", "metrics": {"au_mae": {"AU4": 1.0}}}, "'au_mae' must be a number"),
        ({"dataset": "d", "split": "test", "metrics": {"pspi_mae": float("inf")}}, "must be a number"),
    ],
)
def test_card_rejects_malformed_evaluations(evaluation, message):
    with pytest.raises(EvaluationError, match=message):
        fill_model_card(evaluation, tiny_config(), "me/model", template_path=TEMPLATE)


def test_card_refuses_to_leave_placeholders(tmp_path):
    template = tmp_path / "card.md"
    template.write_text("---\n{{ card_data }}\n---\n{{ not_provided }}\n")
    with pytest.raises(Exception, match="not_provided"):
        fill_model_card(EVALUATION, tiny_config(), "me/model", template_path=template)
    template.write_text("---\n{{ card_data }}\n---\nText with [More Information Needed]\n")
    with pytest.raises(ValueError, match="placeholder"):
        fill_model_card(EVALUATION, tiny_config(), "me/model", template_path=template)


def test_load_evaluation_errors_name_the_file(tmp_path):
    with pytest.raises(EvaluationError, match="No evaluation JSON"):
        load_evaluation(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(EvaluationError, match="broken.json"):
        load_evaluation(tmp_path / "broken.json")
    assert describe_metric("f1_ge3") == ("f1", "F1 (PSPI >= 3)")
    assert describe_metric("auroc_ge2.5") == ("roc_auc", "AUROC (PSPI >= 2.5)")
    assert describe_metric("f1_cutoff_ge1") == (None, "F1 decision cut-off (PSPI >= 1)")
    assert describe_metric("au_AU10_pearson") == ("pearsonr", "AU10 Pearson r")


# -------------------------------------------------------------------------------------------------- push script


def test_push_refuses_clearly_when_offline(model_folder, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "push_model.py"), str(model_folder), "--repo-id", "me/vitpain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2
    message = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(message) == 1 and "HF_HUB_OFFLINE=1" in message[0] and "nothing was uploaded" in message[0]


def test_push_stages_a_complete_repository_offline(model_folder, tmp_path):
    push_model = load_script("push_model")
    staged = tmp_path / "upload"
    assert push_model.main([str(model_folder), "--repo-id", "me/vitpain-tiny", "--stage-only", str(staged)]) == 0
    files = {path.name for path in staged.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "README.md",
        "evaluation.json",
        "configuration_vitpain.py",
        "modeling_vitpain.py",
        "image_processing_vitpain.py",
        "pipeline_vitpain.py",
    } <= files
    config = json.loads((staged / "config.json").read_text())
    assert config["custom_pipelines"]["pain-estimation"]["impl"] == "pipeline_vitpain.PainEstimationPipeline"
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel"}
    card = ModelCard.load(staged / "README.md")
    assert len(card.data.eval_results) == NUM_SCORES
    assert 'pipeline("pain-estimation", model="me/vitpain-tiny", trust_remote_code=True)' in card.text


def test_push_uploads_model_processor_and_card(model_folder, monkeypatch):
    push_model = load_script("push_model")
    calls = []

    class FakeApi:
        def whoami(self):
            calls.append(("whoami",))
            return {"name": "me"}

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload_folder", repo_id, sorted(path.name for path in Path(folder_path).iterdir())))

    monkeypatch.setattr(push_model, "hub_is_offline", lambda: False)
    monkeypatch.setattr(push_model, "HfApi", FakeApi)
    assert push_model.main([str(model_folder), "--repo-id", "me/vitpain-tiny", "--private"]) == 0
    assert [call[0] for call in calls] == ["whoami", "create_repo", "upload_folder"]
    assert calls[1][2]["private"] is True
    assert {"README.md", "model.safetensors", "preprocessor_config.json", "pipeline_vitpain.py"} <= set(calls[2][2])


def test_push_reports_bad_inputs(model_folder, tmp_path, capsys):
    push_model = load_script("push_model")
    arguments = [str(model_folder), "--repo-id", "me/x", "--stage-only", str(tmp_path / "out")]
    assert push_model.main([*arguments, "--evaluation", str(tmp_path / "missing.json")]) == 1
    assert "No evaluation JSON" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- benchmark


def test_bench_script_runs_both_arms_on_a_tiny_model(tmp_path):
    if importlib.util.find_spec("timm") is None:  # not imported here: timm itself imports torchvision
        pytest.skip("the official-style arm needs timm and torchvision: pip install -e '.[bench]' (see the README)")
    # A subprocess: the script may install torchvision stand-ins, which must not leak into this test session.
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench_model.py"),
            "--hidden-size",
            "32",
            "--layers",
            "1",
            "--heads",
            "4",
            "--image-size",
            "32",
            "--patch-size",
            "8",
            "--batch-size",
            "2",
            "--steps",
            "1",
            "--neutral-reference",
        ],  # fmt: skip
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = {line.split()[0] + " " + line.split()[1]: line.split()[2:] for line in completed.stdout.splitlines()
            if line.startswith(("train", "inference"))}  # fmt: skip
    assert set(rows) == {"train median", "train best", "inference median", "inference best"}
    for ours, official, ratio in rows.values():
        assert float(ours) > 0 and float(official) > 0
        assert float(ratio) == pytest.approx(float(ours) / float(official), rel=0.02, abs=0.01)


def test_stage_only_never_replaces_what_it_did_not_write(model_folder, tmp_path, capsys):
    push_model = load_script("push_model")
    base = [str(model_folder), "--repo-id", "me/vitpain-tiny", "--stage-only"]
    before = {p.name: p.read_bytes() for p in model_folder.iterdir()}
    assert push_model.main([*base, str(model_folder), "--overwrite"]) == 1  # onto the model folder itself
    assert "overlaps" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in model_folder.iterdir()} == before

    staged = tmp_path / "upload"
    staged.mkdir()
    (staged / "mine.txt").write_text("the user's")
    assert push_model.main([*base, str(staged)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert push_model.main([*base, str(staged), "--overwrite"]) == 1
    assert "mine.txt" in capsys.readouterr().err
    assert [p.name for p in staged.iterdir()] == ["mine.txt"]

    (staged / "mine.txt").unlink()
    assert push_model.main([*base, str(staged)]) == 0
    assert push_model.main([*base, str(staged), "--overwrite"]) == 0  # replaces its own staged folder
    assert (staged / "model.safetensors").is_file() and not list(tmp_path.glob(".upload.staging-*"))
