"""In-hospital mortality from the first hours of an admission (mimic3-benchmarks' task, per admission).

Unit: a hospital admission. Features: the admission's notes charted in the first ``window_hours``
(default 48 h) after ADMITTIME -- notes charted before it (e.g. in the emergency department) count, a
date-only note only when its whole day is inside -- and never a discharge summary, which is written at
the end of the stay and states the outcome. Label: death during that admission (ADMISSIONS DEATHTIME
present or HOSPITAL_EXPIRE_FLAG = 1). Admissions that end (discharge or death) inside the window are
excluded and counted: their outcome is known before the window closes. Cross-validation grouped by
patient; AUROC and AUPRC with patient-bootstrap intervals and the prevalence as chance AUPRC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from clinpred.bounds import MAX_HOURS
from clinpred.data.categories import is_discharge_summary
from clinpred.data.cohort import Cohort
from clinpred.tasks.binary_outcome import BinaryOutcomeConfig, evaluate_binary_outcome
from clinpred.tasks.diagnosis import early_notes
from clinpred.tasks.result import TaskResult


class MortalityConfig(BinaryOutcomeConfig):
    """Every setting of the in-hospital mortality task; the result records all of them."""

    # notes charted this long after ADMITTIME are the features
    window_hours: float = Field(48.0, gt=0, le=MAX_HOURS)


def admission_outcomes(cohort: Cohort, window_hours: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """Admissions that outlast the window, with ``y`` = died in hospital; and the exclusion counts."""
    adm = cohort.admissions
    flag = adm["hospital_expire_flag"].to_numpy() == 1
    has_death = adm["deathtime"].notna().to_numpy()
    died = flag | has_death
    end = adm["dischtime"].where(~adm["deathtime"].notna(), adm[["dischtime", "deathtime"]].min(axis=1))
    window_end = adm["admittime"] + pd.Timedelta(hours=window_hours)
    no_end = end.isna().to_numpy()
    inside = (~no_end) & (end < window_end).to_numpy()
    keep = ~no_end & ~inside
    counts = {
        "admissions_in_cohort": len(adm),
        "deaths_in_cohort": int(died.sum()),
        "expire_flag_without_deathtime": int((flag & ~has_death).sum()),
        "deathtime_without_expire_flag": int((has_death & ~flag).sum()),
        "excluded_no_discharge_time": int(no_end.sum()),
        "excluded_died_inside_window": int((inside & died).sum()),
        "excluded_discharged_alive_inside_window": int((inside & ~died).sum()),
    }
    units = pd.DataFrame(
        {
            "subject_id": adm["subject_id"].to_numpy(dtype=np.int64)[keep],
            "hadm_id": adm["hadm_id"].to_numpy(dtype=np.int64)[keep],
            "y": died[keep],
        }
    )
    return units, counts


def evaluate_mortality(
    cohort: Cohort, embeddings: np.ndarray, *, config: MortalityConfig | None = None
) -> TaskResult:
    """Cross-validated in-hospital mortality from the first ``window_hours`` of notes (aligned with cohort.notes)."""
    config = config or MortalityConfig()
    if len(embeddings) != len(cohort.notes):
        raise ValueError(f"{len(embeddings)} embedding rows for {len(cohort.notes)} notes")
    units, counts = admission_outcomes(cohort, config.window_hours)
    # the features end when the window closes: the prediction time of the meds-evaluation predictions
    admit = units["hadm_id"].map(cohort.admissions.set_index("hadm_id")["admittime"])
    units["prediction_time"] = admit + pd.Timedelta(hours=config.window_hours)
    notes = cohort.notes
    is_ds = is_discharge_summary(notes["category"])
    early = early_notes(notes, cohort.admissions, config.window_hours)
    of_unit = notes["hadm_id"].isin(set(units["hadm_id"].tolist())).to_numpy()
    counts["notes_after_window_unused"] = int((of_unit & ~early).sum())
    counts["discharge_summaries_in_window_unused"] = int((of_unit & early & is_ds).sum())
    hours = f"{config.window_hours:g} h"
    definition = {
        "unit": "hospital admission (a patient may contribute several; folds and intervals keep them together)",
        "features": (
            f"{config.aggregation} of the embeddings of the admission's notes charted in the first {hours} "
            "after ADMITTIME (notes before it, e.g. in the ED, included; a date-only note only when its "
            "whole day is inside); discharge summaries never"
        ),
        "label": "death during the admission: ADMISSIONS DEATHTIME present or HOSPITAL_EXPIRE_FLAG = 1",
        "exclusions": (
            f"admissions that end (discharge or death) within {hours} of ADMITTIME, or have no discharge "
            "time; admissions without a note in the window"
        ),
        "literature": (
            "mimic3-benchmarks' in-hospital mortality scores ICU stays of at least 48 h from their first "
            "48 h; here the unit is the hospital admission and the window opens at ADMITTIME"
        ),
        "relaxations": [],
    }
    return evaluate_binary_outcome(
        "mortality",
        cohort,
        embeddings,
        units=units,
        feature_notes=early & ~is_ds,
        config=config,
        definition=definition,
        counts=counts,
    )
