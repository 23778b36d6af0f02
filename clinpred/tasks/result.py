"""What every task returns: its definition, counts, fold scheme, metrics with patient-bootstrap intervals.

A task also keeps its per-unit, out-of-fold outputs (``units``: one row per query, patient or admission,
always with a ``subject_id`` column). Each metric is a function of those rows, so the same function
gives the point estimate, the bootstrap interval (patients resampled with replacement, DESIGN.md rule
5) and, in the report, paired differences between two backends scored on the same patients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from clinpred.bounds import MAX_RESAMPLES, MAX_SEED
from clinpred.parallel import map_chunks

MetricFn = Callable[[pd.DataFrame], dict[str, float]]


class Estimate(BaseModel):
    """A number with its bootstrap 95% interval (``low``/``high`` are None where none can be drawn).

    An undefined value (e.g. a calibration slope where predictions separate the classes) is NaN, and
    results.json writes it as NaN so that the file reads back (JSON null would not be a float).
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    value: float
    low: float | None = None
    high: float | None = None

    def __str__(self) -> str:
        fmt = ".1f" if abs(self.value) >= 10 else ".3f"  # counts such as pool sizes, or scores in [0, 1]
        if self.low is None or self.high is None or self.low == self.high == self.value:
            return f"{self.value:{fmt}}"
        return f"{self.value:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"


class BootstrapScheme(BaseModel):
    """How intervals were drawn: patients resampled with replacement."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    n_resamples: int = Field(1000, ge=0, le=MAX_RESAMPLES)
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    intervals: bool = True  # False: the explicit, recorded opt-out that n_resamples = 0 requires

    @model_validator(mode="after")
    def _intervals_are_opted_out_explicitly(self) -> BootstrapScheme:
        if self.intervals and self.n_resamples == 0:
            raise ValueError(
                "n_resamples = 0 would drop every interval; set intervals = false as well to run without "
                "them (the results record it)"
            )
        if not self.intervals and self.n_resamples:
            raise ValueError("intervals = false draws no resamples: set n_resamples = 0 too")
        return self


class TaskResult(BaseModel):
    """One task's honest number: everything needed to read it, nothing that identifies a note."""

    task: str  # "recall", "diagnosis", "survival", "geometry"
    main_metric: str  # the headline key of ``metrics``
    definition: dict[str, Any]  # every setting, including each relaxation of a leakage-safe default
    counts: dict[str, Any]  # patients, notes, queries, positives per label, events, exclusions
    folds: dict[str, Any] = Field(default_factory=dict)  # the fold scheme (grouped by patient), or {}
    metrics: dict[str, Estimate]
    per_label: dict[str, dict[str, Estimate]] = Field(default_factory=dict)  # label -> metric -> value
    bootstrap: BootstrapScheme
    warnings: list[str] = Field(default_factory=list)  # labels dropped, folds without events, ...
    subgroups: dict[str, Any] = Field(
        default_factory=dict
    )  # main metric by sex and age band (tasks/subgroups.py)
    _units: pd.DataFrame | None = PrivateAttr(default=None)

    @property
    def units(self) -> pd.DataFrame | None:
        """Per-unit out-of-fold outputs behind the metrics (written beside results.json, not in it)."""
        return self._units

    def with_units(self, units: pd.DataFrame) -> TaskResult:
        """Attach the per-unit outputs; returns self."""
        self._units = units
        return self


class PatientRows(NamedTuple):
    """Each patient's row positions, kept as one permutation of the rows with per-patient slices, so a
    resample's rows are gathered in a few array operations (a Python loop over 1,000 drawn patients per
    resample cost more than some metrics)."""

    patients: np.ndarray  # unique subject ids, sorted
    order: np.ndarray  # row positions grouped by patient (stable within a patient)
    starts: np.ndarray  # where each patient's positions begin in ``order``
    lengths: np.ndarray  # how many rows each patient has

    def of(self, pick: np.ndarray) -> np.ndarray:
        """Row positions of the drawn patients (with repeats), all of each patient's rows taken, in the
        order drawn."""
        lengths = self.lengths[pick]
        total = int(lengths.sum())
        if not total:
            return np.array([], dtype=np.int64)
        # position k of the output is row (starts[patient] + k - where that patient's block begins)
        block_start = np.cumsum(lengths) - lengths
        offsets = np.arange(total) + np.repeat(self.starts[pick] - block_start, lengths)
        return self.order[offsets]


def _patient_rows(subject_ids: np.ndarray) -> PatientRows:
    """Unique patients and, for each, the row positions that belong to them."""
    order = np.argsort(subject_ids, kind="stable")
    patients, starts, lengths = np.unique(subject_ids[order], return_index=True, return_counts=True)
    return PatientRows(patients, order, starts, lengths)


def _interval(
    draws: list[dict[str, float]], key: str, confidence: float
) -> tuple[float | None, float | None]:
    values = np.array([d.get(key, np.nan) for d in draws], dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None, None
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def bootstrap_metrics(
    units: pd.DataFrame, metric_fn: MetricFn, scheme: BootstrapScheme
) -> dict[str, Estimate]:
    """Point estimates from all rows, intervals from resampling patients (``units.subject_id``).

    A resample where a metric is undefined (e.g. one class only) yields NaN for it and is left out of
    that metric's interval.
    """
    point = metric_fn(units)
    rows = _patient_rows(units["subject_id"].to_numpy())
    picks = _draw_patients(len(rows.patients), scheme)
    draws = map_chunks(_metrics_of_resamples, picks, units, rows, metric_fn, cost_each=len(units))
    return _estimates(point, draws, scheme.confidence)


def _draw_patients(n_patients: int, scheme: BootstrapScheme) -> list[np.ndarray]:
    """The resamples, drawn up front: patient positions with replacement, one array per resample."""
    rng = np.random.default_rng(scheme.seed)
    return [rng.integers(0, n_patients, size=n_patients) for _ in range(scheme.n_resamples)]


def _metrics_of_resamples(
    picks: list[np.ndarray], units: pd.DataFrame, rows: PatientRows, metric_fn: MetricFn
) -> list[dict[str, float]]:
    """``metric_fn`` on each resample's rows. A metric function may carry ``on_resampled_rows(units,
    row_sets)``: the same metrics for many row selections at once, from arrays taken out of ``units``
    once (diagnosis: selecting rows of a wide DataFrame per resample was a fifth of its bootstrap)."""
    row_sets = [rows.of(pick) for pick in picks]
    on_rows = getattr(metric_fn, "on_resampled_rows", None)
    if on_rows is not None:
        return on_rows(units, row_sets)
    return [metric_fn(units.iloc[r]) for r in row_sets]


def _difference(ma: dict[str, float], mb: dict[str, float]) -> dict[str, float]:
    return {k: ma[k] - mb[k] for k in ma if k in mb}


def without_intervals(estimates: dict[str, Estimate], keys: tuple[str, ...]) -> dict[str, Estimate]:
    """The same estimates, those named in ``keys`` as bare values.

    Counts (queries, pool sizes) and chance levels describe the test, they do not measure the model: an
    interval on them reads as uncertainty that is not there. The metric functions still compute them
    on every resample, because the other metrics need them.
    """
    return {k: Estimate(value=e.value) if k in keys else e for k, e in estimates.items()}


def _estimates(
    point: dict[str, float], draws: list[dict[str, float]], confidence: float
) -> dict[str, Estimate]:
    out = {}
    for key, value in point.items():
        low, high = _interval(draws, key, confidence)
        out[key] = Estimate(value=float(value), low=low, high=high)
    return out


def paired_difference(
    units_a: pd.DataFrame,
    units_b: pd.DataFrame,
    metric_fn: MetricFn,
    scheme: BootstrapScheme,
) -> dict[str, Estimate]:
    """Metric(a) - metric(b) on the patients both were scored on, with a paired patient bootstrap.

    The same resampled patients are used for both sides in each draw, so the interval reflects the
    difference between the backends, not the spread between patient samples.
    """
    return paired_difference_test(units_a, units_b, metric_fn, scheme)[0]


def bootstrap_p_value(draws: np.ndarray, observed: float) -> float | None:
    """Two-sided p-value of "no difference": the observed difference over its paired-bootstrap standard
    error, referred to the normal distribution (a bootstrap Wald test).

    Counting draws on the far side of zero cannot give less than 2 / (n + 1): with 1,000 resamples,
    0.002, above Holm's first threshold (0.05 / m) for any family of more than 25 comparisons, so no
    difference could ever survive the correction. The standard error has no such floor.
    """
    from scipy.stats import norm

    draws = draws[np.isfinite(draws)]
    if len(draws) < 2 or not np.isfinite(observed):
        return None
    se = float(np.std(draws, ddof=1))
    if se == 0.0:
        return 1.0 if observed == 0.0 else 0.0
    return float(2.0 * norm.sf(abs(observed) / se))


class ResampledSide(NamedTuple):
    """One side of a paired comparison: its metrics on all shared patients and on every resample."""

    point: dict[str, float]
    draws: list[dict[str, float]]


def resampled_side(
    units: pd.DataFrame, shared: np.ndarray, metric_fn: MetricFn, scheme: BootstrapScheme
) -> ResampledSide:
    """``units`` restricted to the ``shared`` patients (sorted, unique), scored whole and on each of
    ``scheme``'s resamples of those patients. Two sides computed on the same ``shared`` and ``scheme``
    draw the same patients, which is what makes their difference paired; so a side compared with several
    others (the reference backend) is computed once."""
    units = units[units["subject_id"].isin(shared)].reset_index(drop=True)
    rows = _patient_rows(units["subject_id"].to_numpy())
    assert np.array_equal(rows.patients, shared)
    point = metric_fn(units)
    picks = _draw_patients(len(rows.patients), scheme)
    draws = map_chunks(_metrics_of_resamples, picks, units, rows, metric_fn, cost_each=len(units))
    return ResampledSide(point, draws)


def shared_patients(units_a: pd.DataFrame, units_b: pd.DataFrame) -> np.ndarray:
    """The patients both sides were scored on, sorted."""
    return np.intersect1d(units_a["subject_id"].unique(), units_b["subject_id"].unique())


def difference_of_sides(
    a: ResampledSide, b: ResampledSide, confidence: float
) -> tuple[dict[str, Estimate], dict[str, float | None]]:
    """metric(a) - metric(b) with its paired interval and, per metric, the p-value of no difference."""
    point = _difference(a.point, b.point)
    draws = [_difference(da, db) for da, db in zip(a.draws, b.draws, strict=True)]
    p_values = {
        k: bootstrap_p_value(np.array([d.get(k, np.nan) for d in draws], dtype=float), float(point[k]))
        for k in point
    }
    return _estimates(point, draws, confidence), p_values


def paired_difference_test(
    units_a: pd.DataFrame,
    units_b: pd.DataFrame,
    metric_fn: MetricFn,
    scheme: BootstrapScheme,
) -> tuple[dict[str, Estimate], dict[str, float | None]]:
    """``paired_difference`` and, per metric, the bootstrap p-value of no difference."""
    shared = shared_patients(units_a, units_b)
    a = resampled_side(units_a, shared, metric_fn, scheme)
    b = resampled_side(units_b, shared, metric_fn, scheme)
    return difference_of_sides(a, b, scheme.confidence)
