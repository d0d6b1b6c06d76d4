"""Distillation losses on toy tensors (pinned numbers) and the distillation Trainer on tiny ViTPain models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modeling_vitpain import ViTPainConfig, ViTPainModel
from modeling_vitpain.distillation import (
    DistillationWeights,
    ViTPainDistillationTrainer,
    attention_distillation_loss,
    feature_distillation_loss,
    init_student_from_teacher,
    prediction_distillation_loss,
    token_distillation_loss,
)


def tiny_model(modality: str, seed: int = 0, hidden: int = 32) -> ViTPainModel:
    torch.manual_seed(seed)
    config = ViTPainConfig(
        backbone_config={"model_type": "vit", "hidden_size": hidden, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 2 * hidden, "image_size": 16, "patch_size": 8},
        input_modality=modality, head_hidden_size=16, au_head_hidden_size=16, head_dropout=0.0,
    )
    return ViTPainModel(config)


# ---- losses ------------------------------------------------------------------------------------------------------


def test_token_loss_matches_every_place_and_needs_the_same_grid():
    tokens = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]]])  # (batch 1, 2 tokens, width 4)
    assert token_distillation_loss(3 * tokens - 1, tokens).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    swapped = tokens.flip(1)  # the same tokens in the other places: a loss, unlike pooled features
    normed = F.layer_norm(tokens, (4,))
    expected = ((normed - normed.flip(1)) ** 2).mean().item()
    assert token_distillation_loss(swapped, tokens).item() == pytest.approx(expected, rel=1e-5) and expected > 0.5
    wide = torch.cat([tokens, tokens], dim=-1)  # another width: token-token similarities, which agree here
    assert token_distillation_loss(wide, tokens).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="token_weight=0"):
        token_distillation_loss(tokens[:, :1], tokens)


def test_feature_loss_is_zero_for_equal_features_and_pins_a_value():
    features = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]])
    assert feature_distillation_loss(features, features).item() == pytest.approx(0.0, abs=1e-7)
    # Layer-normalised: an affine copy (2x + 1) of each row matches exactly; a permuted row does not.
    assert feature_distillation_loss(2 * features + 1, features).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.tensor([[1.0, -1.0]])
    teacher = torch.tensor([[-1.0, 1.0]])
    # layer_norm([1, -1]) = [1, -1] (up to eps) -> MSE between [1, -1] and [-1, 1] = 4
    assert feature_distillation_loss(student, teacher).item() == pytest.approx(4.0, rel=1e-4)


def test_feature_loss_across_widths_compares_similarity_matrices():
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # orthogonal rows: similarity = identity
    same_geometry = torch.tensor([[3.0, 0.0], [0.0, 5.0]])
    assert feature_distillation_loss(same_geometry, teacher).item() == pytest.approx(0.0, abs=1e-7)
    parallel = torch.tensor([[1.0, 0.0], [2.0, 0.0]])  # cosine 1 off the diagonal instead of 0: 2 of 4 entries
    assert feature_distillation_loss(parallel, teacher).item() == pytest.approx(0.5, rel=1e-6)


def test_prediction_loss_pins_a_hand_computed_value():
    student_pspi, teacher_pspi = torch.tensor([8.0]), torch.tensor([0.0])
    logits = torch.tensor([[0.0]])
    loss = prediction_distillation_loss(student_pspi, teacher_pspi, logits, logits, temperature=1.0)
    # MSE((8 - 0) / 16) = 0.25; BCE(logit 0 vs p 0.5) = ln 2
    assert loss.item() == pytest.approx(0.25 + math.log(2), rel=1e-6)
    aus = torch.tensor([[5.0, 1.0]])
    loss_aus = prediction_distillation_loss(
        teacher_pspi, teacher_pspi, logits, logits, aus, torch.zeros_like(aus), au_max_intensity=[5.0, 1.0],
        temperature=2.0,
    )
    # PSPI term 0; BCE at T=2 is still ln 2 (times T^2 = 4); AU term MSE([1, 1], [0, 0]) = 1
    assert loss_aus.item() == pytest.approx(4 * math.log(2) + 1.0, rel=1e-6)


def test_prediction_loss_is_minimal_at_the_teacher():
    teacher_logits = torch.tensor([[2.0, -1.0, 0.5]])
    pspi = torch.tensor([3.0])
    at_teacher = prediction_distillation_loss(pspi, pspi, teacher_logits, teacher_logits)
    elsewhere = prediction_distillation_loss(pspi + 1, pspi, teacher_logits + 0.5, teacher_logits)
    assert elsewhere > at_teacher


def test_attention_loss_is_kl_divergence():
    uniform = torch.full((1, 1, 4), 0.25)
    assert attention_distillation_loss(uniform, uniform).item() == pytest.approx(0.0, abs=1e-7)
    teacher = torch.tensor([[[0.5, 0.5, 0.0, 0.0]]])
    # KL(teacher || uniform) = 2 * 0.5 * ln(0.5 / 0.25) = ln 2 (zero-probability entries contribute 0)
    assert attention_distillation_loss(uniform, teacher).item() == pytest.approx(math.log(2), rel=1e-5)
    with pytest.raises(ValueError, match="same patch grid"):
        attention_distillation_loss(torch.full((1, 1, 9), 1 / 9), uniform)


# ---- trainer -----------------------------------------------------------------------------------------------------


class ToyBatches(torch.utils.data.Dataset):
    """Rows already in model form: RGB pixels for the student, a heatmap for the teacher, labels."""

    def __init__(self, n: int = 8):
        generator = torch.Generator().manual_seed(0)
        self.rows = [
            {
                "pixel_values": torch.randn(3, 16, 16, generator=generator),
                "teacher_pixel_values": torch.rand(1, 16, 16, generator=generator),
                "pspi_labels": torch.rand((), generator=generator) * 16,
                "action_unit_labels": torch.rand(6, generator=generator) * torch.tensor([5, 5, 5, 5, 5, 1.0]),
            }
            for _ in range(n)
        ]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def make_trainer(tmp_path, weights: DistillationWeights, **kwargs):
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2,
        use_cpu=True, remove_unused_columns=False, report_to=[], save_strategy="no", disable_tqdm=True,
        logging_steps=1, label_names=["pspi_labels", "action_unit_labels"], **kwargs,
    )
    student, teacher = tiny_model("rgb", seed=1), tiny_model("heatmap", seed=2)
    trainer = ViTPainDistillationTrainer(
        model=student, args=args, train_dataset=ToyBatches(), teacher=teacher, distillation=weights
    )
    return trainer, student, teacher


def test_trainer_trains_the_student_only(tmp_path):
    trainer, student, teacher = make_trainer(tmp_path, DistillationWeights(attention_weight=1.0))
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    trainer.train()
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_before.items())
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    changed = [k for k, v in student_before.items() if not torch.equal(v, student.state_dict()[k])]
    assert any(k.startswith("backbone.") for k in changed) and any(k.startswith("pspi_head") for k in changed)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in teacher.parameters()}
    assert not any(k.startswith("teacher") for k in student.state_dict())  # the teacher is not saved with it
    logged = [entry for entry in trainer.state.log_history if "loss_feature" in entry]
    assert logged and {"loss_task", "loss_token", "loss_prediction", "loss_attention"} <= set(logged[0])


def test_compute_loss_adds_distillation_terms(tmp_path):
    trainer, student, _ = make_trainer(tmp_path, DistillationWeights())
    batch = torch.utils.data.default_collate([ToyBatches()[i] for i in range(4)])
    student.train()
    task_only = student(
        pixel_values=batch["pixel_values"], pspi_labels=batch["pspi_labels"],
        action_unit_labels=batch["action_unit_labels"],
    ).loss
    student.eval()  # evaluation mode: task loss only (no dropout in the tiny model, so the numbers agree)
    assert trainer.compute_loss(student, dict(batch)).item() == pytest.approx(task_only.item(), rel=1e-5)
    student.train()
    assert trainer.compute_loss(student, dict(batch)).item() > task_only.item()
    trainer.distillation = DistillationWeights(feature_weight=0, token_weight=0, prediction_weight=0, attention_weight=0)
    assert trainer.compute_loss(student, dict(batch)).item() == pytest.approx(task_only.item(), rel=1e-5)


def test_trainer_needs_teacher_inputs_and_raw_columns(tmp_path):
    from transformers import TrainingArguments

    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        ViTPainDistillationTrainer(
            model=tiny_model("rgb"), teacher=tiny_model("heatmap"),
            args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[]),
        )
    trainer, student, _ = make_trainer(tmp_path, DistillationWeights())
    batch = torch.utils.data.default_collate([ToyBatches()[i] for i in range(2)])
    del batch["teacher_pixel_values"]
    student.train()
    with pytest.raises(ValueError, match="teacher_pixel_values"):
        trainer.compute_loss(student, batch)


def test_loss_gradient_reaches_the_student_not_the_teacher():
    student, teacher = tiny_model("rgb", 1), tiny_model("heatmap", 2).requires_grad_(False)
    x, h = torch.randn(2, 3, 16, 16), torch.rand(2, 1, 16, 16)
    s_out, t_out = student(pixel_values=x), teacher(pixel_values=h)
    loss = feature_distillation_loss(s_out.pooled_output, t_out.pooled_output) + F.mse_loss(s_out.pspi, t_out.pspi)
    loss.backward()
    assert student.backbone.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_student_starts_from_the_teacher_except_the_rgb_patch_projection():
    student, teacher = tiny_model("rgb", 1), tiny_model("heatmap", 2)
    projection = student.backbone.embeddings.patch_embeddings.projection.weight.clone()
    fresh = init_student_from_teacher(student, teacher)
    assert fresh == ["backbone.embeddings.patch_embeddings.projection.weight"]  # 3 RGB channels vs 1 heatmap channel
    assert torch.equal(student.backbone.embeddings.patch_embeddings.projection.weight, projection)
    teacher_weights = teacher.state_dict()
    for name, value in student.state_dict().items():
        if name not in fresh:
            assert torch.equal(value, teacher_weights[name]), name
    # A shared layer maps the same tokens to the same output: only the patch projection tells the models apart.
    tokens = torch.randn(2, 5, 32)
    assert torch.allclose(student.backbone.layers[0](tokens)[0], teacher.backbone.layers[0](tokens)[0])
    with pytest.raises(ValueError, match="hidden size"):
        init_student_from_teacher(tiny_model("rgb", 1, hidden=16), teacher)


def test_distillation_weights_come_from_cli_or_json(tmp_path):
    import json
    import sys
    from pathlib import Path

    from transformers import HfArgumentParser

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from training_args import parse_args

    parser = HfArgumentParser(DistillationWeights)
    (weights,) = parse_args(parser, ["--feature_weight", "0.5", "--attention_weight", "2"])
    assert (weights.feature_weight, weights.attention_weight, weights.prediction_weight) == (0.5, 2.0, 1.0)
    config = tmp_path / "distill.json"
    config.write_text(json.dumps({"prediction_weight": 3.0, "temperature": 4.0}))
    (weights,) = parse_args(parser, [str(config)])
    assert (weights.prediction_weight, weights.temperature, weights.task_weight) == (3.0, 4.0, 1.0)
