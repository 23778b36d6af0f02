"""In-hospital mortality and 30-day readmission on hand-built MIMIC-III and MIMIC-IV files.

Each admission has a note inside the first 48 h, a note after it, and a discharge summary. The
embeddings are built so that only one kind of note carries the outcome: the tasks must find it where
their definition allows features, and must not find it where it leaks (later notes, discharge summaries).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinpred.data.cohort import Cohort
from clinpred.data.load import load_cohort
from clinpred.errors import InputError
from clinpred.tasks.binary_outcome import metrics_from_units
from clinpred.tasks.mortality import MortalityConfig, admission_outcomes, evaluate_mortality
from clinpred.tasks.readmission import ReadmissionConfig, discharge_outcomes, evaluate_readmission
from clinpred.tasks.result import BootstrapScheme
from tests.mimic_files import (
    ADMISSIONS,
    DIAGNOSES,
    M4_ADMISSIONS,
    M4_DIAGNOSES,
    M4_DISCHARGE,
    NOTE_HEADER,
    PATIENTS,
    write_mimic3,
    write_mimic4,
)

FAST = {"bootstrap": BootstrapScheme(n_resamples=50), "c_grid": [0.1, 1.0]}
T0 = datetime(2150, 1, 1, 8, 0)
FMT = "%Y-%m-%d %H:%M:%S"


def _admissions(n_patients: int = 60) -> list[dict]:
    """Per admission: patient, id, admit, length of stay (h), died; every 3rd death; some readmissions.

    Patients 1..n have one admission, every 4th a second one (10 days after discharge when the patient
    number is even: a 30-day readmission; 60 days otherwise); patients n+1..n+3 stay under 48 h.
    """
    out = []
    for s in range(1, n_patients + 1):
        admit = T0 + timedelta(days=3 * s)
        died = s % 3 == 0 and s % 4 != 0  # a patient who dies cannot come back
        out.append({"subject": s, "hadm": 1000 + s, "admit": admit, "hours": 120 + s, "died": died})
        if s % 4 == 0:
            disch = admit + timedelta(hours=120 + s)
            gap = 10 if s % 8 == 0 else 60
            out.append(
                {
                    "subject": s,
                    "hadm": 5000 + s,
                    "admit": disch + timedelta(days=gap),
                    "hours": 96,
                    "died": False,
                }
            )
    for k, died in enumerate([True, True, False]):  # end inside the 48 h window
        s = n_patients + 1 + k
        out.append(
            {"subject": s, "hadm": 1000 + s, "admit": T0 + timedelta(days=3 * s), "hours": 30, "died": died}
        )
    return out


def _notes(adms: list[dict]) -> list[tuple[int, int, datetime, bool, str]]:
    """(subject, hadm, time, date_only, category): one note at 6 h, one at 60 h, a discharge summary."""
    out = []
    for a in adms:
        disch = a["admit"] + timedelta(hours=a["hours"])
        out.append((a["subject"], a["hadm"], a["admit"] + timedelta(hours=6), False, "Nursing"))
        if a["hours"] > 60:
            out.append((a["subject"], a["hadm"], a["admit"] + timedelta(hours=60), False, "Radiology"))
        out.append((a["subject"], a["hadm"], disch, True, "Discharge summary"))
    return out


def write_m3(directory: Path, adms: list[dict]) -> Path:
    patients = [PATIENTS[0]]
    for s in sorted({a["subject"] for a in adms}):
        patients.append([str(s), str(s), "F" if s % 2 else "M", "2080-01-01 00:00:00", "", "", "", "0"])
    admissions = [ADMISSIONS[0]]
    diagnoses = [DIAGNOSES[0]]
    for i, a in enumerate(adms):
        disch = a["admit"] + timedelta(hours=a["hours"])
        row = dict.fromkeys(ADMISSIONS[0], "")
        row.update(
            ROW_ID=str(i + 1),
            SUBJECT_ID=str(a["subject"]),
            HADM_ID=str(a["hadm"]),
            ADMITTIME=a["admit"].strftime(FMT),
            DISCHTIME=disch.strftime(FMT),
            DEATHTIME=disch.strftime(FMT) if a["died"] else "",
            ADMISSION_TYPE="EMERGENCY",
            HOSPITAL_EXPIRE_FLAG="1" if a["died"] else "0",
            HAS_CHARTEVENTS_DATA="1",
        )
        admissions.append([row[c] for c in ADMISSIONS[0]])
        diagnoses.append([str(i + 1), str(a["subject"]), str(a["hadm"]), "1", "4280"])
    notes = [NOTE_HEADER]
    for i, (s, h, t, date_only, category) in enumerate(_notes(adms)):
        charttime = "" if date_only else t.strftime(FMT)
        text = f"{category} note of admission {h}"
        notes.append(
            [
                str(i + 1),
                str(s),
                str(h),
                t.strftime("%Y-%m-%d"),
                charttime,
                "",
                category,
                "Report",
                "",
                "",
                text,
            ]
        )
    return write_mimic3(
        directory, notes=notes, PATIENTS=patients, ADMISSIONS=admissions, DIAGNOSES_ICD=diagnoses
    )


def write_m4(root: Path, adms: list[dict]) -> Path:
    patients = [["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"]]
    for s in sorted({a["subject"] for a in adms}):
        patients.append([str(s), "F", "60", "2150", "2011 - 2013", ""])
    admissions, diagnoses = [M4_ADMISSIONS[0]], [M4_DIAGNOSES[0]]
    for a in adms:
        disch = a["admit"] + timedelta(hours=a["hours"])
        row = dict.fromkeys(M4_ADMISSIONS[0], "")
        row.update(
            subject_id=str(a["subject"]),
            hadm_id=str(a["hadm"]),
            admittime=a["admit"].strftime(FMT),
            dischtime=disch.strftime(FMT),
            deathtime=disch.strftime(FMT) if a["died"] else "",
            admission_type="EW EMER.",
            hospital_expire_flag="1" if a["died"] else "0",
        )
        admissions.append([row[c] for c in M4_ADMISSIONS[0]])
        diagnoses.append([str(a["subject"]), str(a["hadm"]), "1", "I5023", "10"])
    radiology, discharge = [M4_DISCHARGE[0]], [M4_DISCHARGE[0]]
    for i, (s, h, t, _, category) in enumerate(_notes(adms)):
        kind = "DS" if category == "Discharge summary" else "RR"
        row = [
            f"{s}-{kind}-{i}",
            str(s),
            str(h),
            kind,
            str(i),
            t.strftime(FMT),
            "",
            f"{category} note of {h}",
        ]
        (discharge if kind == "DS" else radiology).append(row)
    return write_mimic4(
        root,
        **{
            "hosp/patients": patients,
            "hosp/admissions": admissions,
            "hosp/diagnoses_icd": diagnoses,
            "note/discharge": discharge,
            "note/radiology": radiology,
        },
    )


def embeddings(
    cohort: Cohort, label: dict[int, bool], signal_in: str, seed: int = 0, strength: float = 4.0
) -> np.ndarray:
    """Noise, plus the label on the first axis for notes of the kind ``signal_in`` (early, late, ds)."""
    notes = cohort.notes
    admit = notes["hadm_id"].map(cohort.admissions.set_index("hadm_id")["admittime"])
    hours = (notes["time"] - admit).dt.total_seconds() / 3600
    kind = np.where(
        notes["category"] == "Discharge summary", "ds", np.where(hours.to_numpy() < 48, "early", "late")
    )
    y = notes["hadm_id"].map(lambda h: label.get(int(h), False)).to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(len(notes), 8))
    emb[:, 0] += strength * y * (kind == signal_in)
    return emb.astype(np.float32)


@pytest.fixture(scope="module")
def m3(tmp_path_factory) -> tuple[Cohort, list[dict]]:
    adms = _admissions()
    path = write_m3(tmp_path_factory.mktemp("m3") / "mimic3", adms)
    return load_cohort(path, use_cache=False, progress=False), adms


def test_mortality_labels_and_exclusions(m3):
    cohort, adms = m3
    units, counts = admission_outcomes(cohort, 48.0)
    short = {a["hadm"] for a in adms if a["hours"] < 48}
    assert set(units["hadm_id"]) == {a["hadm"] for a in adms} - short
    truth = {a["hadm"]: a["died"] for a in adms}
    assert all(truth[h] == y for h, y in zip(units["hadm_id"], units["y"], strict=True))
    assert counts["excluded_died_inside_window"] == 2
    assert counts["excluded_discharged_alive_inside_window"] == 1


def test_mortality_finds_early_signal_and_not_leaks(m3):
    cohort, adms = m3
    died = {a["hadm"]: a["died"] for a in adms}
    config = MortalityConfig(**FAST)
    early = evaluate_mortality(cohort, embeddings(cohort, died, "early"), config=config)
    assert early.task == "mortality" and early.main_metric == "auroc"
    assert early.metrics["auroc"].value > 0.95
    assert early.metrics["auroc"].low is not None and early.metrics["chance_auprc"].low is None
    assert early.counts["positives"] == sum(a["died"] and a["hours"] >= 48 for a in adms)
    assert early.counts["notes_used"] == early.counts["admissions"]  # the 6 h note only
    assert early.folds["grouped_by"] == "subject_id"
    units = early.units
    assert units.groupby("subject_id")["fold"].nunique().max() == 1  # a patient's admissions in one fold
    assert metrics_from_units(units)["auroc"] == pytest.approx(early.metrics["auroc"].value)
    for leak in ("late", "ds"):  # the outcome written after the window, or in the discharge summary
        leaked = evaluate_mortality(cohort, embeddings(cohort, died, leak), config=config)
        assert leaked.metrics["auroc"].value < 0.8, leak


def test_mortality_on_mimic4(tmp_path):
    adms = _admissions()
    cohort = load_cohort(write_m4(tmp_path / "m4", adms), use_cache=False, progress=False)
    died = {a["hadm"]: a["died"] for a in adms}
    result = evaluate_mortality(cohort, embeddings(cohort, died, "early"), config=MortalityConfig(**FAST))
    assert result.metrics["auroc"].value > 0.95
    assert result.counts["excluded_died_inside_window"] == 2
    readmitted = {a["hadm"]: a["subject"] % 8 == 0 and a["hadm"] < 5000 for a in adms}
    again = evaluate_readmission(
        cohort, embeddings(cohort, readmitted, "early"), config=ReadmissionConfig(**FAST, min_positives=3)
    )
    assert again.counts["positives"] == sum(readmitted.values())


def test_readmission_labels(m3):
    cohort, adms = m3
    units, counts = discharge_outcomes(cohort, 30.0)
    alive = {a["hadm"] for a in adms if not a["died"]}
    assert set(units["hadm_id"]) == alive
    positives = set(units.loc[units["y"], "hadm_id"])
    assert positives == {1000 + s for s in range(8, 61, 8)}  # 10 days to the next admission
    assert counts["excluded_died_in_hospital"] == sum(a["died"] for a in adms)
    # a shorter horizon than the 10-day gap: no readmission at all
    assert not discharge_outcomes(cohort, 5.0)[0]["y"].any()


def test_readmission_features_exclude_the_discharge_summary_by_default(m3):
    cohort, _ = m3
    readmitted = {1000 + s: True for s in range(8, 61, 8)}
    config = ReadmissionConfig(**FAST, min_positives=3)
    from_ds = embeddings(cohort, readmitted, "ds", strength=8.0)
    default = evaluate_readmission(cohort, from_ds, config=config)
    assert default.counts["discharge_summaries_used"] == 0 and default.definition["relaxations"] == []
    assert "elective" in default.definition["readmission_definition"]
    assert default.metrics["auroc"].value < 0.8
    relaxed = evaluate_readmission(
        cohort, from_ds, config=config.model_copy(update={"include_discharge_summary": True})
    )
    assert relaxed.definition["relaxations"] == ["include_discharge_summary"]
    assert relaxed.counts["discharge_summaries_used"] == relaxed.counts["admissions"]
    assert relaxed.metrics["auroc"].value > 0.9
    early = evaluate_readmission(cohort, embeddings(cohort, readmitted, "early", strength=8.0), config=config)
    assert early.metrics["auroc"].value > 0.9


def test_too_few_positives_is_a_user_error(m3):
    cohort, _ = m3
    emb = np.zeros((len(cohort.notes), 4), dtype=np.float32)
    with pytest.raises(InputError, match=r"readmission: 0 positive.*min_positives"):
        evaluate_readmission(cohort, emb, config=ReadmissionConfig(**FAST, days=5))


def test_death_after_discharge_is_a_counted_negative():
    adm = pd.DataFrame(
        {
            "subject_id": [1, 2],
            "hadm_id": [10, 20],
            "admittime": pd.to_datetime(["2150-01-01", "2150-01-01"]),
            "dischtime": pd.to_datetime(["2150-01-05", "2150-01-05"]),
            "deathtime": pd.to_datetime([pd.NaT, pd.NaT]),
            "hospital_expire_flag": [0, 0],
        }
    )
    patients = pd.DataFrame(
        {
            "subject_id": [1, 2],
            "gender": ["F", "M"],
            "dob": pd.to_datetime(["2080-01-01", "2080-01-01"]),
            "dod": pd.to_datetime(["2150-01-15", pd.NaT]),
        }
    )
    notes = pd.DataFrame(
        {c: pd.Series(dtype=t) for c, t in {"subject_id": "int64", "time": "datetime64[ns]"}.items()}
    )
    cohort = Cohort(notes=notes, patients=patients, admissions=adm, diagnoses=pd.DataFrame(), source="mimic3")
    units, counts = discharge_outcomes(cohort, 30.0)
    assert not units["y"].any()
    assert counts["died_within_window_without_readmission_counted_negative"] == 1


def test_elective_next_admissions_are_not_readmissions_unless_asked():
    """Unplanned readmission (ClinicalBERT): an elective return is skipped, the next emergency one counts;
    a newborn admission is no index admission; elective = "count" gives the all-cause label."""
    day = pd.Timedelta(days=1)
    t0 = pd.Timestamp("2150-01-01")
    adm = pd.DataFrame(
        {
            "subject_id": [1, 1, 1, 2, 2, 3],
            "hadm_id": [10, 11, 12, 20, 21, 30],
            "admittime": [t0, t0 + 10 * day, t0 + 20 * day, t0, t0 + 10 * day, t0],
            "dischtime": [
                t0 + 2 * day,
                t0 + 12 * day,
                t0 + 22 * day,
                t0 + 2 * day,
                t0 + 12 * day,
                t0 + 3 * day,
            ],
            "deathtime": pd.to_datetime([pd.NaT] * 6),
            "hospital_expire_flag": [0] * 6,
            "admission_type": pd.array(
                ["EMERGENCY", "ELECTIVE", "EMERGENCY", "EMERGENCY", "ELECTIVE", "NEWBORN"], dtype="string"
            ),
        }
    )
    patients = pd.DataFrame(
        {"subject_id": [1, 2, 3], "gender": "F", "dob": pd.Timestamp("2080-01-01"), "dod": pd.NaT}
    )
    notes = pd.DataFrame(
        {c: pd.Series(dtype=t) for c, t in {"subject_id": "int64", "time": "datetime64[ns]"}.items()}
    )
    cohort = Cohort(notes=notes, patients=patients, admissions=adm, diagnoses=pd.DataFrame(), source="mimic3")
    units, counts = discharge_outcomes(cohort, 30.0)
    y = dict(zip(units["hadm_id"], units["y"], strict=True))
    # 10 -> 11 is elective (skipped), 12 starts 18 days after 10's discharge: readmitted
    assert y == {10: True, 11: True, 12: False, 20: False, 21: False}
    assert counts["excluded_newborn"] == 1 and counts["elective_admissions_not_counted_as_readmissions"] == 2
    all_cause, _ = discharge_outcomes(cohort, 30.0, "count")
    assert dict(zip(all_cause["hadm_id"], all_cause["y"], strict=True))[20]  # the elective return counts
