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

import argparse
import sys
from dataclasses import dataclass, field, replace

from transformers import HfArgumentParser, TrainingArguments

from dataset_builder.collator import PainCollator
from modeling_vitpain import ViTPainModel
from modeling_vitpain.distillation import DistillationWeights, ViTPainDistillationTrainer, init_student_from_teacher
from training_args import DataArguments, ModelArguments, output_policy, parse_args
from training_common import as_dict, build_model, check_face_crop, dataset_splits
from training_common import image_processor_for, init_source, logger, run_training, setup_logging
from train_vitpain import refused_model
from safe_output import UsageError, check_training_output, finish_training_run, require_rows, run_main
from safe_output import SPLITS_NEEDED, check_parquet_rows, start_training_run, usage_errors


@dataclass
class TeacherArguments:
    teacher: str = field(default="runs/teacher", metadata={"help": "a ViTPain folder (usually the heatmap teacher)"})
    init_student_from_teacher: bool = field(
        default=False, metadata={"help": "start the student from the teacher's transformer and heads"}
    )


def main(argv: list[str] | None = None) -> dict | None:
    setup_logging()
    parser = HfArgumentParser(
        (TeacherArguments, DistillationWeights, ModelArguments, DataArguments, TrainingArguments),
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    with usage_errors():  # bad input is one line, checked before anything is written or trained
        teacher_args, weights, model_args, data_args, training_args = parse_args(parser, argv)
        check_face_crop(data_args)
    if model_args.modality != "rgb":
        raise UsageError("The distilled student is an RGB model: drop --modality or pass --modality rgb.")
    if teacher_args.init_student_from_teacher and model_args.init_from:
        raise UsageError("Give either --init_from (a ViTPain folder to fine-tune) or --init_student_from_teacher, "
                         "not both: the student can start from one set of weights.")
    output = output_policy(training_args, data_args)
    check_training_output(output, keep=[teacher_args.teacher])
    with refused_model("--teacher", teacher_args.teacher):
        teacher = ViTPainModel.from_pretrained(teacher_args.teacher)
        teacher_processor = image_processor_for(teacher, ModelArguments(init_from=teacher_args.teacher),
                                                replace(data_args, face_crop=None))  # its own crop, as it was trained
    with usage_errors():
        check_parquet_rows(data_args.dataset, SPLITS_NEEDED)
        splits = dataset_splits(data_args, seed=training_args.seed)
    require_rows(splits, SPLITS_NEEDED, data_args.dataset)
    with refused_model("--init_from", model_args.init_from):
        student = build_model(model_args, seed=training_args.seed)
        image_processor = image_processor_for(student, model_args, data_args)
    if teacher_args.init_student_from_teacher:
        fresh = init_student_from_teacher(student, teacher)
        logger.info("student starts from the teacher's weights except %s", fresh)
    teacher_crop = getattr(teacher_processor, "face_crop", "none")
    if teacher_crop != image_processor.face_crop:  # the teacher reads heatmaps cut by the student's crop
        raise UsageError(f"the teacher {teacher_args.teacher} was trained with face_crop {teacher_crop!r} but the "
                         f"student would use {image_processor.face_crop!r}: pass --face_crop {teacher_crop}, or train "
                         f"a teacher with --face_crop {image_processor.face_crop}")
    start_training_run(output, "scripts/distill_vitpain.py")
    evaluation = run_training(
        student,
        image_processor,
        splits,
        data_args,
        training_args,
        trainer_class=ViTPainDistillationTrainer,
        trainer_kwargs={"teacher": teacher, "distillation": weights},
        collator=PainCollator.for_model(student.config, image_processor, teacher_config=teacher.config,
                                        teacher_processor=teacher_processor),
        run_config=as_dict(teacher_args, weights, model_args, data_args, training_args),
        recipe=distillation_recipe(teacher_args.teacher, teacher.config.input_modality, weights),
        initialised_from=(
            f"the teacher `{teacher_args.teacher}` (all but the patch projection)"
            if teacher_args.init_student_from_teacher
            else init_source(model_args)
        ),
    )
    finish_training_run(output, evaluation)
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
