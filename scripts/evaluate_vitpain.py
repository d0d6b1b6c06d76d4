"""Evaluate a ViTPain folder on one split of a dataset in the column contract: the same code as `pain3d evaluate`.

    python scripts/evaluate_vitpain.py --model runs/student --dataset /path/to/generated --split test \
        [--output runs/student/evaluation_test.json] [--predictions runs/student/predictions_test.jsonl]

Metrics: PSPI MAE / RMSE / Pearson / ICC(3,1), AUROC and F1 at PSPI >= 1, 2, 3 (F1 cut-offs calibrated on the
predictions over `--calibration-samples` training rows), per-AU MAE / Pearson, and a fairness table of PSPI MAE and
AUROC by age group, gender and ethnicity (where the dataset has those columns). Images go through the model's own
image processor, as in `pipeline("pain-estimation")`; a heatmap model is fed heatmaps.
"""

from __future__ import annotations

import sys

from pain3d.cli import main as pain3d


def main(argv: list[str] | None = None) -> int:
    return pain3d(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
