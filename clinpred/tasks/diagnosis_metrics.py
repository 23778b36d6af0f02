"""Multi-label ranking metrics computed from out-of-fold predictions, fast enough to bootstrap.

The patient bootstrap recomputes every metric on each of ~1000 resamples for every label, so AUROC is
rank-based and vectorised over labels (ties get average ranks, which is the Mann-Whitney AUROC), and
average precision follows scikit-learn's step definition (tied scores form one threshold).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auroc_columns(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each column (NaN where a column has only one class). ``y`` boolean, same shape."""
    y = np.asarray(y, dtype=bool)
    ranks = rankdata(scores, axis=0, method="average")
    n_pos = y.sum(axis=0).astype(float)
    n_neg = y.shape[0] - n_pos
    rank_sum = np.where(y, ranks, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one label: mean over positives of the precision at their score threshold."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    s, t = np.asarray(scores, dtype=float)[order], y[order]
    tp = np.cumsum(t)
    # every item shares the counts at the end of its tie group (one threshold per distinct score)
    last_of_group = np.r_[s[1:] != s[:-1], True]
    end = np.flatnonzero(last_of_group)
    group_end = end[np.searchsorted(end, np.arange(len(s)))]
    precision = tp[group_end] / (group_end + 1)
    return float(precision[t].sum() / n_pos)
