"""Multi-label ranking metrics computed from out-of-fold predictions, fast enough to bootstrap.

The patient bootstrap recomputes every metric on each of ~1000 resamples for every label, so AUROC is
rank-based and vectorised over labels (ties get average ranks, which is the Mann-Whitney AUROC), and
average precision follows scikit-learn's step definition (tied scores form one threshold).
"""

from __future__ import annotations

import numpy as np


def auroc_columns(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each column (NaN where a column has only one class). ``y`` boolean, same shape."""
    from scipy.stats import rankdata  # here: scipy.stats is ~1 s of a command's start-up

    y = np.asarray(y, dtype=bool)
    ranks = rankdata(scores, axis=0, method="average")
    n_pos = y.sum(axis=0).astype(float)
    n_neg = y.shape[0] - n_pos
    rank_sum = np.where(y, ranks, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


class CountedAuroc:
    """AUROC of each column for many resamples of the same rows, each resample given as a count per row.

    The patient bootstrap scores ~1,000 resamples of one set of predictions, and ranking each resample
    again (``auroc_columns``) was most of its cost. Here the rows are sorted once; a resample's AUROC is
    the Mann-Whitney statistic of its counts summed over the tie groups of that order (a tie counts one
    half). Every sum is of whole counts and halves, exact in float64, so each AUROC is the one
    ``auroc_columns`` gives on the resample's rows, to the last bit.
    """

    def __init__(self, y: np.ndarray, scores: np.ndarray) -> None:
        y = np.asarray(y, dtype=bool)
        scores = np.asarray(scores, dtype=float)
        n, m = scores.shape
        self.order = np.argsort(scores, axis=0, kind="stable")
        ranked = np.take_along_axis(scores, self.order, axis=0)
        self.positive = np.take_along_axis(y, self.order, axis=0)
        new = np.ones((n, m), dtype=bool)
        new[1:] = ranked[1:] != ranked[:-1]
        per_column = new.sum(axis=0)
        self.first_group = np.concatenate([[0], np.cumsum(per_column)[:-1]]).astype(np.int64)
        # one id per tie group, numbered through the columns one after another
        self.group = (np.cumsum(new, axis=0) - 1 + self.first_group).ravel()
        self.column_of_group = np.repeat(np.arange(m), per_column)
        self.n_groups, self.m = int(per_column.sum()), m

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """AUROC of each column when row i is drawn ``counts[i]`` times (NaN: one class only)."""
        weight = np.asarray(counts, dtype=float)[self.order]
        pos = np.where(self.positive, weight, 0.0).ravel()
        neg = weight.ravel() - pos
        group_pos = np.bincount(self.group, weights=pos, minlength=self.n_groups)
        group_neg = np.bincount(self.group, weights=neg, minlength=self.n_groups)
        before = np.cumsum(group_neg) - group_neg  # negatives in earlier groups, earlier columns included
        below = before - before[self.first_group][self.column_of_group]
        u = np.bincount(self.column_of_group, weights=group_pos * (below + 0.5 * group_neg), minlength=self.m)
        n_pos = np.bincount(self.column_of_group, weights=group_pos, minlength=self.m)
        n_neg = np.bincount(self.column_of_group, weights=group_neg, minlength=self.m)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = u / (n_pos * n_neg)
        return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def counted_auroc_of_cells(pos: np.ndarray, neg: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of items grouped in cells that share one score: ``pos``/``neg`` items of each cell, its
    ``scores`` (equal scores are one tie group): each cell as a positive and a negative row of
    ``CountedAuroc``, drawn that many times, so exact in the same way."""
    pos, neg, scores = (np.asarray(a, dtype=float).ravel() for a in (pos, neg, scores))
    positive = np.r_[np.ones(len(pos), dtype=bool), np.zeros(len(neg), dtype=bool)]
    return float(CountedAuroc(positive[:, None], np.r_[scores, scores][:, None])(np.r_[pos, neg])[0])


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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def calibration_columns(y: np.ndarray, p: np.ndarray, iterations: int = 12) -> dict[str, np.ndarray]:
    """Per column: Brier score, calibration intercept (calibration-in-the-large: the logistic intercept
    with logit(p) as an offset) and calibration slope (logistic regression of y on logit(p)).

    Perfect calibration is intercept 0 and slope 1; a slope below 1 means predictions too extreme. Fitted
    by Newton's method on every column at once, because the patient bootstrap refits them for every
    label on every resample (a loop of scikit-learn fits would dominate the task's run time). NaN where
    a column has one class only, or where the fit does not converge (predictions that separate the
    classes perfectly have no finite slope).
    """
    from scipy.special import expit

    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    n, m = y.shape
    brier = np.mean((p - y) ** 2, axis=0) if n else np.full(m, np.nan)
    z = _logit(p)
    # intercept with offset z: one parameter per column
    a = np.zeros(m)
    for _ in range(iterations):
        mu = expit(a + z)
        grad = (y - mu).sum(axis=0)
        hess = (mu * (1 - mu)).sum(axis=0)
        step = np.divide(grad, hess, out=np.zeros(m), where=hess > 0)
        a = a + step
        if np.all(np.abs(step) <= 1e-10 * np.maximum(1.0, np.abs(a))):
            break
    # slope: two parameters per column (intercept, slope), Newton steps solved in closed form, each
    # column iterated until its step vanishes (most take a handful of steps; the bootstrap repeats this)
    b0, b1 = np.zeros(m), np.ones(m)
    last_step = np.full(m, np.inf)
    active = np.arange(m)
    for _ in range(iterations):
        za, ya = z[:, active], y[:, active]
        mu = expit(b0[active] + b1[active] * za)
        w = mu * (1 - mu)
        g0, g1 = (ya - mu).sum(axis=0), ((ya - mu) * za).sum(axis=0)
        h00, h01, h11 = w.sum(axis=0), (w * za).sum(axis=0), (w * za * za).sum(axis=0)
        det = h00 * h11 - h01**2
        ok = det > 1e-12
        safe = np.where(ok, det, 1.0)
        step0 = np.where(ok, (h11 * g0 - h01 * g1) / safe, 0.0)
        step1 = np.where(ok, (h00 * g1 - h01 * g0) / safe, 0.0)
        b0[active] += step0
        b1[active] += step1
        last_step[active] = step1
        moving = (np.abs(step0) > 1e-10 * np.maximum(1.0, np.abs(b0[active]))) | (
            np.abs(step1) > 1e-10 * np.maximum(1.0, np.abs(b1[active]))
        )
        active = active[moving]
        if not len(active):
            break
    converged = (np.abs(last_step) < 1e-6 * np.maximum(1.0, np.abs(b1))) & np.isfinite(b1)
    both = (y.sum(axis=0) > 0) & (y.sum(axis=0) < n)
    nan = np.full(m, np.nan)
    return {
        "brier": brier,
        "calibration_intercept": np.where(both, a, nan),
        "calibration_slope": np.where(both & converged, b1, nan),
    }
