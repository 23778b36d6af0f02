"""A task's main metric within patient subgroups (sex, age band, race, insurance), with intervals and counts.

A model can be good on average and poor for a group; a reviewer asks for the headline number by group.
The metric is the task's own ``metrics_from_units`` on the units of the group's patients, so a subgroup
number means exactly what the headline means. Groups with fewer than ``min_patients`` patients are
listed with their count and not scored: an interval on a handful of patients says nothing.
Race/ethnicity and insurance are taken from the patient's first admission where the source records
them (MIMIC-III ETHNICITY and INSURANCE, MIMIC-IV race and insurance); race is grouped into broad
categories, since MIMIC's 30-odd ETHNICITY values would leave most groups below the minimum size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from clinpred.bounds import MAX_COUNT, MAX_RESAMPLES
from clinpred.data.cohort import Cohort
from clinpred.tasks.result import BootstrapScheme, MetricFn, bootstrap_metrics

AGE_BANDS = (0, 40, 60, 80)  # lower bounds (MIMIC shifts ages over 89 to ~300: they fall in 80+)
AGE_LABELS = ("<40", "40-59", "60-79", "80+")


class SubgroupConfig(BaseModel):
    """How subgroups are formed and scored; recorded with every result."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    min_patients: int = Field(30, ge=1, le=MAX_COUNT)  # smaller groups are listed, not scored
    # patient bootstrap per group (the task's seed and confidence)
    n_resamples: int = Field(200, ge=0, le=MAX_RESAMPLES)


# Broad groups, by the start of MIMIC's value (e.g. "ASIAN - CHINESE", "BLACK/AFRICAN AMERICAN")
RACE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("White", ("WHITE", "PORTUGUESE")),
    ("Black", ("BLACK",)),
    ("Hispanic/Latino", ("HISPANIC", "SOUTH AMERICAN")),
    ("Asian", ("ASIAN",)),
    ("unknown", ("UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED")),
)


def race_group(values: pd.Series) -> pd.Series:
    """MIMIC's race/ethnicity text as a broad group; anything unlisted is 'Other', missing 'unknown'."""
    upper = values.astype("string").str.upper().str.strip()
    out = pd.Series("Other", index=values.index, dtype="string")
    for group, prefixes in reversed(RACE_GROUPS):
        out = out.mask(upper.str.startswith(prefixes).fillna(False), group)
    return out.mask(upper.isna() | (upper == ""), "unknown")


def patient_groups(cohort: Cohort) -> pd.DataFrame:
    """Per patient: sex, age band at the first admission, and (where recorded) race and insurance."""
    patients = cohort.patients.set_index("subject_id")
    first = cohort.admissions.groupby("subject_id")["admittime"].min().reindex(patients.index)
    # from calendar fields: MIMIC's shifted DOBs of patients over 89 lie ~300 years back, beyond the
    # range of a nanosecond timedelta
    dob = patients["dob"]
    age = (first.dt.year - dob.dt.year) + (first.dt.day_of_year - dob.dt.day_of_year) / 365.25
    band = pd.cut(age, bins=[*AGE_BANDS, np.inf], right=False, labels=list(AGE_LABELS)).astype("string")
    groups = pd.DataFrame(
        {"sex": patients["gender"].astype("string").fillna("unknown"), "age_band": band.fillna("unknown")}
    )
    admissions = cohort.admissions
    first_admission = (
        admissions.sort_values("admittime").drop_duplicates("subject_id").set_index("subject_id")
    )
    for attribute, column, fn in (("race", "race", race_group), ("insurance", "insurance", None)):
        if column in first_admission and first_admission[column].notna().any():
            values = first_admission[column].reindex(patients.index)
            groups[attribute] = fn(values) if fn else values.astype("string").fillna("unknown")
    return groups


def subgroup_metrics(
    cohort: Cohort,
    units: pd.DataFrame,
    metric_fn: MetricFn,
    main_metric: str,
    bootstrap: BootstrapScheme,
    config: SubgroupConfig,
) -> dict[str, Any]:
    """{attribute: {group: {"patients": n, "units": n, "metric": Estimate | None, "scored": bool}}}."""
    groups = patient_groups(cohort).reindex(np.unique(units["subject_id"]))
    n = (
        config.n_resamples if getattr(bootstrap, "intervals", True) else 0
    )  # the task's opt-out holds here too
    scheme = bootstrap.model_copy(update={"n_resamples": n})
    out: dict[str, Any] = {
        "metric": main_metric,
        "min_patients": config.min_patients,
        "n_resamples": n,
    }
    for attribute in groups.columns:
        table = {}
        for group, members in groups.groupby(attribute).groups.items():
            rows = units[units["subject_id"].isin(set(members))]
            entry: dict[str, Any] = {"patients": len(members), "units": len(rows), "scored": False}
            if len(members) >= config.min_patients:
                entry["metric"] = bootstrap_metrics(rows, metric_fn, scheme)[main_metric]
                entry["scored"] = True
            table[str(group)] = entry
        out[attribute] = table
    return out
