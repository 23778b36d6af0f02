"""Harrell's C across folds (issue 13, defect 5): the pooled value compares within-fold ranks (each fold's
Cox model has its own scale), the per-fold mean and range stand beside it, and a null Cox model (every
coefficient zero, C = 0.5 by construction) is refused for the next penalty, with a warning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv
from test_survival import FAST, embed, make_cohort

from clinpred.tasks.survival import (
    SurvivalConfig,
    _non_null_alpha,
    evaluate_survival,
    metrics_from_units,
)
from clinpred.tasks.survival_metrics import kaplan_meier_at


def units_of(seed: int = 0, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    time = rng.exponential(100 / np.exp(z))
    event = rng.random(n) < 0.7
    return pd.DataFrame(
        {
            "subject_id": np.arange(n),
            "time": time,
            "event": event,
            "risk": z + rng.normal(0, 1, n),
            "fold": np.arange(n) % 5,
        }
    )


def test_pooled_c_does_not_depend_on_each_folds_scale():
    units = units_of()
    rescaled = units.copy()
    in_fold0 = rescaled["fold"] == 0
    rescaled.loc[in_fold0, "risk"] = rescaled.loc[in_fold0, "risk"] * 100 + 50  # another model's scale
    before, after = metrics_from_units(units), metrics_from_units(rescaled)
    assert after["harrell_c"] == pytest.approx(before["harrell_c"])  # raw pooling moved this
    assert after["harrell_c_fold_mean"] == pytest.approx(before["harrell_c_fold_mean"])


def test_fold_mean_is_the_mean_of_each_folds_c():
    units = units_of(1)
    expected = np.mean(
        [
            concordance_index_censored(g["event"].to_numpy(), g["time"].to_numpy(), g["risk"].to_numpy())[0]
            for _, g in units.groupby("fold")
        ]
    )
    assert metrics_from_units(units)["harrell_c_fold_mean"] == pytest.approx(expected)


def test_a_null_model_is_refused_for_the_next_penalty():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    y = Surv.from_arrays(event=rng.random(120) < 0.6, time=rng.exponential(100 / np.exp(x[:, 0])))
    model = CoxnetSurvivalAnalysis(l1_ratio=0.5, n_alphas=20).fit(x, y)
    first = float(model.alphas_[0])  # the largest penalty zeroes every coefficient by definition
    assert not np.any(model.coef_[:, 0])
    alpha, moved = _non_null_alpha(model, first)
    assert moved and alpha < first
    k = int(np.argmin(np.abs(model.alphas_ - alpha)))
    assert np.any(model.coef_[:, k]) and not np.any(model.coef_[:, :k])
    assert _non_null_alpha(model, float(model.alphas_[-1])) == (float(model.alphas_[-1]), False)


def test_survival_result_reports_fold_mean_and_range_beside_pooled():
    cohort, z = make_cohort()
    config = SurvivalConfig(bootstrap=FAST, ipcw_resamples=0)
    r = evaluate_survival(cohort, embed(cohort, z, signal=True), config=config)
    pooled, mean = r.metrics["harrell_c"], r.metrics["harrell_c_fold_mean"]
    low, high = r.folds["metric_range"]["harrell_c"]
    assert low <= mean.value <= high and mean.low is not None and mean.low <= mean.value <= mean.high
    assert [f["harrell_c"] for f in r.folds["per_fold_metrics"]] == pytest.approx(
        [
            concordance_index_censored(g["event"].to_numpy(), g["time"].to_numpy(), g["risk"].to_numpy())[0]
            for _, g in r.units.groupby("fold")
        ]
    )
    assert abs(pooled.value - mean.value) < 0.05
    assert "within-fold risk ranks" in r.definition["intervals"]
    assert r.folds["null_model_fallbacks"] == [w for w in r.warnings if "null model" in w]


def test_kaplan_meier_reference_beside_ibs():
    time = np.array([2.0, 3.0, 3.0, 5.0, 8.0, 9.0])
    event = np.array([True, True, False, True, False, True])
    # by hand: S(2) = 5/6, S(3) = 5/6 * 4/5, S(5) = that * 2/3, S(9) = 0
    s2, s3 = 5 / 6, 5 / 6 * 4 / 5
    s5 = s3 * 2 / 3
    expected = [1.0, s2, s3, s3, s5, s5, 0.0]
    assert kaplan_meier_at(time, event, np.array([1.0, 2.0, 3.0, 4.0, 5.0, 8.5, 9.0])) == pytest.approx(
        expected
    )
    cohort, z = make_cohort()
    r = evaluate_survival(cohort, embed(cohort, z, signal=True), config=SurvivalConfig(bootstrap=FAST))
    assert r.metrics["ibs"].value < r.metrics["ibs_km"].value  # the model beats knowing nobody's risk
    assert "ibs_km" in r.folds["metric_range"] and "Kaplan-Meier" in r.definition["baselines"]
    # Uno's C, time-dependent AUC and IBS carry patient-bootstrap intervals
    for key in ("uno_c", "auc_30d", "auc_90d", "auc_365d", "ibs", "ibs_km"):
        m = r.metrics[key]
        assert m.low is not None and m.low <= m.value <= m.high, key
    assert "patient bootstrap within each fold" in r.definition["intervals"]


def test_calibration_at_the_horizon():
    cohort, z = make_cohort()
    config = SurvivalConfig(bootstrap=FAST, ipcw_resamples=0)
    r = evaluate_survival(cohort, embed(cohort, z, signal=True), config=config)
    units = r.units
    assert units["status_known"].all()  # MIMIC-III-format data: everyone followed to the horizon
    p, y = units["risk_at_horizon"].to_numpy(), units["event"].to_numpy(bool)
    assert ((p > 0) & (p < 1)).all()
    assert r.metrics["brier_horizon"].value == pytest.approx(np.mean((p - y) ** 2))
    for key in ("brier_horizon", "calibration_intercept_horizon", "calibration_slope_horizon"):
        m = r.metrics[key]
        assert m.low is not None and m.low <= m.value <= m.high, key
    assert 0.3 < r.metrics["calibration_slope_horizon"].value < 3.0
    assert "1 - S(horizon)" in r.definition["calibration"]
