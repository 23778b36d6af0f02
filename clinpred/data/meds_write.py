"""MEDS writer behind `clinpred export meds`: any cohort clinpred reads becomes a MEDS 0.4 dataset, with
its notes as ``text_value`` events, so that MEDS tools (ACES, MEDS-Transforms, meds-evaluation) see
the notes beside the codes.

What is written (the codes of meds_codes.py; read back by meds_read.py to the same Cohort):

- ``data/<i>.parquet``: shards of ``subjects_per_shard`` subjects (a subject in one shard only), each
  sorted by (subject_id, time) with static rows (``GENDER//``) first, in the ``meds.DataSchema`` types
  plus the extra columns ``hadm_id``, ``note_id``, ``time_is_date``, ``note_description``, ``cgid``,
  ``seq_num``, ``race`` and ``insurance``; every table is validated with the ``meds`` package before
  it is written. ``MEDS_DEATH`` is at the in-hospital DEATHTIME where the patient has one on the day
  of their date of death (as MIMIC_IV_MEDS does), else at the date of death; a stay with
  HOSPITAL_EXPIRE_FLAG 1 is discharged to ``DIED`` (MIMIC-IV's word), any other to ``UNK`` (the
  Cohort keeps no discharge location). Diagnoses are dated at their stay's discharge.
- ``metadata/dataset.json`` (dataset_name, dataset_version, etl_name ``clinpred``, etl_version,
  meds_version, created_at, the extra columns by role); for the synthetic cohort, a seal
  (meds_seal.py) that lets a reader know it is synthetic;
- ``metadata/codes.parquet``: every code written with a description where clinpred has one (the CMS
  title of an ICD-9 code, the CCS category of an ICD-10 code, the category of a note);
- ``metadata/subject_splits.parquet``: clinpred's seeded split with the default settings
  (fine-tuning -> ``train``, validation -> ``tuning``, evaluation -> ``held_out``).

The folder is written whole or not at all (staged beside it, then renamed in: run_folder.py) and only
where clinpred may: a new or empty folder, or an earlier export.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import meds
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import clinpred
from clinpred.data.cohort import Cohort
from clinpred.data.labels import ccs_single_names, icd9_table, icd10_table
from clinpred.data.meds_codes import (
    BIRTH,
    DEATH,
    DIED,
    admission_code,
    diagnosis_code,
    discharge_code,
    gender_code,
    note_code,
)
from clinpred.data.meds_seal import DATASET_JSON, SEAL_KEY, seal_record
from clinpred.data.splits import SplitConfig, split_patients

SUBJECTS_PER_SHARD = 10_000
ROW_GROUP_ROWS = 65_536  # events per parquet row group: what a reader holds at once
# the shards' columns: meds.DataSchema's, then clinpred's extra columns
EXTRA_COLUMNS: dict[str, pa.DataType] = {
    "hadm_id": pa.int64(),
    "note_id": pa.string(),
    "time_is_date": pa.bool_(),
    "note_description": pa.string(),
    "cgid": pa.int64(),
    "seq_num": pa.int64(),
    "race": pa.string(),
    "insurance": pa.string(),
}
SCHEMA = pa.schema(list(meds.DataSchema.schema()) + [pa.field(k, t) for k, t in EXTRA_COLUMNS.items()])
SPLIT_NAMES = {
    "finetune": meds.train_split,
    "validation": meds.tuning_split,
    "evaluation": meds.held_out_split,
}


@dataclass
class ExportSummary:
    """What an export wrote (counts only)."""

    subjects: int = 0
    shards: int = 0
    events: int = 0
    events_by_kind: dict[str, int] = field(default_factory=dict)
    codes: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    synthetic: bool = False
    deathtimes_not_written: int = 0  # in-hospital DEATHTIMEs not on the day of the date of death


def _us(values: Any) -> pa.Array:
    """datetime64 values (NaT: null) as MEDS times."""
    return pa.array(pd.to_datetime(pd.Series(values)).astype("datetime64[us]"), pa.timestamp("us"))


def _events(n: int, subject: Any, when: Any, code: Any, **extra: Any) -> pa.Table:
    """n events in SCHEMA, columns not given null."""
    columns = {
        "subject_id": pa.array(np.asarray(subject, dtype=np.int64)),
        "time": pa.nulls(n, pa.timestamp("us")) if when is None else _us(when),
        "code": pa.array(list(code) if not isinstance(code, str) else [code] * n, pa.string()),
    }
    for f in SCHEMA:
        if f.name in columns:
            continue
        value = extra.get(f.name)
        columns[f.name] = pa.nulls(n, f.type) if value is None else pa.array(value, f.type, from_pandas=True)
    return pa.table(columns, schema=SCHEMA)


def _text(values: pd.Series | pd.api.extensions.ExtensionArray, type_: pa.DataType) -> pa.Array:
    return pa.array(pd.Series(values).astype(object).where(pd.Series(values).notna(), None), type_)


def _death_times(cohort: Cohort, summary: ExportSummary) -> pd.Series:
    """Per patient with a death: the MEDS_DEATH time (module docstring)."""
    adm = cohort.admissions
    dod = cohort.patients.set_index("subject_id")["dod"]
    inside = adm.dropna(subset=["deathtime"]).groupby("subject_id")["deathtime"].min()
    on_day = inside[(inside.index.map(dod).isna()) | (inside.dt.normalize() == inside.index.map(dod))]
    summary.deathtimes_not_written = int(len(adm.dropna(subset=["deathtime"])) - len(on_day))
    return pd.concat([on_day, dod.dropna().drop(on_day.index, errors="ignore")]).sort_index()


def _shard_table(cohort: Cohort, subjects: np.ndarray, death: pd.Series, counts: dict[str, int]) -> pa.Table:
    """One shard's events, sorted by (subject_id, time), static rows first."""
    keep = set(subjects.tolist())
    parts = []

    def add(kind: str, table: pa.Table) -> None:
        counts[kind] = counts.get(kind, 0) + table.num_rows
        parts.append(table)

    pats = cohort.patients[cohort.patients["subject_id"].isin(keep)]
    sexed = pats[pats["gender"].notna()]
    add("gender", _events(len(sexed), sexed["subject_id"], None, [gender_code(g) for g in sexed["gender"]]))
    born = pats[pats["dob"].notna()]
    add("birth", _events(len(born), born["subject_id"], born["dob"], BIRTH))
    adm = cohort.admissions[cohort.admissions["subject_id"].isin(keep)]
    add(
        "admission",
        _events(
            len(adm),
            adm["subject_id"],
            adm["admittime"],
            [admission_code(t if isinstance(t, str) else None) for t in adm["admission_type"]],
            hadm_id=adm["hadm_id"].to_numpy(),
            race=_text(adm["race"], pa.string()),
            insurance=_text(adm["insurance"], pa.string()),
        ),
    )
    ended = adm[adm["dischtime"].notna()]
    where = [discharge_code(DIED if f == 1 else None) for f in ended["hospital_expire_flag"]]
    add(
        "discharge",
        _events(len(ended), ended["subject_id"], ended["dischtime"], where, hadm_id=ended["hadm_id"]),
    )
    dx = cohort.diagnoses[cohort.diagnoses["subject_id"].isin(keep)]
    stays = cohort.admissions.set_index("hadm_id")
    at = dx["hadm_id"].map(stays["dischtime"]).fillna(dx["hadm_id"].map(stays["admittime"]))
    codes = [diagnosis_code(v, c) for v, c in zip(dx["icd_version"], dx["icd_code"], strict=True)]
    add(
        "diagnosis",
        _events(
            len(dx), dx["subject_id"], at, codes, hadm_id=dx["hadm_id"], seq_num=dx["seq_num"].astype(object)
        ),
    )
    dead = death[death.index.isin(keep)]
    add("death", _events(len(dead), dead.index, dead.to_numpy(), DEATH))
    ids = cohort.notes["subject_id"].to_numpy()
    lo, hi = np.searchsorted(ids, subjects.min()), np.searchsorted(ids, subjects.max(), side="right")
    notes = cohort.notes.iloc[lo:hi]  # notes are in patient order: one slice (no copy of the text)
    notes = notes[notes["subject_id"].isin(keep)]
    add(
        "note",
        _events(
            len(notes),
            notes["subject_id"],
            notes["time"],
            [note_code(c) for c in notes["category"]],
            text_value=pa.array(notes["text"].array, pa.large_string()),
            hadm_id=notes["hadm_id"].astype(object),
            note_id=_text(notes["note_id"], pa.string()),
            time_is_date=notes["time_is_date"].to_numpy(bool),
            note_description=_text(notes["description"], pa.string()),
            cgid=notes["cgid"].astype(object),
        ),
    )
    table = pa.concat_tables(parts)
    order = pc.sort_indices(
        table, sort_keys=[("subject_id", "ascending"), ("time", "ascending", "at_start")]
    )  # stable: equal times keep the order above (notes in the Cohort's order)
    table = table.take(order)
    meds.DataSchema.validate(table)  # the meds package's own check (types and required non-nulls)
    return table


def _code_descriptions(codes: list[str]) -> pa.Table:
    """codes.parquet: each code with the description clinpred has for it (None where it has none)."""
    icd9, icd10, ccs = icd9_table(), icd10_table(), ccs_single_names()
    out = []
    for code in codes:
        parts = code.split("//")
        text = None
        if code == BIRTH:
            text = "Birth (MEDS)"
        elif code == DEATH:
            text = "Death (MEDS)"
        elif parts[0] == "GENDER":
            text = f"Sex: {parts[1]}"
        elif parts[0] == "HOSPITAL_ADMISSION":
            text = f"Hospital admission ({parts[1]})"
        elif parts[0] == "HOSPITAL_DISCHARGE":
            text = f"Hospital discharge ({parts[1]})"
        elif parts[0] == "NOTE":
            text = f"Clinical note: {parts[1].replace('_', ' ').lower()}"
        elif parts[:2] == ["DIAGNOSIS", "ICD"] and len(parts) == 4:
            version, icd = parts[2], parts[3]
            if version == "9" and icd in icd9.index and icd9.at[icd, "description"]:
                text = str(icd9.at[icd, "description"])
            elif version == "10" and icd in icd10.index and int(icd10.at[icd, "ccs_single"]) in ccs:
                text = f"CCS category: {ccs[int(icd10.at[icd, 'ccs_single'])]}"
        out.append(text)
    table = pa.table(
        {
            "code": pa.array(codes, pa.string()),
            "description": pa.array(out, pa.string()),
            "parent_codes": pa.nulls(len(codes), pa.list_(pa.string())),
        }
    )
    meds.CodeMetadataSchema.validate(table)
    return table


def write_meds_dataset(
    cohort: Cohort,
    folder: Path,
    *,
    dataset_name: str,
    subjects_per_shard: int = SUBJECTS_PER_SHARD,
) -> ExportSummary:
    """Write the cohort as a MEDS dataset into ``folder`` (a fresh staging folder; the caller renames it
    into place)."""
    folder = Path(folder)
    summary = ExportSummary(synthetic=bool(cohort.synthetic))
    death = _death_times(cohort, summary)
    subjects = cohort.subject_ids
    data = folder / meds.data_subdirectory
    data.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for i, start in enumerate(range(0, len(subjects), subjects_per_shard)):
        table = _shard_table(
            cohort, subjects[start : start + subjects_per_shard], death, summary.events_by_kind
        )
        pq.write_table(table, data / f"{i}.parquet", row_group_size=ROW_GROUP_ROWS)
        written.update(pc.unique(table.column("code")).to_pylist())
        summary.shards += 1
        summary.events += table.num_rows
    summary.subjects = len(subjects)
    metadata = folder / "metadata"
    metadata.mkdir(exist_ok=True)
    codes = sorted(written)
    pq.write_table(_code_descriptions(codes), folder / meds.code_metadata_filepath)
    summary.codes = len(codes)
    split = split_patients(subjects, SplitConfig())
    sides = {name: getattr(split, side) for side, name in SPLIT_NAMES.items()}
    splits = pa.table(
        {
            "subject_id": pa.array([s for ids in sides.values() for s in ids], pa.int64()),
            "split": pa.array([name for name, ids in sides.items() for _ in ids], pa.string()),
        }
    )
    meds.SubjectSplitSchema.validate(splits)
    pq.write_table(splits, folder / meds.subject_splits_filepath)
    summary.splits = {name: len(ids) for name, ids in sides.items()}
    record: dict[str, Any] = {
        "dataset_name": dataset_name,
        "dataset_version": time.strftime("%Y-%m-%d"),
        "etl_name": "clinpred",
        "etl_version": clinpred.__version__,
        "meds_version": meds.__version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "raw_source_id_columns": ["hadm_id", "note_id", "cgid"],
        "other_extension_columns": ["time_is_date", "note_description", "seq_num", "race", "insurance"],
        "clinpred_source": cohort.source,
    }
    meds.DatasetMetadataSchema.validate(record)
    if cohort.synthetic:
        record[SEAL_KEY] = seal_record(folder, {"written_by": "clinpred export meds", "source": "synthetic"})
    (folder / DATASET_JSON).write_text(json.dumps(record, indent=2) + "\n")
    return summary


def export_meds(
    cohort: Cohort,
    out: Path,
    *,
    dataset_name: str,
    inputs: list[tuple[str, Path | None]],
    subjects_per_shard: int = SUBJECTS_PER_SHARD,
) -> ExportSummary:
    """Write ``out`` whole: staged beside it and renamed in, replacing only an earlier export."""
    from clinpred.run_folder import replace_run_folder

    with replace_run_folder(out, "export", command="export meds", inputs=inputs) as staging:
        return write_meds_dataset(
            cohort, staging, dataset_name=dataset_name, subjects_per_shard=subjects_per_shard
        )
