"""Survival metrics: a fast Harrell's C for the patient bootstrap, and per-fold IPCW metrics.

scikit-survival's ``concordance_index_censored`` loops in Python over event times, which is slow when a
bootstrap recomputes it a thousand times on tens of thousands of patients. ``harrell_c`` counts the same
pairs (scikit-survival's convention, exact risk ties) by processing patients in blocks of decreasing
follow-up: a sorted array of the later patients' risks answers each block's queries by binary search.

``fold_metrics`` gives a fold's IPCW metrics through scikit-survival's own functions (the point
estimates). Their bootstrap keeps each fold's training censoring distribution, which those functions
refit, with every input check, on each call: ``ResampledFold`` fits it once per fold and computes each
resample's metrics from it with the functions' own operations, to the last bit (tests/test_survival_ipcw.py).
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

    return curve_at(kaplan_meier_estimator(np.asarray(event, dtype=bool), np.asarray(time, dtype=float)), at)


def curve_at(curve: tuple[np.ndarray, np.ndarray], at: np.ndarray) -> np.ndarray:
    """A survival curve given as (times, survival) at the times ``at``: 1 before its first time."""
    times, survival = curve
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


def auc_evaluation_times(
    time: np.ndarray, event: np.ndarray, auc_times: list[float], lo: float, t_end: float, below_end: float
) -> dict[str, float]:
    """Each requested AUC time that this test fold can evaluate (``auc_<t>d`` -> the time used): inside
    the follow-up, with a case by then and a control after it; one at ``t_end`` is taken just below it."""
    evaluable = {}
    for t in auc_times:
        if t > t_end or t < lo:
            continue
        t_eval = min(t, below_end)
        if (event & (time <= t_eval)).any() and (time > t_eval).any():
            evaluable[f"auc_{t:g}d"] = t_eval
    return evaluable


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
    evaluable = auc_evaluation_times(trunc_time, trunc_event, auc_times, lo, t_end, below_end)
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


class ResampledFold:
    """``fold_metrics`` of resamples of one fold's test patients, the training fold fixed.

    The training fold's censoring distribution (scikit-survival's ``CensoringDistributionEstimator``) and
    Kaplan-Meier curve are fitted once; each resample's Uno's C, cumulative/dynamic AUC and integrated
    Brier scores repeat scikit-survival's arithmetic in the same order, and a resample raises
    ``ValueError`` exactly where one of its functions would (the caller then leaves the fold out of
    that resample). Inputs outside what is repeated here (a training fold without events, negative or
    non-finite times, non-finite predictions, fewer than two patients) go through ``fold_metrics``.
    """

    def __init__(
        self,
        train_time: np.ndarray,
        train_event: np.ndarray,
        *,
        tau: float,
        auc_times: list[float],
        ibs_points: int,
    ) -> None:
        from sksurv.nonparametric import CensoringDistributionEstimator, kaplan_meier_estimator
        from sksurv.util import Surv

        self.train_time = np.asarray(train_time, dtype=float)
        self.train_event = np.asarray(train_event, dtype=bool)
        self.tau, self.auc_times, self.ibs_points = tau, list(auc_times), ibs_points
        self.censoring = None  # None: every resample through fold_metrics
        if (
            len(self.train_time) >= 2
            and self.train_event.any()
            and np.isfinite(self.train_time).all()
            and (self.train_time >= 0).all()
        ):
            train = Surv.from_arrays(event=self.train_event, time=self.train_time)
            self.censoring = CensoringDistributionEstimator().fit(train)
            self.km = kaplan_meier_estimator(self.train_event, self.train_time)

    def metrics(
        self, test_time: np.ndarray, test_event: np.ndarray, risk: np.ndarray, survival_at: object
    ) -> dict[str, float]:
        """The metrics ``fold_metrics`` would give for these test patients (its first return value)."""
        test_time = np.asarray(test_time, dtype=float)
        test_event = np.asarray(test_event, dtype=bool)
        risk = np.asarray(risk, dtype=float)
        if (
            self.censoring is None
            or len(test_time) < 2
            or not np.isfinite(test_time).all()
            or (test_time < 0).any()
            or not np.isfinite(risk).all()
        ):
            return self._through_sksurv(test_time, test_event, risk, survival_at)
        t_end = float(min(self.train_time.max(), test_time.max()))
        time = np.minimum(test_time, t_end)
        event = test_event & (test_time < t_end)
        below_end = t_end - min(1e-3, t_end * 1e-6)
        out: dict[str, float] = {}
        tau_fold = min(self.tau, t_end)
        if event[time < tau_fold].any():
            out["uno_c"] = self._uno_c(time, event, risk, tau_fold)
        lo = float(max(time.min(), self.train_time.min()))
        evaluable = auc_evaluation_times(time, event, self.auc_times, lo, t_end, below_end)
        if evaluable:
            aucs = self._dynamic_auc(time, event, risk, list(evaluable.values()))
            if len(aucs) != len(evaluable):  # repeated times: fold_metrics's zip(strict=True) raises
                raise ValueError("cumulative_dynamic_auc gave fewer AUCs than times")
            for key, auc in zip(evaluable, aucs, strict=True):
                out[key] = float(auc)
        if below_end > lo:
            grid = np.linspace(lo, below_end, self.ibs_points)
            predicted = survival_at(grid)
            if not np.isfinite(predicted).all():
                return self._through_sksurv(test_time, test_event, risk, survival_at)
            weights = self._brier_weights(time, event, grid)
            out["ibs"] = self._integrated_brier(time, event, predicted, weights)
            km = curve_at(self.km, grid)
            out["ibs_km"] = self._integrated_brier(time, event, np.broadcast_to(km, predicted.shape), weights)
        return out

    def _through_sksurv(self, test_time, test_event, risk, survival_at) -> dict[str, float]:
        return fold_metrics(
            self.train_time,
            self.train_event,
            test_time,
            test_event,
            risk,
            survival_at,
            tau=self.tau,
            auc_times=self.auc_times,
            ibs_points=self.ibs_points,
        )[0]

    def _ipcw(self, time: np.ndarray, event: np.ndarray) -> np.ndarray:
        """``CensoringDistributionEstimator.predict_ipcw``: 1 / G(t) for events, 0 for the censored."""
        g = self.censoring.predict_proba(time[event])
        if (g == 0.0).any():
            raise ValueError("censoring survival function is zero at one or more time points")
        weights = np.zeros(time.shape[0])
        weights[event] = 1.0 / g
        return weights

    def _uno_c(
        self, time: np.ndarray, event: np.ndarray, risk: np.ndarray, tau: float, tied_tol=1e-8
    ) -> float:
        """``concordance_index_ipcw(train, test, risk, tau)[0]``: its event-by-event sums, in its order."""
        below = time < tau
        ipcw = np.zeros(len(time))
        ipcw[below] = self._ipcw(time[below], event[below])
        w_all = np.square(ipcw)
        order = np.argsort(time)  # the same sort as scikit-survival's, so the same order of ties
        t, e, r, w = time[order], event[order], risk[order], w_all[order]
        n = len(t)
        starts = np.r_[0, np.flatnonzero(t[1:] != t[:-1]) + 1]
        ends = np.r_[starts[1:], n]
        group = np.repeat(np.arange(len(starts)), ends - starts)
        start, end = starts[group], ends[group]
        rows = np.flatnonzero(e & (start < n - 1))  # its loop stops before a tie group starting last
        if not len(rows):
            raise ValueError("Data has no comparable pairs, cannot estimate concordance index.")
        n_con = np.empty(len(rows), dtype=np.int64)
        n_ties = np.empty(len(rows), dtype=np.int64)
        n_pairs = np.empty(len(rows), dtype=np.int64)
        position = np.arange(n)
        for a in range(0, len(rows), 1024):  # events in blocks: memory stays len(block) x n
            j = rows[a : a + 1024]
            comparable = (position[None, :] >= end[j][:, None]) | (
                (position[None, :] >= start[j][:, None]) & (position[None, :] < end[j][:, None]) & ~e[None, :]
            )
            tied = np.absolute(r[None, :] - r[j][:, None]) <= tied_tol
            n_ties[a : a + 1024] = (comparable & tied).sum(axis=1)
            n_con[a : a + 1024] = (comparable & ~tied & (r[None, :] < r[j][:, None])).sum(axis=1)
            n_pairs[a : a + 1024] = comparable.sum(axis=1)
        w_i = w[rows]
        numerator = np.cumsum(w_i * n_con + 0.5 * w_i * n_ties)[-1]  # sequential, as its += loop
        denominator = np.cumsum(w_i * n_pairs)[-1]
        return float(numerator / denominator)

    def _dynamic_auc(self, time, event, risk, times, tied_tol=1e-8) -> np.ndarray:
        """``cumulative_dynamic_auc(train, test, risk, times)[0]``, its checks and array steps as written."""
        times = np.unique(np.atleast_1d(np.asarray(times, dtype=float)))
        if times.max() >= time.max() or times.min() < time.min():
            raise ValueError("all times must be within follow-up time of test data")
        n_samples, n_times = risk.shape[0], times.shape[0]
        estimate = np.broadcast_to(risk[:, np.newaxis], (n_samples, n_times))
        ipcw = self._ipcw(time, event)
        time_2d = np.broadcast_to(time[:, np.newaxis], (n_samples, n_times))
        event_2d = np.broadcast_to(event[:, np.newaxis], (n_samples, n_times))
        times_2d = np.broadcast_to(times, (n_samples, n_times))
        ipcw = np.broadcast_to(ipcw[:, np.newaxis], (n_samples, n_times))
        o = np.argsort(-estimate, axis=0)
        time_2d = np.take_along_axis(time_2d, o, axis=0)
        event_2d = np.take_along_axis(event_2d, o, axis=0)
        estimate = np.take_along_axis(estimate, o, axis=0)
        ipcw = np.take_along_axis(ipcw, o, axis=0)
        is_case = (time_2d <= times_2d) & event_2d
        is_control = time_2d > times_2d
        n_controls = is_control.sum(axis=0)
        estimate_diff = np.concatenate((np.broadcast_to(np.inf, (1, n_times)), estimate))
        is_tied = np.absolute(np.diff(estimate_diff, axis=0)) <= tied_tol
        cumsum_tp = np.cumsum(is_case * ipcw, axis=0)
        cumsum_fp = np.cumsum(is_control, axis=0)
        true_pos = cumsum_tp / cumsum_tp[-1]
        false_pos = cumsum_fp / n_controls
        scores = np.empty(n_times, dtype=float)
        for i in range(n_times):
            idx = np.flatnonzero(is_tied[:, i]) - 1  # only the last of tied risks keeps its point
            tp = np.r_[0, np.delete(true_pos[:, i], idx)]
            fp = np.r_[0, np.delete(false_pos[:, i], idx)]
            scores[i] = np.trapezoid(tp, fp)
        return scores

    def _brier_weights(self, time: np.ndarray, event: np.ndarray, grid: np.ndarray) -> tuple:
        """What ``brier_score`` takes from the censoring distribution, after its checks of the times."""
        if not event.any():
            raise ValueError("all samples are censored")
        times = np.unique(grid)
        if times.max() >= time.max() or times.min() < time.min():
            raise ValueError("all times must be within follow-up time of test data")
        if times.shape[0] != grid.shape[0]:
            raise ValueError("expected an estimate column per time")
        if times.shape[0] < 2:
            raise ValueError("At least two time points must be given")
        at_t = self.censoring.predict_proba(times)
        at_t[at_t == 0] = np.inf
        at_y = self.censoring.predict_proba(time)
        at_y[at_y == 0] = np.inf
        return times, at_t, at_y

    @staticmethod
    def _integrated_brier(time, event, estimate, weights) -> float:
        """``integrated_brier_score``: each time's mean over patients, then the trapezoid."""
        times, at_t, at_y = weights
        scores = np.empty(times.shape[0], dtype=float)
        for i, t in enumerate(times):
            est = estimate[:, i]
            is_case = (time <= t) & event
            is_control = time > t
            scores[i] = np.mean(
                np.square(est) * is_case.astype(int) / at_y
                + np.square(1.0 - est) * is_control.astype(int) / at_t[i]
            )
        return float(np.trapezoid(scores, times) / (times[-1] - times[0]))
