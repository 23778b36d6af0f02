"""MIMIC-IV (hosp/) + MIMIC-IV-Note (note/) reader, into the same Cohort as MIMIC-III.

MIMIC-IV differs where it matters: lowercase headers; diagnoses in ICD-9 or ICD-10 (`icd_version`);
patients carry an anchor age and year instead of a date of birth (clinpred sets DOB to 1 January of
anchor_year - anchor_age, exact to within a year); notes are discharge summaries (note_type DS) and
radiology reports (RR, AR) with `___` de-identification spans, mapped to MIMIC-III's category names
("Discharge summary", "Radiology") so that the leakage guard treats both sources alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clinpred.data.cohort import (
    ADMISSION_DTYPES,
    DIAGNOSIS_DTYPES,
    PATIENT_DTYPES,
    Cohort,
    conform,
)
from clinpred.data.labels import normalise_icd
from clinpred.data.mimic3 import order_diagnoses
from clinpred.data.note_stream import BlockContext, NoteFilters, read_notes, strings, to_int, to_time
from clinpred.data.source_repairs import link_diagnoses
from clinpred.data.tables import (
    OUT_OF_RANGE_SET_MISSING,
    PLAUSIBLE_YEARS,
    admission_times,
    locate,
    optional_datetimes,
    optional_text,
    parse_ints,
    read_table,
    unique_ints,
)
from clinpred.errors import InputError

NOTE_TYPES = {"DS": "Discharge summary", "DA": "Discharge summary", "RR": "Radiology", "AR": "Radiology"}
NOTE_FILES = ("discharge", "radiology")
NOTE_COLUMNS = ["NOTE_ID", "SUBJECT_ID", "HADM_ID", "NOTE_TYPE", "NOTE_SEQ", "CHARTTIME", "TEXT"]


def _normalise_note(block: pa.Table, ctx: BlockContext) -> pa.Table:
    """One discharge/radiology block -> the note cache schema."""
    note_type = strings(block, "NOTE_TYPE")
    category = pc.coalesce(
        pc.take(pa.array(list(NOTE_TYPES.values())), pc.index_in(note_type, pa.array(list(NOTE_TYPES)))),
        note_type,
    )
    charttime, _ = to_time(block, "CHARTTIME", ctx, PLAUSIBLE_YEARS["mimic4"]["CHARTTIME"], required=True)
    missing = pc.is_null(charttime)
    if pc.any(missing).as_py():
        raise ctx.error("CHARTTIME", pc.index(missing, True).as_py(), "", "a datetime (it is required)")
    n = block.num_rows
    return pa.table(
        {
            "note_id": strings(block, "NOTE_ID"),
            "order": to_int(block, "NOTE_SEQ", ctx, nullable=True),
            "subject_id": to_int(block, "SUBJECT_ID", ctx, nullable=False),
            "hadm_id": to_int(block, "HADM_ID", ctx, nullable=True),
            "time": charttime,
            "time_is_date": pa.repeat(False, n),
            "charttime_out_of_range": pa.repeat(False, n),  # refused above: no date to fall back to
            "category": category,
            "description": note_type,
            "cgid": pa.nulls(n, pa.int64()),
            "iserror": pa.repeat(False, n),
            "text": block.column("TEXT"),
        }
    )


def _patients(hosp: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """patients, and the counts of DOB (anchor_year - anchor_age) / DOD values set missing for lying
    outside their plausible years."""
    path = locate(hosp, "patients")
    raw = read_table(path, ["SUBJECT_ID", "GENDER", "ANCHOR_AGE", "ANCHOR_YEAR", "DOD"])
    age = parse_ints(raw["ANCHOR_AGE"], path, "ANCHOR_AGE")
    year = parse_ints(raw["ANCHOR_YEAR"], path, "ANCHOR_YEAR")
    born, births = year - age, PLAUSIBLE_YEARS["mimic4"]["DOB"]
    outside = (born < births.first) | (born > births.last)
    dob = pd.to_datetime(born.astype(str).where(~outside) + "-01-01", format="%Y-%m-%d")
    dod, counts = optional_datetimes(raw, path, "DOD", "mimic4")
    if outside.any():
        counts = {OUT_OF_RANGE_SET_MISSING.format("dob"): int(outside.sum()), **counts}
    frame = raw.assign(
        subject_id=unique_ints(raw["SUBJECT_ID"], path, "SUBJECT_ID"),
        gender=raw["GENDER"].str.strip(),
        dob=dob,
        dod=dod,
    )
    return conform(frame, PATIENT_DTYPES), counts


def _admissions(hosp: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """admissions in patient and time order, and the counts of the date repairs (tables.admission_times)."""
    path = locate(hosp, "admissions")
    cols = ["SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME", "HOSPITAL_EXPIRE_FLAG"]
    raw = read_table(path, cols, optional=("ADMISSION_TYPE", "RACE", "ETHNICITY", "INSURANCE"))
    times, counts = admission_times(raw, path, "mimic4")
    frame = raw.assign(
        subject_id=parse_ints(raw["SUBJECT_ID"], path, "SUBJECT_ID"),
        hadm_id=unique_ints(raw["HADM_ID"], path, "HADM_ID"),
        **times,
        hospital_expire_flag=parse_ints(raw["HOSPITAL_EXPIRE_FLAG"], path, "HOSPITAL_EXPIRE_FLAG"),
        admission_type=optional_text(raw, "ADMISSION_TYPE"),
        race=optional_text(raw, "RACE", "ETHNICITY"),  # "ethnicity" before MIMIC-IV v2.0
        insurance=optional_text(raw, "INSURANCE"),
    )
    frame = conform(frame, ADMISSION_DTYPES).sort_values(["subject_id", "admittime"], ignore_index=True)
    return frame, counts


def _diagnoses(hosp: Path, admissions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Diagnoses in admission-time order; rows of an unknown or another patient's admission dropped."""
    path = locate(hosp, "diagnoses_icd")
    raw = read_table(path, ["SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD_CODE", "ICD_VERSION"])
    version = parse_ints(raw["ICD_VERSION"], path, "ICD_VERSION")
    bad = ~version.isin([9, 10])
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: column ICD_VERSION, data row {row + 1}: expected 9 or 10.")
    frame = raw.assign(
        subject_id=parse_ints(raw["SUBJECT_ID"], path, "SUBJECT_ID"),
        hadm_id=parse_ints(raw["HADM_ID"], path, "HADM_ID"),
        seq_num=parse_ints(raw["SEQ_NUM"], path, "SEQ_NUM", nullable=True),
        icd_code=normalise_icd(raw["ICD_CODE"]),  # i50.9 -> I509, 428.0 -> 4280
        icd_version=version,
    )
    frame, counts = link_diagnoses(conform(frame[frame["icd_code"] != ""], DIAGNOSIS_DTYPES), admissions)
    return order_diagnoses(frame, admissions), counts


def read_mimic4(
    root: str | Path,
    *,
    categories: Iterable[str] | None = None,
    subject_ids: Iterable[int] | None = None,
    use_cache: bool = True,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> Cohort:
    """Read a MIMIC-IV root holding hosp/ and note/ (either or both of discharge, radiology)."""
    root = Path(root)
    hosp, note = root / "hosp", root / "note"
    for folder in (hosp, note):
        if not folder.is_dir():
            raise InputError(
                f"{root}: no {folder.name}/ folder. Give the MIMIC-IV root that holds hosp/ and note/."
            )
    note_files = [p for name in NOTE_FILES if (p := locate(note, name, required=False)) is not None]
    if not note_files:
        raise InputError(f"{note}: neither discharge.csv.gz nor radiology.csv.gz is here.")
    admissions, admission_counts = _admissions(hosp)
    patients, patient_counts = _patients(hosp)
    keep = None if subject_ids is None else frozenset(int(s) for s in subject_ids)
    filters = NoteFilters(
        categories=None if categories is None else frozenset(categories), subject_ids=keep, drop_errors=False
    )
    # One read, one sort: discharge and radiology notes come back interleaved in patient/time order.
    notes, note_counts = read_notes(
        note_files,
        NOTE_COLUMNS,
        _normalise_note,
        filters,
        use_cache=use_cache,
        cache_dir=cache_dir,
        progress=progress,
        patients=admissions["subject_id"].to_numpy(),  # to split the spill by patient range
        admissions=admissions,
        origin=("mimic4", root),  # beside the cache file: for cache info, clear --source
    )
    diagnoses, dx_counts = _diagnoses(hosp, admissions)
    repaired = {
        k: v for k, v in note_counts.items() if k not in ("error_notes_dropped", "notes_read_from_cache")
    }
    cohort = Cohort(
        notes=notes,
        patients=patients,
        admissions=admissions,
        diagnoses=diagnoses,
        source="mimic4",
        path=root,
        counts={**repaired, **dx_counts, **patient_counts, **admission_counts},
    ).without_unknown_patients()
    return cohort if keep is None else cohort.subset(keep)
