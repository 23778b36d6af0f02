"""The readers on files in the exact formats of the open MIMIC-III and MIMIC-IV demos (issue 13).

The open demos (100 patients each, PhysioNet) carry no notes and may not be redistributed here, so these
fixtures are written in their formats: unquoted lowercase headers, MIMIC-III's DOD_HOSP/DOD_SSN and
ICD9_CODE, MIMIC-IV's anchor_age/anchor_year, ``icd_version`` 9 and 10 mixed in one table, and a
note/ folder in MIMIC-IV-Note's format. Phenotype prevalences are checked against a computation that
shares nothing with clinpred's grouper: a hand-written code -> phenotype list (AHRQ CCS).
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from pathlib import Path

import pytest

from clinpred.data.check import check_data
from clinpred.data.load import load_cohort

HTN, CHF, DYS = "Essential hypertension", "Congestive heart failure; nonhypertensive", "Cardiac dysrhythmias"
AKI, PNA = (
    "Acute and unspecified renal failure",
    "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
)
DM, LIPID, SEPSIS = (
    "Diabetes mellitus without complication",
    "Disorders of lipid metabolism",
    "Septicemia (except in labor)",
)
# code -> phenotype (None: a real code outside the 25 phenotypes, a true negative)
ICD9 = {"4019": HTN, "4280": CHF, "42731": DYS, "5849": AKI, "486": PNA, "25000": DM, "2724": LIPID,
        "99591": SEPSIS, "V1582": None, "3051": None}  # fmt: skip
ICD10 = {"I10": HTN, "I5023": CHF, "I480": DYS, "N179": AKI, "J189": PNA, "E119": DM, "E785": LIPID,
         "A419": SEPSIS, "Z87891": None, "F17210": None}  # fmt: skip
UNMAPPED_ICD10 = "U071"  # newer than AHRQ's CCS v2019.1, no prefix to fall back on


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    """Unquoted lowercase header, as both open demos are written; .gz where the name says so."""
    buf = io.StringIO()
    buf.write(",".join(header) + "\n")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def draw_codes(rng: random.Random, n: int, mimic4: bool) -> dict[int, list[tuple[str, int]]]:
    """Per patient, its (code, icd_version) rows: MIMIC-IV patients in ICD-9, ICD-10 or both."""
    out = {}
    for i in range(n):
        subject = 10_000 + i
        versions = [9] if not mimic4 else rng.choice([[9], [10], [9, 10]])
        rows = []
        for v in versions:
            table = ICD9 if v == 9 else ICD10
            rows += [(c, v) for c in rng.sample(sorted(table), rng.randint(1, 4))]
        out[subject] = rows
    if mimic4:
        out[10_000 + n] = [(UNMAPPED_ICD10, 10)]  # codes that map to nothing: neither positive nor negative
    return out


def expected_prevalence(codes: dict[int, list[tuple[str, int]]]) -> dict[str, float]:
    """Share of patients with at least one known code carrying each phenotype, by hand."""
    labelled = {}
    for subject, rows in codes.items():
        known = [(c, v) for c, v in rows if c in (ICD9 if v == 9 else ICD10)]
        if known:
            labelled[subject] = {(ICD9 if v == 9 else ICD10)[c] for c, v in known} - {None}
    phenotypes = {p for table in (ICD9, ICD10) for p in table.values() if p}
    return {p: sum(p in s for s in labelled.values()) / len(labelled) for p in phenotypes}


def write_mimic3_demo(root: Path, codes: dict[int, list[tuple[str, int]]]) -> Path:
    """MIMIC-III demo tables (PATIENTS.csv ... with lowercase headers) plus a NOTEEVENTS.csv we write."""
    pats, adms, dx, notes = [], [], [], []
    for k, (subject, rows) in enumerate(codes.items()):
        hadm = 100_000 + k
        year = 2100 + k
        pats.append([k + 1, subject, "F" if k % 2 else "M", f"{year - 60}-03-01 00:00:00", "", "", "", 0])
        adms.append([k + 1, subject, hadm, f"{year}-05-01 10:00:00", f"{year}-05-06 12:00:00", "", "EMERGENCY",
                     "EMERGENCY ROOM ADMIT", "HOME", "Medicare", "ENGL", "CATHOLIC", "MARRIED", "WHITE",
                     "", "", "CHEST PAIN", 0, 1])  # fmt: skip
        for seq, (code, _) in enumerate(rows, start=1):
            dx.append([len(dx) + 1, subject, hadm, seq, code])
        notes.append([k + 1, subject, hadm, f"{year}-05-01", f"{year}-05-01 12:00:00", "", "Nursing/other",
                      "Report", 1, "", "Pt resting comfortably."])  # fmt: skip
    write_csv(root / "PATIENTS.csv", ["row_id", "subject_id", "gender", "dob", "dod", "dod_hosp", "dod_ssn",
                                      "expire_flag"], pats)  # fmt: skip
    write_csv(root / "ADMISSIONS.csv", ["row_id", "subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
              "admission_type", "admission_location", "discharge_location", "insurance", "language", "religion",
              "marital_status", "ethnicity", "edregtime", "edouttime", "diagnosis", "hospital_expire_flag",
              "has_chartevents_data"], adms)  # fmt: skip
    write_csv(root / "DIAGNOSES_ICD.csv", ["row_id", "subject_id", "hadm_id", "seq_num", "icd9_code"], dx)
    write_csv(root / "NOTEEVENTS.csv", ["row_id", "subject_id", "hadm_id", "chartdate", "charttime", "storetime",
              "category", "description", "cgid", "iserror", "text"], notes)  # fmt: skip
    return root


def write_mimic4_demo(root: Path, codes: dict[int, list[tuple[str, int]]]) -> Path:
    """MIMIC-IV demo hosp/ tables (.csv.gz, lowercase) plus a note/ folder in MIMIC-IV-Note format."""
    pats, adms, dx, ds, rr = [], [], [], [], []
    for k, (subject, rows) in enumerate(codes.items()):
        hadm = 20_000_000 + k
        year = 2150 + k
        pats.append([subject, "F" if k % 2 else "M", 50 + k % 30, year, "2017 - 2019", ""])
        adms.append([subject, hadm, f"{year}-02-01 08:00:00", f"{year}-02-04 15:00:00", "", "EW EMER.", "P0",
                     "EMERGENCY ROOM", "HOME", "Medicare", "ENGLISH", "MARRIED", "WHITE", "", "", 0])  # fmt: skip
        for seq, (code, version) in enumerate(rows, start=1):
            dx.append([subject, hadm, seq, code, version])
        ds.append([f"{subject}-DS-1", subject, hadm, "DS", 1, f"{year}-02-04 00:00:00", f"{year}-02-04 16:00:00",
                   "Name: ___ Unit No: ___\nBrief Hospital Course: stable."])  # fmt: skip
        rr.append(
            [f"{subject}-RR-1", subject, hadm, "RR", 1, f"{year}-02-01 09:00:00", "", "IMPRESSION: clear."]
        )
    write_csv(root / "hosp" / "patients.csv.gz", ["subject_id", "gender", "anchor_age", "anchor_year",
                                                  "anchor_year_group", "dod"], pats)  # fmt: skip
    write_csv(root / "hosp" / "admissions.csv.gz", ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
              "admission_type", "admit_provider_id", "admission_location", "discharge_location", "insurance",
              "language", "marital_status", "race", "edregtime", "edouttime", "hospital_expire_flag"], adms)  # fmt: skip
    write_csv(root / "hosp" / "diagnoses_icd.csv.gz", ["subject_id", "hadm_id", "seq_num", "icd_code",
                                                       "icd_version"], dx)  # fmt: skip
    note_header = [
        "note_id",
        "subject_id",
        "hadm_id",
        "note_type",
        "note_seq",
        "charttime",
        "storetime",
        "text",
    ]
    write_csv(root / "note" / "discharge.csv.gz", note_header, ds)
    write_csv(root / "note" / "radiology.csv.gz", note_header, rr)
    return root


@pytest.mark.parametrize("mimic4", [False, True], ids=["mimic3-demo", "mimic4-demo"])
def test_phenotype_prevalences_match_an_independent_computation(tmp_path, mimic4):
    codes = draw_codes(random.Random(13), 60, mimic4)
    write = write_mimic4_demo if mimic4 else write_mimic3_demo
    root = write(tmp_path / "demo", codes)
    report = check_data(root, use_cache=False, progress=False)
    assert report.layout == ("mimic4" if mimic4 else "mimic3")
    expected = expected_prevalence(codes)
    for phenotype, share in expected.items():
        assert report.phenotype_prevalence[phenotype] == pytest.approx(share, abs=1e-4), phenotype
    others = set(report.phenotype_prevalence) - set(expected)
    assert len(others) == 17 and all(report.phenotype_prevalence[p] == 0 for p in others)
    assert report.patients_unmapped == int(mimic4)
    cohort = load_cohort(root, use_cache=False)
    assert len(cohort.patients) == len(codes) and cohort.diagnoses["subject_id"].nunique() == len(codes)
    if mimic4:
        rows = [v for r in codes.values() for _, v in r]
        assert report.coverage["icd9"].diagnosis_rows == rows.count(9)
        assert report.coverage["icd10"].diagnosis_rows == rows.count(10)
        assert report.coverage["icd10"].unmapped_codes == {UNMAPPED_ICD10: 1}
        only10 = sum(all(v == 10 for _, v in r) for r in codes.values())
        assert report.coverage["icd10"].patients_only_this_version == only10
        assert set(cohort.notes["category"]) == {"Discharge summary", "Radiology"}
