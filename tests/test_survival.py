"""Survival analysis on constructed cohorts: signal, noise, exclusions, no late note, exact C-index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from clinpred.data.cohort import (
    ADMISSION_DTYPES,
    CORE_ADMISSION_COLUMNS,
    DIAGNOSIS_DTYPES,
    DISCHARGE_SUMMARY,
    NOTE_DTYPES,
    PATIENT_DTYPES,
    Cohort,
    conform,
)
from clinpred.errors import InputError
from clinpred.tasks.result import BootstrapScheme
from clinpred.tasks.survival import SurvivalConfig, evaluate_survival, metrics_from_units
from clinpred.tasks.survival_metrics import harrell_c

FAST = BootstrapScheme(n_resamples=200, seed=1)
DIM = 16
N_DIE_IN_WINDOW, N_LAST_SEEN_IN_WINDOW = 3, 2


def make_cohort(n: int = 240, seed: int = 0) -> tuple[Cohort, np.ndarray]:
    """Patients with a latent risk z: hazard grows with z. Returns the cohort and z per patient.

    Each patient: first admission at 10:00; timed notes at +1 h, +10 h, +30 h; date-only notes dated
    the admission day and the next day (inside the 48 h window), and the day after that (not wholly
    inside); a discharge summary at day 5; later notes at day 10 and at the censoring time.
    The first patients die inside the window; the next ones are last seen inside it (no death record,
    so on MIMIC-III-format data they are followed to the horizon like everyone else).
    """
    rng = np.random.default_rng(seed)
    notes, patients, admissions = [], [], []
    z = rng.normal(size=n)
    for s in range(1, n + 1):
        origin = pd.Timestamp("2150-01-01 10:00") + pd.Timedelta(days=int(rng.integers(0, 2000)))
        death = 3.0 + rng.exponential(500.0 / np.exp(1.3 * z[s - 1]))  # days after origin
        censor = rng.uniform(20, 700)
        if s <= N_DIE_IN_WINDOW:
            death = 0.8
        elif s <= N_DIE_IN_WINDOW + N_LAST_SEEN_IN_WINDOW:
            death, censor = np.inf, 1.0
        dod = (origin + pd.Timedelta(days=death)).normalize() if death < censor else pd.NaT
        end = min(death, censor)
        disch = origin + pd.Timedelta(days=min(5.0, end))
        patients.append((s, "M", origin - pd.Timedelta(days=25000), dod))
        admissions.append((s, s * 10, origin, disch, pd.NaT, 0))

        def note(kind: str, t: pd.Timestamp, date_only: bool, category: str = "Nursing", s: int = s) -> None:
            when = t.normalize() if date_only else t
            notes.append((f"{s}-{kind}", s, s * 10, when, date_only, category, kind, 1, "x"))

        for h in (1, 10, 30):
            note(f"h{h}", origin + pd.Timedelta(hours=h), False)
        note("d0", origin, True, "ECG")
        note("d1", origin + pd.Timedelta(days=1), True, "ECG")
        note("d2", origin + pd.Timedelta(days=2), True, "ECG")  # its day ends after the window
        if end > 5:
            note("ds", disch, True, DISCHARGE_SUMMARY)
        if end > 10:
            note("late10", origin + pd.Timedelta(days=10), False)
        if censor < death and censor > 2:
            note("last", origin + pd.Timedelta(days=censor), False)
    cohort = Cohort(
        notes=conform(pd.DataFrame(notes, columns=list(NOTE_DTYPES)), NOTE_DTYPES),
        patients=conform(pd.DataFrame(patients, columns=list(PATIENT_DTYPES)), PATIENT_DTYPES),
        admissions=conform(pd.DataFrame(admissions, columns=CORE_ADMISSION_COLUMNS), ADMISSION_DTYPES),
        diagnoses=conform(pd.DataFrame(columns=list(DIAGNOSIS_DTYPES)), DIAGNOSIS_DTYPES),
        source="mimic3",
        synthetic=True,
    )
    return cohort, z


def is_window_note(cohort: Cohort) -> np.ndarray:
    return cohort.notes["description"].isin(["h1", "h10", "h30", "d0", "d1"]).to_numpy()


def embed(cohort: Cohort, z: np.ndarray, *, signal: bool, seed: int = 0) -> np.ndarray:
    """Noise; with ``signal`` the window notes carry the latent risk in their first dimension."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(len(cohort.notes), DIM))
    if signal:
        zi = z[cohort.notes["subject_id"].to_numpy() - 1]
        emb[is_window_note(cohort), 0] += 2.0 * zi[is_window_note(cohort)]
    return emb.astype(np.float32)


@pytest.fixture(scope="module")
def cohort_z():
    return make_cohort()


@pytest.fixture(scope="module")
def signal_result(cohort_z):
    cohort, z = cohort_z
    return evaluate_survival(cohort, embed(cohort, z, signal=True), config=SurvivalConfig(bootstrap=FAST))


def test_signal_in_the_window_notes_gives_a_high_c_index(signal_result):
    r = signal_result
    assert r.task == "survival" and r.main_metric == "harrell_c"
    c = r.metrics["harrell_c"]
    assert c.value > 0.68 and c.low is not None and c.low > 0.6 and c.low <= c.value <= c.high
    assert r.metrics["uno_c"].value > 0.65
    assert r.metrics["auc_90d"].value > 0.65
    assert 0.0 < r.metrics["ibs"].value < 0.25
    assert "auc_365d" in r.metrics  # evaluated just below the horizon
    assert r.definition["uno_tau_days"] == 365.0 and r.definition["relaxations"] == []
    assert "one rule for every patient" in r.definition["censoring"]
    assert "Social Security" in r.definition["follow_up"]


def test_units_follow_the_stated_outcome_definition(cohort_z, signal_result):
    cohort, _ = cohort_z
    units = signal_result.units
    assert list(units.columns) == [
        "subject_id",
        "time",
        "event",
        "risk",
        "risk_at_horizon",
        "status_known",
        "fold",
    ]
    assert units["time"].max() <= 365.0 and units["time"].min() > 2.0
    origin = cohort.admissions.set_index("subject_id")["admittime"]
    dod = cohort.patients.set_index("subject_id")["dod"]
    for row in units.head(40).itertuples():
        death = (dod[row.subject_id] - origin[row.subject_id]) / pd.Timedelta(days=1)
        if row.event:
            assert row.time == pytest.approx(death)
        else:  # one rule: no death by the horizon, censored at the horizon, whenever last seen
            assert (pd.isna(death) or death > 365) and row.time == 365.0
    assert (units.groupby("subject_id").size() == 1).all()
    assert sorted(units["fold"].unique()) == [0, 1, 2, 3, 4]
    assert metrics_from_units(units)["harrell_c"] == pytest.approx(signal_result.metrics["harrell_c"].value)


def test_exclusions_and_notes_are_counted(cohort_z, signal_result):
    cohort, _ = cohort_z
    counts = signal_result.counts
    assert counts["excluded_died_in_window"] == N_DIE_IN_WINDOW
    # last seen inside the window, but the death records follow them to the horizon: not excluded
    assert counts["excluded_censored_in_window"] == 0
    assert counts["excluded_no_admission"] == 0 and counts["excluded_no_feature_notes"] == 0
    n = len(cohort.subject_ids) - N_DIE_IN_WINDOW
    assert counts["patients"] == n and counts["events"] + counts["censored"] == n
    # three timed notes and two date-only notes whose whole day is inside the window, per patient
    assert counts["notes_used"] == 5 * n
    assert signal_result.units["subject_id"].min() == N_DIE_IN_WINDOW + 1
    strict = evaluate_survival(
        cohort,
        embed(cohort, np.zeros(len(cohort.subject_ids)), signal=False),
        config=SurvivalConfig(
            date_only_notes="exclude", bootstrap=BootstrapScheme(n_resamples=0, intervals=False)
        ),
    )
    assert strict.counts["notes_used"] == 3 * n


def test_notes_after_the_window_cannot_change_the_result(cohort_z, signal_result):
    cohort, z = cohort_z
    emb = embed(cohort, z, signal=True)
    late = ~is_window_note(cohort)
    assert late.sum() > len(cohort.subject_ids)  # discharge summaries, day-2 notes, later notes
    changed = emb.copy()
    changed[late] = np.random.default_rng(9).normal(size=(int(late.sum()), DIM)) * 5
    again = evaluate_survival(cohort, changed, config=SurvivalConfig(bootstrap=FAST))
    again_ipcw = {k: m for k, m in again.metrics.items() if k.startswith(("uno", "auc", "ibs"))}
    assert all(m.low is not None for m in again_ipcw.values())  # IPCW metrics carry intervals too
    np.testing.assert_array_equal(again.units["risk"].to_numpy(), signal_result.units["risk"].to_numpy())
    assert again.metrics == signal_result.metrics
    # the same change does move the result once the window reaches the day-10 notes
    longer = SurvivalConfig(window_hours=24 * 12, bootstrap=FAST, ipcw_resamples=0)
    a = evaluate_survival(cohort, emb, config=longer)
    b = evaluate_survival(cohort, changed, config=longer)
    assert not np.allclose(a.units["risk"].to_numpy(), b.units["risk"].to_numpy())


def test_pure_noise_gives_chance_with_an_interval_covering_it(cohort_z):
    # one noise draw can correlate with the outcome by chance; over draws the C-index centres on 0.5
    cohort, z = cohort_z
    estimates = [
        evaluate_survival(
            cohort,
            embed(cohort, z, signal=False, seed=seed),
            config=SurvivalConfig(bootstrap=FAST, ipcw_resamples=0),
        ).metrics["harrell_c"]
        for seed in (11, 12, 13)
    ]
    assert abs(np.mean([c.value for c in estimates]) - 0.5) < 0.05
    assert sum(c.low < 0.5 < c.high for c in estimates) >= 2


@pytest.mark.parametrize("model", ["random_survival_forest", "gradient_boosting"])
def test_tree_models_are_options(cohort_z, model):
    cohort, z = cohort_z
    config = SurvivalConfig(
        model=model, n_estimators=30, bootstrap=BootstrapScheme(n_resamples=0, intervals=False)
    )
    r = evaluate_survival(cohort, embed(cohort, z, signal=True), config=config)
    assert r.metrics["harrell_c"].value > 0.62 and r.definition["model"] == model
    assert "ibs" in r.metrics


def _brute_force_c(time, event, risk) -> float:
    num = den = 0.0
    for i in range(len(time)):
        if not event[i]:
            continue
        for j in range(len(time)):
            if time[j] > time[i] or (time[j] == time[i] and not event[j]):
                den += 1
                num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return num / den


@pytest.mark.parametrize("n", [2, 7, 60, 400])
def test_harrell_c_matches_brute_force_with_ties_in_time_and_risk(n):
    rng = np.random.default_rng(n)
    time = rng.integers(1, 12, size=n).astype(float)  # many tied times
    event = rng.random(n) < 0.5
    event[0] = True
    time[-1] = time[0] + 1.0  # at least one comparable pair
    risk = rng.integers(0, 5, size=n).astype(float)  # many tied risks
    expected = _brute_force_c(time, event, risk)
    assert harrell_c(time, event, risk) == pytest.approx(expected, abs=1e-12)
    assert harrell_c(time, event, risk) == pytest.approx(concordance_index_censored(event, time, risk)[0])


def test_harrell_c_without_comparable_pairs_is_nan():
    assert np.isnan(harrell_c(np.array([1.0, 2.0]), np.array([False, False]), np.array([0.1, 0.2])))
    assert np.isnan(harrell_c(np.array([3.0, 3.0]), np.array([True, True]), np.array([0.1, 0.2])))


def test_too_few_events_is_a_clear_error():
    cohort, z = make_cohort(n=12, seed=3)
    with pytest.raises(InputError, match="n_folds=5"):
        evaluate_survival(cohort, embed(cohort, z, signal=True))


@pytest.mark.parametrize("ties", [False, True])
def test_the_bootstrap_s_array_path_gives_the_dataframe_path_s_numbers_to_the_last_bit(ties):
    """Resamples are scored from arrays taken out of the units once (``on_resampled_rows``): every metric
    of every resample equals what the metric function gives on the resample's rows of the DataFrame,
    the headline's and the subgroups' (Harrell's C alone); a resample may miss a fold."""
    from clinpred.tasks.result import _draw_patients, _metrics_of_resamples, _patient_rows
    from clinpred.tasks.survival import harrell_c_from_units

    rng = np.random.default_rng(5)
    n = 150
    risk = rng.normal(size=n)
    units = pd.DataFrame(
        {
            "subject_id": np.arange(n) + 1000,
            "time": np.round(rng.exponential(200.0, size=n)).clip(1, 365),
            "event": rng.random(n) < 0.3,
            "risk": np.round(risk) if ties else risk,
            "fold": np.r_[np.zeros(3, int), rng.integers(1, 5, size=n - 3)],  # fold 0: three patients
            "risk_at_horizon": rng.random(n),
            "status_known": rng.random(n) < 0.9,
        }
    )
    rows = _patient_rows(units["subject_id"].to_numpy())
    picks = _draw_patients(len(rows.patients), BootstrapScheme(n_resamples=40, seed=3))
    assert any(not (units["fold"].to_numpy()[rows.of(p)] == 0).any() for p in picks)  # a fold missed
    for metric_fn in (metrics_from_units, harrell_c_from_units):
        fast = _metrics_of_resamples(picks, units, rows, metric_fn)
        slow = [metric_fn(units.iloc[rows.of(p)]) for p in picks]
        for a, b in zip(fast, slow, strict=True):
            assert a.keys() == b.keys()
            assert all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a), (a, b)


def test_within_fold_ranks_are_pandas_grouped_percentile_ranks_to_the_last_bit():
    """The definition the ranks follow (pandas' ``groupby(fold).rank(pct=True)``), with tied risks, a NaN
    risk (kept NaN, not counted in its fold) and folds of one patient."""
    from clinpred.tasks.survival import within_fold_ranks

    rng = np.random.default_rng(2)
    risk = np.round(rng.normal(size=300), 1)
    risk[[5, 17]] = np.nan
    fold = np.r_[rng.integers(0, 5, size=298), 7, 8]
    expected = pd.Series(risk).groupby(fold).rank(pct=True).to_numpy()
    got = within_fold_ranks(risk, fold)
    assert np.array_equal(np.isnan(expected), np.isnan(got))
    assert np.array_equal(expected[~np.isnan(expected)], got[~np.isnan(got)])
