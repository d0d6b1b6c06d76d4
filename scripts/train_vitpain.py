"""Train ViTPain: the heatmap teacher (`--modality heatmap`) or a plain RGB model (`--modality rgb`).

    accelerate launch [--multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no] \
        scripts/train_vitpain.py --dataset /path/to/generated --output_dir runs/teacher --modality heatmap

Reads any dataset in the column contract (generated folder, official-layout folder, Hub id), picks the checkpoint with
the lowest validation PSPI MAE (identity-disjoint validation split), then writes to `--output_dir` the model folder
(safetensors), `evaluation.json` (test split, with a fairness table) and a filled model card (`README.md`); TensorBoard
logs go to `<output_dir>/tensorboard`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `training_common` beside this script
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the project packages, when not installed

from transformers import HfArgumentParser  # noqa: E402

from training_common import DataArgs, LoopArgs, ModelArgs, as_dict, build_model, dataset_splits, run_training  # noqa: E402
from training_common import init_source, parse_args, setup_logging  # noqa: E402


def main(argv: list[str] | None = None) -> dict | None:
    setup_logging()
    model_args, data_args, loop_args = parse_args(HfArgumentParser((ModelArgs, DataArgs, LoopArgs)), argv)
    splits = dataset_splits(data_args, seed=loop_args.seed)
    model = build_model(model_args, seed=loop_args.seed)
    return run_training(
        model, splits, data_args, loop_args, run_config=as_dict(model_args, data_args, loop_args),
        initialised_from=init_source(model_args),
    )


if __name__ == "__main__":
    main()
