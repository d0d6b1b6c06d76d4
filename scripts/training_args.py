"""The command line of the training scripts: ViTPain's size and the data, beside transformers' own
`TrainingArguments` (parsed together by `HfArgumentParser`; `TRAINING_DEFAULTS` sets this project's recipe as its
defaults, every flag still overrides them)."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import torch

logger = logging.getLogger("pain3d.training")

TRAINING_DEFAULTS = dict(
    max_steps=1000,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    learning_rate=3e-4,
    weight_decay=0.05,
    warmup_steps=0.05,  # a fraction of max_steps
    lr_scheduler_type="cosine",
    eval_strategy="steps",
    eval_steps=200,
    save_strategy="steps",  # at every evaluation unless --save_steps says otherwise (see `parse_args`)
    save_total_limit=2,
    load_best_model_at_end=False,  # the best checkpoint is reloaded with `from_pretrained` after training
    metric_for_best_model="pspi_mae",
    greater_is_better=False,
    logging_steps=20,
    report_to="tensorboard",
    use_cpu=not torch.cuda.is_available(),
    ddp_find_unused_parameters=False,
    remove_unused_columns=False,  # the transforms read raw columns (images, labels, identities)
    label_names=["pspi_labels", "action_unit_labels"],
)


def _help(default, text: str):
    return field(default=default, metadata={"help": text})


@dataclass
class ModelArguments:
    """A CPU-sized ViTPain (or `init_from`: a ViTPain folder to fine-tune, whose config wins)."""

    modality: str = _help("rgb", "what the model reads: 'rgb' face images or 'heatmap' (the teacher)")
    image_size: int = _help(112, "input side in pixels (the image processor resizes to it)")
    patch_size: int = _help(16, "ViT patch side in pixels")
    hidden_size: int = _help(128, "ViT width")
    num_layers: int = _help(4, "ViT depth")
    num_heads: int = _help(4, "attention heads per layer")
    use_neutral_reference: bool = _help(False, "also read a neutral image of the same face and view")
    neutral_fusion: str = _help("difference", "'difference' (early: image stacked with image - neutral) or "
                                "'cross_attention' (late: pain tokens attend to neutral tokens)")
    head_hidden_size: int = _help(128, "hidden width of the PSPI and AU heads")
    head_dropout: float = _help(0.1, "dropout in the heads")
    init_from: str | None = _help(None, "a ViTPain folder to fine-tune (its config and image processor win)")


@dataclass
class DataArguments:
    """Which data: a generated folder, an official-layout folder or a Hub id, optional subsets (for quick runs), and
    what the outputs are called and may replace."""

    dataset: str = _help("data/pain3d", "a `pain3d generate` folder, an official-layout folder or a Hub id")
    split_csv: str | None = _help(None, "identity split CSV of an official-layout folder (relative to it or not)")
    max_train_samples: int | None = _help(None, "a seeded random subset of the training split")
    max_eval_samples: int | None = _help(None, "a seeded random subset of the validation split")
    max_test_samples: int | None = _help(None, "a seeded random subset of the test split")
    calibration_samples: int = _help(1000, "training rows whose predictions calibrate the F1 cut-offs")
    augment: bool = _help(True, "the field's training augmentation (flip, rotation, shift/scale, colour jitter, blur)")
    heatmap_scale_mm: float | None = _help(None, "mm that map to 1.0 in a heatmap input (default: the processor's)")
    face_crop: str | None = _help(None, "'aligned': the processor cuts each face out by its landmarks_2d (the template "
                                  "of UNBC align=True and align_photo), 'none': whole images (default: none, or "
                                  "--init_from's processor's)")
    repo_id: str | None = _help(None, "the Hub id the model card names (default: the output folder)")
    overwrite: bool = _help(False, "replace what an earlier run wrote in --output_dir (only the files it recorded in "
                            "its pain3d_manifest.json; anything else there stops the run)")


def output_policy(training_args, data_args) -> SimpleNamespace:
    """Where a run writes and whether it may replace an earlier run there (what `safe_output` checks)."""
    return SimpleNamespace(output_dir=training_args.output_dir, overwrite=data_args.overwrite)


def parse_args(parser, argv: Sequence[str] | None = None):
    """Dataclasses from the command line, or from one JSON file (`script.py config.json`) holding the same keys;
    `TrainingArguments` start from `TRAINING_DEFAULTS`, and checkpoints are saved at every evaluation (so the best
    one exists) unless `save_steps` is given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known = {action.dest for action in parser._actions}
    defaults = {key: value for key, value in TRAINING_DEFAULTS.items() if key in known}
    if len(argv) == 1 and argv[0].endswith(".json"):
        given = json.loads(Path(argv[0]).read_text())
        parsed = parser.parse_dict({**defaults, **given})
    else:
        given = {arg.split("=")[0].lstrip("-") for arg in argv if arg.startswith("--")}
        parser.set_defaults(**defaults)
        parsed = parser.parse_args_into_dataclasses(args=argv)
    for item in parsed:
        if hasattr(item, "save_steps") and "save_steps" not in given:
            item.save_steps = item.eval_steps
    return parsed


def single_process_launch(launcher_argv: Sequence[str], world_size: int) -> int | None:
    """The process count an `accelerate launch` command line asked for when it runs one process instead: on CPU,
    `--num_processes N` without `--multi_gpu` starts a single process. None when the launch got what it asked for."""
    args = list(launcher_argv)
    if world_size > 1 or "launch" not in args or "--multi_gpu" in args or torch.cuda.is_available():
        return None
    for i, arg in enumerate(args):
        value = arg.split("=", 1)[1] if arg.startswith("--num_processes=") else (
            args[i + 1] if arg == "--num_processes" and i + 1 < len(args) else None)
        if value is not None and value.isdigit() and int(value) > 1:
            return int(value)
    return None


def warn_single_process_launch() -> None:
    """Warn when `accelerate launch --num_processes N` (N > 1) without `--multi_gpu` ran this as one CPU process."""
    try:
        launcher = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:  # not Linux: nothing to read
        return
    if not any("accelerate" in part for part in launcher[:3]):
        return
    asked = single_process_launch(launcher, int(os.environ.get("WORLD_SIZE", 1)))
    if asked:
        logger.warning(
            "accelerate launch asked for %d processes but started one: on CPU add --multi_gpu, i.e. `accelerate launch "
            "--multi_gpu --num_processes %d --num_machines 1 --mixed_precision no --dynamo_backend no SCRIPT ...`.",
            asked, asked,
        )
