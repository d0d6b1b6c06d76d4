"""Distil an RGB ViTPain student from a frozen heatmap ViTPain teacher (`scripts/train_vitpain.py --modality heatmap`).

    accelerate launch [--multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no] \
        scripts/distill_vitpain.py --dataset /path/to/generated --teacher runs/teacher --output_dir runs/student

Loss = task_weight * student task loss + feature_weight * [CLS] feature distillation + token_weight * token-by-token
feature distillation + prediction_weight * prediction distillation (+ attention_weight * AU-attention distillation);
see `modeling_vitpain.distillation`. The teacher sees the heatmap of the very image the student sees; it is frozen and
never saved with the student. `--init_student_from_teacher true` starts the student from the teacher's transformer and
heads (same width and depth needed; only the RGB patch projection starts fresh), which the README's recipe uses.
Checkpoint selection, outputs and logs as in `train_vitpain.py`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from transformers import HfArgumentParser  # noqa: E402

from modeling_vitpain import ViTPainModel  # noqa: E402
from modeling_vitpain.distillation import DistillationWeights, ViTPainDistillationTrainer  # noqa: E402
from modeling_vitpain.distillation import init_student_from_teacher  # noqa: E402
from training_common import DataArgs, LoopArgs, ModelArgs, as_dict, build_model, dataset_splits, run_training  # noqa: E402
from training_common import init_source, logger, parse_args, setup_logging  # noqa: E402
from safe_output import UsageError, check_training_output, finish_training_run, require_rows, run_main  # noqa: E402
from safe_output import SPLITS_NEEDED, check_parquet_rows, start_training_run, usage_errors  # noqa: E402


@dataclass
class TeacherArgs:
    teacher: str = "runs/teacher"  # a ViTPain folder (usually the heatmap teacher)
    init_student_from_teacher: bool = False  # start the student from the teacher's transformer and heads


def main(argv: list[str] | None = None) -> dict | None:
    setup_logging()
    parser = HfArgumentParser((TeacherArgs, DistillationWeights, ModelArgs, DataArgs, LoopArgs))
    with usage_errors():  # bad input is one line, checked before anything is written or trained
        teacher_args, weights, model_args, data_args, loop_args = parse_args(parser, argv)
    if model_args.modality != "rgb":
        raise UsageError("The distilled student is an RGB model: drop --modality or pass --modality rgb.")
    if teacher_args.init_student_from_teacher and model_args.init_from:
        raise UsageError("Give either --init_from (a ViTPain folder to fine-tune) or --init_student_from_teacher, "
                         "not both: the student can start from one set of weights.")
    check_training_output(loop_args, keep=[teacher_args.teacher])
    teacher = ViTPainModel.from_pretrained(teacher_args.teacher)
    with usage_errors():
        check_parquet_rows(data_args.dataset, SPLITS_NEEDED)
        splits = dataset_splits(data_args, seed=loop_args.seed)
    require_rows(splits, SPLITS_NEEDED, data_args.dataset)
    student = build_model(model_args, seed=loop_args.seed)
    if teacher_args.init_student_from_teacher:
        fresh = init_student_from_teacher(student, teacher)
        logger.info("student starts from the teacher's weights except %s", fresh)
    start_training_run(loop_args, "scripts/distill_vitpain.py")
    evaluation = run_training(
        student,
        splits,
        data_args,
        loop_args,
        trainer_class=ViTPainDistillationTrainer,
        trainer_kwargs={"teacher": teacher, "distillation": weights},
        collator_kwargs={
            "teacher_modality": teacher.config.input_modality,
            "teacher_neutral_reference": teacher.config.use_neutral_reference,
        },
        run_config=as_dict(teacher_args, weights, model_args, data_args, loop_args),
        recipe=distillation_recipe(teacher_args.teacher, teacher.config.input_modality, weights),
        initialised_from=(
            f"the teacher `{teacher_args.teacher}` (all but the patch projection)"
            if teacher_args.init_student_from_teacher
            else init_source(model_args)
        ),
    )
    finish_training_run(loop_args, evaluation)
    return evaluation


def distillation_recipe(teacher: str, modality: str, weights: DistillationWeights) -> str:
    """One line for the model card: the teacher and the weight of each loss term."""
    terms = [f"task x{weights.task_weight:g}"] + [
        f"{name} x{value:g}"
        for name, value in (("[CLS] feature", weights.feature_weight), ("token", weights.token_weight),
                            ("prediction", weights.prediction_weight), ("AU attention", weights.attention_weight))
        if value
    ]
    return (f"distilled from the frozen {modality} teacher `{teacher}`: " + " + ".join(terms)
            + f" (temperature {weights.temperature:g})")


if __name__ == "__main__":
    sys.exit(run_main(main, "distill_vitpain.py"))
