"""The data behind the report's curves, read from a task's per-unit out-of-fold outputs.

The tasks compute the metrics; these are the pictures of the same rows (recall at every k, ROC and
calibration points, Kaplan-Meier curves by risk group), so a figure never disagrees with the table.
Survival curves and the log-rank test come from scikit-survival, ROC and calibration from scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# The recall units name the rank of the best-ranked other note of the same patient (patient@k) this way
# when the recall task records it (issue 15); runs written before have only the next note's rank.
PATIENT_RANK = "patient_rank"
TERTILES = ("low risk", "middle risk", "high risk")


def recall_curves(units: pd.DataFrame, max_k: int = 50) -> pd.DataFrame:
    """next@k (and patient@k where recorded) with chance, for k = 1..max_k, one row per k."""
    k = np.arange(1, max_k + 1)
    rank = units["rank"].to_numpy(dtype=float)
    pool = units["pool_size"].to_numpy(dtype=float)
    curves = pd.DataFrame({"k": k})
    curves["next"] = [float(np.mean(rank <= i)) if len(rank) else np.nan for i in k]
    curves["chance"] = [float(np.mean(np.minimum(i, pool) / pool)) if len(pool) else np.nan for i in k]
    if PATIENT_RANK in units.columns:
        patient = units[PATIENT_RANK].to_numpy(dtype=float)  # NaN: no other note of the patient in the pool
        curves["patient"] = [float(np.mean(patient <= i)) if len(patient) else np.nan for i in k]
    return curves


def diagnosis_labels(units: pd.DataFrame) -> list[str]:
    """Labels with out-of-fold probabilities, most prevalent first (ties by name)."""
    labels = sorted(c[3:] for c in units.columns if c.startswith("p::"))
    prevalence = {label: float(units[f"y::{label}"].mean()) for label in labels}
    return sorted(labels, key=lambda label: (-prevalence[label], label))


def roc_points(units: pd.DataFrame, label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(false positive rate, true positive rate) of one label, or None where it has one class only."""
    from sklearn.metrics import roc_curve

    y = units[f"y::{label}"].to_numpy(dtype=bool)
    if y.all() or not y.any():
        return None
    fpr, tpr, _ = roc_curve(y, units[f"p::{label}"].to_numpy(dtype=float))
    return fpr, tpr


def calibration_points(
    units: pd.DataFrame, label: str, bins: int = 10
) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean predicted probability, observed share) in quantile bins of one label's predictions."""
    from sklearn.calibration import calibration_curve

    y = units[f"y::{label}"].to_numpy(dtype=bool)
    if y.all() or not y.any():
        return None
    observed, predicted = calibration_curve(
        y, units[f"p::{label}"].to_numpy(dtype=float), n_bins=min(bins, len(y)), strategy="quantile"
    )
    return predicted, observed


@dataclass
class RiskGroups:
    """Kaplan-Meier curves of risk tertiles and the log-rank test between them."""

    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # group -> (days, survival probability)
    sizes: dict[str, int]
    events: dict[str, int]
    chisq: float
    dof: int
    pvalue: float


def risk_tertiles(units: pd.DataFrame) -> pd.Series:
    """Each patient's tertile of predicted risk, cut within their own fold where folds are recorded.

    Out-of-fold risks come from a different model per fold and need not share a scale, so tertiles are
    taken inside each fold and then pooled.
    """
    folds = units["fold"] if "fold" in units.columns else pd.Series(0, index=units.index)
    out = pd.Series(index=units.index, dtype=object)
    for _, rows in units.groupby(folds.to_numpy()):
        ranks = rows["risk"].rank(method="first")
        out[rows.index] = pd.qcut(ranks, 3, labels=list(TERTILES)).astype(str)
    return out


def kaplan_meier_by_risk(units: pd.DataFrame) -> RiskGroups | None:
    """Kaplan-Meier curve per risk tertile with the log-rank test; None with too few patients or events."""
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator
    from sksurv.util import Surv

    if len(units) < 6 or not units["event"].any():
        return None
    group = risk_tertiles(units)
    event = units["event"].to_numpy(dtype=bool)
    time = units["time"].to_numpy(dtype=float)
    curves, sizes, events = {}, {}, {}
    for name in TERTILES:
        mine = (group == name).to_numpy()
        days, survival = kaplan_meier_estimator(event[mine], time[mine])
        curves[name] = (np.concatenate([[0.0], days]), np.concatenate([[1.0], survival]))
        sizes[name], events[name] = int(mine.sum()), int(event[mine].sum())
    chisq, pvalue = compare_survival(Surv.from_arrays(event, time), group.to_numpy())
    return RiskGroups(curves, sizes, events, float(chisq), len(TERTILES) - 1, float(pvalue))
