"""Teacher-student distillation for ViTPain: a frozen heatmap teacher guides an RGB student.

The losses are plain functions (unit-tested on toy tensors); `ViTPainDistillationTrainer` is a `transformers.Trainer`
that holds the frozen teacher *outside* the trained model (so it is never in the optimiser, the DDP wrapper or the
saved student) and adds to the student's task loss

    feature_weight    * feature_distillation_loss(student pooled [CLS] feature, teacher pooled feature)
    token_weight      * token_distillation_loss(every student token, the teacher's token at the same place)
    prediction_weight * prediction_distillation_loss(student PSPI / pain logits / AUs, teacher's)
    attention_weight  * attention_distillation_loss(student AU attention maps, teacher's)   (optional, default 0)

Batches carry the student's inputs plus `teacher_pixel_values` (and `teacher_neutral_pixel_values` for a teacher with
a neutral reference): the teacher sees the heatmap of the very image the student sees. Imports only torch and
transformers (the model side travels alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer

TEACHER_PREFIX = "teacher_"


@dataclass
class DistillationWeights:
    """Weights of the loss terms; `temperature` softens the teacher's pain probabilities."""

    task_weight: float = field(default=1.0, metadata={"help": "weight of the student's own PSPI / AU / pain loss"})
    feature_weight: float = field(default=1.0, metadata={"help": "[CLS] feature distillation"})
    token_weight: float = field(default=8.0, metadata={"help": "token-by-token feature distillation"})
    prediction_weight: float = field(default=1.0, metadata={"help": "distillation of PSPI, AUs and pain logits"})
    attention_weight: float = field(default=0.0, metadata={"help": "distillation of the per-AU attention maps"})
    temperature: float = field(default=2.0, metadata={"help": "softens the teacher's pain probabilities"})


def _layer_normalised_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between the two after layer norm over the last (feature) dimension: scale-free, nothing to train."""
    width = student.shape[-1]
    return F.mse_loss(F.layer_norm(student, (width,)), F.layer_norm(teacher, (width,)))


def feature_distillation_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """
    Match (batch, dim) features. Same width: MSE between the layer-normalised features (scale-free, no projection to
    train). Different widths: similarity-preserving distillation (Tung & Mori 2019), MSE between the two batches'
    (batch, batch) cosine-similarity matrices, which needs no projection either.
    """
    if student_features.shape[-1] == teacher_features.shape[-1]:
        return _layer_normalised_mse(student_features, teacher_features)
    student = F.normalize(student_features.flatten(1), dim=-1)
    teacher = F.normalize(teacher_features.flatten(1), dim=-1)
    return F.mse_loss(student @ student.T, teacher @ teacher.T)


def token_distillation_loss(student_tokens: torch.Tensor, teacher_tokens: torch.Tensor) -> torch.Tensor:
    """
    Match (batch, tokens, dim) token sequences place by place, so every patch gets a target (the teacher's heatmap
    tokens know where the face moved). Same width: MSE between layer-normalised tokens. Different widths: MSE between
    each image's (tokens, tokens) cosine-similarity matrices. Both need the same token grid.
    """
    if student_tokens.shape[:2] != teacher_tokens.shape[:2]:
        raise ValueError(
            f"token distillation needs the same token grid: student {tuple(student_tokens.shape[:2])} vs teacher "
            f"{tuple(teacher_tokens.shape[:2])} (batch, tokens); use the same image and patch size, or token_weight=0."
        )
    if student_tokens.shape[-1] == teacher_tokens.shape[-1]:
        return _layer_normalised_mse(student_tokens, teacher_tokens)
    student = F.normalize(student_tokens, dim=-1)
    teacher = F.normalize(teacher_tokens, dim=-1)
    return F.mse_loss(student @ student.transpose(1, 2), teacher @ teacher.transpose(1, 2))


def prediction_distillation_loss(
    student_pspi: torch.Tensor,
    teacher_pspi: torch.Tensor,
    student_pain_logits: torch.Tensor,
    teacher_pain_logits: torch.Tensor,
    student_action_units: torch.Tensor | None = None,
    teacher_action_units: torch.Tensor | None = None,
    *,
    pspi_max: float = 16.0,
    au_max_intensity: torch.Tensor | list[float] | None = None,
    temperature: float = 2.0,
) -> torch.Tensor:
    """
    Distil the teacher's predictions: MSE of PSPI / `pspi_max`, binary cross-entropy of the student's pain logits
    against the teacher's probabilities at `temperature` (times temperature**2, as Hinton et al. keep gradients
    comparable), and MSE of AU intensity / its maximum when AUs are given.
    """
    loss = F.mse_loss(student_pspi / pspi_max, teacher_pspi / pspi_max)
    soft_targets = torch.sigmoid(teacher_pain_logits / temperature)
    loss = loss + temperature**2 * F.binary_cross_entropy_with_logits(student_pain_logits / temperature, soft_targets)
    if student_action_units is not None and teacher_action_units is not None:
        au_max = student_action_units.new_tensor(au_max_intensity if au_max_intensity is not None else 5.0)
        loss = loss + F.mse_loss(student_action_units / au_max, teacher_action_units / au_max)
    return loss


def attention_distillation_loss(
    student_attentions: torch.Tensor, teacher_attentions: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """KL(teacher || student) between per-AU attention distributions over patches, (batch, num_aus, num_patches),
    summed over patches and averaged over batch and AUs. Both must see the same patch grid."""
    if student_attentions.shape != teacher_attentions.shape:
        raise ValueError(
            f"attention distillation needs the same patch grid: student {tuple(student_attentions.shape)} vs "
            f"teacher {tuple(teacher_attentions.shape)} (use the same image and patch size, or attention_weight=0)."
        )
    teacher = teacher_attentions.clamp_min(eps)
    return (teacher * (teacher.log() - student_attentions.clamp_min(eps).log())).sum(-1).mean()


def distillation_losses(student_output, teacher_output, student_config, weights: DistillationWeights) -> dict:
    """The weighted distillation terms (keys `feature`, `token`, `prediction`, `attention`) for one batch; zero
    weights skip."""
    terms = {}
    if weights.feature_weight:
        terms["feature"] = weights.feature_weight * feature_distillation_loss(
            student_output.pooled_output, teacher_output.pooled_output
        )
    if weights.token_weight:
        terms["token"] = weights.token_weight * token_distillation_loss(
            student_output.last_hidden_state, teacher_output.last_hidden_state
        )
    if weights.prediction_weight:
        terms["prediction"] = weights.prediction_weight * prediction_distillation_loss(
            student_output.pspi,
            teacher_output.pspi,
            student_output.pain_logits,
            teacher_output.pain_logits,
            student_output.action_units,
            teacher_output.action_units,
            pspi_max=student_config.pspi_max,
            au_max_intensity=list(student_config.au_max_intensity),
            temperature=weights.temperature,
        )
    if weights.attention_weight:
        terms["attention"] = weights.attention_weight * attention_distillation_loss(
            student_output.au_attentions, teacher_output.au_attentions
        )
    return terms


def init_student_from_teacher(student: nn.Module, teacher: nn.Module) -> list[str]:
    """
    Copy the teacher's weights into the student wherever a parameter has the same name and shape (the transformer
    layers, position embeddings, pooler and heads of a same-width teacher); the patch projection that reads the
    student's RGB (+ difference) channels stays freshly initialised. Returns the names left uncopied. Raises if no
    transformer weight fits (a teacher of another width or depth), since the student would then start from scratch.
    """
    own = student.state_dict()
    shared = {k: v for k, v in teacher.state_dict().items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith("backbone.") and ".embeddings." not in k for k in shared):
        raise ValueError(
            "init_student_from_teacher: no transformer weight of the teacher fits the student; give the student the "
            "teacher's hidden size, depth and heads, or drop --init_student_from_teacher."
        )
    student.load_state_dict(shared, strict=False)
    return sorted(k for k in own if k not in shared)


class ViTPainDistillationTrainer(Trainer):
    """
    `Trainer` for an RGB ViTPain student guided by a frozen ViTPain teacher (usually a heatmap model).

    Args:
        teacher (`ViTPainModel`): the teacher; frozen (eval mode, no gradients) and kept out of the trained model.
        distillation (`DistillationWeights`, *optional*): loss weights and temperature.
        Other arguments go to `Trainer` (`args` needs `remove_unused_columns=False`: `teacher_*` inputs must reach
        `compute_loss`).
    """

    def __init__(self, *args, teacher: nn.Module, distillation: DistillationWeights | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.remove_unused_columns:
            raise ValueError("Distillation needs TrainingArguments(remove_unused_columns=False) to keep teacher inputs.")
        self.distillation = distillation or DistillationWeights()
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)
        self._term_sums: dict[str, float] = {}
        self._term_count = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher_inputs = {
            key[len(TEACHER_PREFIX) :]: inputs.pop(key) for key in list(inputs) if key.startswith(TEACHER_PREFIX)
        }
        outputs = model(**inputs)
        loss = self.distillation.task_weight * outputs.loss
        if model.training:  # evaluation reports the task loss only: the checkpoint is picked on task metrics
            if "pixel_values" not in teacher_inputs:
                raise ValueError("The batch has no `teacher_pixel_values`: the collator must give the teacher's input.")
            self.teacher.eval()
            weights = self.distillation
            with torch.no_grad():  # feature and token terms need only the teacher's features, not its heads
                teacher_output = (
                    self.teacher(**teacher_inputs)
                    if weights.prediction_weight or weights.attention_weight
                    else self.teacher.forward_features(**teacher_inputs)
                )
            terms = distillation_losses(outputs, teacher_output, self._student_config(model), self.distillation)
            for name, value in terms.items():
                loss = loss + value
                self._term_sums[name] = self._term_sums.get(name, 0.0) + float(value.detach())
            self._term_sums["task"] = self._term_sums.get("task", 0.0) + float(outputs.loss.detach())
            self._term_count += 1
        return (loss, outputs) if return_outputs else loss

    @staticmethod
    def _student_config(model):
        return getattr(model, "module", model).config  # DDP wraps the student

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._term_count and "loss" in logs:  # training logs get the mean of each term since the last log
            for name, total in self._term_sums.items():
                logs[f"loss_{name}"] = round(total / self._term_count, 6)
            self._term_sums, self._term_count = {}, 0
        super().log(logs, *args, **kwargs)


__all__ = [
    "DistillationWeights",
    "ViTPainDistillationTrainer",
    "attention_distillation_loss",
    "distillation_losses",
    "feature_distillation_loss",
    "init_student_from_teacher",
    "prediction_distillation_loss",
    "token_distillation_loss",
]
