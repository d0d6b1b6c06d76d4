"""Pain-assessment metrics as an `evaluate` module: PSPI regression, pain detection at PSPI thresholds, per-AU.

Load it offline from its folder: `evaluate.load(path)` with `path` this file (`dataset_builder.PAIN_METRICS_PATH`, inside the installed package too). It imports nothing from the project.
"""

import datasets
import evaluate
import numpy as np
from scipy import stats
from sklearn import metrics as skm

_DESCRIPTION = """
PSPI regression: MAE, RMSE, Pearson r and ICC(3,1) (two-way mixed, consistency, single rater: predictions and
references as the two raters). Pain detection at PSPI >= t for each threshold t: AUROC of the scores, and F1 at
a decision cut-off calibrated on the *training* predictions (the cut-off that maximises F1 there), as the
field reports it. Per action unit: MAE and Pearson r.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted PSPI (0-16), one per sample.
    references: true PSPI.
    thresholds: pain thresholds (default (1, 2, 3)).
    pain_scores: optional {threshold: scores} for detection (e.g. the model's pain probabilities); default: the
        predicted PSPI itself.
    train_predictions, train_references: predicted / true PSPI on the training split, to calibrate the F1
        cut-offs (with `train_pain_scores` when `pain_scores` is used). Without them F1 uses the cut-off
        PSPI >= t on the predictions (reported as uncalibrated).
    au_predictions, au_references: (N, A) AU intensities; au_names: their names.
Returns: a flat dict, e.g. pspi_mae, pspi_rmse, pspi_pearson, pspi_icc, auroc_ge1, f1_ge1, f1_cutoff_ge1,
    au_AU4_mae, au_AU4_pearson, ...
"""

_CITATION = """
@article{shrout1979intraclass, title={Intraclass correlations: uses in assessing rater reliability},
  author={Shrout, Patrick E and Fleiss, Joseph L}, journal={Psychological Bulletin}, volume={86}, pages={420}, year={1979}}
"""


def icc_3_1(ratings):
    """ICC(3,1) of an (n targets, k raters) matrix: (BMS - EMS) / (BMS + (k - 1) EMS) (Shrout and Fleiss)."""
    ratings = np.asarray(ratings, dtype=np.float64)
    n, k = ratings.shape
    grand = ratings.mean()
    between_targets = k * ((ratings.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    between_raters = n * ((ratings.mean(axis=0) - grand) ** 2).sum()
    total = ((ratings - grand) ** 2).sum()
    residual = (total - between_targets * (n - 1) - between_raters) / ((n - 1) * (k - 1))
    denominator = between_targets + (k - 1) * residual
    return float((between_targets - residual) / denominator) if denominator > 0 else float("nan")


def pearson(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")  # undefined for a constant series
    return float(stats.pearsonr(a, b)[0])


def best_f1_cutoff(scores, positives):
    """The score cut-off (predict positive when score >= cut-off) that maximises F1 on these samples."""
    scores, positives = np.asarray(scores, np.float64), np.asarray(positives, bool)
    best, best_f1 = np.inf, -1.0
    for cutoff in np.unique(scores):
        f1 = skm.f1_score(positives, scores >= cutoff, zero_division=0)
        if f1 > best_f1:
            best, best_f1 = float(cutoff), f1
    return best


def pain_metrics(
    predictions,
    references,
    thresholds=(1, 2, 3),
    pain_scores=None,
    train_predictions=None,
    train_references=None,
    train_pain_scores=None,
    au_predictions=None,
    au_references=None,
    au_names=None,
):
    predictions = np.asarray(predictions, np.float64)
    references = np.asarray(references, np.float64)
    error = predictions - references
    out = {
        "pspi_mae": float(np.abs(error).mean()),
        "pspi_rmse": float(np.sqrt((error**2).mean())),
        "pspi_pearson": pearson(predictions, references),
        "pspi_icc": icc_3_1(np.stack([predictions, references], axis=1)),
    }
    for t in thresholds:
        name = f"ge{t:g}"
        scores = np.asarray(pain_scores[t] if pain_scores is not None else predictions, np.float64)
        positives = references >= t
        out[f"auroc_{name}"] = (
            float(skm.roc_auc_score(positives, scores)) if 0 < positives.sum() < len(positives) else float("nan")
        )
        if train_predictions is not None and train_references is not None:
            train_scores = train_pain_scores[t] if train_pain_scores is not None else train_predictions
            cutoff = best_f1_cutoff(train_scores, np.asarray(train_references) >= t)
        else:
            cutoff = 0.5 if pain_scores is not None else float(t)
        out[f"f1_{name}"] = float(skm.f1_score(positives, scores >= cutoff, zero_division=0))
        out[f"f1_cutoff_{name}"] = cutoff
    if au_predictions is not None and au_references is not None:
        au_predictions = np.asarray(au_predictions, np.float64)
        au_references = np.asarray(au_references, np.float64)
        names = au_names or [f"au{k}" for k in range(au_predictions.shape[1])]
        for k, au in enumerate(names):
            out[f"au_{au}_mae"] = float(np.abs(au_predictions[:, k] - au_references[:, k]).mean())
            out[f"au_{au}_pearson"] = pearson(au_predictions[:, k], au_references[:, k])
    return out


def fairness_table(predictions, references, groups, thresholds=(1, 2, 3)):
    """{attribute: {group: {"n", "pspi_mae", "auroc_ge1", ...}}}: PSPI MAE and AUROC (predicted PSPI as the score)
    per demographic group (`groups`: {attribute: one group name per sample, None for unknown}); AUROC is NaN where a
    group has only one class at that threshold."""
    predictions, references = np.asarray(predictions, np.float64), np.asarray(references, np.float64)
    table = {}
    for attribute, values in groups.items():
        values = np.asarray(values, dtype=object)
        table[attribute] = {}
        for group in sorted({str(v) for v in values if v is not None}):
            mask = values == group
            row = {"n": int(mask.sum()), "pspi_mae": float(np.abs(predictions[mask] - references[mask]).mean())}
            for t in thresholds:
                positives = references[mask] >= t
                row[f"auroc_ge{t:g}"] = (
                    float(skm.roc_auc_score(positives, predictions[mask]))
                    if 0 < positives.sum() < mask.sum()
                    else float("nan")
                )
            table[attribute][group] = row
    return table


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PainMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references, **kwargs):
        return pain_metrics(predictions, references, **kwargs)
