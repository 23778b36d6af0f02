"""ICD-9 grouping against the vendored reference tables, and patient-level splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clinpred.data.labels import (
    BENCHMARK_PHENOTYPES,
    code_to_phenotype,
    describe_code,
    icd9_table,
    label_matrix,
    primary_phenotype,
)
from clinpred.data.splits import SplitConfig, patient_folds, split_patients


def test_vendored_table_matches_the_reference_counts():
    table = icd9_table()
    assert len(table) >= 15_072
    assert set(table["benchmark_phenotype"]) - {""} == set(BENCHMARK_PHENOTYPES)
    assert describe_code("4280") == "Congestive heart failure, unspecified"
    assert table.loc["42731", "ccs_single_name"] == "Dysrhythmia" and table.loc["42731", "ccs_single"] == 106


@pytest.mark.parametrize(
    ("code", "phenotype"),
    [
        ("4280", "Congestive heart failure; nonhypertensive"),
        ("42731", "Cardiac dysrhythmias"),
        ("5849", "Acute and unspecified renal failure"),
        ("486", "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)"),
        ("25000", "Diabetes mellitus without complication"),
        ("4019", "Essential hypertension"),
        ("5715", "Other liver diseases"),
        ("78552", "Shock"),
    ],
)
def test_known_codes_map_to_their_benchmark_phenotype(code, phenotype):
    assert code_to_phenotype()[code] == phenotype


def _dx(rows):
    return pd.DataFrame(rows, columns=["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"])


def test_label_matrix_patient_and_admission_units():
    dx = _dx([(1, 10, 1, "4280", 9), (1, 11, 1, "5849", 9), (2, 20, 1, "4019", 9), (2, 20, 2, "4019", 9)])
    patient = label_matrix(dx, [1, 2, 3])
    assert list(patient.index) == [1, 2, 3] and patient.shape[1] == 25
    assert patient.loc[1, "Congestive heart failure; nonhypertensive"]
    assert patient.loc[1, "Acute and unspecified renal failure"]
    assert not patient.loc[3].any()
    adm = label_matrix(dx, unit="admission")
    assert adm.loc[(1, 10), "Congestive heart failure; nonhypertensive"]
    assert not adm.loc[(1, 10), "Acute and unspecified renal failure"]


def test_topk_counts_patients_not_rows_and_breaks_ties_by_name():
    dx = _dx(
        [
            (1, 10, 1, "4019", 9),
            (1, 10, 2, "4019", 9),
            (2, 20, 1, "5849", 9),
            (3, 30, 1, "5849", 9),
            (4, 40, 1, "4280", 9),
        ]
    )
    top = label_matrix(dx, scheme="icd_topk", k=2)
    assert list(top.columns) == ["5849", "4019"]


def test_primary_phenotype_is_first_admission_lowest_seq():
    dx = _dx([(1, 10, 2, "5849", 9), (1, 10, 1, "V1582", 9), (1, 10, 3, "4280", 9), (1, 11, 1, "486", 9)])
    assert primary_phenotype(dx, [1, 2]).tolist() == ["Acute and unspecified renal failure", "none"]


def test_split_is_disjoint_deterministic_and_seeded():
    ids = np.arange(1000, 1200)
    a = split_patients(ids, SplitConfig(seed=3))
    b = split_patients(ids, SplitConfig(seed=3))
    c = split_patients(ids, SplitConfig(seed=4))
    assert a == b and a.evaluation != c.evaluation
    assert len(a.evaluation) == 100 and len(a.validation) == 10 and len(a.finetune) == 90
    assert not set(a.evaluation) & set(a.finetune_all)
    assert sorted(a.evaluation + a.finetune_all) == list(ids)


def test_patient_folds_cover_each_patient_once_and_stratify():
    ids = np.arange(100)
    strata = np.array([0] * 80 + [1] * 20)
    folds = patient_folds(ids, 5, seed=0, strata=strata)
    tests = np.concatenate([t for _, t in folds])
    assert sorted(tests) == list(ids)
    for train, test in folds:
        assert not set(train) & set(test)
        assert (strata[test] == 1).sum() == 4
    with pytest.raises(ValueError):
        patient_folds(np.array([1, 1, 2]), 2)
