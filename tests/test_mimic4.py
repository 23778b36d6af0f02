"""The MIMIC-IV + MIMIC-IV-Note reader produces the same Cohort form as MIMIC-III."""

from __future__ import annotations

import pandas as pd
import pytest
from mimic_files import M4_DIAGNOSES, write_mimic3, write_mimic4

from clinpred.data import detect_layout, load_cohort
from clinpred.data.cohort import NOTE_DTYPES
from clinpred.data.labels import label_matrix
from clinpred.errors import InputError


def test_reads_hosp_and_note_into_the_canonical_cohort(tmp_path):
    root = write_mimic4(tmp_path / "m4")
    cohort = load_cohort(root, cache_dir=tmp_path / "cache")
    assert cohort.source == "mimic4" and cohort.protected
    assert list(cohort.notes.columns) == list(NOTE_DTYPES)
    assert list(cohort.notes.query("subject_id == 1000")["note_id"]) == [
        "1000-RR-1",
        "1000-DS-1",
        "1000-RR-2",
    ]
    categories = dict(zip(cohort.notes["note_id"], cohort.notes["category"], strict=True))
    assert categories["1000-DS-1"] == "Discharge summary" and categories["1000-RR-1"] == "Radiology"
    assert pd.isna(cohort.notes.set_index("note_id").loc["1000-RR-2", "hadm_id"])
    # DOB from the anchor: 1 January of anchor_year - anchor_age.
    assert cohort.patients.set_index("subject_id").loc[1000, "dob"] == pd.Timestamp("2120-01-01")
    assert cohort.patients.set_index("subject_id").loc[2000, "dod"] == pd.Timestamp("2151-06-01")


def test_icd10_codes_are_kept_and_usable_with_the_raw_code_scheme(tmp_path):
    cohort = load_cohort(write_mimic4(tmp_path / "m4"), cache_dir=tmp_path / "cache")
    assert set(cohort.diagnoses["icd_version"]) == {9, 10}
    raw = label_matrix(cohort.diagnoses, scheme="icd_topk", k=10)
    assert raw.loc[1000, "ICD10:I5023"] and not raw.loc[2000, "ICD10:I5023"]
    assert raw.loc[2000, "4280"]
    # Both versions reach the CCS phenotypes: heart failure coded in ICD-9 (4280) and ICD-10 (I5023).
    ccs = label_matrix(cohort.diagnoses, scheme="ccs_benchmark")
    assert ccs.loc[2000, "Congestive heart failure; nonhypertensive"]
    assert ccs.loc[1000, "Congestive heart failure; nonhypertensive"]
    assert ccs.loc[1000, "Acute and unspecified renal failure"] and ccs.loc[1000].sum() == 2


def test_radiology_only_is_enough(tmp_path):
    root = write_mimic4(tmp_path / "m4")
    (root / "note" / "discharge.csv.gz").unlink()
    cohort = load_cohort(root, cache_dir=tmp_path / "cache")
    assert set(cohort.notes["category"]) == {"Radiology"}


def test_bad_icd_version(tmp_path):
    dx = [list(r) for r in M4_DIAGNOSES]
    dx[2][4] = "11"
    with pytest.raises(InputError, match="ICD_VERSION, data row 2"):
        load_cohort(write_mimic4(tmp_path / "m4", **{"hosp/diagnoses_icd": dx}), cache_dir=tmp_path / "c")


def test_layout_detection(tmp_path):
    assert detect_layout(write_mimic4(tmp_path / "m4")) == "mimic4"
    assert detect_layout(write_mimic3(tmp_path / "m3")) == "mimic3"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither"):
        detect_layout(tmp_path / "empty")


def test_data_check_on_mimic4(cli, tmp_path):
    result = cli("data", "check", str(write_mimic4(tmp_path / "m4")), env={"CLINPRED_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "mimic4 layout" in result.stdout and "Radiology" in result.stdout
