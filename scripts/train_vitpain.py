"""Train ViTPain: the heatmap teacher (`--modality heatmap`) or a plain RGB model (`--modality rgb`).

    accelerate launch [--multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no] \
        scripts/train_vitpain.py --dataset /path/to/generated --output_dir runs/teacher --modality heatmap

Reads any dataset in the column contract (generated folder, official-layout folder, Hub id), picks the checkpoint with
the lowest validation PSPI MAE (identity-disjoint validation split), then writes to `--output_dir` the model folder
(safetensors), `evaluation.json` (test split, with a fairness table) and a filled model card (`README.md`); TensorBoard
logs go to `<output_dir>/tensorboard`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from transformers import HfArgumentParser, TrainingArguments

from modeling_vitpain import CheckpointMismatchError

from training_args import DataArguments, ModelArguments, output_policy, parse_args
from training_common import as_dict, build_model, check_face_crop, dataset_splits, image_processor_for
from training_common import init_source, run_training, setup_logging
from safe_output import UsageError, check_training_output, finish_training_run, require_rows, run_main
from safe_output import SPLITS_NEEDED, check_parquet_rows, start_training_run, usage_errors


def main(argv: list[str] | None = None) -> dict | None:
    setup_logging()
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments), description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    with usage_errors():  # bad input is one line, checked before anything is written or trained
        model_args, data_args, training_args = parse_args(parser, argv)
        check_face_crop(data_args)
        output = output_policy(training_args, data_args)
        check_training_output(output)
        check_parquet_rows(data_args.dataset, SPLITS_NEEDED)
        splits = dataset_splits(data_args, seed=training_args.seed)
    require_rows(splits, SPLITS_NEEDED, data_args.dataset)
    with refused_model("--init_from", model_args.init_from):  # before anything is written
        model = build_model(model_args, seed=training_args.seed)
        image_processor = image_processor_for(model, model_args, data_args)
    start_training_run(output, "scripts/train_vitpain.py")
    evaluation = run_training(
        model, image_processor, splits, data_args, training_args,
        run_config=as_dict(model_args, data_args, training_args), initialised_from=init_source(model_args),
    )
    finish_training_run(output, evaluation)
    return evaluation


@contextlib.contextmanager
def refused_model(flag: str, folder: str | None):
    """A model folder that cannot load (missing, weights that do not fit, a saved value out of range) is one line
    naming the flag: `UsageError`, which `run_main` prints without a traceback."""
    try:
        yield
    except (OSError, ValueError, CheckpointMismatchError) as error:
        where = f"{flag} {folder}: " if folder else ""
        raise UsageError(f"{where}{str(error).splitlines()[0]}") from None


if __name__ == "__main__":
    sys.exit(run_main(main, "train_vitpain.py"))
