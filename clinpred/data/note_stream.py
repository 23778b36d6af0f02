"""Streaming note tables (MIMIC-III NOTEEVENTS, MIMIC-IV discharge/radiology) with a Parquet cache.

Full NOTEEVENTS is 2.08M notes, about 4 GB of text, not in patient order. pyarrow's streaming CSV
reader parses it block by block (quoted fields with embedded newlines); each block is normalised to
the cache schema as it arrives. The text stays in Arrow buffers, never Python objects, and is copied
exactly once, into patient-and-time order, with each source block freed as soon as it has been copied:
peak memory is about one copy of the text kept.

The Parquet cache (keyed by the source's path, size and modification time) holds every note sorted by
(error flag, patient, time, source order), so any later read, whatever its filters, is a filtered
Parquet read that is already in order. It is written under a temporary name and renamed when complete:
a failed or interrupted read leaves nothing behind. Without the cache, filters apply block by block,
so only the kept notes are ever held.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from clinpred.data.cohort import NOTE_DTYPES, conform
from clinpred.data.tables import GZIP_ERRORS, read_raw_header, require_columns, unreadable
from clinpred.errors import InputError

CACHE_VERSION = 2

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
        ("text_bytes", pa.int64()),  # UTF-8 length: lets the reader lay out the sorted text in advance
        ("text", pa.large_string()),  # one sorted array can exceed 2 GB (full NOTEEVENTS is ~4 GB)
    ]
)
BLOCK_SCHEMA = CACHE_SCHEMA.set(CACHE_SCHEMA.get_field_index("text"), pa.field("text", pa.string()))
ROW_GROUP = 65_536

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


def _parse_blocks(
    path: Path, columns: list[str], normalise: Normaliser, block_filter: NoteFilters | None, progress: bool
) -> tuple[list[pa.Table], int, int]:
    """Parse the CSV into normalised blocks; with ``block_filter`` keep only matching rows of each block.

    Returns (blocks, rows read, error notes matching the subject/category filters).
    """
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
    blocks: list[pa.Table] = []
    n_rows = n_errors = 0
    bar = _progress(path, progress)
    try:
        reader = pacsv.open_csv(
            str(path), read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts
        )
        for batch in reader:
            block = pa.Table.from_batches([batch]).rename_columns(
                [c.strip().upper() for c in batch.schema.names]
            )
            table = normalise(block, BlockContext(path, n_rows))
            table = table.append_column("text_bytes", pc.binary_length(table.column("text")).cast(pa.int64()))
            table = table.select(BLOCK_SCHEMA.names).cast(BLOCK_SCHEMA)
            n_rows += table.num_rows
            if block_filter is not None:
                mask, errors = _keep_mask(table, block_filter)
                n_errors += errors
                if mask is not None and not pc.all(mask).as_py():
                    table = table.filter(mask)
            blocks.append(table)
            if bar is not None:
                bar.update(batch.num_rows)
    except (pa.ArrowInvalid, *GZIP_ERRORS, UnicodeDecodeError) as exc:
        if isinstance(exc, pa.ArrowInvalid) and "CSV" in str(exc):
            raise InputError(f"{path}: malformed CSV ({str(exc).splitlines()[0][:200]}).") from None
        raise unreadable(path, exc) from None
    finally:
        if bar is not None:
            bar.close()
    if n_rows == 0:
        raise InputError(f"{path}: contains no notes (only a header). Is the download complete?")
    return blocks, n_rows, n_errors


def _progress(path: Path, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=f"reading {path.name}", unit=" notes", unit_scale=True, leave=False)


SORT_KEYS = [("subject_id", "ascending"), ("time", "ascending"), ("order", "ascending")]


def _sort_blocks(blocks: list[pa.Table], *, errors_last: bool) -> pa.Table:
    """All rows of ``blocks`` in (error flag,) patient, time, source order; the text copied once.

    ``blocks`` is emptied as it goes: each block's text is released once it has been copied.
    """
    small = pa.concat_tables([b.drop_columns(["text"]) for b in blocks])
    texts = [b.column("text").combine_chunks() for b in blocks]
    blocks.clear()
    keys = ([("iserror", "ascending")] if errors_last else []) + SORT_KEYS
    order = pc.sort_indices(small, sort_keys=keys).to_numpy()
    text = _scatter_text(texts, order, small.column("text_bytes").to_numpy())
    return small.take(order).append_column("text", text)


def _scatter_text(texts: list[pa.StringArray], order: np.ndarray, lengths: np.ndarray) -> pa.LargeStringArray:
    """Text of row ``order[i]`` at output row i, copying each source array's bytes once, then freeing it."""
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths[order], out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)  # pages are touched only as they are filled
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    start = 0
    for k, text in enumerate(texts):
        n = len(text)
        dst = position[start : start + n]
        start += n
        if n == 0:
            continue
        src_off = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + n + 1]
        src = np.frombuffer(text.buffers()[2], dtype=np.uint8) if text.buffers()[2] is not None else None
        # Notes consecutive both here and in the output are copied as one slice: a file already in
        # patient order (like the synthetic cohort) is copied in a few large pieces.
        local = np.argsort(dst, kind="stable")
        dst_sorted = dst[local]
        breaks = np.flatnonzero((np.diff(local) != 1) | (np.diff(dst_sorted) != 1)) + 1
        firsts = np.concatenate(([0], breaks))
        lasts = np.concatenate((breaks - 1, [n - 1]))
        src_from = src_off[local[firsts]].tolist()
        src_to = src_off[local[lasts] + 1].tolist()
        dst_from = offsets[dst_sorted[firsts]].tolist()
        for s0, s1, d0 in zip(src_from, src_to, dst_from, strict=True):
            out[d0 : d0 + s1 - s0] = src[s0:s1]
        texts[k] = None  # release this block's text
    return pa.LargeStringArray.from_buffers(len(order), pa.py_buffer(offsets), pa.py_buffer(out))


def _write_cache(table: pa.Table, cache_file: Path) -> None:
    """Write the sorted notes as the cache, atomically."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP, compression="snappy")
        os.replace(tmp, cache_file)
    finally:
        if tmp.exists():
            tmp.unlink()


def _filter_sorted(table: pa.Table, filters: NoteFilters) -> tuple[pa.Table, int]:
    """Apply filters to notes sorted with errors last; dropping errors alone is a zero-copy slice."""
    mask, errors = _keep_mask(
        table.drop_columns(["text"]), NoteFilters(filters.categories, filters.subject_ids, False)
    )
    if mask is not None:
        table = table.filter(mask)
    if filters.drop_errors and errors:
        table = table.slice(0, table.num_rows - errors)
    return table, errors


def _read_cache(cache_file: Path, filters: NoteFilters) -> tuple[pa.Table, int]:
    """Read the sorted cache with every filter pushed down; count the error notes kept out."""
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
    table = pq.read_table(cache_file, filters=expr)
    if errors and not filters.drop_errors:  # error notes are stored last: put them in time order
        table = table.take(pc.sort_indices(table, sort_keys=SORT_KEYS))
    return table, errors


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
    elif cache_file is not None:
        blocks, _, _ = _parse_blocks(path, columns, normalise, None, progress)
        table = _sort_blocks(blocks, errors_last=True)
        _write_cache(table, cache_file)
        table, errors = _filter_sorted(table, filters)
        from_cache = 0
    else:
        blocks, _, errors = _parse_blocks(path, columns, normalise, filters, progress)
        table = _sort_blocks(blocks, errors_last=False)
        from_cache = 0
    table = table.drop_columns(["order", "iserror", "text_bytes"])
    strings_as_arrow = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
    frame = table.to_pandas(types_mapper=strings_as_arrow.get)  # no Python str objects for the text
    frame["time"] = frame["time"].astype("datetime64[ns]")
    counts = {
        "error_notes_dropped": int(errors) if filters.drop_errors else 0,
        "notes_read_from_cache": from_cache,
    }
    return conform(frame, NOTE_DTYPES), counts
