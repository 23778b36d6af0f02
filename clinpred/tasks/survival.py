"""Survival analysis: do the notes of a patient's first hours predict death within a year?

Landmark definition (DESIGN.md rule 3), stated in every result: time origin = the first admission's
ADMITTIME; features = the notes charted before origin + window (48 h); event = death (patients.dod)
within the horizon (365 days). Patients whose outcome is known inside the window (died, or censored) are
excluded and counted, and no note charted after the window enters the features.

Censoring is one rule for every patient, whatever their outcome: follow-up ends at the horizon or at
the end of the source's death records, whichever is first, and a patient without a recorded death by
then is censored there. Death records are a registry linkage, not the hospital's contact with the
patient, so a survivor who never came back is followed as long as one who died: censoring survivors at
their last contact while following the dead to their death would make censoring depend on the outcome.
MIMIC-III's DOD includes the Social Security death index (DOD_SSN), years after discharge: follow-up
is the whole horizon. MIMIC-IV records out-of-hospital deaths only up to one year after the patient's
last discharge: follow-up ends there (after the horizon unless the horizon exceeds a year).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from clinpred.bounds import (
    MAX_COUNT,
    MAX_DAYS,
    MAX_DIMENSIONS,
    MAX_FOLDS,
    MAX_HOURS,
    MAX_ITERATIONS,
    MAX_LEARNING_RATE,
    MAX_RESAMPLES,
    MAX_SEED,
)
from clinpred.data.categories import is_discharge_summary
from clinpred.data.cohort import Cohort
from clinpred.data.splits import patient_folds
from clinpred.errors import InputError
from clinpred.parallel import map_chunks
from clinpred.tasks.aggregate import AggregationMethod, aggregate
from clinpred.tasks.diagnosis_metrics import calibration_columns
from clinpred.tasks.result import BootstrapScheme, Estimate, TaskResult, bootstrap_metrics
from clinpred.tasks.subgroups import SubgroupConfig, subgroup_metrics
from clinpred.tasks.survival_metrics import ResampledFold, fold_metrics, harrell_c, step_lookup

DAY = pd.Timedelta(days=1)

# Days after the last discharge through which each source records out-of-hospital deaths (None: no limit).
DEATH_RECORDS_DAYS: dict[str, float | None] = {"mimic3": None, "mimic4": 365.0}
FOLLOW_UP = {
    "mimic3": "DOD includes the Social Security death index (out-of-hospital deaths, years after discharge): "
    "every patient is followed to the horizon",
    "mimic4": "DOD records out-of-hospital deaths up to one year after the last discharge: follow-up ends at "
    "the horizon or last discharge + 365 days, whichever is first",
    # a MEDS or OMOP extract does not say how long its death records run after discharge (a MIMIC-IV
    # conversion keeps MIMIC-IV's one year): said, so that a reader can judge the censoring
    "meds": "deaths are the dataset's MEDS_DEATH events; how long after discharge they are recorded is not "
    "stated by MEDS, so every patient is followed to the horizon (a MIMIC-IV conversion records one year)",
    "omop": "deaths are the DEATH table's; every patient is followed to the horizon (OBSERVATION_PERIOD ends "
    "are counted in data check, not used as censoring)",
}


class SurvivalConfig(BaseModel):
    """Every setting of the survival task; the result records all of them."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    window_hours: float = Field(48.0, gt=0, le=MAX_HOURS)
    horizon_days: float = Field(365.0, gt=0, le=MAX_DAYS)
    date_only_notes: Literal["whole_day_inside", "exclude"] = "whole_day_inside"
    include_discharge_summaries: bool = False  # True relaxes the leakage guard
    aggregation: AggregationMethod = "mean"
    last_k: int = Field(5, ge=1, le=MAX_COUNT)
    half_life_days: float = Field(30.0, gt=0, le=MAX_DAYS)
    # fitted on the training fold only; None: no PCA
    pca_components: int | None = Field(32, ge=1, le=MAX_DIMENSIONS)
    model: Literal["coxnet", "random_survival_forest", "gradient_boosting"] = "coxnet"
    l1_ratio: float = Field(0.5, gt=0.0, le=1.0)
    n_alphas: int = Field(30, ge=2, le=MAX_COUNT)
    alpha_min_ratio: float = Field(0.01, gt=0.0, lt=1.0)
    inner_folds: int = Field(3, ge=2, le=MAX_FOLDS)  # inner CV (Harrell's C) that picks the Coxnet penalty
    n_estimators: int = Field(100, ge=1, le=MAX_ITERATIONS)  # forests and boosting
    min_samples_leaf: int = Field(10, ge=1, le=MAX_COUNT)
    learning_rate: float = Field(0.1, gt=0, le=MAX_LEARNING_RATE)
    n_folds: int = Field(5, ge=2, le=MAX_FOLDS)
    auc_times_days: list[Annotated[float, Field(gt=0, le=MAX_DAYS)]] = Field(
        default_factory=lambda: [30.0, 90.0, 365.0], max_length=1000
    )
    uno_tau_days: float | None = Field(None, gt=0, le=MAX_DAYS)  # None: the horizon
    ibs_points: int = Field(20, ge=2, le=MAX_COUNT)
    # patient bootstrap of uno_c, auc_*, ibs (each resample re-runs scikit-survival's IPCW estimators)
    ipcw_resamples: int = Field(200, ge=0, le=MAX_RESAMPLES)
    bootstrap: BootstrapScheme = Field(default_factory=BootstrapScheme)
    subgroups: SubgroupConfig = Field(default_factory=SubgroupConfig)
    seed: int = Field(0, ge=0, le=MAX_SEED)


def within_fold_ranks(risk: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Each risk as its percentile rank among its fold's patients.

    Each fold's risks come from a separately fitted model, on its own scale; a pair of patients from
    two folds is only comparable once both scores are put on the same scale, the rank within the fold.
    Average ranks of ties, divided by the fold's number of risks (pandas' grouped ``rank(pct=True)``: a
    NaN risk keeps NaN and is not counted); the ranks are whole or half numbers, so the floats are exact.
    """
    from scipy.stats import rankdata

    risk = np.asarray(risk, dtype=float)
    out = np.full(len(risk), np.nan)
    for f in np.unique(fold):
        rows = np.flatnonzero((fold == f) & ~np.isnan(risk))
        out[rows] = rankdata(risk[rows], method="average") / len(rows)
    return out


def metrics_from_units(units: pd.DataFrame) -> dict[str, float]:
    """Harrell's C pooled over folds on within-fold risk ranks (the headline), and the mean of the
    per-fold C (each fold's own model, its own patients) beside it."""
    time = units["time"].to_numpy(float)
    event = units["event"].to_numpy(bool)
    risk = units["risk"].to_numpy(float)
    if "fold" not in units:  # units written before folds were recorded
        return {"harrell_c": harrell_c(time, event, risk)}
    fold = units["fold"].to_numpy()
    out = _pooled_and_fold_c(time, event, risk, fold, within_fold_ranks(risk, fold))
    if "risk_at_horizon" in units:
        known = units["status_known"].to_numpy(bool)
        out.update(_horizon_calibration(event[known], units["risk_at_horizon"].to_numpy(float)[known]))
    return out


def _pooled_and_fold_c(time, event, risk, fold, ranks) -> dict[str, float]:
    per_fold = np.array(
        [harrell_c(time[fold == f], event[fold == f], risk[fold == f]) for f in np.unique(fold)]
    )
    finite = per_fold[np.isfinite(per_fold)]
    return {
        "harrell_c": harrell_c(time, event, ranks),
        "harrell_c_fold_mean": float(finite.mean()) if len(finite) else float("nan"),
    }


def _columns(units: pd.DataFrame, extra: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """time, event, risk and the ``extra`` columns, taken out of ``units`` once for the bootstrap; None
    for units written before those columns were recorded (each resample then reads the DataFrame)."""
    if not set(extra) <= set(units.columns):
        return None
    return {
        "time": units["time"].to_numpy(float),
        "event": units["event"].to_numpy(bool),
        "risk": units["risk"].to_numpy(float),
        **{name: units[name].to_numpy() for name in extra},
    }


def _metrics_on_resampled_rows(units: pd.DataFrame, row_sets: list[np.ndarray]) -> list[dict[str, float]]:
    """``metrics_from_units`` of ``units.iloc[rows]`` for each of ``row_sets``, from arrays taken out once
    (the same numbers: tests/test_survival.py compares every metric with the DataFrame path's)."""
    c = _columns(units, ("fold", "risk_at_horizon", "status_known"))
    if c is None:
        return [metrics_from_units(units.iloc[rows]) for rows in row_sets]
    known = c["status_known"].astype(bool)
    at_horizon = c["risk_at_horizon"].astype(float)
    out = []
    for rows in row_sets:
        time, event, risk, fold = c["time"][rows], c["event"][rows], c["risk"][rows], c["fold"][rows]
        metrics = _pooled_and_fold_c(time, event, risk, fold, within_fold_ranks(risk, fold))
        k = known[rows]
        metrics.update(_horizon_calibration(event[k], at_horizon[rows][k]))
        out.append(metrics)
    return out


metrics_from_units.on_resampled_rows = _metrics_on_resampled_rows  # type: ignore[attr-defined]


def harrell_c_from_units(units: pd.DataFrame) -> dict[str, float]:
    """The headline alone (what subgroups bootstrap): pooled Harrell's C on within-fold ranks."""
    time, event, risk = (units[c].to_numpy() for c in ("time", "event", "risk"))
    if "fold" in units:
        risk = within_fold_ranks(risk, units["fold"].to_numpy())
    return {"harrell_c": harrell_c(time.astype(float), event.astype(bool), risk.astype(float))}


def _c_on_resampled_rows(units: pd.DataFrame, row_sets: list[np.ndarray]) -> list[dict[str, float]]:
    """``harrell_c_from_units`` for each of ``row_sets``, from arrays taken out once."""
    c = _columns(units, ("fold",))
    if c is None:
        return [harrell_c_from_units(units.iloc[rows]) for rows in row_sets]
    return [
        {"harrell_c": harrell_c(c["time"][r], c["event"][r], within_fold_ranks(c["risk"][r], c["fold"][r]))}
        for r in row_sets
    ]


harrell_c_from_units.on_resampled_rows = _c_on_resampled_rows  # type: ignore[attr-defined]


def _horizon_calibration(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Brier score and calibration intercept/slope of the predicted risk of death by the horizon
    (``p``), among the patients whose status at the horizon is known (``y``: dead by then; known means
    dead by then or followed to it: everyone, under the follow-up rule, unless the horizon outlasts a
    source's death records)."""
    if not len(y):
        return dict.fromkeys(
            ("brier_horizon", "calibration_intercept_horizon", "calibration_slope_horizon"), np.nan
        )
    cal = calibration_columns(y[:, None], p[:, None])
    return {
        f"{name}_horizon": float(cal[name][0])
        for name in ("brier", "calibration_intercept", "calibration_slope")
    }


def follow_up_days(cohort: Cohort, origin: pd.Series, horizon: float) -> pd.Series:
    """Per patient, days from origin to the end of follow-up: the horizon, or the end of the source's
    death records if earlier. The same rule for every patient, whether or not they died."""
    limit = DEATH_RECORDS_DAYS.get(cohort.source)
    end = pd.Series(float(horizon), index=origin.index)
    if limit is None:
        return end
    last_discharge = cohort.admissions.groupby("subject_id")["dischtime"].max().reindex(origin.index)
    records_end = (last_discharge + pd.Timedelta(days=limit) - origin) / DAY
    return end.where(~(records_end < end), records_end)


def outcomes(cohort: Cohort, config: SurvivalConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per patient: origin, time (days from origin), event, and why a patient is excluded.

    Death dates are date-only: a death counts at 00:00 of its DOD, so a patient whose DOD falls on the
    day the window ends is excluded (their death may lie inside it). Every patient is followed to the
    same end (``follow_up_days``); a death after it is not an event and the patient is censored there.
    """
    ids = cohort.subject_ids
    origin = cohort.admissions.groupby("subject_id")["admittime"].min().reindex(ids)
    dod = cohort.patients.set_index("subject_id")["dod"].reindex(ids)
    horizon = config.horizon_days
    death_days = (dod - origin) / DAY
    end_days = follow_up_days(cohort, origin, horizon)
    event = (death_days <= end_days).fillna(False).to_numpy(bool)
    time = np.where(event, death_days, end_days)
    frame = pd.DataFrame({"subject_id": ids, "origin": origin.to_numpy(), "time": time, "event": event})
    window = config.window_hours / 24.0
    no_adm = origin.isna().to_numpy()
    died_in = ~no_adm & event & (time <= window)
    censored_in = ~no_adm & ~event & ~(time > window)
    frame["excluded"] = np.select(
        [no_adm, died_in, censored_in], ["no_admission", "died_in_window", "censored_in_window"], ""
    )
    counts = {
        "patients_in_cohort": len(ids),
        "excluded_no_admission": int(no_adm.sum()),
        "excluded_died_in_window": int(died_in.sum()),
        "excluded_censored_in_window": int(censored_in.sum()),
        "follow_up_shorter_than_horizon": int((~no_adm & (end_days.to_numpy() < horizon)).sum()),
    }
    return frame, counts


def feature_notes(cohort: Cohort, origins: pd.Series, config: SurvivalConfig) -> np.ndarray:
    """Boolean mask over cohort.notes: charted before origin + window, by the stated rules.

    A timed note counts if its time < window end. A date-only note counts only if its whole day lies
    before the window end (``whole_day_inside``), or never (``exclude``). Notes before the origin (e.g.
    outpatient reports) count: they were written before the landmark.
    """
    notes = cohort.notes
    end = notes["subject_id"].map(origins) + pd.Timedelta(hours=config.window_hours)
    date_only = notes["time_is_date"].to_numpy(bool)
    timed_ok = (notes["time"] < end).to_numpy(bool)
    day_ok = (notes["time"].dt.normalize() + DAY <= end).to_numpy(bool)
    if config.date_only_notes == "exclude":
        day_ok = np.zeros(len(notes), dtype=bool)
    keep = np.where(date_only, day_ok, timed_ok) & end.notna().to_numpy()
    if not config.include_discharge_summaries:
        keep &= ~is_discharge_summary(notes["category"])
    return keep


def _reduce(x_train: np.ndarray, x_test: np.ndarray, config: SurvivalConfig) -> tuple[np.ndarray, np.ndarray]:
    """Standardise, then PCA, both fitted on the training fold only."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    if config.pca_components is not None:
        n = min(config.pca_components, x_train.shape[1], x_train.shape[0] - 1)
        pca = PCA(n_components=n, random_state=config.seed).fit(x_train)
        x_train, x_test = pca.transform(x_train), pca.transform(x_test)
    return x_train, x_test


def _coxnet_alpha(x: np.ndarray, y: np.ndarray, alphas: np.ndarray, config: SurvivalConfig) -> float:
    """The penalty with the best mean inner-CV Harrell's C along the training fold's alpha path."""
    from sklearn.model_selection import StratifiedKFold
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    inner = StratifiedKFold(n_splits=config.inner_folds, shuffle=True, random_state=config.seed)
    scores = np.full((config.inner_folds, len(alphas)), np.nan)
    for f, (a, b) in enumerate(inner.split(x, y["event"])):
        model = CoxnetSurvivalAnalysis(l1_ratio=config.l1_ratio, alphas=alphas)
        try:
            model.fit(x[a], y[a])
        except ArithmeticError:  # the path diverged for this split: leave its scores out
            continue
        for k, alpha in enumerate(alphas):
            scores[f, k] = harrell_c(y["time"][b], y["event"][b], model.predict(x[b], alpha=alpha))
    mean = np.nanmean(np.where(np.isnan(scores).all(axis=0), -np.inf, scores), axis=0)
    return float(alphas[int(np.argmax(mean))])


def _non_null_alpha(model: object, alpha: float) -> tuple[float, bool]:
    """The chosen penalty, or the next smaller one on the path whose model has a coefficient.

    A penalty that zeroes every coefficient gives every patient the same risk: a null model whose C is
    0.5 by construction, not a measurement of the embeddings. Returns the penalty and whether it moved.
    """
    alphas = np.asarray(model.alphas_)
    coef = np.asarray(model.coef_)
    k = int(np.argmin(np.abs(alphas - alpha)))
    for j in range(k, len(alphas)):  # alphas_ decrease along the path
        if np.any(coef[:, j] != 0):
            return float(alphas[j]), j != k
    return alpha, False


def _fit_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, config: SurvivalConfig
) -> tuple[np.ndarray, object, float | None, str | None]:
    """Risk scores of the test fold, a function giving survival probabilities at times, the chosen alpha,
    and a note when the chosen penalty gave a null model."""
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    if config.model == "coxnet":
        model = CoxnetSurvivalAnalysis(
            l1_ratio=config.l1_ratio,
            n_alphas=config.n_alphas,
            alpha_min_ratio=config.alpha_min_ratio,
            fit_baseline_model=True,
        ).fit(x_train, y_train)
        chosen = _coxnet_alpha(x_train, y_train, model.alphas_, config)
        alpha, moved = _non_null_alpha(model, chosen)
        note = None
        if moved:
            note = (
                f"penalty {chosen:.4g} (best inner-CV C) gave a null model (no coefficient): "
                f"used the next penalty with one, {alpha:.4g}"
            )
        elif not np.any(np.asarray(model.coef_)[:, int(np.argmin(np.abs(model.alphas_ - alpha)))]):
            note = "every penalty on the path gave a null model: constant risk, C = 0.5 by construction"
        risk = model.predict(x_test, alpha=alpha)

        def survival_at(times: np.ndarray) -> np.ndarray:
            return np.vstack([fn(times) for fn in model.predict_survival_function(x_test, alpha=alpha)])

        return np.asarray(risk, dtype=float), survival_at, alpha, note
    if config.model == "random_survival_forest":
        model = RandomSurvivalForest(
            n_estimators=config.n_estimators,
            min_samples_leaf=config.min_samples_leaf,
            random_state=config.seed,
            n_jobs=1,
        ).fit(x_train, y_train)
    else:
        model = GradientBoostingSurvivalAnalysis(
            n_estimators=config.n_estimators,
            learning_rate=config.learning_rate,
            min_samples_leaf=config.min_samples_leaf,
            random_state=config.seed,
        ).fit(x_train, y_train)
    risk = model.predict(x_test)

    def survival_at(times: np.ndarray) -> np.ndarray:
        return np.vstack([fn(times) for fn in model.predict_survival_function(x_test)])

    return np.asarray(risk, dtype=float), survival_at, None, None


def _ipcw_resamples(
    picks: list[list[np.ndarray]], fold_inputs: list[tuple], tau: float, config: SurvivalConfig
) -> list[dict[str, list[float]]]:
    """For each resample, each metric's values over the folds where it could be evaluated."""
    folds = [
        ResampledFold(
            train_time, train_event, tau=tau, auc_times=config.auc_times_days, ibs_points=config.ibs_points
        )
        for train_time, train_event, *_ in fold_inputs
    ]
    out = []
    for fold_picks in picks:
        per_key: dict[str, list[float]] = {}
        for pick, fold, (_, _, test_time, test_event, risk, lookup) in zip(
            fold_picks, folds, fold_inputs, strict=True
        ):
            try:
                values = fold.metrics(
                    test_time[pick],
                    test_event[pick],
                    risk[pick],
                    lambda times, pick=pick, lookup=lookup: lookup(times, pick),
                )
            except ValueError:  # scikit-survival would refuse this resample (e.g. no usable follow-up)
                continue
            for key, value in values.items():
                per_key.setdefault(key, []).append(value)
        out.append(per_key)
    return out


def _ipcw_intervals(fold_inputs: list[tuple], tau: float, config: SurvivalConfig, n: int) -> dict:
    """Patient-bootstrap intervals of the fold-averaged Uno's C, time-dependent AUC and IBS.

    Each resample draws each fold's test patients with replacement (every patient is scored in exactly
    one fold) and keeps each fold's fitted model and training censoring distribution: the interval is
    the spread from which patients were scored, as for Harrell's C. A resample in which a fold's metric
    cannot be evaluated (no event before a time) leaves that fold out of that metric's mean, as the
    point estimate does.
    """
    n_units = sum(len(inputs[2]) for inputs in fold_inputs)
    rng = np.random.default_rng(config.bootstrap.seed)
    # drawn up front, in the order a loop would draw them, so the processes that score them do not matter
    picks = [
        [rng.integers(0, len(inputs[2]), size=len(inputs[2])) for inputs in fold_inputs] for _ in range(n)
    ]
    draws: dict[str, list[float]] = {}
    for per_key in map_chunks(_ipcw_resamples, picks, fold_inputs, tau, config, cost_each=n_units):
        for key, values in per_key.items():
            draws.setdefault(key, []).append(float(np.mean(values)))
    tail = (1.0 - config.bootstrap.confidence) / 2.0
    return {
        key: (float(np.quantile(v, tail)), float(np.quantile(v, 1.0 - tail)))
        for key, v in draws.items()
        if len(v) >= 2
    }


def evaluate_survival(
    cohort: Cohort, embeddings: np.ndarray, *, config: SurvivalConfig | None = None
) -> TaskResult:
    """Cross-validated survival prediction from the notes of the landmark window."""
    from sksurv.util import Surv

    config = config or SurvivalConfig()
    if len(embeddings) != len(cohort.notes):
        raise ValueError(f"{len(embeddings)} embedding rows for {len(cohort.notes)} notes")
    frame, counts = outcomes(cohort, config)
    keep = feature_notes(cohort, frame.set_index("subject_id")["origin"], config)
    eligible = frame[frame["excluded"] == ""].reset_index(drop=True)
    features, has_notes = aggregate(
        cohort.notes.drop(columns="text")[keep],  # filtering the text would copy it (GBs at MIMIC size)
        embeddings,
        eligible["subject_id"].to_numpy(),
        method=config.aggregation,
        k=config.last_k,
        half_life_days=config.half_life_days,
        rows_of=keep,  # read in place: no copy of the kept rows
    )
    counts["excluded_no_feature_notes"] = int((~has_notes).sum())
    units = eligible.loc[has_notes, ["subject_id", "time", "event"]].reset_index(drop=True)
    features = features[has_notes]
    in_units = cohort.notes["subject_id"].isin(set(units["subject_id"].tolist())).to_numpy()
    events = int(units["event"].sum())
    counts.update(
        {
            "patients": len(units),
            "events": events,
            "censored": len(units) - events,
            "notes_used": int((keep & in_units).sum()),
            "notes_after_window_unused": int((~keep & in_units).sum()),
        }
    )
    if len(units) < config.n_folds or events < config.n_folds or len(units) - events < config.n_folds:
        raise InputError(
            f"survival: {len(units)} eligible patients with {events} events; n_folds={config.n_folds} needs "
            "at least that many events and survivors: use a larger cohort or a longer horizon_days"
        )

    ids = units["subject_id"].to_numpy()
    folds = patient_folds(ids, config.n_folds, seed=config.seed, strata=units["event"].to_numpy(int))
    fold_of = np.empty(len(units), dtype=np.int64)
    for i, (_, test) in enumerate(folds):
        fold_of[np.isin(ids, test)] = i
    y = Surv.from_arrays(event=units["event"].to_numpy(bool), time=units["time"].to_numpy(float))
    risk = np.full(len(units), np.nan)
    at_horizon = np.full(len(units), np.nan)  # predicted risk of death by the horizon
    tau = config.uno_tau_days if config.uno_tau_days is not None else config.horizon_days
    per_fold: list[dict[str, float]] = []
    used_times: list[dict[str, float]] = []
    fold_inputs: list[tuple] = []  # what each fold's IPCW metrics need, for their bootstrap
    alphas: list[float | None] = []
    null_models: list[str] = []
    # many small fits: multi-threaded BLAS only adds contention on a busy machine
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(config.n_folds):
            train, test = fold_of != i, fold_of == i
            x_train, x_test = _reduce(features[train], features[test], config)
            risk[test], survival_at, alpha, note = _fit_predict(x_train, y[train], x_test, config)
            alphas.append(alpha)
            if note is not None:
                null_models.append(f"fold {i}: {note}")
            knots = np.unique(y["time"][train])
            lookup = step_lookup(survival_at, knots)
            at_horizon[test] = 1.0 - lookup(np.array([config.horizon_days]))[:, 0]
            fold_inputs.append(
                (y["time"][train], y["event"][train], y["time"][test], y["event"][test], risk[test], lookup)
            )
            values, used = fold_metrics(
                y["time"][train],
                y["event"][train],
                y["time"][test],
                y["event"][test],
                risk[test],
                lookup,
                tau=tau,
                auc_times=config.auc_times_days,
                ibs_points=config.ibs_points,
            )
            values["harrell_c"] = harrell_c(y["time"][test], y["event"][test], risk[test])
            per_fold.append(values)
            used_times.append(used)

    units["risk"] = risk
    units["risk_at_horizon"] = at_horizon
    units["status_known"] = units["event"].to_numpy(bool) | (
        units["time"].to_numpy(float) >= config.horizon_days
    )
    units["fold"] = fold_of
    metrics = bootstrap_metrics(units, metrics_from_units, config.bootstrap)
    warnings: list[str] = list(null_models)
    fold_keys = ["uno_c", *[f"auc_{t:g}d" for t in config.auc_times_days], "ibs", "ibs_km"]
    c_folds = [v["harrell_c"] for v in per_fold if np.isfinite(v["harrell_c"])]
    ranges: dict[str, list[float]] = (
        {"harrell_c": [float(min(c_folds)), float(max(c_folds))]} if c_folds else {}
    )
    for key in fold_keys:
        values = [v[key] for v in per_fold if key in v]
        if len(values) < config.n_folds:
            warnings.append(
                f"{key}: evaluable in {len(values)} of {config.n_folds} folds (follow-up or events)"
            )
        if values:
            metrics[key] = Estimate(value=float(np.mean(values)))
            ranges[key] = [float(min(values)), float(max(values))]
    n_ipcw = config.ipcw_resamples if config.bootstrap.intervals else 0  # the recorded opt-out covers these
    for key, (low, high) in _ipcw_intervals(fold_inputs, tau, config, n_ipcw).items():
        if key in metrics:
            metrics[key] = metrics[key].model_copy(update={"low": low, "high": high})
    definition = {
        **config.model_dump(),
        "time_origin": "ADMITTIME of the patient's first admission",
        "features": (
            f"{config.aggregation} of notes charted before origin + {config.window_hours:g} h; date-only notes: "
            + (
                "only if their whole day lies before the window end"
                if config.date_only_notes == "whole_day_inside"
                else "excluded"
            )
            + ("" if config.include_discharge_summaries else "; discharge summaries excluded")
        ),
        "event": f"death (patients.dod, counted at 00:00 of that date) within {config.horizon_days:g} days",
        "censoring": (
            "one rule for every patient: censored at the end of follow-up (the horizon, or the end of the "
            "source's death records if earlier) unless a death is recorded before it"
        ),
        "follow_up": FOLLOW_UP.get(cohort.source, "every patient is followed to the horizon"),
        "exclusions": "no admission; died or censored inside the feature window; no feature note",
        "relaxations": ["include_discharge_summaries"] if config.include_discharge_summaries else [],
        "uno_tau_days": tau,
        "intervals": (
            "harrell_c: pooled over folds on within-fold risk ranks (each fold's model has its own scale), "
            "patient bootstrap; harrell_c_fold_mean: mean of the per-fold C, patient bootstrap, range over "
            "folds in folds.metric_range; uno_c, auc_*, ibs, ibs_km: mean over folds (each fold scored with "
            "its training fold's censoring distribution), patient bootstrap within each fold with the "
            "fitted models and censoring distributions kept (ipcw_resamples); range in folds.metric_range"
        ),
        "calibration": (
            "at the horizon, on the predicted risk of death by then (1 - S(horizon)) of patients whose status "
            "at the horizon is known: Brier score, calibration intercept (in the large; 0 is calibrated) and "
            "slope (1 is calibrated), patient bootstrap"
        ),
        "baselines": "ibs_km: the integrated Brier score of the training fold's Kaplan-Meier curve, the same "
        "for every patient (a model with a higher ibs is worse than knowing nobody's risk)",
        "null_models": "a Coxnet penalty that zeroes every coefficient is refused: the next smaller one is used",
        "coxnet_alpha_chosen": alphas if config.model == "coxnet" else [],
    }
    result = TaskResult(
        task="survival",
        main_metric="harrell_c",
        definition=definition,
        counts=counts,
        folds={
            "n_splits": config.n_folds,
            "grouped_by": "subject_id",
            "stratified_by": "event",
            "seed": config.seed,
            "patients_per_fold": [len(test) for _, test in folds],
            "events_per_fold": [int(units["event"][fold_of == i].sum()) for i in range(config.n_folds)],
            "per_fold_metrics": per_fold,
            "metric_range": ranges,
            "null_model_fallbacks": null_models,
            "evaluation_times": used_times,
        },
        metrics=metrics,
        bootstrap=config.bootstrap,
        warnings=warnings,
    ).with_units(units)
    result.subgroups = subgroup_metrics(
        cohort, units, harrell_c_from_units, "harrell_c", config.bootstrap, config.subgroups
    )
    return result
