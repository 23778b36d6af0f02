"""Survival metrics: a fast Harrell's C for the patient bootstrap, and per-fold IPCW metrics.

scikit-survival's ``concordance_index_censored`` loops in Python over event times, which is slow when a
bootstrap recomputes it a thousand times on tens of thousands of patients. ``harrell_c`` counts the same
pairs (scikit-survival's convention, exact risk ties) by processing patients in blocks of decreasing
follow-up: a sorted array of the later patients' risks answers each block's queries by binary search.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C: among comparable pairs, the share where the earlier event has the higher risk.

    A pair (i, j) is comparable when i has an event and j is followed longer (t_j > t_i), or as long
    but censored (t_j == t_i, no event). Tied risks count one half. NaN when no pair is comparable.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    n = len(time)
    if n < 2 or not event.any():
        return float("nan")
    # key (time, censored): j is comparable to event i exactly when key_j > key_i
    order = np.lexsort((~event, time))[::-1]  # decreasing key
    t, e, r = time[order], event[order], risk[order]
    new_key = np.r_[True, (t[1:] != t[:-1]) | (e[1:] != e[:-1])]
    key_rank = np.cumsum(new_key)  # 1 for the largest key, increasing as keys decrease
    group_starts = np.flatnonzero(new_key)
    block = max(64, int(np.sqrt(n)))
    # cut blocks only where the key changes, so every earlier block holds strictly larger keys
    cuts = [0]
    for s in group_starts[1:]:
        if s - cuts[-1] >= block:
            cuts.append(int(s))
    cuts.append(n)
    seen = np.empty(0)
    numerator = 0.0
    denominator = 0.0
    for a, b in pairwise(cuts):
        ev = np.flatnonzero(e[a:b]) + a
        if len(ev):
            ri = r[ev]
            below = np.searchsorted(seen, ri, side="left")
            ties = np.searchsorted(seen, ri, side="right") - below
            numerator += below.sum() + 0.5 * ties.sum()
            denominator += len(seen) * len(ev)
            later = key_rank[a:b][None, :] < key_rank[ev][:, None]  # inside the block: strictly larger key
            rb = r[a:b][None, :]
            numerator += ((rb < ri[:, None]) & later).sum() + 0.5 * ((rb == ri[:, None]) & later).sum()
            denominator += later.sum()
        chunk = np.sort(r[a:b])
        seen = np.insert(seen, np.searchsorted(seen, chunk), chunk)
    return float(numerator / denominator) if denominator else float("nan")


def kaplan_meier_at(time: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The Kaplan-Meier survival curve of (time, event) at the times ``at`` (a step function, 1 before
    the first event): the reference a model's Brier score must beat, the same for every patient."""
    from sksurv.nonparametric import kaplan_meier_estimator

    times, survival = kaplan_meier_estimator(np.asarray(event, dtype=bool), np.asarray(time, dtype=float))
    index = np.searchsorted(times, at, side="right") - 1
    return np.where(index >= 0, survival[np.clip(index, 0, None)], 1.0)


def step_lookup(survival_at: object, knots: np.ndarray) -> object:
    """Survival probabilities of the test patients as a table over the model's step points, so that a
    bootstrap can evaluate any subset of patients at any times without refitting or re-predicting.

    Every scikit-survival survival function used here is a step function that changes only at training
    times (``knots``), so looking up the last knot at or before t is exact for t in the knots' range.
    """
    table = survival_at(knots)

    def at(times: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        index = np.searchsorted(knots, times, side="right") - 1
        return np.where(index >= 0, table[rows][:, np.clip(index, 0, None)], 1.0)

    return at


def fold_metrics(
    train_time: np.ndarray,
    train_event: np.ndarray,
    test_time: np.ndarray,
    test_event: np.ndarray,
    risk: np.ndarray,
    survival_at: object,
    *,
    tau: float,
    auc_times: list[float],
    ibs_points: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """Uno's C, cumulative/dynamic AUC and the integrated Brier score of one test fold.

    IPCW metrics need the censoring distribution of the training fold, and scikit-survival needs
    every time strictly inside the test follow-up and within the training follow-up. The usable end
    ``t_end`` is the smaller of the last training and last test time; test follow-up is truncated there
    (which changes nothing for evaluation times before it). A requested time beyond ``t_end`` is not
    evaluated; one at ``t_end`` (the horizon, typically) is evaluated just below it.
    ``survival_at(times)`` gives the predicted survival probabilities of the test patients at ``times``.
    Returns the metrics and the effective times and bounds used.
    """
    from sksurv.metrics import concordance_index_ipcw, cumulative_dynamic_auc, integrated_brier_score
    from sksurv.util import Surv

    t_end = float(min(train_time.max(), test_time.max()))
    trunc_time = np.minimum(test_time, t_end)
    trunc_event = test_event & (test_time < t_end)
    train = Surv.from_arrays(event=train_event, time=train_time)
    test = Surv.from_arrays(event=trunc_event, time=trunc_time)
    below_end = t_end - min(1e-3, t_end * 1e-6)
    out: dict[str, float] = {}
    used: dict[str, float] = {"t_end": t_end}
    tau_fold = min(tau, t_end)
    used["uno_tau"] = tau_fold
    if trunc_event[trunc_time < tau_fold].any():
        out["uno_c"] = float(concordance_index_ipcw(train, test, risk, tau=tau_fold)[0])
    lo = float(max(trunc_time.min(), train_time.min()))
    evaluable = {}
    for t in auc_times:
        if t > t_end or t < lo:
            continue
        t_eval = min(t, below_end)
        cases = trunc_event & (trunc_time <= t_eval)
        if cases.any() and (trunc_time > t_eval).any():
            evaluable[f"auc_{t:g}d"] = t_eval
    if evaluable:  # one call for every time: each time's AUC is computed on its own
        aucs = cumulative_dynamic_auc(train, test, risk, list(evaluable.values()))[0]
        for (key, t_eval), auc in zip(evaluable.items(), aucs, strict=True):
            out[key] = float(auc)
            used[key] = t_eval
    if below_end > lo:
        grid = np.linspace(lo, below_end, ibs_points)
        out["ibs"] = float(integrated_brier_score(train, test, survival_at(grid), grid))
        km = np.tile(kaplan_meier_at(train_time, train_event, grid), (len(test_time), 1))
        out["ibs_km"] = float(integrated_brier_score(train, test, km, grid))
        used["ibs_from"], used["ibs_to"] = lo, float(grid[-1])
    return out, used
