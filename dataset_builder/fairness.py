"""Fairness tables you can read: per demographic group, how many identities it holds, the PSPI MAE with a 95%
bootstrap interval that resamples identities, and the largest gap between groups with its interval.

Rows of one identity are not independent (the same face in every expression and view), so intervals resample
identities, not rows: a group's interval is as wide as its number of people warrants. A group of fewer than
`MIN_IDENTITIES` identities is reported but marked too small, and left out of the largest gap.

    table = fairness_table(predictions, references, {"gender": genders}, identities)
    table["gender"]["groups"]["female"]  # {"identities", "rows", "pspi_mae", "pspi_mae_ci", "ranked", "auroc_ge1"...}
    table["gender"]["largest_gap"]       # {"higher", "lower", "pspi_mae", "pspi_mae_ci"} or None
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping, Sequence

import numpy as np

MIN_IDENTITIES = 3  # fewer identities than this: an MAE that describes a person or two, not a group
RESAMPLES = 1000
CONFIDENCE = 0.95
INTERVAL_METHOD = (
    f"{CONFIDENCE:.0%} percentile bootstrap resampling identities ({RESAMPLES} resamples, seeded); groups with "
    f"fewer than {MIN_IDENTITIES} identities are too small to rank"
)


def _auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve; NaN with one class."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positives, scores)) if 0 < positives.sum() < len(positives) else float("nan")


def _resampled_mae(errors: np.ndarray, identities: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """MAE of `resamples` bootstrap samples of the identities (each drawn with all its rows)."""
    names, index = np.unique(identities, return_inverse=True)
    sums = np.bincount(index, weights=errors, minlength=len(names))
    rows = np.bincount(index, minlength=len(names)).astype(np.float64)
    draws = rng.integers(0, len(names), size=(resamples, len(names)))
    return sums[draws].sum(axis=1) / rows[draws].sum(axis=1)


def _interval(values: np.ndarray) -> list[float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def fairness_table(
    predictions: Sequence[float],
    references: Sequence[float],
    groups: Mapping[str, Sequence[str | None]],
    identities: Sequence[str] | None = None,
    thresholds: Sequence[float] = (1, 2, 3),
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> dict[str, dict[str, Any]]:
    """Per attribute (`groups`: one group name per row, None for unknown): {"groups": {group: row}, "largest_gap"}.

    A row holds `identities` and `rows` (counts), `pspi_mae` (PSPI points) with `pspi_mae_ci` (95% bootstrap interval
    resampling the group's identities; None when too small), `ranked` (at least MIN_IDENTITIES identities) and
    `auroc_ge<t>` per threshold (predicted PSPI as the score; NaN with one class). `largest_gap` compares the ranked
    groups with the highest and the lowest MAE: their difference and its interval (each bootstrap sample resamples
    every group's identities); None with fewer than two ranked groups. Without `identities`, every row counts as its
    own identity. Same inputs and seed, same numbers.
    """
    predictions = np.asarray(predictions, np.float64)
    references = np.asarray(references, np.float64)
    errors = np.abs(predictions - references)
    identities = np.asarray(
        [str(i) for i in identities] if identities is not None else [str(i) for i in range(len(errors))], dtype=object
    )
    if not len(errors) == len(references) == len(identities):
        raise ValueError(f"fairness_table needs one prediction, reference and identity per row, got {len(errors)}, "
                         f"{len(references)} and {len(identities)}")
    table: dict[str, dict[str, Any]] = {}
    for attribute, values in groups.items():
        values = np.asarray([None if v is None else str(v) for v in values], dtype=object)
        rows: dict[str, dict[str, Any]] = {}
        samples: dict[str, np.ndarray] = {}
        for group in sorted({v for v in values if v is not None}):
            mask = values == group
            people = identities[mask]
            count = len(set(people))
            row: dict[str, Any] = {"identities": count, "rows": int(mask.sum()),
                                   "pspi_mae": float(errors[mask].mean()), "pspi_mae_ci": None,
                                   "ranked": count >= MIN_IDENTITIES}
            if row["ranked"]:
                rng = np.random.default_rng([seed, zlib.crc32(attribute.encode()), zlib.crc32(group.encode())])
                samples[group] = _resampled_mae(errors[mask], people, rng, resamples)
                row["pspi_mae_ci"] = _interval(samples[group])
            for t in thresholds:
                row[f"auroc_ge{t:g}"] = _auroc(predictions[mask], references[mask] >= t)
            rows[group] = row
        gap = None
        if len(samples) >= 2:
            higher = max(samples, key=lambda g: (rows[g]["pspi_mae"], g))
            lower = min(samples, key=lambda g: (rows[g]["pspi_mae"], g))
            gap = {"higher": higher, "lower": lower,
                   "pspi_mae": rows[higher]["pspi_mae"] - rows[lower]["pspi_mae"],
                   "pspi_mae_ci": _interval(samples[higher] - samples[lower])}
        table[attribute] = {"groups": rows, "largest_gap": gap}
    return table


__all__ = ["INTERVAL_METHOD", "MIN_IDENTITIES", "RESAMPLES", "fairness_table"]
