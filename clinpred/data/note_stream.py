"""Streaming note tables (MIMIC-III NOTEEVENTS, MIMIC-IV discharge/radiology) with a Parquet cache.

Full NOTEEVENTS is 2.08M notes, about 4 GB of text. The file is parsed in blocks by pyarrow's
streaming CSV reader (quoted fields with embedded newlines); each block is normalised to the cache
schema, appended to a Parquet cache, and filtered (categories, subjects, error notes) before it is
kept. The next read of the same file (same size and modification time) reads the Parquet cache with
the filters pushed down instead of parsing CSV again. The cache is written under a temporary name and
renamed when complete, so an interrupted or failed read leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from clinpred.data.cohort import NOTE_DTYPES, conform
from clinpred.data.tables import GZIP_ERRORS, read_raw_header, require_columns, unreadable
from clinpred.errors import InputError

CACHE_VERSION = 1

CACHE_SCHEMA = pa.schema(
    [
        ("note_id", pa.string()),
        ("order", pa.int64()),  # tie-break within equal times: ROW_ID / note_seq
        ("subject_id", pa.int64()),
        ("hadm_id", pa.int64()),
        ("time", pa.timestamp("s")),
        ("time_is_date", pa.bool_()),
        ("category", pa.string()),
        ("description", pa.string()),
        ("cgid", pa.int64()),
        ("iserror", pa.bool_()),
        ("text", pa.string()),
    ]
)

# A normaliser turns one parsed block (UPPERCASE string columns) into a table of CACHE_SCHEMA.
Normaliser = Callable[[pa.Table, "BlockContext"], pa.Table]


@dataclass(frozen=True)
class NoteFilters:
    """What to keep while reading. None means everything."""

    categories: frozenset[str] | None = None
    subject_ids: frozenset[int] | None = None
    drop_errors: bool = True


@dataclass(frozen=True)
class BlockContext:
    """Where a block sits in its file, so that errors can name the file and the data row."""

    path: Path
    first_row: int  # 0-based index of the block's first data row

    def error(self, column: str, offset: int, value: str, expected: str) -> InputError:
        return InputError(
            f"{self.path}: column {column}, data row {self.first_row + offset + 1}: "
            f"cannot parse {value!r} as {expected}."
        )


def default_cache_dir() -> Path:
    """$CLINPRED_CACHE_DIR/notes, else ~/.cache/clinpred/notes (local disk: notes never leave it)."""
    root = os.environ.get("CLINPRED_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "clinpred"
    return base / "notes"


def cache_path(source: Path, cache_dir: Path | None) -> Path:
    """The cache file for a source file: keyed by its absolute path, size and modification time."""
    stat = source.stat()
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|v{CACHE_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return (cache_dir or default_cache_dir()) / f"{source.name.split('.')[0].lower()}-{digest}.parquet"


# ---- helpers for normalisers -------------------------------------------------------------------


def strings(table: pa.Table, column: str) -> pa.ChunkedArray:
    """A string column with surrounding white space removed."""
    return pc.utf8_trim_whitespace(table.column(column))


def to_int(table: pa.Table, column: str, ctx: BlockContext, *, nullable: bool) -> pa.ChunkedArray:
    """Whole numbers; empty strings become null where ``nullable``, else are errors."""
    values = strings(table, column)
    empty = pc.equal(values, "")
    if nullable:
        values = pc.if_else(empty, pa.scalar(None, pa.string()), values)
    try:
        return pc.cast(values, pa.int64())
    except pa.ArrowInvalid:
        for i, v in enumerate(values.to_pylist()):
            if v is None and nullable:
                continue
            try:
                int(v)
            except (TypeError, ValueError):
                raise ctx.error(column, i, v or "", "a whole number") from None
        raise


def to_time(table: pa.Table, column: str, ctx: BlockContext) -> pa.ChunkedArray:
    """MIMIC datetimes (`YYYY-MM-DD HH:MM:SS` or a bare date); empty -> null; anything else an error."""
    values = strings(table, column)
    full = pc.strptime(values, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    date = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
    parsed = pc.coalesce(full, date)
    bad = pc.and_(pc.not_equal(values, ""), pc.is_null(parsed))
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        raise ctx.error(column, i, values[i].as_py(), "a datetime (YYYY-MM-DD HH:MM:SS or YYYY-MM-DD)")
    return parsed


def nulls(n: int, type_: pa.DataType) -> pa.Array:
    return pa.nulls(n, type=type_)


# ---- the reader ---------------------------------------------------------------------------------


def _keep_mask(table: pa.Table, filters: NoteFilters) -> tuple[pa.ChunkedArray | None, int]:
    """Rows to keep, and how many error notes match the subject/category filters (dropped or not)."""
    mask = None
    if filters.categories is not None:
        mask = pc.is_in(table.column("category"), pa.array(sorted(filters.categories), pa.string()))
    if filters.subject_ids is not None:
        m = pc.is_in(table.column("subject_id"), pa.array(sorted(filters.subject_ids), pa.int64()))
        mask = m if mask is None else pc.and_(mask, m)
    errors = table.column("iserror") if mask is None else pc.and_(table.column("iserror"), mask)
    n_errors = pc.sum(errors).as_py() or 0
    if filters.drop_errors and n_errors:
        keep = pc.invert(table.column("iserror"))
        mask = keep if mask is None else pc.and_(mask, keep)
    return mask, n_errors


def _parse(
    path: Path,
    columns: list[str],
    normalise: Normaliser,
    filters: NoteFilters,
    cache_file: Path | None,
    progress: bool,
) -> tuple[pa.Table, int, int]:
    """Parse the CSV once: returns (kept rows, rows read, error rows), writing the cache if asked."""
    raw = read_raw_header(path)
    require_columns(path, [h.strip().upper() for h in raw], columns)
    original = {h.strip().upper(): h for h in raw}
    read_opts = pacsv.ReadOptions(block_size=8 << 20, use_threads=True)
    parse_opts = pacsv.ParseOptions(newlines_in_values=True)
    convert_opts = pacsv.ConvertOptions(
        column_types={original[c]: pa.string() for c in columns},
        include_columns=[original[c] for c in columns],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    tmp = None
    writer = None
    kept: list[pa.Table] = []
    n_rows = n_errors = 0
    bar = _progress(path, progress)
    try:
        reader = pacsv.open_csv(
            str(path), read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts
        )
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
            writer = pq.ParquetWriter(tmp, CACHE_SCHEMA, compression="snappy")
        for batch in reader:
            block = pa.Table.from_batches([batch]).rename_columns(
                [c.strip().upper() for c in batch.schema.names]
            )
            table = normalise(block, BlockContext(path, n_rows)).cast(CACHE_SCHEMA)
            n_rows += table.num_rows
            if writer is not None:
                writer.write_table(table)
            mask, errors = _keep_mask(table, filters)
            n_errors += errors
            kept.append(table if mask is None or pc.all(mask).as_py() else table.filter(mask))
            if bar is not None:
                bar.update(table.num_rows)
        if writer is not None:
            writer.close()
            writer = None
            if n_rows:
                os.replace(tmp, cache_file)
                tmp = None
    except (pa.ArrowInvalid, *GZIP_ERRORS, UnicodeDecodeError) as exc:
        if isinstance(exc, pa.ArrowInvalid) and "CSV" in str(exc):
            raise InputError(f"{path}: malformed CSV ({str(exc).splitlines()[0][:200]}).") from None
        raise unreadable(path, exc) from None
    finally:
        if writer is not None:
            writer.close()
        if tmp is not None and tmp.exists():
            tmp.unlink()
        if bar is not None:
            bar.close()
    if n_rows == 0:
        raise InputError(f"{path}: contains no notes (only a header). Is the download complete?")
    table = pa.concat_tables(kept) if kept else CACHE_SCHEMA.empty_table()
    return table, n_rows, n_errors


def _progress(path: Path, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=f"reading {path.name}", unit=" notes", unit_scale=True, leave=False)


def _read_cache(cache_file: Path, filters: NoteFilters) -> tuple[pa.Table, int]:
    """Read the cached notes with every filter pushed down; count the error notes kept out."""
    expr = None
    if filters.categories is not None:
        expr = pc.field("category").isin(sorted(filters.categories))
    if filters.subject_ids is not None:
        e = pc.field("subject_id").isin(sorted(filters.subject_ids))
        expr = e if expr is None else expr & e
    flags = pq.read_table(cache_file, columns=["iserror"], filters=expr).column("iserror")
    errors = pc.sum(flags).as_py() or 0
    if filters.drop_errors and errors:
        e = pc.field("iserror") == False  # noqa: E712 (an Arrow expression, not a Python comparison)
        expr = e if expr is None else expr & e
    return pq.read_table(cache_file, filters=expr), errors


def read_notes(
    path: Path,
    columns: list[str],
    normalise: Normaliser,
    filters: NoteFilters,
    *,
    use_cache: bool = True,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Notes of one file in canonical form (NOTE_DTYPES), sorted by patient, time and source order.

    Returns the notes and counts: ``error_notes_dropped`` (ISERROR notes matching the other
    filters) and ``notes_read_from_cache`` (1 when the Parquet cache served the read).
    """
    cache_file = cache_path(path, cache_dir) if use_cache else None
    if cache_file is not None and cache_file.exists():
        table, errors = _read_cache(cache_file, filters)
        from_cache = 1
    else:
        table, _, errors = _parse(path, columns, normalise, filters, cache_file, progress)
        from_cache = 0
    table = table.drop_columns(["iserror"])
    order = pc.sort_indices(
        table, sort_keys=[("subject_id", "ascending"), ("time", "ascending"), ("order", "ascending")]
    )
    if not pc.all(pc.equal(order, pa.array(range(len(order)), pa.uint64()))).as_py():
        table = table.take(order)  # the one copy of the text: MIMIC files are not in patient order
    # Arrow-backed strings: the text is not copied into Python objects.
    frame = table.drop_columns(["order"]).to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    frame["time"] = frame["time"].astype("datetime64[ns]")
    counts = {"error_notes_dropped": int(errors) if filters.drop_errors else 0, "notes_read_from_cache": from_cache}
    return conform(frame, NOTE_DTYPES), counts
