"""ICD-10-CM codes reach the same 25 CCS phenotypes as ICD-9 codes; codes that map to nothing are
counted and kept out of the diagnosis task instead of being scored as negatives (issue 13, defect 1)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from mimic_files import M4_ADMISSIONS, M4_DIAGNOSES, write_mimic4
from test_diagnosis import FAST, make_cohort

from clinpred.data.check import check_data
from clinpred.data.cohort import DIAGNOSIS_DTYPES, conform
from clinpred.data.labels import (
    BENCHMARK_PHENOTYPES,
    icd10_ccs,
    icd10_table,
    label_matrix,
    primary_phenotype,
    unmapped_units,
)
from clinpred.tasks.diagnosis import DiagnosisConfig, evaluate_diagnosis


def _dx(rows):
    return pd.DataFrame(rows, columns=["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"])


@pytest.mark.parametrize(
    ("code", "phenotype"),
    [
        ("I10", "Essential hypertension"),
        ("I5023", "Congestive heart failure; nonhypertensive"),
        ("N179", "Acute and unspecified renal failure"),
        ("A419", "Septicemia (except in labor)"),
        ("I480", "Cardiac dysrhythmias"),
        ("J189", "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)"),
        ("E119", "Diabetes mellitus without complication"),
        ("E785", "Disorders of lipid metabolism"),
        ("R6521", "Shock"),
    ],
)
def test_icd10_codes_map_to_their_benchmark_phenotype(code, phenotype):
    matrix = label_matrix(_dx([(1, 1, 1, code, 10)]))
    assert matrix.loc[1, phenotype] and matrix.loc[1].sum() == 1


def test_vendored_icd10_table_covers_every_phenotype():
    table = icd10_table()
    assert len(table) == 72_446
    assert set(table["benchmark_phenotype"]) - {""} == set(BENCHMARK_PHENOTYPES)


def test_icd9_and_icd10_share_single_level_ccs_names():
    dx = _dx([(1, 1, 1, "4019", 9), (2, 2, 1, "I10", 10), (3, 3, 1, "42731", 9), (4, 4, 1, "I4891", 10)])
    matrix = label_matrix(dx, scheme="ccs_single_topk", k=5)
    assert sorted(matrix.columns) == ["Dysrhythmia", "HTN"]
    assert matrix["HTN"].tolist() == [True, True, False, False]


def test_a_code_newer_than_the_table_takes_its_unambiguous_prefix_category():
    codes = pd.Series(["I5023", "I50239", "I50X", "U071", "ZZZ"])  # I50239 / I50X: made-up extensions
    ccs = icd10_ccs(codes)
    assert ccs[0] == ccs[1] == ccs[2] == 108 and ccs[3:].isna().all()


def test_a_patient_whose_codes_map_to_nothing_is_not_a_negative():
    dx = _dx([(1, 1, 1, "I10", 10), (2, 2, 1, "U071", 10), (3, 3, 1, "Z9981", 10)])
    assert unmapped_units(dx).tolist() == [2]
    assert unmapped_units(dx, "icd_topk").empty  # every code is its own label there
    assert primary_phenotype(dx, [1, 2]).tolist() == ["Essential hypertension", "none"]


def test_diagnosis_task_excludes_and_counts_unmapped_patients():
    cohort, _ = make_cohort(n=60)
    dx = cohort.diagnoses.copy()
    unmapped = [1, 2, 3]
    dx = dx[~dx["subject_id"].isin(unmapped)]
    extra = _dx([(s, s * 10, 1, "U071", 10) for s in unmapped])
    cohort = dataclasses.replace(cohort, diagnoses=conform(pd.concat([dx, extra]), DIAGNOSIS_DTYPES))
    rng = np.random.default_rng(0)
    result = evaluate_diagnosis(
        cohort, rng.normal(size=(len(cohort.notes), 8)), config=DiagnosisConfig(bootstrap=FAST)
    )
    assert result.counts["patients_with_unmapped_codes_only"] == 3
    assert result.counts["patients"] == 60 - 3 - result.counts["patients_without_diagnoses"]
    assert not set(unmapped) & set(result.units["subject_id"])
    assert any("3 patient(s) excluded" in w for w in result.warnings)
    assert "ICD-10-CM" in result.definition["label_mapping"]


def test_data_check_reports_coverage_by_icd_version_and_unmapped_patients(tmp_path, cli):
    dx = [list(r) for r in M4_DIAGNOSES] + [["2000", "6000", "2", "I10", "10"]]
    patients_rows = [
        ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"],
        ["1000", "F", "60", "2180", "2014 - 2016", ""],
        ["2000", "M", "75", "2150", "2011 - 2013", "2151-06-01"],
        ["3000", "M", "50", "2150", "2011 - 2013", ""],
    ]
    adm = [list(r) for r in M4_ADMISSIONS] + [["3000", "7000", *M4_ADMISSIONS[2][2:]]]
    dx.append(["3000", "7000", "1", "U071", "10"])
    root = write_mimic4(
        tmp_path / "m4",
        **{"hosp/diagnoses_icd": dx, "hosp/patients": patients_rows, "hosp/admissions": adm},
    )
    report = check_data(root, use_cache=False, progress=False)
    assert report.coverage["icd10"].diagnosis_rows == 4
    assert report.coverage["icd10"].rows_in_a_phenotype == 3
    assert report.coverage["icd10"].unmapped_codes == {"U071": 1}
    assert report.coverage["icd9"].patients_only_this_version == 0
    assert report.coverage["icd10"].patients_only_this_version == 2
    assert report.patients_unmapped == 1
    # prevalence over the two labelled patients; patient 3000 is neither positive nor negative
    assert report.phenotype_prevalence["Essential hypertension"] == 0.5
    assert report.phenotype_prevalence["Congestive heart failure; nonhypertensive"] == 1.0
    result = cli("data", "check", str(root), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert "patients whose codes all map to nothing: 1" in result.stdout
    assert "warning: 1 patient(s)" in result.stdout
