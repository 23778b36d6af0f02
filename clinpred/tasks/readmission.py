"""30-day readmission after a discharge alive, from the notes of that admission.

Unit: a hospital admission that ends in a discharge alive (no DEATHTIME, HOSPITAL_EXPIRE_FLAG = 0).
Label: the same patient's next admission starts no later than ``days`` (default 30) after DISCHTIME.
Readmissions are unplanned by default, as in ClinicalBERT (Huang et al. 2019): an ELECTIVE next
admission (MIMIC-III ADMISSION_TYPE, MIMIC-IV admission_type ELECTIVE or SURGICAL SAME DAY ADMISSION)
is not a readmission, the first non-elective admission within the window is, and NEWBORN admissions are
not index admissions; ``elective = "count"`` gives the all-cause variant. Where a source does not record
the admission type, every admission counts (the result says how many types were missing). A patient
who dies after discharge without coming back is a negative, counted. Features: the admission's notes charted up to its discharge, without the
discharge summary by default (``include_discharge_summary`` adds it, recorded as a relaxation: it is
written at discharge, so it is a fair feature for prediction at discharge, but its follow-up plans are
close to the label). Cross-validation grouped by patient; AUROC, AUPRC with patient-bootstrap intervals.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from clinpred.bounds import MAX_DAYS
from clinpred.data.categories import is_discharge_summary
from clinpred.data.cohort import Cohort
from clinpred.tasks.binary_outcome import BinaryOutcomeConfig, evaluate_binary_outcome
from clinpred.tasks.result import TaskResult

DEFINITIONS = {
    "skip": (
        "unplanned (ClinicalBERT): the first non-elective admission of the patient after discharge counts; "
        "elective admissions (ELECTIVE, SURGICAL SAME DAY ADMISSION) are not readmissions; NEWBORN "
        "admissions are not index admissions; an admission without a recorded type counts as non-elective"
    ),
    "count": "all-cause: any later admission of the patient counts, elective (planned) ones included",
}
ELECTIVE_TYPES = ("ELECTIVE", "SURGICAL SAME DAY ADMISSION")


class ReadmissionConfig(BinaryOutcomeConfig):
    """Every setting of the 30-day readmission task; the result records all of them."""

    # a next admission starting this soon after discharge is a readmission
    days: float = Field(30.0, gt=0, le=MAX_DAYS)
    include_discharge_summary: bool = False  # True adds the admission's discharge summary to the features
    elective: Literal["skip", "count"] = "skip"  # count: all-cause readmission (elective ones included)


def discharge_outcomes(
    cohort: Cohort, days: float, elective: str = "skip"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Discharges alive with ``y`` = the next (non-elective, by default) admission starts within ``days``."""
    adm = cohort.admissions.sort_values(["subject_id", "admittime"], kind="stable").reset_index(drop=True)
    died = (adm["hospital_expire_flag"].to_numpy() == 1) | adm["deathtime"].notna().to_numpy()
    kind = adm["admission_type"].astype("string").str.upper().str.strip() if "admission_type" in adm else None
    is_elective = (
        kind.isin(ELECTIVE_TYPES).fillna(False).to_numpy(bool)
        if kind is not None and elective == "skip"
        else np.zeros(len(adm), dtype=bool)
    )
    newborn = (
        (kind == "NEWBORN").fillna(False).to_numpy(bool) if kind is not None else np.zeros(len(adm), bool)
    )
    # the earliest later admission of the same patient that counts as a readmission
    counted = adm["admittime"].where(~pd.Series(is_elective, index=adm.index))
    next_admit = counted.groupby(adm["subject_id"]).shift(-1)
    next_admit = next_admit.groupby(adm["subject_id"]).bfill()
    gap = (next_admit - adm["dischtime"]).dt.total_seconds() / 86_400
    no_disch = adm["dischtime"].isna().to_numpy()
    keep = ~died & ~no_disch & ~newborn
    y = (gap <= days).to_numpy(dtype=bool) & keep  # NaN gaps (no next admission) compare False
    dod = adm["subject_id"].map(cohort.patients.set_index("subject_id")["dod"])
    died_after = (dod - adm["dischtime"].dt.normalize()).dt.days
    counts = {
        "admissions_in_cohort": len(adm),
        "excluded_died_in_hospital": int(died.sum()),
        "excluded_no_discharge_time": int((no_disch & ~died).sum()),
        "excluded_newborn": int((newborn & ~died).sum()),
        "discharges_alive": int(keep.sum()),
        "elective_admissions_not_counted_as_readmissions": int(is_elective.sum()),
        "admissions_without_type": int(kind.isna().sum()) if kind is not None else len(adm),
        "next_admission_overlapping_the_stay": int((keep & (gap < 0).to_numpy()).sum()),
        "died_within_window_without_readmission_counted_negative": int(
            (keep & ~y & (died_after <= days).to_numpy(dtype=bool)).sum()
        ),
    }
    units = pd.DataFrame(
        {
            "subject_id": adm["subject_id"].to_numpy(dtype=np.int64)[keep],
            "hadm_id": adm["hadm_id"].to_numpy(dtype=np.int64)[keep],
            "y": y[keep],
        }
    )
    return units, counts


def evaluate_readmission(
    cohort: Cohort, embeddings: np.ndarray, *, config: ReadmissionConfig | None = None
) -> TaskResult:
    """Cross-validated 30-day readmission from the notes of the admission (aligned with cohort.notes)."""
    config = config or ReadmissionConfig()
    if len(embeddings) != len(cohort.notes):
        raise ValueError(f"{len(embeddings)} embedding rows for {len(cohort.notes)} notes")
    units, counts = discharge_outcomes(cohort, config.days, config.elective)
    # prediction at discharge: the prediction time of the meds-evaluation predictions
    units["prediction_time"] = units["hadm_id"].map(cohort.admissions.set_index("hadm_id")["dischtime"])
    notes = cohort.notes
    disch = notes["hadm_id"].map(cohort.admissions.set_index("hadm_id")["dischtime"])
    date_only = notes["time_is_date"].to_numpy(bool)
    by_discharge = (
        np.where(
            date_only,
            (notes["time"].dt.normalize() <= disch.dt.normalize()).to_numpy(bool),
            (notes["time"] <= disch).to_numpy(bool),
        )
        & disch.notna().to_numpy()
    )
    is_ds = is_discharge_summary(notes["category"])
    of_unit = notes["hadm_id"].isin(set(units["hadm_id"].tolist())).to_numpy()
    counts["notes_after_discharge_unused"] = int((of_unit & ~by_discharge).sum())
    counts["discharge_summaries_of_units"] = int((of_unit & is_ds).sum())
    features = by_discharge if config.include_discharge_summary else by_discharge & ~is_ds
    counts["discharge_summaries_used"] = int((of_unit & features & is_ds).sum())
    definition = {
        "unit": "hospital admission ending in a discharge alive (a patient may contribute several)",
        "features": (
            f"{config.aggregation} of the embeddings of the admission's notes charted up to its discharge"
            + (
                ", discharge summary included"
                if config.include_discharge_summary
                else ", discharge summary excluded"
            )
        ),
        "label": (
            f"the patient's next admission starts no later than {config.days:g} days after DISCHTIME "
            "(an overlapping next admission counts, and is counted)"
        ),
        "readmission_definition": DEFINITIONS[config.elective],
        "exclusions": (
            "admissions ending in death (DEATHTIME or HOSPITAL_EXPIRE_FLAG) or without a discharge time; "
            "admissions without a note; a death after discharge without readmission is a negative"
        ),
        "literature": (
            "ClinicalBERT (Huang et al. 2019) and most clinical NLP papers: 30-day readmission after "
            "discharge alive, readmission to the same hospital only (MIMIC sees no other)"
        ),
        "relaxations": ["include_discharge_summary"] if config.include_discharge_summary else [],
    }
    return evaluate_binary_outcome(
        "readmission",
        cohort,
        embeddings,
        units=units,
        feature_notes=features,
        config=config,
        definition=definition,
        counts=counts,
    )
