"""MIMIC-III v1.4 reader: PATIENTS, ADMISSIONS, DIAGNOSES_ICD, NOTEEVENTS (+ optional D_ICD_DIAGNOSES).

Handles the real data's quirks: quoted UPPERCASE headers (full release) or lowercase (open demo);
Discharge summary, ECG and Echo notes without CHARTTIME (the note falls back to CHARTDATE, ties broken
by ROW_ID); CATEGORY values with a trailing space; ISERROR='1' notes, dropped and counted; DOBs of
patients over 89 shifted about 300 years back (kept as they are: ages computed from them come out
near 300, which callers cap). The synthetic cohort is written in this same format and read here, with
no special code path: only an intact seal of the generator (synthetic_seal.py) flags it as
non-credentialed data.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clinpred.data.cohort import ADMISSION_DTYPES, DIAGNOSIS_DTYPES, PATIENT_DTYPES, Cohort, conform
from clinpred.data.labels import normalise_icd
from clinpred.data.note_stream import BlockContext, NoteFilters, read_notes, strings, to_int, to_time
from clinpred.data.source_repairs import link_diagnoses
from clinpred.data.synthetic_seal import MARKER, is_sealed_synthetic
from clinpred.data.tables import (
    PLAUSIBLE_YEARS,
    admission_times,
    locate,
    optional_datetimes,
    optional_text,
    parse_ints,
    read_header,
    read_table,
    require_columns,
    unique_ints,
)
from clinpred.errors import InputError

SYNTHETIC_MARKER = MARKER

PATIENT_COLUMNS = ["SUBJECT_ID", "GENDER", "DOB", "DOD"]
ADMISSION_COLUMNS = ["SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME", "HOSPITAL_EXPIRE_FLAG"]
DIAGNOSIS_COLUMNS = ["SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
NOTE_COLUMNS = [
    "ROW_ID",
    "SUBJECT_ID",
    "HADM_ID",
    "CHARTDATE",
    "CHARTTIME",
    "CATEGORY",
    "DESCRIPTION",
    "CGID",
    "ISERROR",
    "TEXT",
]
D_ICD_COLUMNS = ["ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"]


def _normalise_noteevents(block: pa.Table, ctx: BlockContext) -> pa.Table:
    """One NOTEEVENTS block -> the note cache schema.

    CHARTDATE is required (empty or outside its plausible years is refused); a CHARTTIME outside its
    plausible years (tables.PLAUSIBLE_YEARS) is set missing and flagged, and the note falls back to its
    CHARTDATE, as MIMIC's date-only notes do.
    """
    row_id = to_int(block, "ROW_ID", ctx, nullable=False)
    chartdate, _ = to_time(block, "CHARTDATE", ctx, PLAUSIBLE_YEARS["mimic3"]["CHARTDATE"], required=True)
    charttime, cleared = to_time(
        block, "CHARTTIME", ctx, PLAUSIBLE_YEARS["mimic3"]["CHARTTIME"], required=False
    )
    missing_date = pc.is_null(chartdate)
    if pc.any(missing_date).as_py():
        raise ctx.error("CHARTDATE", pc.index(missing_date, True).as_py(), "", "a date (it is required)")
    return pa.table(
        {
            "note_id": pc.cast(row_id, pa.string()),
            "order": row_id,
            "subject_id": to_int(block, "SUBJECT_ID", ctx, nullable=False),
            "hadm_id": to_int(block, "HADM_ID", ctx, nullable=True),
            "time": pc.coalesce(charttime, chartdate),
            "time_is_date": pc.is_null(charttime),
            "charttime_out_of_range": cleared,
            "category": strings(block, "CATEGORY"),
            "description": strings(block, "DESCRIPTION"),
            "cgid": to_int(block, "CGID", ctx, nullable=True),
            "iserror": pc.equal(strings(block, "ISERROR"), "1"),
            "text": block.column("TEXT"),
        }
    )


def read_patients(directory: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """PATIENTS, and the counts of DOB / DOD values set missing for lying outside their plausible years."""
    path = locate(directory, "PATIENTS")
    raw = read_table(path, PATIENT_COLUMNS)
    dob, dob_counts = optional_datetimes(raw, path, "DOB", "mimic3")
    dod, dod_counts = optional_datetimes(raw, path, "DOD", "mimic3")
    frame = raw.assign(
        subject_id=unique_ints(raw["SUBJECT_ID"], path, "SUBJECT_ID"),
        gender=raw["GENDER"].str.strip(),
        dob=dob,
        dod=dod,
    )
    return conform(frame, PATIENT_DTYPES), {**dob_counts, **dod_counts}


def read_admissions(directory: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """ADMISSIONS in patient and time order, and the counts of the date repairs (tables.admission_times)."""
    path = locate(directory, "ADMISSIONS")
    raw = read_table(path, ADMISSION_COLUMNS, optional=("ADMISSION_TYPE", "ETHNICITY", "INSURANCE"))
    flag = raw["HOSPITAL_EXPIRE_FLAG"].where(raw["HOSPITAL_EXPIRE_FLAG"].str.strip() != "", "0")
    times, counts = admission_times(raw, path, "mimic3")
    frame = raw.assign(
        subject_id=parse_ints(raw["SUBJECT_ID"], path, "SUBJECT_ID"),
        hadm_id=unique_ints(raw["HADM_ID"], path, "HADM_ID"),
        **times,
        hospital_expire_flag=parse_ints(flag, path, "HOSPITAL_EXPIRE_FLAG"),
        admission_type=optional_text(raw, "ADMISSION_TYPE"),
        race=optional_text(raw, "ETHNICITY"),
        insurance=optional_text(raw, "INSURANCE"),
    )
    frame = conform(frame, ADMISSION_DTYPES).sort_values(["subject_id", "admittime"], ignore_index=True)
    return frame, counts


def read_diagnoses(directory: Path, admissions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Diagnoses in admission-time order, and the counts of rows dropped: rows without a code (present
    in MIMIC-III), rows of an admission that ADMISSIONS lacks or that is another patient's."""
    path = locate(directory, "DIAGNOSES_ICD")
    raw = read_table(path, DIAGNOSIS_COLUMNS)
    code = normalise_icd(raw["ICD9_CODE"])  # 428.0 -> 4280, v10.3 -> V103
    frame = raw.assign(
        subject_id=parse_ints(raw["SUBJECT_ID"], path, "SUBJECT_ID"),
        hadm_id=parse_ints(raw["HADM_ID"], path, "HADM_ID"),
        seq_num=parse_ints(raw["SEQ_NUM"], path, "SEQ_NUM", nullable=True),
        icd_code=code,
        icd_version=9,
    )
    empty = frame["icd_code"] == ""
    frame, counts = link_diagnoses(conform(frame[~empty], DIAGNOSIS_DTYPES), admissions)
    return order_diagnoses(frame, admissions), {"diagnosis_rows_without_code": int(empty.sum()), **counts}


def order_diagnoses(diagnoses: pd.DataFrame, admissions: pd.DataFrame) -> pd.DataFrame:
    """Sort diagnoses by patient, admission time, SEQ_NUM (what `primary_phenotype` relies on)."""
    when = admissions.set_index("hadm_id")["admittime"]
    key = diagnoses["hadm_id"].map(when)
    return (
        diagnoses.assign(_when=key)
        .sort_values(["subject_id", "_when", "hadm_id", "seq_num"], kind="stable", na_position="last")
        .drop(columns="_when")
        .reset_index(drop=True)
    )


def read_mimic3(
    path: str | Path,
    *,
    categories: Iterable[str] | None = None,
    subject_ids: Iterable[int] | None = None,
    drop_errors: bool = True,
    use_cache: bool = True,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> Cohort:
    """Read a MIMIC-III v1.4 directory (or the synthetic cohort) into a Cohort.

    ``categories`` and ``subject_ids`` filter the notes while reading (categories as MIMIC means them:
    "physician" is "Physician "); ``subject_ids`` also restricts patients, admissions and
    diagnoses. ISERROR notes are dropped and counted unless ``drop_errors`` is False.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise InputError(
            f"{directory}: no such directory. Give the folder that holds the MIMIC-III CSV files."
        )
    notes_path = locate(directory, "NOTEEVENTS")
    d_icd = locate(directory, "D_ICD_DIAGNOSES", required=False)
    if d_icd is not None:
        require_columns(d_icd, read_header(d_icd), D_ICD_COLUMNS)

    patients, patient_counts = read_patients(directory)
    admissions, admission_counts = read_admissions(directory)
    diagnoses, dx_counts = read_diagnoses(directory, admissions)
    keep = None if subject_ids is None else frozenset(int(s) for s in subject_ids)
    filters = NoteFilters(
        categories=None if categories is None else frozenset(c.strip() for c in categories),
        subject_ids=keep,
        drop_errors=drop_errors,
    )
    notes, counts = read_notes(
        notes_path,
        NOTE_COLUMNS,
        _normalise_noteevents,
        filters,
        use_cache=use_cache,
        cache_dir=cache_dir,
        progress=progress,
        patients=admissions["subject_id"].to_numpy(),  # to split the spill by patient range
        admissions=admissions,
        origin=("mimic3", directory),  # beside the cache file: for cache info, clear --source
    )
    cohort = Cohort(
        notes=notes,
        patients=patients,
        admissions=admissions,
        diagnoses=diagnoses,
        source="mimic3",
        path=directory,
        synthetic=is_sealed_synthetic(directory),
        counts={**counts, **dx_counts, **patient_counts, **admission_counts},
    ).without_unknown_patients()
    return cohort if keep is None else cohort.subset(keep)
