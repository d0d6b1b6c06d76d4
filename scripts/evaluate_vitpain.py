"""Evaluate a ViTPain folder on one split of a dataset in the column contract and write the evaluation JSON.

    python scripts/evaluate_vitpain.py --model runs/student --dataset /path/to/generated --split test \
        --output runs/student/evaluation_test.json [--model_card runs/student/README.md]

Metrics: PSPI MAE / RMSE / Pearson / ICC(3,1), AUROC and F1 at PSPI >= 1, 2, 3 (F1 cut-offs calibrated on the
predictions over `--calibration_samples` training rows), per-AU MAE / Pearson, and a fairness table of PSPI MAE and
AUROC by age group, gender and ethnicity (where the dataset has those columns). A heatmap model is fed heatmaps.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from transformers import HfArgumentParser  # noqa: E402

from modeling_vitpain import ViTPainModel  # noqa: E402
from training_common import PainCollator, evaluate_split, fairness_markdown, load_pain_dataset  # noqa: E402
from training_common import parse_args, prepared, select_rows, setup_logging, view_names_of  # noqa: E402


@dataclass
class EvaluateArgs:
    model: str = "runs/vitpain"
    dataset: str = "data/pain3d"
    split: str = "test"
    split_csv: str | None = None
    output: str | None = None  # default: <model>/evaluation_<split>.json
    max_samples: int | None = None
    calibration_samples: int = 1000
    heatmap_scale_mm: float | None = None
    batch_size: int = 64
    model_card: str | None = None  # also write a filled model card here


def evaluate(args: EvaluateArgs) -> dict:
    model = ViTPainModel.from_pretrained(args.model).eval()
    dataset = load_pain_dataset(args.dataset, args.split_csv)
    if args.split not in dataset:
        raise ValueError(f"{args.dataset} has no split {args.split!r}; it has {sorted(dataset)}.")
    rows = prepared(select_rows(dataset[args.split], args.max_samples))
    calibration = None
    if "train" in dataset and args.split != "train" and args.calibration_samples > 0:
        calibration = prepared(select_rows(dataset["train"], args.calibration_samples, seed=1))
    collator = PainCollator(
        model.config.image_size,
        model.config.input_modality,
        use_neutral_reference=model.config.use_neutral_reference,
        heatmap_scale_mm=args.heatmap_scale_mm,
        view_names=view_names_of(rows),
    )
    evaluation = evaluate_split(
        model, rows, collator, calibration=calibration, dataset_name=args.dataset, split=args.split,
        protocol="identity-disjoint split", batch_size=args.batch_size,
    )
    output = Path(args.output or Path(args.model) / f"evaluation_{args.split}.json")
    output.write_text(json.dumps(evaluation, indent=2) + "\n")
    if args.model_card:
        from training_common import write_card

        write_card(model, evaluation, args.model_card)
    return evaluation


def main(argv: list[str] | None = None) -> dict:
    setup_logging()
    (args,) = parse_args(HfArgumentParser(EvaluateArgs), argv)
    evaluation = evaluate(args)
    metrics = evaluation["metrics"]
    print(f"{args.split}: n={evaluation['num_samples']} PSPI MAE {metrics['pspi_mae']:.4f} "
          f"RMSE {metrics['pspi_rmse']:.4f} Pearson {metrics['pspi_pearson']} ICC {metrics['pspi_icc']}")
    if evaluation.get("fairness"):
        print(fairness_markdown(evaluation["fairness"]))
    return evaluation


if __name__ == "__main__":
    main()
