"""Each task's main metric by sex and age band, with intervals and counts; small groups listed, not
scored (issue 13, reviewer items)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from test_diagnosis import FAST, embed, make_cohort

from clinpred.tasks.diagnosis import DiagnosisConfig, evaluate_diagnosis, metrics_from_units
from clinpred.tasks.subgroups import SubgroupConfig, patient_groups


def test_diagnosis_by_sex_and_age_band():
    cohort, codes = make_cohort()
    patients = cohort.patients.copy()
    patients["gender"] = ["M" if s % 3 else "F" for s in patients["subject_id"]]  # 2/3 men
    first = cohort.admissions.groupby("subject_id")["admittime"].min().reindex(patients["subject_id"])
    years = [30 if s <= 10 else 50 if s % 2 else 70 for s in patients["subject_id"]]  # 10 patients under 40
    patients["dob"] = first.to_numpy() - pd.to_timedelta([y * 365.25 + 1 for y in years], unit="D")
    cohort = dataclasses.replace(cohort, patients=patients)
    groups = patient_groups(cohort)
    assert groups.loc[1, "age_band"] == "<40" and groups.loc[11, "age_band"] == "40-59"
    assert groups.loc[12, "age_band"] == "60-79" and groups.loc[3, "sex"] == "F"

    config = DiagnosisConfig(bootstrap=FAST, subgroups=SubgroupConfig(min_patients=20, n_resamples=50))
    r = evaluate_diagnosis(cohort, embed(cohort, codes, signal_in="all"), config=config)
    sub = r.subgroups
    assert sub["metric"] == "macro_auroc" and sub["min_patients"] == 20
    scored = r.units["subject_id"].unique()
    assert sum(g["patients"] for g in sub["sex"].values()) == len(scored)
    assert sum(g["patients"] for g in sub["age_band"].values()) == len(scored)
    young = sub["age_band"]["<40"]
    assert young["patients"] <= 10 and not young["scored"] and "metric" not in young  # listed, not scored
    men = sub["sex"]["M"]
    assert men["scored"] and men["metric"].low is not None
    in_men = r.units[r.units["subject_id"].isin(groups.index[groups["sex"] == "M"])]
    assert men["metric"].value == pytest.approx(metrics_from_units(in_men)["macro_auroc"])
    assert men["units"] == len(in_men)


def test_shifted_dob_of_patients_over_89_falls_in_the_oldest_band():
    cohort, _ = make_cohort(n=4)
    patients = cohort.patients.copy()
    patients.loc[0, "dob"] = pd.Timestamp("1850-06-01")  # MIMIC's shift: ~300 years before admission
    groups = patient_groups(dataclasses.replace(cohort, patients=patients))
    assert groups.iloc[0]["age_band"] == "80+"


def test_race_and_insurance_from_the_first_admission_where_the_source_records_them(tmp_path):
    from mimic_files import ADMISSIONS, write_mimic3

    from clinpred.data.mimic3 import read_mimic3
    from clinpred.tasks.subgroups import race_group

    assert race_group(
        pd.Series(
            [
                "WHITE - RUSSIAN",
                "BLACK/AFRICAN AMERICAN",
                "ASIAN - CHINESE",
                "HISPANIC OR LATINO",
                "UNABLE TO OBTAIN",
                "AMERICAN INDIAN/ALASKA NATIVE",
                None,
            ],
            dtype="string",
        )
    ).tolist() == ["White", "Black", "Asian", "Hispanic/Latino", "unknown", "Other", "unknown"]
    rows = [list(r) for r in ADMISSIONS]
    cohort = read_mimic3(write_mimic3(tmp_path / "m3", ADMISSIONS=rows), use_cache=False)
    groups = patient_groups(cohort)
    first = cohort.admissions.sort_values("admittime").drop_duplicates("subject_id").set_index("subject_id")
    for subject, row in first.iterrows():
        assert groups.loc[subject, "insurance"] == row["insurance"]
        assert groups.loc[subject, "race"] == race_group(pd.Series([row["race"]], dtype="string"))[0]
    # a source without these columns offers no such subgroup (not a column of 'unknown')
    bare = dataclasses.replace(cohort, admissions=cohort.admissions.assign(race=pd.NA, insurance=pd.NA))
    assert list(patient_groups(bare).columns) == ["sex", "age_band"]
