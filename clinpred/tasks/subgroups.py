"""A task's main metric within patient subgroups (sex, age band), with intervals and counts.

A model can be good on average and poor for a group; a reviewer asks for the headline number by group.
The metric is the task's own ``metrics_from_units`` on the units of the group's patients, so a subgroup
number means exactly what the headline means. Groups with fewer than ``min_patients`` patients are
listed with their count and not scored: an interval on a handful of patients says nothing.
Race/ethnicity and insurance are not in clinpred's Cohort (the readers do not keep them), so they are
not offered here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from clinpred.data.cohort import Cohort
from clinpred.tasks.result import BootstrapScheme, MetricFn, bootstrap_metrics

AGE_BANDS = (0, 40, 60, 80)  # lower bounds (MIMIC shifts ages over 89 to ~300: they fall in 80+)
AGE_LABELS = ("<40", "40-59", "60-79", "80+")


class SubgroupConfig(BaseModel):
    """How subgroups are formed and scored; recorded with every result."""

    model_config = ConfigDict(extra="forbid")

    min_patients: int = Field(30, ge=1)  # smaller groups are listed, not scored
    n_resamples: int = Field(200, ge=0)  # patient bootstrap per group (the task's seed and confidence)


def patient_groups(cohort: Cohort) -> pd.DataFrame:
    """Per patient: sex, and age band at the first admission."""
    patients = cohort.patients.set_index("subject_id")
    first = cohort.admissions.groupby("subject_id")["admittime"].min().reindex(patients.index)
    # from calendar fields: MIMIC's shifted DOBs of patients over 89 lie ~300 years back, beyond the
    # range of a nanosecond timedelta
    dob = patients["dob"]
    age = (first.dt.year - dob.dt.year) + (first.dt.day_of_year - dob.dt.day_of_year) / 365.25
    band = pd.cut(age, bins=[*AGE_BANDS, np.inf], right=False, labels=list(AGE_LABELS)).astype("string")
    return pd.DataFrame(
        {"sex": patients["gender"].astype("string").fillna("unknown"), "age_band": band.fillna("unknown")}
    )


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
