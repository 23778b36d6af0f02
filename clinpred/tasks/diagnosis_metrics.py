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


def average_precision_columns(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of each column: mean over positives of the precision at their score threshold.

    Tied scores form one threshold (scikit-learn's definition). NaN where a column has no positive.
    """
    y = np.asarray(y, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    n = y.shape[0]
    order = np.argsort(-scores, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    t = np.take_along_axis(y, order, axis=0)
    tp = np.cumsum(t, axis=0)
    # every item shares the counts at the end of its tie group: the next index where the score changes
    last = np.ones_like(t)
    last[:-1] = s[1:] != s[:-1]
    idx = np.where(last, np.arange(n)[:, None], n - 1)
    group_end = np.minimum.accumulate(idx[::-1], axis=0)[::-1]
    precision = np.take_along_axis(tp, group_end, axis=0) / (group_end + 1)
    n_pos = t.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(t, precision, 0.0).sum(axis=0) / n_pos
    return np.where(n_pos > 0, ap, np.nan)


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one label (see ``average_precision_columns``)."""
    return float(average_precision_columns(np.asarray(y)[:, None], np.asarray(scores)[:, None])[0])
