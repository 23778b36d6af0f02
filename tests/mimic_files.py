"""Write small MIMIC-III / MIMIC-IV-Note directories by hand, with the real data's quirks.

These are hand-built files in the exact published formats (quoted UPPERCASE headers for full MIMIC-III,
lowercase for its open demo and for MIMIC-IV), small enough to reason about row by row in a test.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

PATIENTS = [
    ["ROW_ID", "SUBJECT_ID", "GENDER", "DOB", "DOD", "DOD_HOSP", "DOD_SSN", "EXPIRE_FLAG"],
    ["1", "10", "M", "2100-01-01 00:00:00", "", "", "", "0"],
    ["2", "20", "F", "1850-06-01 00:00:00", "2152-03-01 00:00:00", "2152-03-01 00:00:00", "", "1"],  # >89
    ["3", "30", "F", "2090-02-02 00:00:00", "2160-01-01 00:00:00", "", "2160-01-01 00:00:00", "1"],
]
ADMISSIONS = [
    [
        "ROW_ID",
        "SUBJECT_ID",
        "HADM_ID",
        "ADMITTIME",
        "DISCHTIME",
        "DEATHTIME",
        "ADMISSION_TYPE",
        "ADMISSION_LOCATION",
        "DISCHARGE_LOCATION",
        "INSURANCE",
        "LANGUAGE",
        "RELIGION",
        "MARITAL_STATUS",
        "ETHNICITY",
        "EDREGTIME",
        "EDOUTTIME",
        "DIAGNOSIS",
        "HOSPITAL_EXPIRE_FLAG",
        "HAS_CHARTEVENTS_DATA",
    ],
    [
        "1",
        "10",
        "100",
        "2150-01-01 10:00:00",
        "2150-01-05 12:00:00",
        "",
        "EMERGENCY",
        "ER",
        "HOME",
        "Medicare",
        "ENGL",
        "",
        "MARRIED",
        "WHITE",
        "",
        "",
        "SEPSIS",
        "0",
        "1",
    ],
    [
        "2",
        "10",
        "101",
        "2151-03-01 08:00:00",
        "2151-03-03 09:00:00",
        "",
        "ELECTIVE",
        "REFERRAL",
        "HOME",
        "Medicare",
        "ENGL",
        "",
        "MARRIED",
        "WHITE",
        "",
        "",
        "CHF",
        "0",
        "1",
    ],
    [
        "3",
        "20",
        "200",
        "2152-02-20 10:00:00",
        "2152-03-01 05:00:00",
        "2152-03-01 05:00:00",
        "EMERGENCY",
        "ER",
        "DEAD/EXPIRED",
        "Medicare",
        "",
        "",
        "",
        "WHITE",
        "",
        "",
        "PNEUMONIA",
        "1",
        "1",
    ],
    [
        "4",
        "30",
        "300",
        "2159-05-01 10:00:00",
        "2159-05-04 10:00:00",
        "",
        "URGENT",
        "ER",
        "SNF",
        "Private",
        "",
        "",
        "",
        "BLACK",
        "",
        "",
        "AFIB",
        "0",
        "1",
    ],
]
DIAGNOSES = [
    ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"],
    ["1", "10", "100", "1", "99591"],  # sepsis
    ["2", "10", "100", "2", "5849"],  # acute kidney failure
    ["3", "10", "101", "1", "4280"],  # CHF
    ["4", "20", "200", "1", "486"],  # pneumonia
    ["5", "20", "200", "2", ""],  # MIMIC-III has a few rows with no code
    ["6", "30", "300", "1", "42731"],  # atrial fibrillation
    ["7", "30", "300", "2", "V1582"],
]
NOTE_HEADER = [
    "ROW_ID",
    "SUBJECT_ID",
    "HADM_ID",
    "CHARTDATE",
    "CHARTTIME",
    "STORETIME",
    "CATEGORY",
    "DESCRIPTION",
    "CGID",
    "ISERROR",
    "TEXT",
]
NOTES = [
    NOTE_HEADER,
    [
        "11",
        "10",
        "100",
        "2150-01-01",
        "2150-01-01 11:00:00",
        "2150-01-01 11:30:00",
        "Nursing/other",
        "Report",
        "1001",
        "",
        "Pt arrived from ED.\nFebrile, [**Hospital 1234**] transfer.",
    ],
    [
        "12",
        "10",
        "100",
        "2150-01-02",
        "2150-01-02 08:00:00",
        "",
        "Physician ",
        "Physician Resident Progress Note",
        "1002",
        "",
        "S: feels better\nO: Lactate 2.1",
    ],
    [
        "13",
        "10",
        "100",
        "2150-01-05",
        "",
        "",
        "Discharge summary",
        "Report",
        "",
        "",
        'Admission Date:  [**2150-1-1**]\nDischarge Diagnosis: sepsis, "ARF"',
    ],
    ["10", "10", "100", "2150-01-05", "", "", "ECG", "Report", "", "", "Sinus tachycardia."],  # tie: ROW_ID
    [
        "14",
        "10",
        "100",
        "2150-01-03",
        "2150-01-03 09:00:00",
        "",
        "Nursing",
        "Nursing Progress Note",
        "1003",
        "1",
        "erroneous note",
    ],
    [
        "15",
        "10",
        "",
        "2151-01-10",
        "2151-01-10 09:00:00",
        "",
        "Radiology",
        "CHEST (PA & LAT)",
        "",
        "",
        "FINDINGS: clear.\nIMPRESSION: No acute process.",
    ],  # outpatient: no HADM_ID
    [
        "21",
        "20",
        "200",
        "2152-02-20",
        "2152-02-20 12:00:00",
        "",
        "Respiratory ",
        "Respiratory Care Shift Note",
        "2001",
        "",
        "Vent settings: AC 500x14",
    ],
    ["22", "20", "200", "2152-02-21", "", "", "Echo", "Report", "", "", "LVEF 55%."],
    [
        "31",
        "30",
        "300",
        "2159-05-01",
        "2159-05-01 12:00:00",
        "",
        "Nursing/other",
        "Report",
        "3001",
        "",
        "AF with RVR, on diltiazem gtt",
    ],
]


def _write(path: Path, rows: list[list[str]], *, upper: bool = True) -> None:
    buf = io.StringIO()
    header = rows[0] if upper else [h.lower() for h in rows[0]]
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    buf.write(",".join(f'"{h}"' for h in header) + "\n")  # MIMIC-III quotes its header names
    writer.writerows(rows[1:])
    data = buf.getvalue().encode()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)


def write_mimic3(
    directory: Path,
    *,
    upper: bool = True,
    gz: bool = True,
    notes: list[list[str]] | None = None,
    **overrides: list[list[str]],
) -> Path:
    """Write the small MIMIC-III cohort above (tables overridable by name) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    tables = {
        "PATIENTS": PATIENTS,
        "ADMISSIONS": ADMISSIONS,
        "DIAGNOSES_ICD": DIAGNOSES,
        "NOTEEVENTS": NOTES if notes is None else notes,
        **overrides,
    }
    ext = ".csv.gz" if gz else ".csv"
    for name, rows in tables.items():
        _write(directory / ((name if upper else name.lower()) + ext), rows, upper=upper)
    return directory


M4_PATIENTS = [
    ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"],
    ["1000", "F", "60", "2180", "2014 - 2016", ""],
    ["2000", "M", "75", "2150", "2011 - 2013", "2151-06-01"],
]
M4_ADMISSIONS = [
    [
        "subject_id",
        "hadm_id",
        "admittime",
        "dischtime",
        "deathtime",
        "admission_type",
        "admit_provider_id",
        "admission_location",
        "discharge_location",
        "insurance",
        "language",
        "marital_status",
        "race",
        "edregtime",
        "edouttime",
        "hospital_expire_flag",
    ],
    [
        "1000",
        "5000",
        "2180-01-01 10:00:00",
        "2180-01-06 10:00:00",
        "",
        "EW EMER.",
        "P1",
        "EMERGENCY ROOM",
        "HOME",
        "Medicare",
        "ENGLISH",
        "MARRIED",
        "WHITE",
        "",
        "",
        "0",
    ],
    [
        "2000",
        "6000",
        "2150-03-01 10:00:00",
        "2150-03-04 10:00:00",
        "",
        "URGENT",
        "P2",
        "TRANSFER",
        "SNF",
        "Medicaid",
        "ENGLISH",
        "SINGLE",
        "BLACK",
        "",
        "",
        "0",
    ],
]
M4_DIAGNOSES = [
    ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
    ["1000", "5000", "1", "I5023", "10"],
    ["1000", "5000", "2", "N179", "10"],
    ["2000", "6000", "1", "4280", "9"],
]
M4_DISCHARGE = [
    ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"],
    [
        "1000-DS-1",
        "1000",
        "5000",
        "DS",
        "1",
        "2180-01-06 00:00:00",
        "2180-01-06 15:00:00",
        "Name: ___ Unit No: ___\nDischarge Diagnosis: heart failure",
    ],
    ["2000-DS-1", "2000", "6000", "DS", "1", "2150-03-04 00:00:00", "", "Brief Hospital Course: ___"],
]
M4_RADIOLOGY = [
    ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"],
    [
        "1000-RR-1",
        "1000",
        "5000",
        "RR",
        "1",
        "2180-01-01 12:00:00",
        "",
        "EXAMINATION: CHEST\nIMPRESSION: edema",
    ],
    ["1000-RR-2", "1000", "", "RR", "2", "2180-02-01 12:00:00", "", "IMPRESSION: improved"],
]


def write_mimic4(root: Path, **overrides: list[list[str]]) -> Path:
    """Write a small MIMIC-IV + MIMIC-IV-Note layout (hosp/, note/) and return its root."""
    tables = {
        "hosp/patients": M4_PATIENTS,
        "hosp/admissions": M4_ADMISSIONS,
        "hosp/diagnoses_icd": M4_DIAGNOSES,
        "note/discharge": M4_DISCHARGE,
        "note/radiology": M4_RADIOLOGY,
        **overrides,
    }
    for name, rows in tables.items():
        path = root / f"{name}.csv.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, rows, upper=False)
    return root
