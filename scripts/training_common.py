"""Helpers shared by the training / distillation / evaluation entry points: where the data side meets the model side.

- `load_pain_dataset(source)`: a generated folder, a folder in the official 3D-Pain layout or a Hub id -> DatasetDict.
- `PainCollator`: rows (undecoded images) -> `PainTransform` tensors -> the keyword arguments `ViTPainModel` takes
  (`pixel_values` is the RGB image or the heatmap in units of `heatmap_scale_mm`), plus `teacher_*` inputs for a
  distillation teacher of the other modality.
- `build_model(...)`: a CPU-sized ViTPain from a few numbers, or a pretrained ViTPain folder to fine-tune.
- `training_arguments(...)`, `compute_pain_metrics`, `keep_predictions`: Trainer wiring that picks the checkpoint on
  the validation split by PSPI MAE.
- `predict`, `evaluate_split`, `fairness_table`, `write_outputs`: the evaluation JSON (model card shape, plus a
  fairness table by age group, gender and ethnicity) and the filled model card.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
METRICS_PATH = REPO / "metrics" / "pain_metrics" / "pain_metrics.py"
FAIRNESS_ATTRIBUTES = ("age_group", "gender", "ethnicity")
logger = logging.getLogger("pain3d.training")


# ---- data ------------------------------------------------------------------------------------------------------------


def load_pain_dataset(source: str, split_csv: str | None = None):
    """A `DatasetDict` (train / validation / test) in the column contract from a generated folder, a folder in the
    official 3D-Pain layout (images + per-expression JSON) or a Hub dataset id."""
    import datasets

    path = Path(source)
    if path.is_dir() and not (path / "data").is_dir() and not any(path.glob("*.parquet")):
        from dataset_builder import load_official_layout

        return load_official_layout(path, split_csv=split_csv)
    if path.is_dir():
        return datasets.load_dataset(str(path))
    return datasets.load_dataset(source)  # a Hub id (needs the network or a warm cache)


def select_rows(dataset, max_rows: int | None, seed: int = 0):
    """A deterministic random subset of at most `max_rows` rows (all of them when `max_rows` is None or larger)."""
    if max_rows is None or max_rows >= len(dataset):
        return dataset
    rows = np.random.default_rng(seed).choice(len(dataset), size=max_rows, replace=False)
    return dataset.select(sorted(rows.tolist()))


def prepared(dataset):
    """The columns training and the fairness table need, images left undecoded (the collator decodes)."""
    from dataset_builder.transforms import TRAINING_COLUMNS, prepare_dataset

    columns = tuple(TRAINING_COLUMNS) + tuple(c for c in FAIRNESS_ATTRIBUTES if c in dataset.column_names)
    return prepare_dataset(dataset, columns=columns)


class PainCollator:
    """List of rows -> model inputs. `modality` ("rgb" | "heatmap") picks what `pixel_values` holds;
    `teacher_modality` adds `teacher_pixel_values` (and `teacher_neutral_pixel_values`) for a distillation teacher."""

    def __init__(
        self,
        image_size: int,
        modality: str = "rgb",
        *,
        train: bool = False,
        use_neutral_reference: bool = False,
        teacher_modality: str | None = None,
        teacher_neutral_reference: bool = False,
        heatmap_scale_mm: float | None = None,
        view_names: Sequence[str] | None = None,
        seed: int = 0,
    ):
        from dataset_builder.transforms import PainTransform
        from modeling_vitpain.image_processing_vitpain import DEFAULT_HEATMAP_SCALE_MM

        self.transform = PainTransform(image_size, train=train, seed=seed, view_names=view_names)
        self.modality = modality
        self.use_neutral_reference = use_neutral_reference
        self.teacher_modality = teacher_modality
        self.teacher_neutral_reference = teacher_neutral_reference
        self.heatmap_scale_mm = float(heatmap_scale_mm or DEFAULT_HEATMAP_SCALE_MM)

    def _pixels(self, out: dict, modality: str) -> torch.Tensor:
        if modality == "rgb":
            return out["pixel_values"]
        if "heatmap" not in out:
            raise ValueError("A heatmap model needs the `heatmap` column, but no row of this batch has one.")
        return out["heatmap"] / self.heatmap_scale_mm

    def _neutral(self, out: dict, modality: str) -> torch.Tensor:
        # A heatmap is already a difference from the neutral face: its neutral reference is the zero map.
        return out["neutral_pixel_values"] if modality == "rgb" else torch.zeros_like(out["heatmap"])

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {key: [row.get(key) for row in rows] for key in rows[0]}
        out = self.transform(batch)
        inputs = {
            "pixel_values": self._pixels(out, self.modality),
            "pspi_labels": out["pspi_labels"],
            "action_unit_labels": out["action_unit_labels"],
        }
        if self.use_neutral_reference:
            inputs["neutral_pixel_values"] = self._neutral(out, self.modality)
        if self.teacher_modality is not None:
            inputs["teacher_pixel_values"] = self._pixels(out, self.teacher_modality)
            if self.teacher_neutral_reference:
                inputs["teacher_neutral_pixel_values"] = self._neutral(out, self.teacher_modality)
        return inputs


def view_names_of(dataset) -> list[str] | None:
    from datasets import ClassLabel

    view = dataset.features.get("view")
    return view.names if isinstance(view, ClassLabel) else None


# ---- model -----------------------------------------------------------------------------------------------------------


@dataclass
class ModelArgs:
    """A CPU-sized ViTPain (or `init_from`: a ViTPain folder to fine-tune, whose config wins)."""

    modality: str = "rgb"  # "rgb" or "heatmap" (the teacher)
    image_size: int = 112
    patch_size: int = 16
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    use_neutral_reference: bool = False
    neutral_fusion: str = "difference"  # "difference" (early, the pain image stacked with pain - neutral) or "cross_attention"
    head_hidden_size: int = 128
    head_dropout: float = 0.1
    init_from: str | None = None


def init_source(args: ModelArgs) -> str | None:
    """The model card's words for where `--init_from` weights came from (None: random initialisation)."""
    return f"`{args.init_from}`" if args.init_from else None


def build_model(args: ModelArgs, seed: int = 0):
    """The model `args` describe; `seed` fixes its random initial weights (each training seed starts elsewhere)."""
    from transformers import set_seed

    from modeling_vitpain import ViTPainConfig, ViTPainModel

    set_seed(seed)

    if args.init_from:
        return ViTPainModel.from_pretrained(args.init_from)
    config = ViTPainConfig(
        backbone_config={
            "model_type": "vit",
            "hidden_size": args.hidden_size,
            "num_hidden_layers": args.num_layers,
            "num_attention_heads": args.num_heads,
            "intermediate_size": 4 * args.hidden_size,
            "image_size": args.image_size,
            "patch_size": args.patch_size,
            "layer_norm_eps": 1e-6,
        },
        input_modality=args.modality,
        use_neutral_reference=args.use_neutral_reference,
        neutral_fusion=args.neutral_fusion,
        head_hidden_size=args.head_hidden_size,
        au_head_hidden_size=args.head_hidden_size,
        head_dropout=args.head_dropout,
    )
    return ViTPainModel(config)


# ---- Trainer wiring --------------------------------------------------------------------------------------------------


@dataclass
class LoopArgs:
    """Optimisation and checkpoint selection (mapped onto `TrainingArguments`)."""

    output_dir: str = "runs/vitpain"
    max_steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    eval_steps: int = 200
    logging_steps: int = 20
    seed: int = 0
    num_workers: int = 0
    report_to: str = "tensorboard"  # "none" to disable
    overwrite: bool = False  # replace what an earlier run wrote in output_dir (only the files it recorded)


def training_arguments(loop: LoopArgs, run_name: str | None = None):
    """`TrainingArguments` for CPU (and `accelerate launch --multi_gpu` on CPU): evaluate every `eval_steps` on the
    validation split and keep the checkpoint with the lowest validation PSPI MAE."""
    from transformers import TrainingArguments

    # transformers 5 reads the TensorBoard folder from the environment only.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(loop.output_dir) / "tensorboard")
    return TrainingArguments(
        output_dir=str(Path(loop.output_dir) / "checkpoints"),
        run_name=run_name,
        max_steps=loop.max_steps,
        per_device_train_batch_size=loop.batch_size,
        per_device_eval_batch_size=max(loop.batch_size, 64),
        learning_rate=loop.learning_rate,
        weight_decay=loop.weight_decay,
        warmup_steps=int(loop.warmup_ratio * loop.max_steps),
        lr_scheduler_type="cosine",
        eval_strategy="steps",
        eval_steps=loop.eval_steps,
        save_strategy="steps",
        save_steps=loop.eval_steps,
        save_total_limit=2,
        # The best checkpoint is reloaded with `from_pretrained` after training: the Trainer's own reload reads the
        # state dict without transformers 5's key renaming and would leave the ViT backbone at random weights.
        load_best_model_at_end=False,
        metric_for_best_model="pspi_mae",
        greater_is_better=False,
        logging_steps=loop.logging_steps,
        report_to=[] if loop.report_to in ("none", "") else [loop.report_to],
        seed=loop.seed,
        data_seed=loop.seed,
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,
        remove_unused_columns=False,  # the collator reads raw columns (images, labels, identities)
        label_names=["pspi_labels", "action_unit_labels"],
        dataloader_num_workers=loop.num_workers,
        disable_tqdm=True,
    )


def keep_predictions(logits, labels):
    """Keep (pspi, action_units, pain_logits) of the model output: the Trainer would otherwise gather every token."""
    return tuple(logits[:3]) if isinstance(logits, (tuple, list)) else logits


def compute_pain_metrics(eval_prediction) -> dict[str, float]:
    """Trainer `compute_metrics`: the project's pain metrics (PSPI, detection, per AU) on the validation split."""
    pspi, action_units = eval_prediction.predictions[0], eval_prediction.predictions[1]
    pspi_labels, au_labels = eval_prediction.label_ids
    metrics = pain_metrics_module().pain_metrics(
        pspi, pspi_labels, au_predictions=action_units, au_references=au_labels, au_names=_au_names()
    )
    return {key: value for key, value in metrics.items() if not key.startswith("f1_cutoff")}


def _au_names() -> list[str]:
    from modeling_vitpain import DEFAULT_AU_NAMES

    return list(DEFAULT_AU_NAMES)


_METRICS = None


def pain_metrics_module():
    """`metrics/pain_metrics/pain_metrics.py` imported as a module (the same code `evaluate.load` runs)."""
    global _METRICS
    if _METRICS is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("pain3d_pain_metrics", METRICS_PATH)
        _METRICS = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_METRICS)
    return _METRICS


def rank_info() -> tuple[int, int]:
    """(rank, world size) of this process under `accelerate launch` / torchrun (0, 1 otherwise)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# ---- evaluation ------------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(model, dataset, collator: PainCollator, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Model predictions over `dataset` (one process, in order): pspi, action_units, pain_probability, labels."""
    model.eval()
    keys = ("pspi", "action_units", "pain_probability", "pspi_labels", "action_unit_labels")
    collected: dict[str, list] = {key: [] for key in keys}
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start : start + batch_size]
        batch = collator([{key: rows[key][i] for key in rows} for i in range(len(rows[next(iter(rows))]))])
        inputs = {k: v for k, v in batch.items() if k in ("pixel_values", "neutral_pixel_values")}
        output = model(**inputs)
        collected["pspi"].append(output.pspi.float().numpy())
        collected["action_units"].append(output.action_units.float().numpy())
        collected["pain_probability"].append(torch.sigmoid(output.pain_logits).float().numpy())
        collected["pspi_labels"].append(batch["pspi_labels"].numpy())
        collected["action_unit_labels"].append(batch["action_unit_labels"].numpy())
    return {key: np.concatenate(values) for key, values in collected.items()}


def fairness_table(
    predictions: np.ndarray, references: np.ndarray, groups: Mapping[str, Sequence[str]], thresholds=(1, 2, 3)
) -> dict[str, dict[str, dict[str, float]]]:
    """{attribute: {group: {"n", "pspi_mae", "auroc_ge1", ...}}}: PSPI MAE and AUROC (predicted PSPI as the score)
    per demographic group; AUROC is NaN where a group has only one class at that threshold."""
    from sklearn.metrics import roc_auc_score

    predictions, references = np.asarray(predictions, np.float64), np.asarray(references, np.float64)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for attribute, values in groups.items():
        values = np.asarray(values, dtype=object)
        table[attribute] = {}
        for group in sorted({str(v) for v in values if v is not None}):
            mask = values == group
            row = {"n": int(mask.sum()), "pspi_mae": float(np.abs(predictions[mask] - references[mask]).mean())}
            for t in thresholds:
                positives = references[mask] >= t
                row[f"auroc_ge{t:g}"] = (
                    float(roc_auc_score(positives, predictions[mask])) if 0 < positives.sum() < mask.sum() else math.nan
                )
            table[attribute][group] = row
    return table


def demographic_groups(dataset) -> dict[str, list[str]]:
    """Group names per row for each demographic ClassLabel column the dataset has (names, not integer ids)."""
    from datasets import ClassLabel

    groups = {}
    for attribute in FAIRNESS_ATTRIBUTES:
        if attribute not in dataset.column_names:
            continue
        feature, values = dataset.features[attribute], dataset[attribute]
        if isinstance(feature, ClassLabel):
            values = [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
        if any(v is not None for v in values):
            groups[attribute] = [None if v is None else str(v) for v in values]
    return groups


def evaluate_split(
    model,
    dataset,
    collator: PainCollator,
    *,
    calibration=None,
    dataset_name: str = "3DPain",
    split: str = "test",
    protocol: str = "identity-disjoint; checkpoint picked on the validation split",
    batch_size: int = 64,
) -> dict[str, Any]:
    """The evaluation JSON (shape of `modeling_vitpain.model_card`) plus `fairness`: metrics on `dataset`, F1
    cut-offs calibrated on the predictions over `calibration` (a subset of the training split) when given."""
    from modeling_vitpain import DEFAULT_AU_NAMES

    result = predict(model, dataset, collator, batch_size)
    kwargs = {}
    if calibration is not None and len(calibration):
        train = predict(model, calibration, collator, batch_size)
        kwargs = {"train_predictions": train["pspi"], "train_references": train["pspi_labels"]}
    au_names = list(getattr(model.config, "au_names", DEFAULT_AU_NAMES))
    metrics = pain_metrics_module().pain_metrics(
        result["pspi"],
        result["pspi_labels"],
        thresholds=tuple(model.config.pain_thresholds),
        au_predictions=result["action_units"],
        au_references=result["action_unit_labels"],
        au_names=au_names,
        **kwargs,
    )
    metrics = {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in metrics.items()}
    evaluation = {
        "dataset": dataset_name,
        "split": split,
        "num_samples": int(len(dataset)),
        "protocol": protocol,
        "input_modality": model.config.input_modality,
        "metrics": metrics,
        "f1_calibration": "train-split predictions" if kwargs else "uncalibrated (PSPI >= t)",
    }
    groups = demographic_groups(dataset) if hasattr(dataset, "column_names") else {}
    if groups:
        evaluation["fairness"] = _nan_to_none(
            fairness_table(result["pspi"], result["pspi_labels"], groups, tuple(model.config.pain_thresholds))
        )
    return evaluation


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def fairness_markdown(fairness: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """The fairness table as Markdown (one row per attribute and group)."""
    keys = [k for k in next(iter(next(iter(fairness.values())).values())) if k != "n"]
    lines = ["| Attribute | Group | n | " + " | ".join(keys) + " |", "| --- | --- | --- |" + " --- |" * len(keys)]
    for attribute, table in fairness.items():
        for group, row in table.items():
            cells = ["undefined" if row[k] is None else f"{row[k]:.3f}" for k in keys]
            lines.append(f"| {attribute} | {group} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(model, image_processor, evaluation: dict, output_dir: str | Path, repo_id: str | None = None,
                  run_config: dict | None = None) -> Path:
    """Save the model folder (safetensors + remote code + image processor), `evaluation.json` and a filled model card
    (`README.md`, with the fairness table appended)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    if image_processor is not None:
        image_processor.save_pretrained(output_dir)
    (output_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    if run_config is not None:
        (output_dir / "training_config.json").write_text(json.dumps(run_config, indent=2, default=str) + "\n")
    write_card(model, evaluation, output_dir / "README.md", repo_id or f"pain3d/{output_dir.name}")
    return output_dir


def write_card(model, evaluation: dict, path: str | Path, repo_id: str | None = None) -> Path:
    """The model card filled from `evaluation`, with the fairness table appended when there is one."""
    from modeling_vitpain.model_card import fill_model_card

    path = Path(path)
    card = fill_model_card(
        evaluation, model.config, repo_id or f"pain3d/{path.parent.name}", num_parameters=model.num_parameters()
    )
    if evaluation.get("fairness"):
        section = (
            "## Fairness\n\nPSPI MAE and AUROC (predicted PSPI as the score) by demographic group, "
            f"`{evaluation['split']}` split:\n\n" + fairness_markdown(evaluation["fairness"]) + "\n\n"
        )
        anchor = "## Intended use"  # right after the evaluation section when the template has one
        card = card.replace(anchor, section + anchor, 1) if anchor in card else card + "\n" + section
    path.write_text(card)
    return path


def image_processor_for(model, heatmap_scale_mm: float | None = None):
    from modeling_vitpain import ViTPainImageProcessor

    kwargs = {"heatmap_scale_mm": heatmap_scale_mm} if heatmap_scale_mm else {}
    return ViTPainImageProcessor.from_model_config(model.config, **kwargs)


def as_dict(*dataclasses) -> dict:
    out = {}
    for item in dataclasses:
        out.update(asdict(item))
    return out


# ---- one training run ------------------------------------------------------------------------------------------------


@dataclass
class DataArgs:
    """Which data: a generated folder, an official-layout folder or a Hub id, and optional subsets (for quick runs)."""

    dataset: str = "data/pain3d"
    split_csv: str | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_test_samples: int | None = None
    calibration_samples: int = 1000  # training rows whose predictions calibrate the F1 cut-offs
    augment: bool = True  # the field's training augmentation (flip, rotation, shift/scale, colour jitter, blur)
    heatmap_scale_mm: float | None = None  # millimetres that map to 1.0 in a heatmap input (default 10)
    repo_id: str | None = None  # name used in the model card


def with_eval_collator(trainer_class):
    """A `trainer_class` whose evaluation batches come from `eval_data_collator` (no augmentation)."""

    class PainTrainer(trainer_class):
        def __init__(self, *args, eval_data_collator=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.eval_data_collator = eval_data_collator or self.data_collator

        def get_eval_dataloader(self, eval_dataset=None):
            train_collator, self.data_collator = self.data_collator, self.eval_data_collator
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = train_collator

    PainTrainer.__name__ = f"Pain{trainer_class.__name__}"
    return PainTrainer


def run_training(
    model,
    splits: Mapping[str, Any],
    data: DataArgs,
    loop: LoopArgs,
    *,
    trainer_class=None,
    trainer_kwargs: dict | None = None,
    collator_kwargs: dict | None = None,
    run_config: dict | None = None,
    dataset_name: str | None = None,
    protocol: str = "identity-disjoint train/validation/test; checkpoint picked on validation PSPI MAE",
    recipe: str | None = None,
    initialised_from: str | None = None,
) -> dict | None:
    """Train `model` on `splits["train"]`, pick the checkpoint on `splits["validation"]` (lowest PSPI MAE), then (main
    process only) evaluate on `splits["test"]` and write the model folder, evaluation JSON and model card into
    `loop.output_dir`. `recipe` and `initialised_from` describe the training in `evaluation.json` and the card.
    Returns the evaluation dict on the main process, None on the others."""
    from transformers import Trainer, set_seed

    set_seed(loop.seed)
    rank, world = rank_info()
    config = model.config
    view_names = view_names_of(splits["train"]) if hasattr(splits["train"], "features") else None
    common = dict(
        image_size=config.image_size,
        modality=config.input_modality,
        use_neutral_reference=config.use_neutral_reference,
        heatmap_scale_mm=data.heatmap_scale_mm,
        view_names=view_names,
        **(collator_kwargs or {}),
    )
    train_collator = PainCollator(train=data.augment, seed=loop.seed + rank, **common)
    eval_common = {k: v for k, v in common.items() if not k.startswith("teacher_")}
    eval_collator = PainCollator(train=False, **eval_common)
    trainer_class = with_eval_collator(trainer_class or Trainer)
    trainer = trainer_class(
        model=model,
        args=training_arguments(loop),
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        data_collator=train_collator,
        eval_data_collator=eval_collator,
        compute_metrics=compute_pain_metrics,
        preprocess_logits_for_metrics=keep_predictions,
        **(trainer_kwargs or {}),
    )
    logger.info("rank %d/%d: %d training rows, %d steps", rank, world, len(splits["train"]), loop.max_steps)
    trainer.train()
    state = trainer.state
    # Replicas must agree after DDP training: each rank prints a checksum of its weights.
    checksum = sum(float(p.detach().double().sum()) for p in trainer.model.parameters())
    print(f"[rank {rank}/{world}] trained {state.global_step} steps, weight checksum {checksum:.6f}", flush=True)
    if not trainer.is_world_process_zero():
        return None
    model = load_best(trainer)
    evaluation = evaluate_split(
        model,
        splits["test"],
        eval_collator,
        calibration=splits.get("calibration"),
        dataset_name=dataset_name or data.dataset,
        split="test",
        protocol=protocol,
    )
    evaluation["validation"] = {
        "best_pspi_mae": state.best_metric,
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "num_samples": len(splits["validation"]),
    }
    evaluation["training"] = {"steps": state.global_step, "world_size": world, "seed": loop.seed,
                              "recipe": recipe, "initialised_from": initialised_from}
    write_outputs(
        model,
        image_processor_for(model, data.heatmap_scale_mm),
        evaluation,
        loop.output_dir,
        repo_id=data.repo_id,
        run_config=run_config,
    )
    metrics = evaluation["metrics"]
    logger.info("test PSPI MAE %.4f, Pearson %s", metrics["pspi_mae"], metrics["pspi_pearson"])
    print(f"[rank {rank}/{world}] wrote {loop.output_dir}: test pspi_mae={metrics['pspi_mae']:.4f}", flush=True)
    return evaluation


def load_best(trainer):
    """The checkpoint with the best validation metric, loaded with `from_pretrained` (the trained model if none)."""
    best = trainer.state.best_model_checkpoint
    model = trainer.model
    if best is None:
        logger.warning("No evaluation ran: keeping the last weights (set eval_steps <= max_steps).")
        return model
    best_model = type(model).from_pretrained(best)
    logger.info("best checkpoint %s (validation PSPI MAE %.4f)", best, trainer.state.best_metric)
    return best_model.eval()


def dataset_splits(data: DataArgs, seed: int = 0) -> dict:
    """train / validation / test (identity-disjoint, from the dataset) and a calibration subset of train."""
    dataset = load_pain_dataset(data.dataset, data.split_csv)
    missing = [s for s in ("train", "validation", "test") if s not in dataset]
    if missing:
        raise ValueError(f"{data.dataset} has no {missing} split(s): training needs identity-disjoint "
                         "train / validation / test splits.")
    splits = {
        "train": prepared(select_rows(dataset["train"], data.max_train_samples, seed)),
        "validation": prepared(select_rows(dataset["validation"], data.max_eval_samples, seed)),
        "test": prepared(select_rows(dataset["test"], data.max_test_samples, seed)),
    }
    splits["calibration"] = select_rows(splits["train"], data.calibration_samples, seed + 1)
    return splits


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)


def parse_args(parser, argv: Sequence[str] | None = None):
    """Dataclasses from the command line, or from one JSON file (`script.py config.json`) holding the same keys."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)
