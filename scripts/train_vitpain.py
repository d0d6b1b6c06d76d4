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
from safe_output import check_training_output, finish_training_run, require_rows, run_main  # noqa: E402
from safe_output import SPLITS_NEEDED, check_parquet_rows, start_training_run, usage_errors  # noqa: E402


def main(argv: list[str] | None = None) -> dict | None:
    setup_logging()
    with usage_errors():  # bad input is one line, checked before anything is written or trained
        model_args, data_args, loop_args = parse_args(HfArgumentParser((ModelArgs, DataArgs, LoopArgs)), argv)
        check_training_output(loop_args)
        check_parquet_rows(data_args.dataset, SPLITS_NEEDED)
        splits = dataset_splits(data_args, seed=loop_args.seed)
    require_rows(splits, SPLITS_NEEDED, data_args.dataset)
    model = build_model(model_args, seed=loop_args.seed)
    start_training_run(loop_args, "scripts/train_vitpain.py")
    evaluation = run_training(
        model, splits, data_args, loop_args, run_config=as_dict(model_args, data_args, loop_args),
        initialised_from=init_source(model_args),
    )
    finish_training_run(loop_args, evaluation)
    return evaluation


if __name__ == "__main__":
    sys.exit(run_main(main, "train_vitpain.py"))
