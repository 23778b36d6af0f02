"""The survival bootstrap's IPCW metrics (``ResampledFold``) equal scikit-survival's, to the last bit.

``fold_metrics`` calls scikit-survival's concordance_index_ipcw, cumulative_dynamic_auc and
integrated_brier_score; ``ResampledFold`` fits the training fold's censoring distribution once and
repeats their arithmetic. Every resample below must give the same dict, or both must refuse it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from clinpred.tasks.survival_metrics import ResampledFold, fold_metrics, step_lookup

AUC_TIMES = [30.0, 90.0, 180.0, 365.0]


def _fold(rng, n_train, n_test, *, days, event_rate, risk_levels=None, zero_times=0):
    """A training and a test fold, with a survival table of the test patients over the training times."""
    horizon = 400.0

    def times(n):
        t = rng.exponential(150.0, size=n).clip(0.5, horizon)
        return np.round(t) if days else t

    train_time, test_time = times(n_train), times(n_test)
    test_time[:zero_times] = 0.0
    train_event = rng.random(n_train) < event_rate
    test_event = rng.random(n_test) < event_rate
    risk = rng.normal(size=n_test)
    if risk_levels:
        risk = np.round(risk * risk_levels) / risk_levels  # tied risks
    knots = np.unique(train_time)
    hazard = np.exp(risk)[:, None] / 300.0

    def survival_at(at):
        return np.exp(-hazard * np.asarray(at, dtype=float)[None, :])

    return train_time, train_event, test_time, test_event, risk, step_lookup(survival_at, knots)


def _outcome(call):
    try:
        return call()
    except ValueError as error:
        return f"refused ({type(error).__name__})"


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def _compare(fold, resamples, rng, *, tau=365.0, auc_times=AUC_TIMES, ibs_points=40):
    train_time, train_event, test_time, test_event, risk, lookup = fold
    fast = ResampledFold(train_time, train_event, tau=tau, auc_times=auc_times, ibs_points=ibs_points)
    outcomes = []
    for _ in range(resamples):
        pick = rng.integers(0, len(test_time), size=len(test_time))

        def survival_at(times, pick=pick):
            return lookup(times, pick)

        args = (test_time[pick], test_event[pick], risk[pick], survival_at)
        ours = _outcome(lambda args=args: fast.metrics(*args))
        theirs = _outcome(
            lambda args=args: fold_metrics(
                train_time, train_event, *args, tau=tau, auc_times=auc_times, ibs_points=ibs_points
            )[0]
        )
        assert _same(ours, theirs), (ours, theirs)
        outcomes.append(ours)
    return outcomes


@pytest.mark.parametrize(
    ("n_train", "n_test", "days", "event_rate", "risk_levels", "zero_times"),
    [
        (400, 100, False, 0.3, None, 0),  # continuous times, distinct risks
        (400, 100, True, 0.4, 4, 0),  # whole days and rounded risks: ties everywhere
        (200, 60, True, 0.15, 2, 3),  # few events, follow-up of zero days
        (120, 200, True, 0.5, None, 0),  # a test fold larger than the training fold
    ],
)
def test_resamples_equal_scikit_survival_to_the_last_bit(
    n_train, n_test, days, event_rate, risk_levels, zero_times
):
    rng = np.random.default_rng(n_train + n_test)
    fold = _fold(
        rng, n_train, n_test, days=days, event_rate=event_rate, risk_levels=risk_levels, zero_times=zero_times
    )
    outcomes = _compare(fold, 40, rng)
    assert sum(isinstance(o, dict) and "uno_c" in o and "ibs" in o for o in outcomes) >= 30  # not all refused


def test_small_folds_are_refused_where_scikit_survival_refuses_them():
    """Six test patients with rare events: many resamples have no event, or none before a time."""
    rng = np.random.default_rng(7)
    refused = 0
    for _ in range(30):
        fold = _fold(rng, 30, 6, days=True, event_rate=0.25, risk_levels=2)
        refused += sum(isinstance(o, str) for o in _compare(fold, 10, rng, tau=120.0))
    assert refused > 0  # the refusals were met, and matched


def test_a_short_tau_and_times_beyond_follow_up():
    rng = np.random.default_rng(3)
    fold = _fold(rng, 300, 80, days=True, event_rate=0.3)
    _compare(fold, 25, rng, tau=20.0, auc_times=[5.0, 30.0, 1000.0, 5000.0], ibs_points=2)


def test_two_auc_times_that_meet_below_the_end_of_follow_up_are_refused_by_both():
    """Both AUC times fall between t_end's guard and t_end: scikit-survival returns one AUC for two keys."""
    train_time = np.array([10.0, 20.0, 30.0, 40.0, 100.0, 60.0])
    train_event = np.array([True, False, True, False, False, True])
    test_time = np.array([5.0, 15.0, 25.0, 50.0, 120.0, 70.0])
    test_event = np.array([True, True, False, True, False, True])
    risk = np.array([3.0, 2.0, 1.0, 0.5, 0.1, 0.2])
    fast = ResampledFold(train_time, train_event, tau=365.0, auc_times=[100.0, 99.99995], ibs_points=5)

    def survival_at(times):
        return np.tile(np.linspace(1.0, 0.5, len(times)), (len(test_time), 1))

    args = (test_time, test_event, risk, survival_at)
    theirs = _outcome(
        lambda: fold_metrics(
            train_time, train_event, *args, tau=365.0, auc_times=[100.0, 99.99995], ibs_points=5
        )[0]
    )
    assert theirs.startswith("refused")
    assert _outcome(lambda: fast.metrics(*args)) == theirs


@pytest.mark.parametrize("damage", ["nan risk", "negative time", "no training event"])
def test_inputs_outside_the_repeated_arithmetic_go_through_scikit_survival(damage):
    rng = np.random.default_rng(11)
    train_time, train_event, test_time, test_event, risk, lookup = _fold(
        rng, 200, 50, days=True, event_rate=0.3
    )
    if damage == "nan risk":
        risk[3] = np.nan
    elif damage == "negative time":
        test_time[2] = -1.0
    else:
        train_event[:] = False
    _compare((train_time, train_event, test_time, test_event, risk, lookup), 5, rng)
