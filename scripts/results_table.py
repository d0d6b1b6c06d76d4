"""Markdown table of test metrics, mean +/- standard deviation over seeds, from training output folders.

    python scripts/results_table.py "teacher=exp/teacher_s*" "RGB baseline=exp/rgb_s*" "student=exp/student_s*" \
        [--plot results.png]

Each argument is `LABEL=GLOB`; every folder the glob matches holds an `evaluation.json` written by
`train_vitpain.py` / `distill_vitpain.py` (one seed each). The last column compares each arm's mean PSPI MAE with the
first arm named `--reference` (default: the second argument, the usual RGB baseline). `--plot` also draws each
arm's test PSPI MAE and Pearson: the mean as a bar, every seed as a dot.

Every run records its provenance (`provenance.py`: the project's commit and the dataset's fingerprint); runs of
different code or data are refused in one table (one line naming both), and the table is followed by the line
`commit ... | dataset fingerprint ...` it came from.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
from pathlib import Path

from generation.errors import Pain3DError

METRICS = (("pspi_mae", "test PSPI MAE"), ("pspi_pearson", "test Pearson"), ("auroc_ge3", "AUROC (PSPI >= 3)"))


class MixedProvenanceError(SystemExit, Pain3DError):
    """Runs of different code (commits) or data (dataset fingerprints) asked for in one table."""


def load_arm(pattern: str) -> list[dict]:
    folders = sorted(glob.glob(pattern))
    runs = [{**json.loads((Path(f) / "evaluation.json").read_text()), "folder": f}
            for f in folders if (Path(f) / "evaluation.json").exists()]
    if not runs:
        raise SystemExit(f"no evaluation.json under {pattern!r}: train the runs first (see the README).")
    return runs


def _origin(run: dict) -> tuple:
    origin = run.get("provenance") or {}
    return origin.get("commit"), origin.get("dataset_fingerprint")


def common_provenance(arms: dict[str, list[dict]]) -> dict:
    """The one commit and dataset fingerprint of every run (None where runs predate provenance); raises
    `MixedProvenanceError` naming two runs that differ."""
    runs = [run for arm in arms.values() for run in arm]
    first = runs[0]
    for run in runs[1:]:
        for index, what in ((0, "code (commit"), (1, "data (dataset fingerprint")):
            if _origin(run)[index] != _origin(first)[index]:
                raise MixedProvenanceError(
                    f"results_table: {first.get('folder')} and {run.get('folder')} come from different {what} "
                    f"{_short(_origin(first)[index])} vs {_short(_origin(run)[index])}): one table holds runs of one "
                    "commit and one dataset; re-run the stale arms (scripts/reproduce_results.py does)")
    dirty = any((run.get("provenance") or {}).get("dirty") for run in runs)
    return {"commit": _origin(first)[0], "dirty": dirty, "dataset_fingerprint": _origin(first)[1]}


def _short(value: str | None) -> str:
    return value[:12] if value else "unrecorded"


def provenance_line(origin: dict) -> str:
    """The line printed under a table: its commit (and whether the tree was dirty) and dataset fingerprint."""
    commit = origin.get("commit") or "unrecorded"
    return (f"commit {commit}{' (uncommitted changes)' if origin.get('dirty') else ''} | "
            f"dataset fingerprint {origin.get('dataset_fingerprint') or 'unrecorded'}")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _validation_mae(run: dict) -> float | None:
    return (run.get("validation") or {}).get("best_pspi_mae")


def results_table(arms: dict[str, list[dict]], reference: str) -> str:
    """One row per arm: mean +/- std over its seeds of the test metrics (and of the best checkpoint's validation
    PSPI MAE when every run records it; that is the column to choose settings on)."""
    with_validation = all(_validation_mae(run) is not None for runs in arms.values() for run in runs)
    names = (["validation PSPI MAE"] if with_validation else []) + [name for _, name in METRICS]
    header = "| arm | seeds | " + " | ".join(names) + f" | test MAE vs {reference} |"
    lines = [header, "| --- " * (len(names) + 3) + "|"]
    reference_mae = mean_std([run["metrics"]["pspi_mae"] for run in arms[reference]])[0]
    for label, runs in arms.items():
        columns = ([[_validation_mae(run) for run in runs]] if with_validation else []) + [
            [run["metrics"][key] for run in runs] for key, _ in METRICS
        ]
        cells = ["{:.3f} +/- {:.3f}".format(*mean_std(values)) for values in columns]
        change = statistics.fmean(run["metrics"]["pspi_mae"] for run in runs) / reference_mae - 1
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + f" | {change:+.1%} |")
    return "\n".join(lines)


def plot_results(arms: dict[str, list[dict]], path: str | Path) -> Path:
    """Bars of the mean test PSPI MAE and Pearson per arm, one dot per seed (seed order left to right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("pspi_mae", "test PSPI MAE (lower is better)"), ("pspi_pearson", "test Pearson r (higher is better)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), constrained_layout=True)
    colours = plt.get_cmap("tab10").colors
    for axis, (key, title) in zip(axes, panels):
        for i, runs in enumerate(arms.values()):
            values = [run["metrics"][key] for run in runs]
            axis.bar(i, statistics.fmean(values), color=colours[i % 10], alpha=0.55, width=0.6)
            offsets = [0.0] if len(values) == 1 else [-0.15 + 0.3 * j / (len(values) - 1) for j in range(len(values))]
            axis.scatter([i + o for o in offsets], values, color="black", s=14, zorder=3)
            axis.annotate(f"{statistics.fmean(values):.3f}", (i, max(values)), textcoords="offset points",
                          xytext=(0, 7), ha="center", fontsize=8)
        axis.set_xticks(range(len(arms)), [label.replace(" (", "\n(") for label in arms], fontsize=8)
        axis.set_title(title, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
        values = [run["metrics"][key] for runs in arms.values() for run in runs]
        if key == "pspi_pearson":
            axis.set_ylim(max(0.0, min(values) - 0.1), 1.0)
        else:  # room for the labels above the highest seed
            axis.set_ylim(0.0, 1.12 * max(values))
    seeds = max(len(runs) for runs in arms.values())
    fig.suptitle(f"ViTPain arms on the identity-disjoint test split (bars: mean of {seeds} seeds; dots: seeds)",
                 fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arms", nargs="+", help="LABEL=GLOB of run folders (one per seed)")
    parser.add_argument("--reference", help="label of the arm the last column compares with (default: the second)")
    parser.add_argument("--plot", help="also save a PNG of test MAE and Pearson per arm and seed")
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
    origin = common_provenance(arms)
    table = results_table(arms, reference)
    print(table + "\n\n" + provenance_line(origin))
    if args.plot:
        print(f"wrote {plot_results(arms, args.plot)}")
    return table


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except MixedProvenanceError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
