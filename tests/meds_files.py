"""Write small MEDS datasets by hand: shards of events with pyarrow, in the MEDS 0.4 layout.

``write_meds(root)`` writes the hand-built dataset below (three subjects in two shards, notes as
``text_value`` events, the MIMIC_IV_MEDS code names), small enough to count row by row in a test;
every part can be replaced to write a damaged one.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

T = datetime.fromisoformat

# the core columns in the meds schema, then the extra columns clinpred reads where present
COLUMN_TYPES: dict[str, pa.DataType] = {
    "subject_id": pa.int64(),
    "time": pa.timestamp("us"),
    "code": pa.string(),
    "numeric_value": pa.float32(),
    "text_value": pa.large_string(),
    "hadm_id": pa.int64(),
    "note_id": pa.string(),
    "seq_num": pa.int64(),
    "race": pa.string(),
    "insurance": pa.string(),
}


def ev(subject: int, time: str | None, code: str, **extra: Any) -> dict[str, Any]:
    """One event row."""
    return {"subject_id": subject, "time": None if time is None else T(time), "code": code, **extra}


SHARD_0 = [
    # subject 1: two stays; the second's ICD-10 code has no hadm_id (linked by its discharge time)
    ev(1, None, "GENDER//F"),
    ev(1, "2080-01-01", "MEDS_BIRTH"),
    ev(1, "2150-01-01 10:00", "HOSPITAL_ADMISSION//EMERGENCY//UNK", hadm_id=100, race="WHITE"),
    ev(1, "2150-01-01 11:00", "NOTE//NURSING_OTHER", text_value="Pt arrived from ED.", hadm_id=100),
    ev(1, "2150-01-02 08:00", "LAB//51221//%", numeric_value=31.5, hadm_id=100),  # ignored
    ev(1, "2150-01-05 12:00", "HOSPITAL_DISCHARGE//HOME", hadm_id=100),
    ev(1, "2150-01-05 12:00", "DIAGNOSIS//ICD//9//4280", hadm_id=100),
    ev(1, "2150-01-05 12:00", "DIAGNOSIS//ICD//9//5849", hadm_id=100),
    ev(1, "2150-01-05 12:00", "NOTE//DISCHARGE", text_value="Discharge Diagnosis: CHF", hadm_id=100),
    ev(1, "2151-01-10 09:00", "NOTE//RADIOLOGY", text_value="IMPRESSION: clear."),  # outpatient
    ev(1, "2151-03-01 08:00", "HOSPITAL_ADMISSION//ELECTIVE//UNK", hadm_id=101),
    ev(1, "2151-03-02 08:00", "LAB//50912//mg/dL", numeric_value=1.2, hadm_id=101),  # ignored
    ev(1, "2151-03-03 09:00", "HOSPITAL_DISCHARGE//HOME", hadm_id=101),
    ev(1, "2151-03-03 09:00", "DIAGNOSIS//ICD//10//I5023"),
    # subject 2: dies in hospital (discharge location DIED, MEDS_DEATH inside the stay)
    ev(2, None, "GENDER//M"),
    ev(2, "2070-06-01", "MEDS_BIRTH"),
    ev(2, "2152-02-20 10:00", "HOSPITAL_ADMISSION//EMERGENCY//UNK", hadm_id=200),
    ev(2, "2152-02-20 12:00", "NOTE//RESPIRATORY", text_value="Vent settings: AC 500x14", hadm_id=200),
    ev(2, "2152-03-01 05:00", "MEDS_DEATH"),
    ev(2, "2152-03-01 05:00", "HOSPITAL_DISCHARGE//DIED", hadm_id=200),
    ev(2, "2152-03-01 05:00", "DIAGNOSIS//ICD//9//486", hadm_id=200),
    ev(2, "2152-03-01 05:00", "NOTE//DISCHARGE_SUMMARY", text_value="Expired.", hadm_id=200),
]
SHARD_1 = [
    # subject 3: dies after discharge; a dotted ICD-10 code; an ICD-11 code and a note without text
    ev(3, None, "GENDER//F"),
    ev(3, "2090-02-02", "MEDS_BIRTH"),
    ev(3, "2159-05-01 10:00", "HOSPITAL_ADMISSION//URGENT//UNK", hadm_id=300, insurance="Private"),
    ev(3, "2159-05-01 12:00", "NOTE//ECHO", text_value="LVEF 55%.", hadm_id=300),
    ev(3, "2159-05-02 12:00", "NOTE//RADIOLOGY", hadm_id=300),  # no text: dropped, counted
    ev(3, "2159-05-04 10:00", "HOSPITAL_DISCHARGE//SNF", hadm_id=300),
    ev(3, "2159-05-04 10:00", "DIAGNOSIS//ICD//10//I48.91", hadm_id=300),
    ev(3, "2159-05-04 10:00", "DIAGNOSIS//ICD//11//BA00", hadm_id=300),  # ignored: not ICD-9/10
    ev(3, "2160-01-01", "MEDS_DEATH"),
]
SHARDS = {"train/0.parquet": SHARD_0, "held_out/0.parquet": SHARD_1}
DATASET = {"dataset_name": "hand-built", "dataset_version": "1", "etl_name": "tests", "meds_version": "0.4.1"}


def table(rows: list[dict[str, Any]], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """Rows as a table: the core columns always, an extra column where some row has it."""
    types = {**COLUMN_TYPES, **(types or {})}
    core = ["subject_id", "time", "code", "numeric_value", "text_value"]
    names = [c for c in types if c in core or any(c in r for r in rows)]
    schema = pa.schema([(c, types[c]) for c in names])
    return pa.Table.from_pylist([{c: r.get(c) for c in names} for r in rows], schema=schema)


def write_meds(
    root: Path,
    shards: dict[str, list[dict[str, Any]] | pa.Table] | None = None,
    *,
    dataset: dict[str, Any] | None = DATASET,
    splits: dict[int, str] | None = None,
) -> Path:
    """Write a MEDS root: each shard (rows or a ready table), metadata/dataset.json (None: no
    metadata folder at all) and, when given, metadata/subject_splits.parquet."""
    for name, rows in (SHARDS if shards is None else shards).items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows if isinstance(rows, pa.Table) else table(rows), path)
    if dataset is not None:
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        (root / "metadata" / "dataset.json").write_text(json.dumps(dataset))
    if splits is not None:
        split_table = pa.table(
            {"subject_id": pa.array(list(splits), pa.int64()), "split": pa.array(list(splits.values()))}
        )
        pq.write_table(split_table, root / "metadata" / "subject_splits.parquet")
    return root
