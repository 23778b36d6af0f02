"""One censoring rule for every patient, whatever their outcome, with follow-up by source (issue 13,
defect 2): the old rule followed a patient who died after the horizon to the horizon but censored a
survivor without a death record at their last contact."""

from __future__ import annotations

import pandas as pd
import pytest

from clinpred.data.cohort import (
    ADMISSION_DTYPES,
    CORE_ADMISSION_COLUMNS,
    DIAGNOSIS_DTYPES,
    NOTE_DTYPES,
    PATIENT_DTYPES,
    Cohort,
    conform,
)
from clinpred.tasks.survival import SurvivalConfig, outcomes

ORIGIN = pd.Timestamp("2150-01-01 10:00")


def cohort_of(rows: list[tuple[int, float | None, list[tuple[float, float]], float]], source: str) -> Cohort:
    """rows: (subject, death day or None, [(admit day, discharge day)], last note day)."""
    patients, admissions, notes = [], [], []
    for s, death, stays, last_note in rows:
        dod = (ORIGIN + pd.Timedelta(days=death)).normalize() if death is not None else pd.NaT
        patients.append((s, "F", ORIGIN - pd.Timedelta(days=20000), dod))
        for k, (a, d) in enumerate(stays):
            admit, disch = ORIGIN + pd.Timedelta(days=a), ORIGIN + pd.Timedelta(days=d)
            admissions.append((s, s * 10 + k, admit, disch, pd.NaT, 0))
        for t in (0.1, last_note):
            notes.append(
                (f"{s}-{t}", s, s * 10, ORIGIN + pd.Timedelta(days=t), False, "Nursing", "n", 1, "x")
            )
    return Cohort(
        notes=conform(pd.DataFrame(notes, columns=list(NOTE_DTYPES)), NOTE_DTYPES),
        patients=conform(pd.DataFrame(patients, columns=list(PATIENT_DTYPES)), PATIENT_DTYPES),
        admissions=conform(pd.DataFrame(admissions, columns=CORE_ADMISSION_COLUMNS), ADMISSION_DTYPES),
        diagnoses=conform(pd.DataFrame(columns=list(DIAGNOSIS_DTYPES)), DIAGNOSIS_DTYPES),
        source=source,
        synthetic=True,
    )


def _by_subject(cohort: Cohort, **config) -> pd.DataFrame:
    frame, _ = outcomes(cohort, SurvivalConfig(**config))
    return frame.set_index("subject_id")


def test_mimic3_survivors_are_followed_to_the_horizon_like_the_dead():
    cohort = cohort_of(
        [
            (1, None, [(0, 5)], 30),  # last seen at day 30, no death record
            (2, 400.0, [(0, 5)], 30),  # last seen at day 30, dies after the horizon
            (3, 200.0, [(0, 5)], 30),  # dies inside the horizon
        ],
        "mimic3",
    )
    out = _by_subject(cohort)
    assert out.loc[1, "time"] == out.loc[2, "time"] == 365.0  # the old rule gave patient 1 ~30 days
    assert not out.loc[1, "event"] and not out.loc[2, "event"]
    assert out.loc[3, "event"] and out.loc[3, "time"] == pytest.approx(200.0 - 10 / 24)  # DOD at 00:00


def test_mimic4_follow_up_ends_a_year_after_the_last_discharge():
    cohort = cohort_of(
        [
            (1, None, [(0, 5)], 30),
            (2, 500.0, [(0, 5)], 30),  # after last discharge + 365 days: not recorded by MIMIC-IV's rule
            (3, 300.0, [(0, 5)], 30),
            (4, None, [(0, 5), (600, 605)], 605),  # a later stay extends the death records
        ],
        "mimic4",
    )
    default = _by_subject(cohort)  # a one-year horizon is inside every patient's follow-up
    assert (default.loc[[1, 2, 4], "time"] == 365.0).all() and default.loc[3, "event"]
    longer = _by_subject(cohort, horizon_days=730)
    assert longer.loc[1, "time"] == longer.loc[2, "time"] == 370.0  # discharge at day 5 + 365 days
    assert not longer.loc[2, "event"]  # the same rule for the patient who died later and the survivor
    assert longer.loc[3, "event"]
    assert longer.loc[4, "time"] == 730.0 and not longer.loc[4, "event"]
    _, counts = outcomes(cohort, SurvivalConfig(horizon_days=730))
    assert counts["follow_up_shorter_than_horizon"] == 3
