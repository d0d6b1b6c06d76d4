import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

MODULE = Path(__file__).resolve().parents[1] / "dataset_builder" / "pain_metrics.py"


@pytest.fixture(scope="module")
def pm():
    spec = importlib.util.spec_from_file_location("pain_metrics", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_icc_matches_shrout_fleiss_table(pm):
    # Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; ICC(3,1) = .71
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    assert pm.icc_3_1(ratings) == pytest.approx(0.7148, abs=5e-4)
    assert pm.icc_3_1([[1, 1], [2, 2], [3, 3]]) == pytest.approx(1.0)
    assert pm.icc_3_1([[1, 3], [2, 4], [3, 5]]) == pytest.approx(1.0)  # consistency: a constant offset is fine


def test_regression_metrics_hand_checked(pm):
    out = pm.pain_metrics([0, 2, 4, 8], [1, 2, 2, 8])
    assert out["pspi_mae"] == pytest.approx((1 + 0 + 2 + 0) / 4)
    assert out["pspi_rmse"] == pytest.approx(np.sqrt((1 + 0 + 4 + 0) / 4))
    assert out["pspi_pearson"] == pytest.approx(stats.pearsonr([0, 2, 4, 8], [1, 2, 2, 8])[0])


def test_detection_metrics_against_sklearn(pm):
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 17, 200).astype(float)
    preds = np.clip(refs + rng.normal(0, 2.5, 200), 0, 16)
    train_refs = rng.integers(0, 17, 300).astype(float)
    train_preds = np.clip(train_refs + rng.normal(0, 2.5, 300) + 1.0, 0, 16)  # biased upward on train
    out = pm.pain_metrics(preds, refs, train_predictions=train_preds, train_references=train_refs)
    for t in (1, 2, 3):
        assert out[f"auroc_ge{t}"] == pytest.approx(skm.roc_auc_score(refs >= t, preds))
        cutoff = out[f"f1_cutoff_ge{t}"]
        # the cut-off is the best one on the training predictions ...
        train_f1 = [skm.f1_score(train_refs >= t, train_preds >= c) for c in np.unique(train_preds)]
        assert skm.f1_score(train_refs >= t, train_preds >= cutoff) == pytest.approx(max(train_f1))
        # ... and F1 is then measured on the test predictions with it
        assert out[f"f1_ge{t}"] == pytest.approx(skm.f1_score(refs >= t, preds >= cutoff))
    uncalibrated = pm.pain_metrics(preds, refs)
    assert uncalibrated["f1_cutoff_ge2"] == 2.0


def test_per_au_metrics_and_constant_series(pm):
    out = pm.pain_metrics(
        [1, 2, 3], [1, 2, 4], au_predictions=[[0, 1], [1, 1], [2, 1]], au_references=[[0, 0], [1, 1], [3, 2]],
        au_names=["AU4", "AU43"],
    )
    assert out["au_AU4_mae"] == pytest.approx(1 / 3) and out["au_AU4_pearson"] == pytest.approx(
        stats.pearsonr([0, 1, 2], [0, 1, 3])[0]
    )
    assert np.isnan(out["au_AU43_pearson"])  # constant predictions: undefined, not a crash
    single_class = pm.pain_metrics([1, 2], [5, 6])
    assert np.isnan(single_class["auroc_ge1"])


def test_loads_offline_with_evaluate(tmp_path, monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    metric = evaluate.load(str(MODULE))
    out = metric.compute(predictions=[0.0, 3.0, 6.0], references=[0.0, 3.0, 7.0])
    assert out["pspi_mae"] == pytest.approx(1 / 3) and "pspi_icc" in out and "auroc_ge3" in out
