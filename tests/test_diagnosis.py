"""Diagnosis prediction on constructed cohorts: signal is found, noise is not, nothing leaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

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
from clinpred.tasks.diagnosis import DiagnosisConfig, evaluate_diagnosis, metrics_from_units
from clinpred.tasks.diagnosis_metrics import auroc_columns, average_precision, average_precision_columns
from clinpred.tasks.result import BootstrapScheme

CHF, AFIB, ARF, PNA = "4280", "42731", "5849", "486"
CHF_LABEL = "Congestive heart failure; nonhypertensive"
AFIB_LABEL = "Cardiac dysrhythmias"
FAST = BootstrapScheme(n_resamples=200, seed=1)
DIM = 12


def make_cohort(
    n: int = 160, seed: int = 0, rare: int = 0, htn: float = 0.95
) -> tuple[Cohort, dict[int, set[str]]]:
    """n patients, two admissions each, three nursing notes and a discharge summary per admission.

    Codes: heart failure in ~40%, atrial fibrillation in ~30%, acute renal failure in ~30%, hypertension
    in a share ``htn``, and pneumonia in exactly ``rare`` patients.
    """
    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2150-01-01")
    notes, patients, admissions, diagnoses, codes = [], [], [], [], {}
    for s in range(1, n + 1):
        has = {c for c, p in ((CHF, 0.4), (AFIB, 0.3), (ARF, 0.3), ("4019", htn)) if rng.random() < p}
        if s <= rare:
            has.add(PNA)
        codes[s] = has
        patients.append((s, "F", base - pd.Timedelta(days=20000), pd.NaT))
        for a in range(2):
            hadm = s * 10 + a
            admit = base + pd.Timedelta(days=int(rng.integers(0, 3000)) + 400 * a)
            admissions.append((s, hadm, admit, admit + pd.Timedelta(days=5), pd.NaT, 0))
            for i, code in enumerate(sorted(has)):
                diagnoses.append((s, hadm, i + 1, code, 9))
            for j in range(3):
                t = admit + pd.Timedelta(hours=12 * j + 1)
                notes.append((f"{hadm}-{j}", s, hadm, t, False, "Nursing", "note", 1, "x"))
            dt = admit + pd.Timedelta(days=5)
            notes.append((f"{hadm}-ds", s, hadm, dt, True, DISCHARGE_SUMMARY, "Report", 1, "x"))
    return (
        Cohort(
            notes=conform(pd.DataFrame(notes, columns=list(NOTE_DTYPES)), NOTE_DTYPES),
            patients=conform(pd.DataFrame(patients, columns=list(PATIENT_DTYPES)), PATIENT_DTYPES),
            admissions=conform(pd.DataFrame(admissions, columns=CORE_ADMISSION_COLUMNS), ADMISSION_DTYPES),
            diagnoses=conform(pd.DataFrame(diagnoses, columns=list(DIAGNOSIS_DTYPES)), DIAGNOSIS_DTYPES),
            source="mimic3",
            synthetic=True,
        ),
        codes,
    )


def embed(cohort: Cohort, codes: dict[int, set[str]], *, signal_in: str | None, seed: int = 0) -> np.ndarray:
    """Noise, plus a heart-failure direction on the notes of heart-failure patients.

    ``signal_in``: "all" notes, only the discharge summaries ("ds"), or None (pure noise).
    """
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(len(cohort.notes), DIM))
    chf = cohort.notes["subject_id"].map(lambda s: CHF in codes[s]).to_numpy()
    is_ds = (cohort.notes["category"] == DISCHARGE_SUMMARY).to_numpy()
    carriers = {"all": np.ones_like(is_ds), "ds": is_ds, None: np.zeros_like(is_ds)}[signal_in]
    emb[chf & carriers, 0] += 3.0
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def cohort_codes():
    return make_cohort()


def test_signal_in_the_notes_gives_a_high_auroc_for_that_label(cohort_codes):
    cohort, codes = cohort_codes
    result = evaluate_diagnosis(
        cohort, embed(cohort, codes, signal_in="all"), config=DiagnosisConfig(bootstrap=FAST)
    )
    assert result.task == "diagnosis" and result.main_metric == "macro_auroc"
    assert result.per_label[CHF_LABEL]["auroc"].value > 0.9
    assert result.per_label[AFIB_LABEL]["auroc"].value < 0.75  # no signal for this one
    n_dx = sum(bool(c) for c in codes.values())  # patients with no code have no diagnoses: excluded
    assert result.counts["patients_without_diagnoses"] == 160 - n_dx > 0
    assert result.counts["patients"] == n_dx and result.counts["notes_used"] == n_dx * 6
    assert result.counts["discharge_summaries_used"] == 0
    assert result.counts["positives"][CHF_LABEL] == sum(CHF in c for c in codes.values())
    units = result.units
    assert len(units) == n_dx and units[[c for c in units if c.startswith("p::")]].notna().all().all()
    est = result.per_label[CHF_LABEL]["auroc"]
    assert est.low is not None and est.low <= est.value <= est.high


def test_pure_noise_gives_chance_with_an_interval_covering_it(cohort_codes):
    cohort, codes = cohort_codes
    result = evaluate_diagnosis(
        cohort, embed(cohort, codes, signal_in=None, seed=3), config=DiagnosisConfig(bootstrap=FAST)
    )
    macro = result.metrics["macro_auroc"]
    assert abs(macro.value - 0.5) < 0.1
    assert macro.low < 0.5 < macro.high
    chf = result.per_label[CHF_LABEL]["auroc"]
    assert chf.low < 0.5 < chf.high


def test_folds_are_grouped_by_patient_at_the_admission_unit(cohort_codes):
    cohort, codes = cohort_codes
    result = evaluate_diagnosis(
        cohort,
        embed(cohort, codes, signal_in="all"),
        config=DiagnosisConfig(unit="admission", bootstrap=FAST),
    )
    units = result.units
    n_adm = 2 * sum(bool(c) for c in codes.values())
    assert len(units) == n_adm and units["hadm_id"].nunique() == n_adm
    assert (units.groupby("subject_id")["fold"].nunique() == 1).all()  # no patient in two folds
    assert sorted(units["fold"].unique()) == [0, 1, 2, 3, 4]
    assert result.counts["admissions"] == n_adm and result.counts["notes_used"] == n_adm * 3
    assert result.per_label[CHF_LABEL]["auroc"].value > 0.9


def test_discharge_summaries_are_left_out_unless_asked_for(cohort_codes):
    cohort, codes = cohort_codes
    emb = embed(cohort, codes, signal_in="ds")
    default = evaluate_diagnosis(cohort, emb, config=DiagnosisConfig(bootstrap=FAST))
    assert abs(default.per_label[CHF_LABEL]["auroc"].value - 0.5) < 0.15
    assert default.definition["include_discharge_summaries"] is False
    assert default.definition["relaxations"] == []
    relaxed = evaluate_diagnosis(
        cohort, emb, config=DiagnosisConfig(include_discharge_summaries=True, bootstrap=FAST)
    )
    assert relaxed.per_label[CHF_LABEL]["auroc"].value > 0.8
    assert relaxed.definition["relaxations"] == ["include_discharge_summaries"]
    assert relaxed.counts["discharge_summaries_used"] == 2 * relaxed.counts["patients"]


def test_rare_and_absent_labels_are_dropped_and_reported():
    cohort, codes = make_cohort(n=100, seed=2, rare=3, htn=1.0)
    result = evaluate_diagnosis(
        cohort, embed(cohort, codes, signal_in="all"), config=DiagnosisConfig(bootstrap=FAST)
    )
    pna = "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)"
    assert pna in result.definition["labels_dropped"] and pna not in result.per_label
    assert any(w.startswith(f"label dropped: {pna} (3 positives") for w in result.warnings)
    assert result.counts["positives"][pna] == 3
    assert "Shock" in result.definition["labels_dropped"]  # no positive at all
    htn = "Essential hypertension"
    assert any(w.startswith(f"label dropped: {htn} (100 positives / 0 negatives") for w in result.warnings)
    assert set(result.per_label) == {CHF_LABEL, AFIB_LABEL, "Acute and unspecified renal failure"}
    assert result.counts["labels_kept"] + result.counts["labels_dropped"] == 25


def test_patients_without_feature_notes_are_excluded_and_counted(cohort_codes):
    cohort, codes = cohort_codes
    drop = cohort.notes["subject_id"].isin([1, 2, 3]) & (cohort.notes["category"] != DISCHARGE_SUMMARY)
    trimmed = Cohort(
        notes=cohort.notes[~drop].reset_index(drop=True),
        patients=cohort.patients,
        admissions=cohort.admissions,
        diagnoses=cohort.diagnoses,
        source="mimic3",
        synthetic=True,
    )
    result = evaluate_diagnosis(
        trimmed, embed(trimmed, codes, signal_in="all"), config=DiagnosisConfig(bootstrap=FAST)
    )
    assert result.counts["patients_without_feature_notes"] == 3
    assert result.counts["patients"] == sum(bool(c) for c in codes.values()) - 3
    assert not result.units["subject_id"].isin([1, 2, 3]).any()


def test_lightgbm_option_and_icd_topk_scheme(cohort_codes):
    cohort, codes = cohort_codes
    config = DiagnosisConfig(model="lightgbm", label_scheme="icd_topk", top_k=4, bootstrap=FAST)
    result = evaluate_diagnosis(cohort, embed(cohort, codes, signal_in="all"), config=config)
    assert set(result.per_label) | set(result.definition["labels_dropped"]) == {"4019", CHF, AFIB, ARF}
    assert {CHF, AFIB, ARF} <= set(result.per_label)
    assert result.per_label[CHF]["auroc"].value > 0.85
    assert result.definition["model"] == "lightgbm"


def test_rank_metrics_match_scikit_learn_with_ties():
    rng = np.random.default_rng(5)
    y = rng.random((80, 4)) < 0.3
    p = np.round(rng.random((80, 4)) + 0.3 * y, 1)  # rounding makes many ties
    for j in range(4):
        assert auroc_columns(y, p)[j] == pytest.approx(roc_auc_score(y[:, j], p[:, j]))
        expected = average_precision_score(y[:, j], p[:, j])
        assert average_precision_columns(y, p)[j] == pytest.approx(expected)
        assert average_precision(y[:, j], p[:, j]) == pytest.approx(expected)
    none = np.zeros((80, 1), dtype=bool)
    assert np.isnan(auroc_columns(none, p[:, :1])[0]) and np.isnan(
        average_precision_columns(none, p[:, :1])[0]
    )
    units = pd.DataFrame({"subject_id": range(80), "p::a": p[:, 0], "y::a": y[:, 0]})
    assert metrics_from_units(units)["macro_auroc"] == pytest.approx(roc_auc_score(y[:, 0], p[:, 0]))


def test_counted_auroc_is_the_auroc_of_the_drawn_rows_to_the_last_bit_with_ties():
    """The bootstrap's AUROC from row counts (rows ranked once) against ``auroc_columns`` on the rows
    themselves, repeated as drawn: many ties, a column with one class, rows never drawn, rows drawn often."""
    from clinpred.tasks.diagnosis_metrics import CountedAuroc, counted_auroc_of_cells

    rng = np.random.default_rng(7)
    y = rng.random((60, 5)) < 0.3
    y[:, 4] = False  # one class only: NaN either way
    p = np.round(rng.random((60, 5)) + 0.3 * y, 1)
    counted = CountedAuroc(y, p)
    for _ in range(20):
        rows = rng.integers(0, 60, size=60)
        counts = np.bincount(rows, minlength=60)
        expected, got = auroc_columns(y[rows], p[rows]), counted(counts)
        assert np.array_equal(np.isnan(expected), np.isnan(got))
        assert np.array_equal(expected[:4], got[:4])  # bit for bit, not approximately
    # cells: items sharing a score per cell, some cells tied with each other
    scores, pos, neg = np.array([0.2, 0.5, 0.2, 0.9]), np.array([1, 3, 0, 2]), np.array([4, 1, 2, 0])
    items_y = np.repeat(np.r_[np.ones(4), np.zeros(4)].astype(bool), np.r_[pos, neg])
    items_p = np.repeat(np.r_[scores, scores], np.r_[pos, neg])
    assert counted_auroc_of_cells(pos, neg, scores) == auroc_columns(items_y[:, None], items_p[:, None])[0]
    assert np.isnan(counted_auroc_of_cells(pos, 0 * neg, scores))


def test_too_few_patients_is_a_clear_error():
    cohort, codes = make_cohort(n=4)
    with pytest.raises(InputError, match="n_folds=5"):
        evaluate_diagnosis(cohort, embed(cohort, codes, signal_in="all"))


def test_bad_task_settings_exit_2_naming_the_setting(cli, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(
        '[tasks.diagnosis]\nlabel_scheme = "icd"\nextra_setting = 1\n[tasks.survival]\nwindow_hours = -1\n'
    )
    done = cli("config", "show", "--config", str(config), "--synthetic", "tiny", "-b", "tfidf")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    for setting in (
        "tasks.diagnosis.label_scheme",
        "tasks.diagnosis.extra_setting",
        "tasks.survival.window_hours",
    ):
        assert setting in done.stderr


@pytest.mark.slow
def test_run_through_the_cli_writes_both_tasks_with_their_units(cli, tmp_path):
    import json

    out = tmp_path / "run"
    env = {"CLINPRED_CACHE": str(tmp_path / "cache")}
    done = cli(
        "run",
        "--synthetic",
        "tiny",
        "-b",
        "tfidf",
        "-t",
        "diagnosis",
        "-t",
        "survival",
        "--out",
        str(out),
        "-q",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    backend = json.loads((out / "results.json").read_text())["backends"][0]
    assert backend["status"] == "ok"
    assert backend["results"]["diagnosis"]["definition"]["include_discharge_summaries"] is False
    assert backend["results"]["survival"]["counts"]["patients"] > 0
    units = pd.read_parquet(out / "units" / backend["label"] / "survival.parquet")
    assert {"subject_id", "time", "event", "risk", "fold"} <= set(units.columns)


def test_baselines_stand_beside_the_headline_metrics():
    cohort, codes = make_cohort()
    result = evaluate_diagnosis(
        cohort, embed(cohort, codes, signal_in=None), config=DiagnosisConfig(bootstrap=FAST)
    )
    m, units = result.metrics, result.units
    labels = [c[3:] for c in units.columns if c.startswith("y::")]
    y = units[[f"y::{c}" for c in labels]].to_numpy(dtype=bool)
    assert m["chance_macro_auprc"].value == pytest.approx(y.mean(axis=0).mean())
    # the prevalence-only scorer, by hand: each label's prevalence among the other folds' patients
    fold = units["fold"].to_numpy()
    prior = np.vstack([y[fold != f].mean(axis=0) for f in fold])
    assert m["prevalence_only_micro_auroc"].value == pytest.approx(roc_auc_score(y.ravel(), prior.ravel()))
    assert m["prevalence_only_micro_auroc"].value > 0.5  # labels differ in prevalence: above chance
    assert m["chance_macro_auprc"].low is None and m["prevalence_only_micro_auroc"].low is None
    assert m["micro_auroc"].low is not None


def test_early_variant_sees_only_the_first_hours_of_each_admission():
    cohort, codes = make_cohort()
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(len(cohort.notes), DIM))
    admit = cohort.notes["hadm_id"].map(cohort.admissions.set_index("hadm_id")["admittime"])
    late = ((cohort.notes["time"] - admit) > pd.Timedelta(hours=20)).to_numpy()
    chf = cohort.notes["subject_id"].map(lambda s: CHF in codes[s]).to_numpy()
    emb[late & chf, 0] += 3.0  # the heart-failure signal is only in notes charted after 20 h
    whole = evaluate_diagnosis(cohort, emb, config=DiagnosisConfig(bootstrap=FAST))
    early = evaluate_diagnosis(
        cohort, emb, config=DiagnosisConfig(variant="early", early_hours=12, bootstrap=FAST)
    )
    assert whole.per_label[CHF_LABEL]["auroc"].value > 0.8
    assert early.per_label[CHF_LABEL]["auroc"].value < 0.7
    # per admission: the +1 h nursing note only (the +13 h and +25 h notes and the summary are later)
    assert early.counts["notes_used"] == len(
        cohort.admissions[cohort.admissions["subject_id"].isin(early.units["subject_id"])]
    )
    assert "early prediction" in early.definition["task_variant"]
    assert "phenotyping" in whole.definition["task_variant"]


def test_calibration_per_label_and_macro():
    from scipy.optimize import brentq
    from sklearn.linear_model import LogisticRegression

    from clinpred.tasks.diagnosis_metrics import calibration_columns

    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, size=(600, 2))
    y = np.column_stack([rng.random(600) < p[:, 0], rng.random(600) < p[:, 1] * 0.5])
    cal = calibration_columns(y, p)
    z = np.log(p / (1 - p))
    for j in range(2):
        assert cal["brier"][j] == pytest.approx(np.mean((p[:, j] - y[:, j]) ** 2))
        slope = LogisticRegression(C=np.inf).fit(z[:, [j]], y[:, j]).coef_[0, 0]
        assert cal["calibration_slope"][j] == pytest.approx(slope, abs=1e-4)
        # calibration-in-the-large: the shift that makes the mean prediction the observed rate
        shift = brentq(lambda a, j=j: np.mean(1 / (1 + np.exp(-(a + z[:, j])))) - y[:, j].mean(), -5, 5)
        assert cal["calibration_intercept"][j] == pytest.approx(shift, abs=1e-5)
    assert abs(cal["calibration_slope"][0] - 1) < 0.25 and cal["calibration_intercept"][1] < -0.5
    cohort, codes = make_cohort()
    r = evaluate_diagnosis(
        cohort, embed(cohort, codes, signal_in="all"), config=DiagnosisConfig(bootstrap=FAST)
    )
    for name in ("macro_brier", "median_calibration_slope", "macro_calibration_intercept"):
        assert (
            r.metrics[name].low is not None
            and r.metrics[name].low <= r.metrics[name].value <= r.metrics[name].high
        )
    assert set(r.per_label[CHF_LABEL]) >= {"brier", "calibration_slope", "calibration_intercept"}
    assert r.metrics["macro_brier"].value == pytest.approx(
        np.mean([r.per_label[label]["brier"].value for label in r.per_label])
    )


def test_the_bootstrap_s_array_path_gives_the_dataframe_path_s_numbers_to_the_last_bit(cohort_codes):
    """Resamples are scored from arrays taken out of the units once (``on_resampled_rows``); each must give
    exactly what the metric function gives on the resample's rows of the DataFrame, at the admission unit
    (several rows per patient, drawn together) as at the patient unit."""
    from clinpred.tasks.result import _draw_patients, _metrics_of_resamples, _patient_rows

    cohort, codes = cohort_codes
    for unit in ("admission", "patient"):
        result = evaluate_diagnosis(
            cohort, embed(cohort, codes, signal_in="all"), config=DiagnosisConfig(unit=unit, bootstrap=FAST)
        )
        units = result.units.sample(frac=1.0, random_state=0)  # rows of a patient not next to each other
        if unit == "patient":  # without folds, the prevalence-only scorer uses the overall prevalence
            units = units.drop(columns="fold")
        rows = _patient_rows(units["subject_id"].to_numpy())
        picks = _draw_patients(len(rows.patients), BootstrapScheme(n_resamples=5, seed=3))
        for pick, fast in zip(
            picks, _metrics_of_resamples(picks, units, rows, metrics_from_units), strict=True
        ):
            chosen = rows.of(pick)
            # every row of each drawn patient, once per draw
            counts = pd.Series(units["subject_id"].to_numpy()[chosen]).value_counts()
            drawn = pd.Series(rows.patients[pick]).value_counts()
            per_patient = units["subject_id"].value_counts()
            assert (counts.sort_index() == (drawn * per_patient.reindex(drawn.index)).sort_index()).all()
            slow = metrics_from_units(units.iloc[chosen])
            assert fast.keys() == slow.keys()
            assert all(fast[k] == slow[k] or (np.isnan(fast[k]) and np.isnan(slow[k])) for k in slow)
