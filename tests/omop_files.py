"""Write small OMOP CDM v5.4 folders by hand (CSV or typed Parquet), with what real extracts do.

Codes as coded (dots, padding, lower case), a CONCEPT table that names a few source concepts, visits
that are not admissions, a condition with a SNOMED concept only, a death inside a stay and one recorded
only as a discharge to "Patient died". Every count the tests check is worked out in the comments.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

Rows = list[list[str]]

PERSON: Rows = [
    [
        "person_id",
        "gender_concept_id",
        "year_of_birth",
        "month_of_birth",
        "day_of_birth",
        "birth_datetime",
        "race_concept_id",
        "ethnicity_concept_id",
        "gender_source_value",
        "race_source_value",
    ],
    ["1", "8507", "1950", "3", "15", "", "8527", "0", "M", ""],
    ["2", "8532", "1940", "", "", "", "0", "0", "F", "BLACK"],
    ["3", "0", "1900", "", "", "1960-07-01 00:00:00", "0", "0", "F", ""],  # birth_datetime wins
    ["4", "8507", "1970", "1", "1", "", "0", "0", "M", ""],  # outpatient visits only
    ["5", "8532", "1980", "", "", "", "0", "0", "F", ""],  # dies the day of a discharge home
]
# inpatient (9201, 262): 10, 12, 20, 30, 50 -> 5 admissions; 11 outpatient, 21 ER, 40 outpatient: not
VISIT: Rows = [
    [
        "visit_occurrence_id",
        "person_id",
        "visit_concept_id",
        "visit_start_date",
        "visit_start_datetime",
        "visit_end_date",
        "visit_end_datetime",
        "visit_type_concept_id",
        "discharged_to_concept_id",
    ],
    [
        "10",
        "1",
        "9201",
        "2010-01-01",
        "2010-01-01 10:00:00",
        "2010-01-05",
        "2010-01-05 12:00:00",
        "32817",
        "0",
    ],
    ["11", "1", "9202", "2010-03-01", "", "2010-03-01", "", "32817", ""],
    ["12", "1", "262", "2016-02-01", "2016-02-01T08:00:00", "2016-02-03", "2016-02-03T09:00:00", "32817", ""],
    ["20", "2", "9201", "2012-05-01", "", "2012-05-10", "", "32817", "4216643"],  # dies inside (DEATH)
    ["21", "2", "9203", "2012-04-01", "", "2012-04-01", "", "32817", ""],
    [
        "30",
        "3",
        "9201",
        "2018-01-01",
        "2018-01-01 10:00:00",
        "2018-01-04",
        "2018-01-04 10:00:00",
        "32817",
        "4216643",
    ],  # died: discharge concept only (no DEATH row)
    ["40", "4", "9202", "2019-01-01", "", "2019-01-01", "", "32817", ""],
    [
        "50",
        "5",
        "9201",
        "2014-03-01",
        "2014-03-01 10:00:00",
        "2014-03-05",
        "2014-03-05 11:00:00",
        "32817",
        "8536",
    ],  # discharged home (8536) on the day of a date-only death: not an in-hospital death
]
# patients with a death: 1 (after their stays: not in hospital), 2 (date only, the end date of visit
# 20, which says "Patient died": in hospital) and 5 (date only, the end date of visit 50, which says
# discharged home: not in hospital, counted as a death on the day of discharge)
DEATH: Rows = [
    ["person_id", "death_date", "death_datetime", "death_type_concept_id"],
    ["1", "2020-06-01", "2020-06-01 12:00:00", "32817"],
    ["2", "2012-05-10", "", "32817"],
    ["5", "2014-03-05", "", "32817"],
]
# With CONCEPT: icd9_list 1,2,8 (3); icd10_list 3,5,11,12 (4); concept 6,9 (2); ambiguous_by_visit 4
# (E8020: in both lists; visit 12's other code is ICD-10); no_icd_source 7; other_vocabulary 10.
# Kept as diagnoses (inpatient visits): 1,2,3,4,6,8,9 = 7 (ICD-9: 1,2,6,8; ICD-10: 3,4,9).
# Without CONCEPT: 6 -> icd9_list, 9 -> icd10_list, 10 -> not_icd (an 8-digit SNOMED code).
CONDITION: Rows = [
    [
        "condition_occurrence_id",
        "person_id",
        "condition_concept_id",
        "condition_start_date",
        "condition_type_concept_id",
        "visit_occurrence_id",
        "condition_source_value",
        "condition_source_concept_id",
    ],
    ["1", "1", "132797", "2010-01-01", "32817", "10", "995.91", "0"],
    ["2", "1", "197320", "2010-01-01", "32817", "10", " 584.9 ", "0"],
    ["3", "1", "319835", "2016-02-01", "32817", "12", "I50.23", "0"],
    ["4", "1", "0", "2016-02-01", "32817", "12", "e802.0", "0"],
    ["5", "1", "320128", "2010-03-01", "32817", "11", "I10", "0"],  # outpatient visit: not kept
    ["6", "2", "255848", "2012-05-01", "32817", "20", "486", "44835000"],
    ["7", "2", "4229440", "2012-05-01", "32817", "20", "", "0"],  # SNOMED only
    ["8", "2", "319835", "2012-05-01", "32817", "20", "428.0", "0"],
    ["9", "3", "255848", "2018-01-01", "32817", "30", "j18.9", "45000001"],
    ["10", "3", "4229440", "2018-01-01", "32817", "30", "22298006", "4229440"],
    ["11", "3", "313217", "2018-01-02", "32817", "", "I48.91", "0"],  # no visit: not kept
    ["12", "4", "0", "2019-01-01", "32817", "40", "Z00.00", "0"],  # outpatient: not kept
]
# categories (with CONCEPT): Discharge summary 1 (class concept), 4 (title); Radiology 2 (type
# concept), 6 (class concept named in CONCEPT); Physician 3 (source value); Progress note 5 (title as
# given); Nursing/other 7 (source value); Nursing 8 (type concept) -> 8 notes.
# how: concept_discharge_summary 1; concept 2, 6, 8; mimic_category 3, 7; title_text 4; title_as_given 5.
# Without CONCEPT: note 6 -> "CT HEAD" (source_value_as_given).
NOTE: Rows = [
    [
        "note_id",
        "person_id",
        "note_date",
        "note_datetime",
        "note_type_concept_id",
        "note_class_concept_id",
        "note_title",
        "note_text",
        "encoding_concept_id",
        "language_concept_id",
        "provider_id",
        "visit_occurrence_id",
        "visit_detail_id",
        "note_source_value",
        "note_event_id",
    ],
    [
        "1",
        "1",
        "2010-01-02",
        "2010-01-02 09:00:00",
        "32817",
        "44814637",
        "Discharge Summary",
        "Discharge diagnosis: sepsis, renal failure.",
        "0",
        "0",
        "",
        "10",
        "",
        "",
        "",
    ],
    [
        "2",
        "1",
        "2010-01-01",
        "",
        "44814641",
        "0",
        "",
        "CHEST XRAY: clear lungs.",
        "0",
        "0",
        "",
        "10",
        "",
        "",
        "",
    ],
    [
        "3",
        "1",
        "2010-03-01",
        "2010-03-01 11:00:00",
        "32817",
        "0",
        "Clinic visit",
        "Follow up, feeling better.",
        "0",
        "0",
        "",
        "11",
        "",
        "Physician ",
        "",
    ],
    [
        "4",
        "2",
        "2012-05-02",
        "2012-05-02 08:00:00",
        "32817",
        "0",
        "Discharge summary (addendum)",
        "Pneumonia and heart failure.",
        "0",
        "0",
        "",
        "20",
        "",
        "",
        "",
    ],
    ["5", "2", "2012-06-01", "", "32817", "0", "Progress note", "Stable.", "0", "0", "", "", "", "", ""],
    [
        "6",
        "3",
        "2018-01-02",
        "2018-01-02 10:00:00",
        "32817",
        "45000010",
        "",
        "CT HEAD: no bleed.",
        "0",
        "0",
        "",
        "30",
        "",
        "CT HEAD",
        "",
    ],
    [
        "7",
        "4",
        "2019-01-01",
        "",
        "32817",
        "0",
        "",
        "Routine visit.",
        "0",
        "0",
        "",
        "40",
        "",
        "Nursing/other",
        "",
    ],
    [
        "8",
        "1",
        "2016-02-02",
        "2016-02-02 10:00:00",
        "44814644",
        "0",
        "",
        "Patient comfortable.",
        "0",
        "0",
        "",
        "12",
        "",
        "",
        "",
    ],
]
OBSERVATION_PERIOD: Rows = [
    [
        "observation_period_id",
        "person_id",
        "observation_period_start_date",
        "observation_period_end_date",
        "period_type_concept_id",
    ],
    ["1", "1", "2009-01-01", "2020-06-01", "32817"],
    ["2", "2", "2011-01-01", "2012-05-10", "32817"],
    ["3", "3", "2017-01-01", "2018-06-30", "32817"],
]
CONCEPT: Rows = [
    [
        "concept_id",
        "concept_name",
        "domain_id",
        "vocabulary_id",
        "concept_class_id",
        "standard_concept",
        "concept_code",
        "valid_start_date",
        "valid_end_date",
        "invalid_reason",
    ],
    [
        "44835000",
        "Pneumonia, organism unspecified",
        "Condition",
        "ICD9CM",
        "4-dig billing code",
        "",
        "486",
        "1970-01-01",
        "2099-12-31",
        "",
    ],
    [
        "45000001",
        "Pneumonia, unspecified organism",
        "Condition",
        "ICD10CM",
        "4-char billing code",
        "",
        "J18.9",
        "1970-01-01",
        "2099-12-31",
        "",
    ],
    [
        "4229440",
        "Chronic congestive heart failure",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "S",
        "48447003",
        "1970-01-01",
        "2099-12-31",
        "",
    ],
    [
        "45000010",
        "Radiology report",
        "Meas Value",
        "LOINC",
        "Doc Kind",
        "S",
        "LP173421-1",
        "1970-01-01",
        "2099-12-31",
        "",
    ],
    ["9201", "Inpatient Visit", "Visit", "Visit", "Visit", "S", "IP", "1970-01-01", "2099-12-31", ""],
]
TABLES = {
    "person": PERSON,
    "visit_occurrence": VISIT,
    "death": DEATH,
    "condition_occurrence": CONDITION,
    "note": NOTE,
    "observation_period": OBSERVATION_PERIOD,
    "concept": CONCEPT,
}


def _arrow_column(name: str, values: Sequence[str]) -> pa.Array:
    """A typed Parquet column as an OMOP database exports it: ids int64, dates date32, datetimes us."""
    cells = [v.strip() if v.strip() != "" else None for v in values]
    if name.endswith("_datetime"):
        return pa.array([datetime.fromisoformat(v) if v else None for v in cells], pa.timestamp("us"))
    if name.endswith("_date"):
        return pa.array([date.fromisoformat(v) if v else None for v in cells], pa.date32())
    if (name.endswith("_id") or name.endswith("_of_birth")) and all(v is None or v.isdigit() for v in cells):
        return pa.array([int(v) if v else None for v in cells], pa.int64())
    return pa.array([v if v is not None else None for v in values], pa.string())


def _write(path: Path, rows: Rows, fmt: str, upper: bool) -> None:
    header = [h.upper() if upper else h for h in rows[0]]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        columns = {h: _arrow_column(h.lower(), [r[i] for r in rows[1:]]) for i, h in enumerate(header)}
        pq.write_table(pa.table(columns), path)
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows[1:]])


def write_omop(
    root: Path,
    fmt: str = "csv",
    upper: bool = False,
    *,
    note_parts: int = 1,
    **overrides: Rows | None,
) -> Path:
    """Write an OMOP folder: every table as ``name.csv`` (``fmt="csv"``) or ``NAME.parquet``
    (``fmt="parquet"``: typed columns), headers upper-cased with ``upper``; NOTE split into a folder of
    ``note_parts`` parts when more than one. ``overrides``: a table's rows, or None to leave it out."""
    tables = {**TABLES, **overrides}
    for name, rows in tables.items():
        if rows is None:
            continue
        stem = name.upper() if upper else name
        suffix = ".parquet" if fmt == "parquet" else ".csv"
        if name == "note" and note_parts > 1:
            body = rows[1:]
            size = -(-len(body) // note_parts)
            for part in range(note_parts):
                chunk = [rows[0], *body[part * size : (part + 1) * size]]
                _write(root / stem / f"part-{part}{suffix}", chunk, fmt, upper)
            continue
        _write(root / f"{stem}{suffix}", rows, fmt, upper)
    return root
