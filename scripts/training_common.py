"""What the training, distillation and cross-validation scripts share: where the data side meets the model side.

    model_args, data_args, training_args = parse_args(HfArgumentParser((ModelArguments, DataArguments,
                                                                         TrainingArguments)))
    model = build_model(model_args, seed=training_args.seed)
    run_training(model, image_processor_for(model, model_args, data_args), dataset_splits(data_args), data_args,
                 training_args)

`TrainingArguments` is transformers' own; `training_args.TRAINING_DEFAULTS` only changes its defaults to this project's
recipe (evaluate and save every `eval_steps`, pick the checkpoint on validation PSPI MAE, keep raw columns for the
transforms). Each split gets its own `PainTransform` (`set_transform`), built from the model's image processor, so a
model is trained and evaluated on what `pipeline("pain-estimation")` feeds it. The collator lives in
`dataset_builder.collator`, evaluation in `dataset_builder.evaluation`, metrics and the fairness table in
`dataset_builder/pain_metrics.py`, the card text in `hub_cards/model_card.md`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping


from dataset_builder.collator import PainCollator
from dataset_builder.evaluation import evaluate_split, load_pain_dataset, select_rows, with_transform
from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel, save_model_folder
from modeling_vitpain.image_processing_vitpain import FACE_CROPS
from modeling_vitpain.model_card import fill_model_card
from provenance import provenance
from training_args import DataArguments, ModelArguments, warn_single_process_launch

logger = logging.getLogger("pain3d.training")

def build_model(args: ModelArguments, seed: int = 0) -> ViTPainModel:
    """The model `args` describe; `seed` fixes its random initial weights (each training seed starts elsewhere)."""
    from transformers import set_seed

    set_seed(seed)
    if args.init_from:
        return ViTPainModel.from_pretrained(args.init_from)
    backbone = {"model_type": "vit", "hidden_size": args.hidden_size, "num_hidden_layers": args.num_layers,
                "num_attention_heads": args.num_heads, "intermediate_size": 4 * args.hidden_size,
                "image_size": args.image_size, "patch_size": args.patch_size, "layer_norm_eps": 1e-6}
    config = ViTPainConfig(
        backbone_config=backbone, input_modality=args.modality, use_neutral_reference=args.use_neutral_reference,
        neutral_fusion=args.neutral_fusion, head_hidden_size=args.head_hidden_size,
        au_head_hidden_size=args.head_hidden_size, head_dropout=args.head_dropout,
    )
    return ViTPainModel(config)


def image_processor_for(model, model_args: ModelArguments | None = None, data_args: DataArguments | None = None):
    """The image processor the model trains with and ships: the one saved in `init_from` when there is one, else the
    one that matches its config (and `--heatmap_scale_mm`); `--face_crop` sets its face crop either way."""
    init_from = model_args.init_from if model_args is not None else None
    crop = data_args.face_crop if data_args is not None else None
    settings = {"face_crop": crop} if crop else {}
    if init_from and (Path(init_from) / "preprocessor_config.json").is_file():
        saved = ViTPainImageProcessor.from_pretrained(init_from)
        return ViTPainImageProcessor.from_dict({**saved.to_dict(), **settings}) if settings else saved
    scale = data_args.heatmap_scale_mm if data_args is not None else None
    return ViTPainImageProcessor.from_model_config(model.config, **settings,
                                                   **({"heatmap_scale_mm": scale} if scale else {}))


def check_face_crop(data: DataArguments) -> None:
    """`--face_crop` names a crop the image processor knows (one line otherwise, before anything runs)."""
    if data.face_crop not in (None, *FACE_CROPS):
        raise ValueError(f"--face_crop {data.face_crop!r}: use one of {', '.join(FACE_CROPS)}")


def init_source(args: ModelArguments) -> str | None:
    """The model card's words for where `--init_from` weights came from (None: random initialisation)."""
    return f"`{args.init_from}`" if args.init_from else None


def dataset_splits(data: DataArguments, seed: int = 0) -> dict:
    """train / validation / test (identity-disjoint, from the dataset) and a calibration subset of train: raw rows,
    transforms are attached by `run_training`."""
    dataset = load_pain_dataset(data.dataset, data.split_csv)
    missing = [s for s in ("train", "validation", "test") if s not in dataset]
    if missing:
        raise ValueError(f"{data.dataset} has no {missing} split(s): training needs identity-disjoint "
                         "train / validation / test splits.")
    splits = {
        "train": select_rows(dataset["train"], data.max_train_samples, seed),
        "validation": select_rows(dataset["validation"], data.max_eval_samples, seed),
        "test": select_rows(dataset["test"], data.max_test_samples, seed),
    }
    splits["calibration"] = select_rows(splits["train"], data.calibration_samples, seed + 1)
    return splits


def rank_info() -> tuple[int, int]:
    """(rank, world size) of this process under `accelerate launch` / torchrun (0, 1 otherwise)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def pain_metrics_for(config):
    """Trainer `compute_metrics` for a model with `config`: the pain metrics (PSPI, detection at the config's
    `pain_thresholds`, per AU of its `au_names`) on the validation split, as the test evaluation reads them."""
    from dataset_builder.pain_metrics import pain_metrics

    thresholds, au_names = tuple(config.pain_thresholds), list(config.au_names)

    def compute_pain_metrics(eval_prediction) -> dict[str, float]:
        (pspi, action_units), (pspi_labels, au_labels) = eval_prediction.predictions[:2], eval_prediction.label_ids
        metrics = pain_metrics(pspi, pspi_labels, thresholds=thresholds, au_predictions=action_units,
                               au_references=au_labels, au_names=au_names)
        return {key: value for key, value in metrics.items() if not key.startswith("f1_cutoff")}

    return compute_pain_metrics


def log_tensorboard_to(trainer, folder: str | Path) -> None:
    """Send the Trainer's TensorBoard logs (when `report_to` has tensorboard) to `folder`: transformers 5 has no
    `logging_dir` argument, and its callback's default is a runs/ folder inside the checkpoints."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(folder)


def run_training(model, image_processor, splits: Mapping[str, Any], data: DataArguments, args, *,
                 trainer_class=None, trainer_kwargs: dict | None = None, collator: PainCollator | None = None,
                 run_config: dict | None = None, recipe: str | None = None, initialised_from: str | None = None,
                 dataset_name: str | None = None,
                 protocol: str = "identity-disjoint train/validation/test; checkpoint picked on validation PSPI MAE",
                 ) -> dict | None:
    """Train on `splits["train"]`, pick the checkpoint on `splits["validation"]` (lowest PSPI MAE), then (main process
    only) evaluate on `splits["test"]` and write the self-contained model folder, `evaluation.json` and the model card
    into `args.output_dir`. Returns the evaluation dict on the main process, None on the others."""
    from transformers import Trainer, set_seed

    set_seed(args.seed)
    warn_single_process_launch()
    rank, world = rank_info()
    origin = provenance(data.dataset)  # before training: the code and data this run starts from
    au_names = model.config.au_names  # the label columns, in the order the model's AU head predicts them
    train = with_transform(splits["train"], image_processor, train=data.augment, seed=args.seed + rank,
                           au_names=au_names)
    validation, test = (with_transform(splits[name], image_processor, au_names=au_names)
                        for name in ("validation", "test"))
    collator = collator or PainCollator.for_model(model.config, image_processor)
    trainer_args = copy.copy(args)  # the Trainer's checkpoints go to <output_dir>/checkpoints, the model to output_dir
    trainer_args.output_dir = str(Path(args.output_dir) / "checkpoints")
    trainer = (trainer_class or Trainer)(
        model=model, args=trainer_args, train_dataset=train, eval_dataset=validation, data_collator=collator,
        compute_metrics=pain_metrics_for(model.config),
        # Keep (pspi, action_units) of the outputs: the Trainer would otherwise gather every token.
        preprocess_logits_for_metrics=lambda logits, labels: tuple(logits[:2]),
        **(trainer_kwargs or {}),
    )
    log_tensorboard_to(trainer, Path(args.output_dir) / "tensorboard")
    logger.info("rank %d/%d: %d training rows, %d steps", rank, world, len(train), args.max_steps)
    trainer.train()
    state = trainer.state
    # Replicas must agree after DDP training: each rank prints a checksum of its weights.
    checksum = sum(float(p.detach().double().sum()) for p in trainer.model.parameters())
    print(f"[rank {rank}/{world}] trained {state.global_step} steps, weight checksum {checksum:.6f}", flush=True)
    if not trainer.is_world_process_zero():
        return None
    model = load_best(trainer)
    evaluation, _ = evaluate_split(
        model, test, collator, calibration=with_transform(splits["calibration"], image_processor, au_names=au_names),
        dataset_name=dataset_name or data.dataset, split="test", protocol=protocol,
    )
    evaluation["validation"] = {
        "best_pspi_mae": state.best_metric, "num_samples": len(validation),
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
    }
    evaluation["training"] = {"steps": state.global_step, "world_size": world, "seed": args.seed,
                              "recipe": recipe, "initialised_from": initialised_from}
    evaluation["provenance"] = origin
    write_outputs(model, image_processor, evaluation, args.output_dir, data.repo_id, run_config)
    print(f"[rank {rank}/{world}] wrote {args.output_dir}: test pspi_mae={evaluation['metrics']['pspi_mae']:.4f}",
          flush=True)
    return evaluation


def load_best(trainer):
    """The checkpoint with the best validation metric, loaded with `from_pretrained` (the Trainer's own reload reads
    the state dict without transformers 5's key renaming); the trained model if none was evaluated."""
    best = trainer.state.best_model_checkpoint
    if best is None:
        logger.warning("No evaluation ran: keeping the last weights (set eval_steps <= max_steps).")
        return trainer.model
    logger.info("best checkpoint %s (validation PSPI MAE %.4f)", best, trainer.state.best_metric)
    return type(trainer.model).from_pretrained(best).eval()


def write_outputs(model, image_processor, evaluation: dict, output_dir: str | Path, repo_id: str | None = None,
                  run_config: dict | None = None) -> Path:
    """The self-contained model folder (weights, config, processor, pipeline and their code), `evaluation.json`,
    `training_config.json` and the filled model card (`README.md`)."""
    output_dir = Path(output_dir)
    save_model_folder(model, image_processor, output_dir)
    (output_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    if run_config is not None:
        (output_dir / "training_config.json").write_text(json.dumps(run_config, indent=2, default=str) + "\n")
    card = fill_model_card(evaluation, model.config, repo_id or str(output_dir), num_parameters=model.num_parameters())
    (output_dir / "README.md").write_text(card)
    return output_dir


def as_dict(*items) -> dict:
    """One flat dict of dataclasses (`TrainingArguments` through its own `to_dict`)."""
    out = {}
    for item in items:
        out.update(item.to_dict() if hasattr(item, "to_dict") else asdict(item))
    return out


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
