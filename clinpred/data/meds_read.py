"""MEDS reader: a MEDS root (``data/**/*.parquet``, ``metadata/``) into the same Cohort as MIMIC.

MEDS (the Medical Event Data Standard, PyPI ``meds``) stores one event per row: ``subject_id``,
``time``, ``code``, ``numeric_value``, ``text_value`` and any extra columns. What clinpred reads, by
code (meds_codes.py; the names of the official MIMIC-IV converter, MIMIC_IV_MEDS):

- patients: every subject of the shards; sex from ``GENDER//<value>``, birth from ``MEDS_BIRTH``,
  death from ``MEDS_DEATH`` (the earliest when there are several, the others counted); the date of
  death is the day of that event, as MIMIC's DOD is a date;
- admissions: ``HOSPITAL_ADMISSION//<type>//<location>`` paired with ``HOSPITAL_DISCHARGE//<location>``
  by the ``hadm_id`` column; events without a hadm_id (a dataset with no such column) are paired in
  time order per subject (an admission closed by the next discharge) and numbered after the largest
  hadm_id; an admission left open is kept without a discharge time, a discharge without an admission
  dropped, both counted. ``race`` and ``insurance`` columns of the admission event are read where
  present (MIMIC_IV_MEDS writes them). A stay is an in-hospital death (HOSPITAL_EXPIRE_FLAG 1, and
  DEATHTIME the death's time) when ``MEDS_DEATH`` falls inside it (admission to discharge), or when
  its discharge location says so (``DIED``, ``DEAD/EXPIRED``), its DEATHTIME then the death's time if
  that is on the day of discharge;
- diagnoses: ``DIAGNOSIS//ICD//9|10//<code>`` (pattern configurable), linked to their stay by
  ``hadm_id``, else to the subject's stay discharged at the event's time (the converter dates
  diagnoses at discharge); codes normalised as MIMIC stores them (``labels.normalise_icd``); an
  optional ``seq_num`` column gives their order, else the order of the rows;
- notes: events with a non-null ``text_value`` whose code matches the note pattern (``NOTE//<X>``),
  the category from the code; optional columns ``hadm_id``, ``note_id``, ``time_is_date`` (a
  date-only note), ``note_description`` and ``cgid`` (what `clinpred export meds` writes). In a dataset
  with no hadm_id column at all, a note is linked to the stay it was written in.

Every other code is counted and ignored. Shards are read one row group at a time with pyarrow: only
``subject_id``, ``time`` and ``code`` are decoded for every row, the other columns only for row groups
holding events clinpred keeps, and only those rows are kept. Note text is never held whole: each row
group's goes to disk and the notes come back as a memory map of the note cache, as for the MIMIC
readers (meds_notes.py). Memory is a row group plus the cohort's small tables, never the dataset.
Each shard's schema is checked against the ``meds`` package's own ``DataSchema`` first; a shard that
breaks it is refused naming the file and column. Accepted as the same values: ``code`` /
``text_value`` as string or large_string (MEDS 0.3 wrote string), ``time`` in another unit without a
time zone, any float ``numeric_value`` (never read).

A MEDS dataset is credentialed unless `clinpred export meds` wrote it from the synthetic cohort and
sealed it (meds_seal.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import meds
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from flexible_schema.exceptions import SchemaValidationError

from clinpred.data.categories import matches
from clinpred.data.cohort import (
    ADMISSION_DTYPES,
    DIAGNOSIS_DTYPES,
    NOTE_DTYPES,
    PATIENT_DTYPES,
    Cohort,
    conform,
)
from clinpred.data.integrity import Repair, declare
from clinpred.data.labels import normalise_icd
from clinpred.data.meds_codes import DEATH_LOCATIONS, MedsCodes
from clinpred.data.meds_notes import NoteSink
from clinpred.data.meds_notes import cache_path as note_cache_path
from clinpred.data.meds_notes import read_cache as read_note_cache
from clinpred.data.meds_seal import is_sealed_synthetic_meds
from clinpred.data.memory import return_freed_memory
from clinpred.data.mimic3 import order_diagnoses
from clinpred.data.note_cache import record_note_source
from clinpred.data.source_repairs import link_diagnoses, repair_notes
from clinpred.errors import InputError

KINDS = ("note", "diagnosis", "admission", "discharge", "birth", "death", "gender")
# extra columns each kind of event may carry, and their types
EXTRA: dict[str, dict[str, pa.DataType]] = {
    "note": {
        "text_value": pa.large_string(),
        "hadm_id": pa.int64(),
        "note_id": pa.large_string(),
        "time_is_date": pa.bool_(),
        "note_description": pa.large_string(),
        "cgid": pa.int64(),
    },
    "diagnosis": {"hadm_id": pa.int64(), "seq_num": pa.int64()},
    "admission": {"hadm_id": pa.int64(), "race": pa.large_string(), "insurance": pa.large_string()},
    "discharge": {"hadm_id": pa.int64()},
    "birth": {},
    "death": {},
    "gender": {},
}
TIME = pa.timestamp("us")
EXTRA_ROWS = 8_192  # rows of a row group's extra columns (note text) decoded at a time

declare(
    Repair(
        "admissions_without_discharge_event",
        "admissions",
        "a MEDS HOSPITAL_ADMISSION event with no HOSPITAL_DISCHARGE event of its stay was kept with its "
        "discharge time missing",
    ),
    Repair(
        "discharge_events_without_admission_dropped",
        "admissions",
        "a MEDS HOSPITAL_DISCHARGE event with no HOSPITAL_ADMISSION event of its stay was dropped",
    ),
    Repair(
        "diagnoses_without_admission_dropped",
        "diagnoses",
        "a MEDS diagnosis event with no hadm_id and no stay of its subject discharged at its time was dropped",
    ),
    Repair(
        "note_events_without_text_dropped",
        "notes",
        "a MEDS event with a note code but no text_value was dropped",
    ),
    Repair(
        "extra_death_events_ignored",
        "patients",
        "a subject's MEDS_DEATH events after the earliest were ignored",
    ),
    Repair(
        "extra_birth_events_ignored",
        "patients",
        "a subject's MEDS_BIRTH events after the earliest were ignored",
    ),
)


def shard_paths(root: Path) -> list[Path]:
    """The data shards of a MEDS root: ``data/**/*.parquet``, sorted by path, numbered names by number
    (``2.parquet`` before ``10.parquet``: an export's shards then come in subject order)."""

    def key(path: Path) -> tuple[str, int, str]:
        return (path.parent.as_posix(), int(path.stem) if path.stem.isdigit() else -1, path.stem)

    return sorted(
        (p for p in (Path(root) / meds.data_subdirectory).rglob("*.parquet") if p.is_file()), key=key
    )


def is_meds_root(path: Path) -> bool:
    """A folder whose ``data/`` holds parquet files."""
    data = Path(path) / meds.data_subdirectory
    return data.is_dir() and any(p.is_file() for p in data.rglob("*.parquet"))


def read_dataset_metadata(root: Path) -> dict[str, Any]:
    """``metadata/dataset.json``, checked against the meds package's DatasetMetadataSchema."""
    path = Path(root) / meds.dataset_metadata_filepath
    if not path.is_file():
        raise InputError(
            f"{path}: no such file. A MEDS root holds data/*.parquet and metadata/dataset.json "
            "(and metadata/codes.parquet); give the folder the MEDS ETL wrote."
        )
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc}).") from None
    if not isinstance(record, dict):
        raise InputError(f"{path}: expected a JSON object (MEDS DatasetMetadataSchema).")
    try:
        meds.DatasetMetadataSchema.validate(record)
    except Exception:  # the library's message quotes nothing useful: name the fields it checks
        bad = [
            k
            for k in ("dataset_name", "dataset_version", "etl_name", "etl_version", "meds_version")
            if k in record and not isinstance(record[k], str)
        ]
        raise InputError(
            f"{path}: does not follow the MEDS DatasetMetadataSchema"
            + (f" (not text: {', '.join(bad)})" if bad else "")
            + "."
        ) from None
    return record


def _tolerated(column: str, got: pa.DataType) -> bool:
    """A type that holds the same values as the schema's (see the module docstring)."""
    if column in ("code", "text_value"):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    if column == "time":
        return pa.types.is_timestamp(got) and got.tz is None
    if column == "numeric_value":
        return pa.types.is_floating(got)
    return False


def check_shard_schema(schema: pa.Schema, path: Path) -> None:
    """Refuse a shard that breaks meds.DataSchema (missing column, wrong type), naming file and column."""
    try:
        meds.DataSchema.validate(schema)
        return
    except SchemaValidationError as exc:
        missing, mistyped = exc.missing_req_cols or [], exc.mistyped_cols or []
    wanted = meds.DataSchema.schema()
    if missing:
        raise InputError(
            f"{path}: column {missing[0]} is missing. A MEDS data shard holds subject_id (int64), time "
            f"(timestamp[us]) and code (string) (meds {meds.__version__} DataSchema)."
        )
    for column, _, got in mistyped:
        if not _tolerated(column, got):
            raise InputError(
                f"{path}: column {column} is {got}; the MEDS DataSchema wants "
                f"{wanted.field(column).type}. Write the shard with the meds schema "
                "(meds.DataSchema.align) and read it again."
            )


@dataclass
class _Gathered:
    """What the shards gave: the kept events of each kind, subjects, and counts."""

    paths: list[Path]
    tables: dict[str, list[pa.Table]] = field(default_factory=lambda: {k: [] for k in KINDS})
    subjects: list[np.ndarray] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    has_hadm_id: bool = False

    def name(self, index: int) -> str:
        """A shard's path under data/ without its suffix (``train/0``): names its notes without an id."""
        path = self.paths[index]
        data = next(p for p in path.parents if p.name == meds.data_subdirectory)
        return path.relative_to(data).with_suffix("").as_posix()

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)

    def table(self, kind: str) -> pa.Table:
        schema = _kind_schema(kind)
        parts = self.tables[kind]
        return pa.concat_tables(parts) if parts else schema.empty_table()


def _kind_schema(kind: str) -> pa.Schema:
    return pa.schema(
        [
            ("subject_id", pa.int64()),
            ("time", TIME),
            ("code", pa.large_string()),
            *EXTRA[kind].items(),
            ("shard", pa.int32()),
            ("row", pa.int64()),
        ]
    )


def _column(block: pa.Table, name: str, type_: pa.DataType, path: Path, n: int) -> pa.Array:
    """An extra column cast to its type (nulls where the shard lacks it); a value that does not cast
    (a hadm_id of 12.5 or 'x') is refused, naming file and column."""
    if name not in block.column_names:
        if name == "time_is_date":
            return pa.repeat(False, n)  # a reader of someone else's MEDS: every time is a time
        return pa.nulls(n, type_)
    values = block.column(name)  # chunked: filtered as it is, never copied whole
    if values.type == type_:
        return values
    try:
        return pc.cast(values, type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(f"{path}: column {name} is {values.type}: expected {type_} values.") from None


def _refuse_nulls(values: pa.Array, path: Path, column: str, first_row: int) -> None:
    nulls = pc.is_null(values)
    if pc.any(nulls).as_py():
        row = first_row + pc.index(nulls, True).as_py()
        raise InputError(f"{path}: column {column}, row {row + 1}: empty; MEDS requires a {column}.")


def _read_shard(
    path: Path,
    index: int,
    codes: MedsCodes,
    known: dict[str, str],
    wanted: pa.Array | None,
    out: _Gathered,
    sink: NoteSink | None,
) -> None:
    """Keep one shard's events of the kinds clinpred reads, a row group at a time. Note events go to
    ``sink`` (their text spilled to disk, meds_notes.py), or are only counted when the note cache
    already holds them (``sink`` None)."""
    try:
        file = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc}).") from None
    schema = file.schema_arrow
    check_shard_schema(schema, path)
    present = set(schema.names)
    out.has_hadm_id |= "hadm_id" in present
    first = 0
    for group in range(file.num_row_groups):
        base = file.read_row_group(group, columns=["subject_id", "time", "code"], use_threads=False)
        n = base.num_rows
        subject = base.column("subject_id").combine_chunks()
        code = base.column("code").combine_chunks()
        _refuse_nulls(subject, path, "subject_id", first)
        _refuse_nulls(code, path, "code", first)
        out.add("meds_events_read", n)
        keep = None if wanted is None else pc.is_in(subject, value_set=wanted)
        out.subjects.append(np.unique((subject if keep is None else subject.filter(keep)).to_numpy()))
        encoded = pc.dictionary_encode(code)
        names = encoded.dictionary.to_pylist()
        for name in names:
            if name not in known:
                known[name] = codes.classify(name)[0]
        kind_of = pa.array([known[name] for name in names], pa.string())
        every = pc.take(kind_of, encoded.indices)  # every subject's: a cache holds all notes
        kinds = every if keep is None else pc.if_else(keep, every, pa.scalar("filtered", pa.string()))
        tally = pc.value_counts(kinds)
        found = dict(zip(tally.field("values").to_pylist(), tally.field("counts").to_pylist(), strict=True))
        out.add("meds_events_ignored", found.get("ignored", 0))
        out.add("meds_events_of_other_subjects", found.get("filtered", 0))
        for kind in KINDS:
            if found.get(kind):
                out.add(f"meds_{kind}_events", found[kind])
        masks = {kind: pc.equal(kinds, kind) for kind in KINDS if kind != "note" and found.get(kind)}
        if sink is not None:
            notes = pc.equal(every if sink.all_subjects else kinds, "note")
            if pc.any(notes).as_py():
                masks["note"] = notes
        if masks:
            extras = sorted({c for k in masks for c in EXTRA[k] if c in present})
            time = base.column("time").combine_chunks()
            if time.type != TIME:
                time = pc.cast(time, TIME)  # another unit, same instants (a lossy cast raises)
            rows = pa.array(np.arange(first, first + n, dtype=np.int64))
            start = 0
            for more in _extra_columns(file, group, extras):
                size = n if more is None else more.num_rows
                for kind, every_mask in masks.items():
                    mask = every_mask.slice(start, size)
                    m = pc.sum(mask).as_py() or 0
                    if not m:
                        continue
                    columns = {
                        "subject_id": subject.slice(start, size).filter(mask),
                        "time": time.slice(start, size).filter(mask),
                        "code": pc.cast(code.slice(start, size).filter(mask), pa.large_string()),
                    }
                    for name, type_ in EXTRA[kind].items():
                        if more is not None:
                            values = _column(more, name, type_, path, size)
                        else:
                            values = (
                                pa.repeat(False, size) if name == "time_is_date" else pa.nulls(size, type_)
                            )
                        columns[name] = values.filter(mask)
                    columns["shard"] = pa.repeat(index, m).cast(pa.int32())
                    columns["row"] = rows.slice(start, size).filter(mask)
                    events = pa.table(columns, schema=_kind_schema(kind))
                    if kind == "note":
                        sink.add(events, index)
                    else:
                        out.tables[kind].append(events)
                start += size
            return_freed_memory()  # the row group's decoded columns
        first += n


def _extra_columns(file: pq.ParquetFile, group: int, columns: list[str]) -> Iterator[pa.Table | None]:
    """A row group's extra columns, EXTRA_ROWS rows at a time (note text decoded a slice at a time, not
    a whole row group: 65,536 events of an export hold about 50 MB of it); None when there are none."""
    if not columns:
        yield None
        return
    for batch in file.iter_batches(
        batch_size=EXTRA_ROWS, row_groups=[group], columns=columns, use_threads=False
    ):
        yield pa.Table.from_batches([batch])


def _parts(codes: MedsCodes, values: pd.Series) -> pd.Series:
    """Each row's parsed code parts (classified once per distinct code)."""
    distinct = {c: codes.classify(c)[1] for c in values.unique()}
    return values.map(distinct)


def _refuse_null_times(table: pa.Table, kind: str, paths: list[Path]) -> None:
    nulls = pc.is_null(table.column("time"))
    if pc.any(nulls).as_py():
        at = pc.index(nulls, True).as_py()
        path = paths[table.column("shard")[at].as_py()]
        row = table.column("row")[at].as_py()
        raise InputError(
            f"{path}: column time, row {row + 1}: empty for a {kind} event ({table.column('code')[at]}); "
            "only static codes (GENDER) may have no time."
        )


def _patients(g: _Gathered) -> tuple[pd.DataFrame, pd.Series, dict[str, int]]:
    """patients, each subject's death time (the earliest MEDS_DEATH), and the repair counts."""
    subjects = np.unique(np.concatenate(g.subjects)) if g.subjects else np.array([], np.int64)
    counts: dict[str, int] = {}
    gender = g.table("gender").select(["subject_id", "code", "shard"]).to_pandas()
    gender["value"] = gender["code"].str.slice(len("GENDER//"))
    distinct = gender.drop_duplicates(["subject_id", "value"])
    twice = distinct["subject_id"].duplicated(keep=False)
    if twice.any():
        row = distinct[twice].iloc[0]
        values = sorted(distinct.loc[distinct["subject_id"] == row["subject_id"], "value"])
        raise InputError(
            f"{g.paths[int(row['shard'])]}: column code: subject {row['subject_id']} has two GENDER codes "
            f"({', '.join(values)}); which is right cannot be told. Keep one."
        )
    sex = distinct.set_index("subject_id")["value"]
    when: dict[str, pd.Series] = {}
    for kind, key in (("birth", "extra_birth_events_ignored"), ("death", "extra_death_events_ignored")):
        table = g.table(kind)
        _refuse_null_times(table, kind, g.paths)
        frame = table.select(["subject_id", "time"]).to_pandas()
        frame["time"] = frame["time"].astype("datetime64[ns]")
        extra = len(frame) - frame["subject_id"].nunique()
        if extra:
            counts[key] = int(extra)
        when[kind] = frame.groupby("subject_id")["time"].min()
    patients = pd.DataFrame({"subject_id": subjects})
    patients["gender"] = patients["subject_id"].map(sex)
    patients["dob"] = when["birth"].reindex(subjects).to_numpy()  # reindex keeps the dtype when empty
    patients["dod"] = pd.Series(when["death"].reindex(subjects).to_numpy()).dt.normalize()
    return conform(patients, PATIENT_DTYPES), when["death"], counts


def _pair_in_time_order(adm: pd.DataFrame, dis: pd.DataFrame, first_id: int) -> tuple[pd.DataFrame, int]:
    """Admission and discharge events without a hadm_id, paired per subject in time order: an
    admission is closed by the next discharge (a discharge first at equal times). Returns the stays
    (dischtime NaT where left open) and the number of discharges that closed nothing."""
    events = pd.concat(
        [adm.assign(_kind=1, _i=np.arange(len(adm))), dis.assign(_kind=0, _i=np.arange(len(dis)))],
        ignore_index=True,
    ).sort_values(["subject_id", "time", "_kind", "shard", "row"], kind="stable")
    stays: list[tuple[int, int | None]] = []  # (admission index, discharge index or None)
    orphans = 0
    open_at: int | None = None
    subject = None
    for s, kind, i in zip(events["subject_id"], events["_kind"], events["_i"], strict=True):
        if s != subject:
            if open_at is not None:
                stays.append((open_at, None))
            open_at, subject = None, s
        if kind == 1:
            if open_at is not None:
                stays.append((open_at, None))
            open_at = int(i)
        elif open_at is not None:
            stays.append((open_at, int(i)))
            open_at = None
        else:
            orphans += 1
    if open_at is not None:
        stays.append((open_at, None))
    a = [s[0] for s in stays]
    d = [s[1] for s in stays]
    out = adm.iloc[a].reset_index(drop=True)
    disch_codes = dis["code"].to_numpy()
    disch_times = dis["time"].to_numpy()
    out["disch_code"] = [disch_codes[j] if j is not None else None for j in d]
    out["dischtime"] = pd.to_datetime(
        [disch_times[j] if j is not None else pd.NaT for j in d], utc=False
    ).astype("datetime64[ns]")
    out["hadm_id"] = np.arange(first_id, first_id + len(out), dtype=np.int64)
    return out, orphans


def _admissions(g: _Gathered, codes: MedsCodes, death: pd.Series) -> tuple[pd.DataFrame, dict[str, int]]:
    """Stays from admission and discharge events (see the module docstring), in patient/time order."""
    adm_t, dis_t = g.table("admission"), g.table("discharge")
    _refuse_null_times(adm_t, "HOSPITAL_ADMISSION", g.paths)
    _refuse_null_times(dis_t, "HOSPITAL_DISCHARGE", g.paths)
    adm = adm_t.to_pandas()
    dis = dis_t.to_pandas()
    for frame in (adm, dis):
        frame["time"] = frame["time"].astype("datetime64[ns]")
    for frame, name in ((adm, "HOSPITAL_ADMISSION"), (dis, "HOSPITAL_DISCHARGE")):
        linked = frame[frame["hadm_id"].notna()]
        again = linked["hadm_id"].duplicated(keep=False)
        if again.any():
            row = linked[again].iloc[0]
            raise InputError(
                f"{g.paths[int(row['shard'])]}: column hadm_id: {int(row['hadm_id'])} has more than one "
                f"{name} event; a stay has one admission and one discharge."
            )
    counts: dict[str, int] = {}
    dis_id = dis[dis["hadm_id"].notna()]
    ends = dis_id[["hadm_id", "time", "code", "subject_id"]].rename(
        columns={"time": "dischtime", "code": "disch_code", "subject_id": "_owner"}
    )
    with_id = adm[adm["hadm_id"].notna()].merge(ends, on="hadm_id", how="left")
    other = with_id["_owner"].notna() & (with_id["_owner"] != with_id["subject_id"])
    if other.any():
        row = with_id[other].iloc[0]
        raise InputError(
            f"{g.paths[int(row['shard'])]}: column hadm_id: stay {int(row['hadm_id'])} is admitted for "
            f"subject {row['subject_id']} and discharged for subject {int(row['_owner'])}."
        )
    with_id = with_id.drop(columns="_owner")
    orphans = int((~dis_id["hadm_id"].isin(with_id["hadm_id"])).sum())
    known = int(pd.concat([adm["hadm_id"], dis["hadm_id"]]).max()) if len(with_id) or len(dis_id) else 0
    without, unpaired = _pair_in_time_order(
        adm[adm["hadm_id"].isna()], dis[dis["hadm_id"].isna()], max(known, 0) + 1
    )
    frame = pd.concat([with_id, without], ignore_index=True) if len(without) else with_id
    orphans += unpaired
    if orphans:
        counts["discharge_events_without_admission_dropped"] = orphans
    if (open_stays := int(frame["dischtime"].isna().sum())) > 0:
        counts["admissions_without_discharge_event"] = open_stays
    parsed = _parts(codes, frame["code"]) if len(frame) else pd.Series(dtype=object)
    frame["admission_type"] = [p[0] for p in parsed]
    where = _parts(codes, frame["disch_code"].dropna()) if len(frame) else pd.Series(dtype=object)
    location = pd.Series([p[0] for p in where], index=where.index, dtype=object)
    said_died = frame.index.isin(location[location.isin(DEATH_LOCATIONS)].index)
    frame = frame.rename(columns={"time": "admittime"})
    frame["dischtime"] = pd.to_datetime(frame["dischtime"]).astype("datetime64[ns]")
    died_at = pd.Series(death.reindex(frame["subject_id"]).to_numpy(), index=frame.index)
    inside = (died_at >= frame["admittime"]) & (died_at <= frame["dischtime"])
    on_discharge_day = said_died & (died_at.dt.normalize() == frame["dischtime"].dt.normalize())
    has_time = (inside | on_discharge_day).fillna(False).to_numpy(bool)
    frame["deathtime"] = died_at.where(has_time)
    frame["hospital_expire_flag"] = (has_time | said_died).astype("int64")
    frame = conform(frame, ADMISSION_DTYPES)
    return frame.sort_values(["subject_id", "admittime"], ignore_index=True), counts


def _diagnoses(
    g: _Gathered, codes: MedsCodes, admissions: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Diagnosis events as DIAGNOSES rows, linked to their stays (module docstring), in MIMIC order."""
    frame = g.table("diagnosis").to_pandas()
    counts: dict[str, int] = {}
    frame["time"] = frame["time"].astype("datetime64[ns]")
    parsed = _parts(codes, frame["code"]) if len(frame) else pd.Series(dtype=object)
    frame["icd_version"] = [int(p[0]) for p in parsed]
    frame["icd_code"] = normalise_icd(pd.Series([str(p[1]) for p in parsed], dtype=object))
    frame["hadm_id"] = frame["hadm_id"].astype("Int64")
    unlinked = frame["hadm_id"].isna()
    if unlinked.any():
        by_end = admissions.dropna(subset=["dischtime"]).drop_duplicates(["subject_id", "dischtime"])
        found = frame.loc[unlinked, ["subject_id", "time"]].merge(
            by_end[["subject_id", "dischtime", "hadm_id"]],
            left_on=["subject_id", "time"],
            right_on=["subject_id", "dischtime"],
            how="left",
        )["hadm_id"]
        frame.loc[unlinked, "hadm_id"] = found.astype("Int64").to_numpy()
        lost = frame["hadm_id"].isna()
        if lost.any():
            counts["diagnoses_without_admission_dropped"] = int(lost.sum())
            frame = frame[~lost].reset_index(drop=True)
    frame["hadm_id"] = frame["hadm_id"].astype("int64")
    empty = frame["icd_code"] == ""
    if empty.any():
        counts["diagnosis_rows_without_code"] = int(empty.sum())
        frame = frame[~empty].reset_index(drop=True)
    order = frame.groupby(["subject_id", "hadm_id"], sort=False).cumcount() + 1
    frame["seq_num"] = frame["seq_num"].astype("Int64").fillna(order.astype("Int64"))
    frame, linked = link_diagnoses(conform(frame, DIAGNOSIS_DTYPES), admissions)
    return order_diagnoses(frame, admissions), {**counts, **linked}


def _link_notes_by_time(notes: pa.Table, admissions: pd.DataFrame) -> pa.Table:
    """A dataset with no hadm_id column: each note linked to its subject's stay it was written in."""
    frame = notes.select(["subject_id", "time"]).to_pandas()
    frame["time"] = frame["time"].astype("datetime64[ns]")
    frame["_i"] = np.arange(len(frame))
    stays = admissions.dropna(subset=["dischtime"]).sort_values("admittime")
    joined = pd.merge_asof(
        frame.sort_values("time"),
        stays[["subject_id", "hadm_id", "admittime", "dischtime"]],
        left_on="time",
        right_on="admittime",
        by="subject_id",
    )
    inside = joined["time"] <= joined["dischtime"]
    hadm = np.full(len(frame), -1, dtype=np.int64)
    hadm[joined.loc[inside, "_i"].to_numpy()] = joined.loc[inside, "hadm_id"].to_numpy(np.int64)
    values = pa.array(hadm, mask=hadm < 0)
    return notes.set_column(notes.schema.get_field_index("hadm_id"), "hadm_id", values)


def _drop_repeated_notes(notes: pa.Table, paths: list[Path]) -> tuple[pa.Table, int]:
    """Notes whose note_id repeats: a whole copy (same subject, time, category, stay, text) dropped and
    counted; an id repeated with other content refused, naming files and id."""
    ids = notes.column("note_id")
    if len(pc.unique(ids)) == len(ids):
        return notes, 0
    frame = notes.drop_columns(["text_value"]).to_pandas()
    frame["text"] = pd.util.hash_array(notes.column("text_value").to_numpy(zero_copy_only=False))
    repeated = frame["note_id"].duplicated(keep=False)
    whole = frame.duplicated(["note_id", "subject_id", "time", "code", "hadm_id", "text"], keep="first")
    conflicting = frame.loc[repeated & ~whole].drop_duplicates(
        ["note_id", "subject_id", "time", "code", "hadm_id", "text"]
    )
    conflicting = conflicting[conflicting["note_id"].duplicated(keep=False)]
    if len(conflicting):
        note_id = conflicting["note_id"].iloc[0]
        files = sorted(
            {str(paths[int(s)]) for s in conflicting.loc[conflicting["note_id"] == note_id, "shard"]}
        )
        raise InputError(
            f"{', '.join(files)}: column note_id: {note_id} appears again with different content. Each note "
            "must have one note_id: which copy is right cannot be told, so remove the wrong rows."
        )
    return notes.filter(pa.array(~whole.to_numpy())), int(whole.sum())


def _in_order(table: pa.Table) -> bool:
    """Whether the rows are sorted by (subject_id, time)."""
    s = table.column("subject_id").to_numpy()
    t = table.column("time").to_numpy()
    return bool(np.all((s[1:] > s[:-1]) | ((s[1:] == s[:-1]) & (t[1:] >= t[:-1]))))


def _notes(
    g: _Gathered, codes: MedsCodes, admissions: pd.DataFrame, categories: Iterable[str] | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Note events as the Cohort's notes: categories from the codes, repaired by integrity.py's rules."""
    table = g.table("note")
    counts: dict[str, int] = {}
    no_text = pc.is_null(table.column("text_value"))
    if (missing := int(pc.sum(no_text).as_py() or 0)) > 0:
        counts["note_events_without_text_dropped"] = missing
        table = table.filter(pc.invert(no_text))
    _refuse_null_times(table, "note", g.paths)
    written = table.column("code")
    distinct = pc.unique(written)
    names = pa.array([codes.classify(c)[1][0] for c in distinct.to_pylist()], pa.large_string())
    category = pc.take(names, pc.index_in(written, value_set=distinct))
    table = table.append_column("category", category)
    if categories is not None:
        table = table.filter(matches(table.column("category"), categories))
    if pc.any(pc.is_null(table.column("note_id"))).as_py():  # no note_id: <shard>:<row>, stable
        stems = pa.array([g.name(i) for i in range(len(g.paths))], pa.large_string())
        generated = pc.binary_join_element_wise(
            pc.take(stems, table.column("shard")),
            pc.cast(table.column("row"), pa.large_string()),
            pa.scalar(":", pa.large_string()),
        )
        ids = pc.coalesce(table.column("note_id"), generated)
        table = table.set_column(table.schema.get_field_index("note_id"), "note_id", ids)
    table, repeated = _drop_repeated_notes(table, g.paths)
    if repeated:
        counts["duplicate_note_rows_dropped"] = repeated
    if not g.has_hadm_id and len(admissions):
        table = _link_notes_by_time(table, admissions)
    table = table.rename_columns(["text" if c == "text_value" else c for c in table.column_names])
    table, repaired = repair_notes(table, sources=g.paths, id_column="note_id", admissions=admissions)
    counts.update(repaired)
    if not _in_order(table):  # an export's notes come in order: no second copy of the text then
        order = pc.sort_indices(table, sort_keys=[("subject_id", "ascending"), ("time", "ascending")])
        table = table.take(order)
    columns: dict[str, Any] = {}
    for name, dtype in NOTE_DTYPES.items():
        values = table.column("note_description" if name == "description" else name)
        if dtype == "string":
            columns[name] = pd.StringDtype("pyarrow").__from_arrow__(values)
        elif dtype == "Int64":
            columns[name] = pd.Int64Dtype().__from_arrow__(values)
        else:
            columns[name] = values.to_numpy().astype(dtype, copy=False)
    return conform(pd.DataFrame(columns, copy=False), NOTE_DTYPES), counts


def read_meds(
    root: str | Path,
    *,
    categories: Iterable[str] | None = None,
    subject_ids: Iterable[int] | None = None,
    codes: MedsCodes | None = None,
    use_cache: bool = True,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> Cohort:
    """Read a MEDS root into a Cohort (see the module docstring for what is read from which code).

    ``categories`` and ``subject_ids`` filter as for the MIMIC readers; ``codes`` sets the note and
    diagnosis patterns. The notes are a memory map of the note cache (meds_notes.py; ``cache_dir``, else
    the cache root's ``notes/``), written on the first read; with ``use_cache`` False, of an unnamed
    temporary file holding only the kept subjects' notes. ``progress`` is accepted for the common
    reader interface.
    """
    del progress
    root = Path(root)
    codes = codes or MedsCodes()
    paths = shard_paths(root)
    if not paths:
        raise InputError(
            f"{root / meds.data_subdirectory}: no parquet shard here; a MEDS root holds data/*.parquet."
        )
    read_dataset_metadata(root)
    keep = None if subject_ids is None else pa.array(sorted({int(s) for s in subject_ids}), pa.int64())
    gathered = _Gathered(paths=paths)
    names = [gathered.name(i) for i in range(len(paths))]
    cache_file = note_cache_path(names, paths, codes, cache_dir) if use_cache else None
    cached = cache_file is not None and cache_file.exists()
    sink = None if cached else NoteSink(_kind_schema("note"), cache_file)
    known: dict[str, str] = {}
    try:
        for index, path in enumerate(paths):
            _read_shard(path, index, codes, known, keep, gathered, sink)
        note_events = read_note_cache(cache_file) if sink is None else sink.finish()
    finally:
        if sink is not None:
            sink.close()
    if keep is not None and cache_file is not None:  # the cache holds every subject's notes
        note_events = note_events.filter(pc.is_in(note_events.column("subject_id"), value_set=keep))
    gathered.tables["note"] = [note_events]
    del note_events
    gathered.add("meds_shards", len(paths))
    gathered.add("meds_distinct_codes", len(known))
    patients, death, patient_counts = _patients(gathered)
    admissions, admission_counts = _admissions(gathered, codes, death)
    diagnoses, dx_counts = _diagnoses(gathered, codes, admissions)
    try:
        notes, note_counts = _notes(gathered, codes, admissions, categories)
    except InputError:  # a refused dataset (an id repeated with other text) leaves no note cache
        if cache_file is not None:
            cache_file.unlink(missing_ok=True)
        raise
    synthetic = is_sealed_synthetic_meds(root)
    if cache_file is not None:
        record_note_source(cache_file, paths, ("meds", root), synthetic=synthetic)
    return Cohort(
        notes=notes,
        patients=patients,
        admissions=admissions,
        diagnoses=diagnoses,
        source="meds",
        path=root,
        synthetic=synthetic,
        counts={**gathered.counts, **note_counts, **dx_counts, **patient_counts, **admission_counts},
    )


def read_subject_splits(root: Path | None) -> dict[int, str]:
    """``metadata/subject_splits.parquet`` (meds.SubjectSplitSchema) as subject_id -> split name; a
    source without one is refused (``[split] source = "dataset"`` needs it)."""
    path = None if root is None else Path(root) / meds.subject_splits_filepath
    if path is None or not path.is_file():
        raise InputError(
            f'[split] source = "dataset": {root if root is not None else "this source"} has no '
            f"{meds.subject_splits_filepath}; only a MEDS dataset ships its own split. Use "
            'source = "seeded" (the default) for this source.'
        )
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc}).") from None
    try:
        meds.SubjectSplitSchema.validate(table.schema)
    except SchemaValidationError as exc:
        missing, mistyped = exc.missing_req_cols or [], exc.mistyped_cols or []
        bad = [c for c, _, got in mistyped if not (c == "split" and pa.types.is_large_string(got))]
        if missing or bad:
            column = (missing or bad)[0]
            raise InputError(
                f"{path}: column {column}: {'missing' if missing else 'of the wrong type'}; the MEDS "
                "SubjectSplitSchema wants subject_id (int64) and split (string)."
            ) from None
    for column in ("subject_id", "split"):
        _refuse_nulls(table.column(column).combine_chunks(), path, column, 0)
    frame = table.select(["subject_id", "split"]).to_pandas().drop_duplicates()
    twice = frame["subject_id"].duplicated(keep=False)
    if twice.any():
        subject = int(frame.loc[twice, "subject_id"].iloc[0])
        raise InputError(f"{path}: column split: subject {subject} is in more than one split.")
    return dict(zip(frame["subject_id"].astype(int), frame["split"].astype(str), strict=True))
