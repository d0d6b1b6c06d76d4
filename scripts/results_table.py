"""Markdown table of test metrics, mean +/- standard deviation over seeds, from training output folders.

    python scripts/results_table.py "teacher=exp/teacher_s*" "RGB baseline=exp/rgb_s*" "student=exp/student_s*"

Each argument is `LABEL=GLOB`; every folder the glob matches holds an `evaluation.json` written by
`train_vitpain.py` / `distill_vitpain.py` (one seed each). The last column compares each arm's mean PSPI MAE with the
first arm named `--reference` (default: the second argument, the usual RGB baseline).
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
from pathlib import Path

METRICS = (("pspi_mae", "test PSPI MAE"), ("pspi_pearson", "test Pearson"), ("auroc_ge3", "AUROC (PSPI >= 3)"))


def load_arm(pattern: str) -> list[dict]:
    folders = sorted(glob.glob(pattern))
    runs = [json.loads((Path(f) / "evaluation.json").read_text()) for f in folders if (Path(f) / "evaluation.json").exists()]
    if not runs:
        raise SystemExit(f"no evaluation.json under {pattern!r}: train the runs first (see the README).")
    return runs


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def results_table(arms: dict[str, list[dict]], reference: str) -> str:
    header = "| arm | seeds | " + " | ".join(name for _, name in METRICS) + f" | MAE vs {reference} |"
    lines = [header, "| --- " * (len(METRICS) + 3) + "|"]
    reference_mae = mean_std([run["metrics"]["pspi_mae"] for run in arms[reference]])[0]
    for label, runs in arms.items():
        cells = []
        for key, _ in METRICS:
            mean, std = mean_std([run["metrics"][key] for run in runs])
            cells.append(f"{mean:.3f} +/- {std:.3f}")
        change = statistics.fmean(run["metrics"]["pspi_mae"] for run in runs) / reference_mae - 1
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + f" | {change:+.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arms", nargs="+", help="LABEL=GLOB of run folders (one per seed)")
    parser.add_argument("--reference", help="label of the arm the last column compares with (default: the second)")
    args = parser.parse_args(argv)
    arms = {}
    for item in args.arms:
        label, sep, pattern = item.partition("=")
        if not sep:
            parser.error(f"{item!r} is not LABEL=GLOB")
        arms[label] = load_arm(pattern)
    reference = args.reference or list(arms)[min(1, len(arms) - 1)]
    if reference not in arms:
        parser.error(f"--reference {reference!r} is not one of {list(arms)}")
    table = results_table(arms, reference)
    print(table)
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
