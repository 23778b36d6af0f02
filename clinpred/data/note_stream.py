"""Streaming note tables (MIMIC-III NOTEEVENTS, MIMIC-IV discharge/radiology) with an on-disk cache.

Full NOTEEVENTS is 2.08M notes, about 4 GB of text, not in patient order. pyarrow's streaming CSV
reader parses it block by block (quoted fields with embedded newlines), fed by ISA-L's gzip decoder
on its own thread (about three times zlib's speed); each block is normalised to the cache schema as it
arrives. The text stays in Arrow buffers, never Python objects: it goes to spill files as it is
parsed, and only the small columns are sorted in memory (``text_spill``). Several files (MIMIC-IV's
discharge and radiology notes) are read as one and sorted together.

The sorted notes are then written, a slice at a time on a second thread, to an uncompressed Arrow IPC
file: the cache (keyed by each source's content, a SHA-256 of its bytes; every note, sorted by error
flag, patient, time, file and source order), or an unnamed temporary file when the cache is off. The result
is a memory map of that file, on the first read as on every later one. So the text is held once, in
page-cache pages that the kernel can drop and read back under pressure, and a later read, whatever
its filters, costs the page faults of what it keeps. (Parquet was tried first: encoding 500 MB of text
took longer than the rest of the sort.) The cache is written under a temporary name and renamed when
complete, never rewritten in place, so a mapped cache stays valid and a failed or interrupted read
leaves nothing behind. Without the cache, filters apply block by block, so only the kept notes are
ever held.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from clinpred.atomic import atomic_path
from clinpred.data.categories import matches as category_matches
from clinpred.data.cohort import NOTE_DTYPES, conform
from clinpred.data.csv_integrity import InvalidRows, QuoteCountingStream
from clinpred.data.memory import map_file, return_freed_memory
from clinpred.data.source_repairs import repair_notes
from clinpred.data.tables import (
    GZIP_ERRORS,
    Years,
    parse_time_strings,
    parse_whole_numbers,
    read_raw_header,
    require_columns,
    unreadable,
)
from clinpred.data.text_spill import TextSpill
from clinpred.errors import InputError, cannot_write_message
from clinpred.paths import cache_root
from clinpred.temporaries import remove_stale_temporaries

CACHE_VERSION = 6
# The count (integrity.py) of notes whose CHARTTIME lay outside its plausible years and was set missing.
CHARTTIME_SET_MISSING = "charttime_out_of_range_set_missing"

CACHE_SCHEMA = pa.schema(
    [
        ("note_id", pa.large_string()),  # large: pandas keeps large_string as it is, string it copies
        ("part", pa.int16()),  # tie-break within equal times: the source file (first given first),
        ("order", pa.int64()),  # then ROW_ID / note_seq within it
        ("subject_id", pa.int64()),
        ("hadm_id", pa.int64()),
        ("time", pa.timestamp("s")),
        ("time_is_date", pa.bool_()),
        ("charttime_out_of_range", pa.bool_()),  # CHARTTIME outside its plausible years, set missing
        ("category", pa.large_string()),
        ("description", pa.large_string()),
        ("cgid", pa.int64()),
        ("iserror", pa.bool_()),
        ("text", pa.large_string()),
    ]
)
# What a normaliser returns for each block: every column but the file's index, strings with 32-bit
# offsets (half the memory while the small columns are sorted).
BLOCK_SCHEMA = pa.schema(
    [f.with_type(pa.string()) if f.type == pa.large_string() else f for f in CACHE_SCHEMA if f.name != "part"]
)
# Rows gathered, filtered and written (one record batch of the cache) at a time: ~2 MiB of MIMIC text,
# so that the memory beyond the result stays small.
SLICE_ROWS = 2_048
BLOCK_BYTES = 2 << 20  # CSV bytes parsed per block
# pyarrow's reader needs each row to end within the block after its own: a note longer than a block
# (MIMIC's longest are about 100 KB, but a damaged file or another export can hold one of 50 MB) fails
# with "straddling object". The read is then started again with blocks this large, the real limit on
# one field: a longer one is refused, named as such.
LARGE_BLOCK_BYTES = 256 << 20
# Patient ranges the spilled text is split into (bounds from the ADMISSIONS patients a reader passes,
# else from the first block's), so that the sorted text is gathered from a few spill buckets at a
# time; error notes, stored last, go apart.
PARTITIONS = 32

# A normaliser turns one parsed block (UPPERCASE string columns) into a table of BLOCK_SCHEMA.
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
        # the cell is never shown: in a note file a broken quote can shift note text into any column
        return InputError(
            f"{self.path}: column {column}, data row {self.first_row + offset + 1}: cannot parse its value "
            f"({len(value)} characters, not shown: note files hold protected text) as {expected}."
        )

    def refuse(self, column: str, offset: int, problem: str) -> InputError:
        """A value that parses but cannot be used (never shown, as in ``error``)."""
        return InputError(
            f"{self.path}: column {column}, data row {self.first_row + offset + 1}: its value (not shown: "
            f"note files hold protected text) {problem}."
        )


@dataclass(frozen=True)
class _Job:
    """What a first read parses: the files (their order breaks ties of patient and time), the columns
    every one must have, the normaliser, and the patient ranges to spill the text by."""

    sources: list[Path]
    columns: list[str]
    normalise: Normaliser
    progress: bool
    bounds: np.ndarray | None  # None: ranges drawn from the first block
    block_bytes: int | None = None  # None: BLOCK_BYTES; LARGE_BLOCK_BYTES on a second try


def default_cache_dir() -> Path:
    """``notes/`` under clinpred's cache root (local disk: notes never leave it)."""
    return cache_root() / "notes"


def cache_path(sources: Path | Sequence[Path], cache_dir: Path | None) -> Path:
    """The cache file for one or more source files: keyed by each one's content (a SHA-256 of every
    byte), in the order given.

    Not by path, size and modification time: an edit in place that keeps both (a script that restores
    the mtime with ``touch -r`` or ``os.utime``) would be served the old notes. Measured on a 110 MB
    NOTEEVENTS.csv.gz of 400,000 notes (benchmarks/read_notes.py's writer, page cache warm, 2 shared
    cores): the hash takes 0.24 s, a whole cached read 0.28 s with it, the first read 15 s; full
    MIMIC-III's 1.1 GB file, about 2.5 s a read, against hours of embedding.
    """
    sources = _as_list(sources)
    keys = [f"{content_digest(source)}|{source.stat().st_size}" for source in sources]
    digest = hashlib.sha256("|".join([*keys, f"v{CACHE_VERSION}"]).encode()).hexdigest()[:24]
    stem = "+".join(source.name.split(".")[0].lower() for source in sources)
    return (cache_dir or default_cache_dir()) / f"{stem}-{digest}.arrow"


def content_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (as stored: a .gz file's compressed bytes)."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__}).") from None


def _as_list(sources: Path | Sequence[Path]) -> list[Path]:
    return [Path(sources)] if isinstance(sources, str | Path) else [Path(s) for s in sources]


# ---- helpers for normalisers -------------------------------------------------------------------


def strings(table: pa.Table, column: str) -> pa.ChunkedArray:
    """A string column with surrounding white space removed."""
    return pc.utf8_trim_whitespace(table.column(column))


def to_int(table: pa.Table, column: str, ctx: BlockContext, *, nullable: bool) -> pa.Array:
    """Whole numbers from 0 to int64's maximum (tables.parse_whole_numbers: the rule of every table);
    empty strings become null where ``nullable``, else are errors."""
    values = strings(table, column)
    try:  # the common case: one cast (an empty cell, an overflow, a stray character fail it)
        numbers = pc.cast(pc.if_else(pc.equal(values, ""), None, values) if nullable else values, pa.int64())
        if (pc.min(numbers).as_py() or 0) >= 0:
            return numbers.combine_chunks()
    except pa.ArrowInvalid:
        pass  # a bad cell: the slow exact parse below finds its row and says what is wrong
    numbers, row, problem = parse_whole_numbers(values)
    if row is None and not nullable and numbers.null_count:
        row, problem = pc.index(pc.is_null(numbers), True).as_py(), "is empty: a whole number is required"
    if row is not None:
        raise ctx.refuse(column, row, str(problem))
    return numbers


def to_time(
    table: pa.Table, column: str, ctx: BlockContext, years: Years, *, required: bool
) -> tuple[pa.Array, pa.Array]:
    """MIMIC datetimes (`YYYY-MM-DD HH:MM:SS` or a bare date); empty -> null.

    A value that is not a datetime or not a calendar date (February 30) is an error. A datetime outside
    ``years`` (tables.PLAUSIBLE_YEARS) is an error where the column is ``required``, else null. Returns
    the times (seconds) and which were set null for lying outside ``years``.
    """
    parsed = parse_time_strings(strings(table, column), years)
    for mask, expected in (
        (parsed.unparseable, "a datetime (YYYY-MM-DD HH:MM:SS or YYYY-MM-DD)"),
        (parsed.impossible, "a date on the calendar (it names a day or second that does not exist)"),
    ):
        if pc.any(mask).as_py():
            i = pc.index(mask, True).as_py()
            raise ctx.error(column, i, strings(table, column)[i].as_py(), expected)
    if required and pc.any(parsed.implausible).as_py():
        i = pc.index(parsed.implausible, True).as_py()
        n = pc.sum(parsed.implausible).as_py()
        raise ctx.refuse(
            column,
            i,
            f"lies outside the years {years} ({years.why}); the column is required ({n} such row(s) in "
            "this block). Is the file from MIMIC, and were its dates written as the release has them?",
        )
    return parsed.times, parsed.implausible


def nulls(n: int, type_: pa.DataType) -> pa.Array:
    return pa.nulls(n, type=type_)


# ---- the reader ---------------------------------------------------------------------------------


def _keep_mask(table: pa.Table, filters: NoteFilters) -> tuple[pa.ChunkedArray | None, int]:
    """Rows to keep, and how many error notes match the subject/category filters (dropped or not)."""
    mask = None
    if filters.categories is not None:  # compared as MIMIC means them: trimmed, case and spacing ignored
        mask = category_matches(table.column("category"), filters.categories)
    if filters.subject_ids is not None:
        m = pc.is_in(table.column("subject_id"), pa.array(sorted(filters.subject_ids), pa.int64()))
        mask = m if mask is None else pc.and_(mask, m)
    errors = table.column("iserror") if mask is None else pc.and_(table.column("iserror"), mask)
    n_errors = pc.sum(errors).as_py() or 0
    if filters.drop_errors and n_errors:
        keep = pc.invert(table.column("iserror"))
        mask = keep if mask is None else pc.and_(mask, keep)
    return mask, n_errors


def _apply(table: pa.Table, filters: NoteFilters) -> tuple[pa.Table, int]:
    """The rows of ``table`` that ``filters`` keep (the same table when all are kept), and its error count."""
    mask, errors = _keep_mask(table, filters)
    if mask is None or pc.all(mask).as_py():
        return table, errors
    return table.filter(mask), errors


@contextlib.contextmanager
def _open_source(path: Path) -> Iterator[QuoteCountingStream]:
    """What pyarrow's CSV reader reads: the bytes of the file (gzip through ISA-L's threaded decoder
    where installed), counted for quotes so that a file cut inside a note is caught."""
    if path.name.lower().endswith(".gz"):
        try:
            from isal import igzip_threaded

            raw = igzip_threaded.open(path, "rb", threads=1)
        except ImportError:  # the standard library's zlib: about a third of the speed
            raw = gzip.open(path, "rb")  # noqa: SIM115 (closed below)
    else:
        raw = open(path, "rb")  # noqa: SIM115 (closed below)
    stream = QuoteCountingStream(raw)
    try:
        yield stream
    finally:
        stream.close()


def _parse(
    path: Path,
    job: _Job,
    keep: NoteFilters | None,
    spill: TextSpill,
    bounds: np.ndarray | None,
) -> tuple[pa.Table, int, np.ndarray | None]:
    """Parse the CSV block by block: text to ``spill``, every other column returned (in source order).

    With ``keep``, only matching rows are kept. The text is spilled by the patient ranges ``bounds``
    (or ranges drawn from the first block). Returns the columns, the number of error notes that match
    the subject/category filters of ``keep``, and the ranges, for the next file of the same read.
    """
    raw = read_raw_header(path)
    require_columns(path, [h.strip().upper() for h in raw], job.columns)
    original = {h.strip().upper(): h for h in raw}
    block_bytes = job.block_bytes or BLOCK_BYTES
    read_opts = pacsv.ReadOptions(block_size=block_bytes, use_threads=True)
    invalid = InvalidRows()
    parse_opts = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid)
    convert_opts = pacsv.ConvertOptions(
        column_types={original[c]: pa.string() for c in job.columns},
        include_columns=[original[c] for c in job.columns],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    keys: list[pa.Table] = []
    n_rows = n_errors = 0
    bar = _progress(path, job.progress)
    source: QuoteCountingStream | None = None
    try:
        # the reader (and its read-ahead threads) is closed before the stream it reads
        with (
            _open_source(path) as source,
            pacsv.open_csv(
                source, read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts
            ) as reader,
        ):
            failure: BaseException | None = None
            for batch in _drained(reader, source):
                try:
                    source.raise_read_error()
                    invalid.check(path)
                    block = pa.Table.from_batches([batch]).rename_columns(
                        [c.strip().upper() for c in batch.schema.names]
                    )
                    table = job.normalise(block, BlockContext(path, n_rows)).select(BLOCK_SCHEMA.names)
                    table = table.cast(BLOCK_SCHEMA)
                    n_rows += table.num_rows
                    if keep is not None:
                        table, errors = _apply(table, keep)
                        n_errors += errors
                    if bounds is None and table.num_rows:
                        bounds = _patient_ranges(table.column("subject_id").to_numpy())
                    spill.append(table.column("text"), _partition(table, bounds))
                    keys.append(table.drop_columns(["text"]))
                    if bar is not None:
                        bar.update(batch.num_rows)
                except BaseException as exc:  # an error or an interrupt: stop reading, drain, then raise
                    failure = exc
                    source.stop()
            if failure is not None:
                raise failure
            source.raise_read_error()
            invalid.check(path)
            source.check_complete(path)
    except (pa.ArrowInvalid, *GZIP_ERRORS, UnicodeDecodeError) as exc:
        if cannot_write_message(exc) is not None:  # the disk (or ulimit -f) is full, the source is fine
            exc.filename = exc.filename or f"the note text of {path} sorted into {spill.where}"
            raise
        if (
            source is not None and source.error is not None and exc is not source.error
        ):  # the real cause of a parse error
            raise unreadable(path, source.error) from None
        if isinstance(exc, pa.ArrowInvalid) and "straddling" in str(exc):  # a field longer than a block
            if block_bytes < LARGE_BLOCK_BYTES:
                raise _FieldTooLong from None
            raise InputError(
                f"{path}: a field in the rows after data row {n_rows:,} is longer than "
                f"{LARGE_BLOCK_BYTES / 2**20:g} MiB, the longest note (or other value) clinpred reads. Is a "
                "quote unbalanced (one field running on over many rows)? Else split the note at the source."
            ) from None
        # pyarrow's messages can quote the row: only its kind is kept (never note text)
        if isinstance(exc, UnicodeDecodeError) or "UTF8" in str(exc) or "UTF-8" in str(exc):
            raise InputError(
                f"{path}: holds bytes that are not UTF-8 text (in the block after data row {n_rows:,}). "
                "MIMIC files are UTF-8: was the file converted to another encoding?"
            ) from None
        if isinstance(exc, pa.ArrowInvalid) and "CSV" in str(exc):
            raise InputError(
                f"{path}: malformed CSV in the block after data row {n_rows:,} "
                f"({_error_kind(str(exc))}). Download or decompress the file again."
            ) from None
        raise unreadable(path, exc) from None
    finally:
        if bar is not None:
            bar.close()
    if n_rows == 0:
        raise InputError(f"{path}: contains no notes (only a header). Is the download complete?")
    return_freed_memory()
    return pa.concat_tables(keys), n_errors, bounds


def _drained(reader: Any, source: QuoteCountingStream) -> Iterator[pa.RecordBatch]:
    """The reader's batches; once ``source`` is stopped, the rest are read to the end but not yielded,
    and a parse error of the cut-off end is ignored (the first failure is what is reported)."""
    try:
        for batch in reader:
            if not source.stopped:
                yield batch
    except pa.ArrowInvalid:
        if not source.stopped:
            raise


def _error_kind(message: str) -> str:
    """The part of a pyarrow CSV error before any quoted data: 'CSV parse error: Expected 11 columns'."""
    first = message.splitlines()[0] if message else "unknown error"
    return first.split(":", 2)[0] if first.count(":") < 2 else ":".join(first.split(":", 2)[:2]).strip()


def _patient_ranges(subjects: np.ndarray) -> np.ndarray:
    """Bounds of up to PARTITIONS patient ranges holding about as many of these notes each."""
    return np.unique(np.quantile(subjects, np.linspace(0, 1, PARTITIONS + 1)[1:-1], method="lower"))


def _partition(table: pa.Table, bounds: np.ndarray | None) -> np.ndarray | None:
    """The spill partition of each row: its patient range, or PARTITIONS for an error note."""
    if bounds is None:
        return None
    partition = np.searchsorted(bounds, table.column("subject_id").to_numpy(), side="right")
    partition[table.column("iserror").to_numpy()] = PARTITIONS
    return partition


def _progress(path: Path, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=f"reading {path.name}", unit=" notes", unit_scale=True, leave=False)


SORT_KEYS = [
    ("subject_id", "ascending"),
    ("time", "ascending"),
    ("part", "ascending"),
    ("order", "ascending"),
]
ERRORS_LAST = [("iserror", "ascending")]


def _sort(keys: pa.Table, sort_keys: list[tuple[str, str]]) -> tuple[pa.Table, np.ndarray]:
    """The small columns in ``sort_keys`` order, and that order (source row of each sorted row)."""
    by = keys.select([name for name, _ in sort_keys]).combine_chunks()  # one chunk sorts twice as fast
    order = pc.sort_indices(by, sort_keys=sort_keys).to_numpy()
    return keys.take(order).combine_chunks(), order


def _with_text(keys: pa.Table, order: np.ndarray, spill: TextSpill) -> Iterator[pa.Table]:
    """The sorted notes as tables of SLICE_ROWS rows, their text gathered back from ``spill``."""
    texts = spill.gather(order, SLICE_ROWS)
    for start, text in zip(range(0, len(order), SLICE_ROWS), texts, strict=True):
        piece = keys.slice(start, len(text)).append_column("text", text)
        yield piece.select(CACHE_SCHEMA.names).cast(CACHE_SCHEMA)


class _ArrowFileWriter:
    """An Arrow IPC file written a record batch at a time on a background thread (GIL released).

    ``file`` stays open, flushed, for the caller to map.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._writer = pa.ipc.new_file(pa.PythonFile(file, mode="w"), CACHE_SCHEMA)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clinpred-cache")
        self._pending: Future | None = None

    def write(self, table: pa.Table) -> None:
        self._wait()
        self._pending = self._pool.submit(self._writer.write_table, table)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        """Finish the last batch (errors are raised) and the file's footer, whatever happens."""
        try:
            self._wait()
        finally:
            self._pool.shutdown()
            self._writer.close()
            self._file.flush()


class _FieldTooLong(Exception):
    """A field longer than the block size: the read starts again with LARGE_BLOCK_BYTES."""


def _sort_into(
    file: BinaryIO,
    job: _Job,
    keep: NoteFilters | None,
    sort_keys: list[tuple[str, str]],
    spill_dir: Path | None,
) -> int:
    """Parse the sources, sort their notes together and write those ``keep`` keeps to ``file`` (Arrow
    IPC, CACHE_SCHEMA).

    Returns the number of error notes matching the subject/category filters of ``keep``. Nothing of
    the sort is held once it returns: the caller maps ``file`` for the result. A note longer than a
    block is found while parsing, before anything is written: the parse starts again, in larger blocks.
    """
    try:
        return _sort_once(file, job, keep, sort_keys, spill_dir)
    except _FieldTooLong:
        return_freed_memory()
        return _sort_once(file, replace(job, block_bytes=LARGE_BLOCK_BYTES), keep, sort_keys, spill_dir)


def _sort_once(
    file: BinaryIO,
    job: _Job,
    keep: NoteFilters | None,
    sort_keys: list[tuple[str, str]],
    spill_dir: Path | None,
) -> int:
    with TextSpill(spill_dir) as spill:
        parts, errors, bounds = [], 0, job.bounds
        for part, path in enumerate(job.sources):
            keys, n, bounds = _parse(path, job, keep, spill, bounds)
            parts.append(keys.append_column("part", pa.array(np.full(keys.num_rows, part, np.int16))))
            errors += n
        keys, order = _sort(pa.concat_tables(parts), sort_keys)
        del parts
        return_freed_memory()  # the unsorted columns
        writer = _ArrowFileWriter(file)
        try:
            for piece in _with_text(keys, order, spill):
                writer.write(piece)
        finally:
            writer.close()
    return errors


def _read_source(job: _Job, filters: NoteFilters, cache_file: Path | None) -> tuple[pa.Table, int]:
    """Parse the source files, sorted; with ``cache_file``, every note is also written to the cache.

    Either way the sorted notes go to a file that the result then maps: the cache, or an unnamed
    temporary file when there is none.
    """
    if cache_file is None:
        with tempfile.TemporaryFile() as file:
            errors = _sort_into(file, job, filters, SORT_KEYS, None)
            return_freed_memory()  # everything the sort held, before the result is mapped
            return _mapped_table(file), errors
    remove_stale_temporaries(cache_file.parent)  # note text left by a reader that was killed
    with atomic_path(cache_file) as tmp, tmp.open("wb") as file:  # notes stay where the cache is
        _sort_into(file, job, None, ERRORS_LAST + SORT_KEYS, cache_file.parent)
    return_freed_memory()
    return _read_cache(cache_file, filters)


def _mapped_table(file: BinaryIO) -> pa.Table:
    """The Arrow IPC file ``file`` as a table whose buffers are a memory map of it (no copy)."""
    with pa.ipc.open_file(pa.py_buffer(map_file(file))) as reader:
        return reader.read_all()


def _read_cache(cache_file: Path, filters: NoteFilters) -> tuple[pa.Table, int]:
    """The sorted cache, memory-mapped; filters copy only the notes they keep.

    Error notes are stored last, so dropping them all is a zero-copy slice.
    """
    with cache_file.open("rb") as file:
        table = _mapped_table(file)
    table, errors = _apply(table, NoteFilters(filters.categories, filters.subject_ids, drop_errors=False))
    if filters.drop_errors:
        table = table.slice(0, table.num_rows - errors)
    elif errors:  # error notes are stored last: put them in time order
        table = table.take(pc.sort_indices(table, sort_keys=SORT_KEYS))
    return table, errors


def notes_frame(table: pa.Table) -> pd.DataFrame:
    """Notes in the cache schema (an Arrow table: ``CACHE_SCHEMA``'s columns, as ``read_notes`` and the
    OMOP Parquet reader build them) -> a pandas frame of NOTE_DTYPES' columns, each converted once.

    Strings stay the Arrow arrays they are (no Python objects, no copy of the text); whole numbers
    and times become numpy or pandas' nullable integers directly, not through float64. The caller
    conforms the result (``cohort.conform``); the table's other columns (``part``, ``order``) are left.
    """
    columns = {}
    for name, dtype in NOTE_DTYPES.items():
        values = table.column(name)
        if dtype == "string":
            columns[name] = pd.StringDtype("pyarrow").__from_arrow__(values)
        elif dtype == "Int64":
            columns[name] = pd.Int64Dtype().__from_arrow__(values)
        else:
            columns[name] = values.to_numpy().astype(dtype, copy=False)
    return pd.DataFrame(columns, copy=False)


def read_notes(
    sources: Path | Sequence[Path],
    columns: list[str],
    normalise: Normaliser,
    filters: NoteFilters,
    *,
    use_cache: bool = True,
    cache_dir: Path | None = None,
    progress: bool = False,
    patients: np.ndarray | None = None,
    admissions: pd.DataFrame | None = None,
    origin: tuple[str, Path] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Notes of one or more files in canonical form (NOTE_DTYPES), sorted together by patient, time,
    file (in the order given) and source order, so that no caller sorts (and copies) the text again.

    ``patients``: subject ids the notes are expected to cover, one per admission say (ADMISSIONS'
    column), for a first read to split its spilled text by patient range whatever the file's order;
    without them the ranges come from the file's first block. They change speed, never the result.

    ``admissions`` (HADM_ID and SUBJECT_ID), as the readers give them: the notes are then checked and
    repaired by the rules of integrity.py (source_repairs.repair_notes: duplicates, empty text,
    admission links, category spelling) before any pandas copy; without, they come back as read.

    Returns the notes and counts: ``error_notes_dropped`` (ISERROR notes matching the other
    filters), ``notes_read_from_cache`` (1 when the cache served the read) and each repair made.

    ``origin`` (the reader's name and the dataset's root) is recorded beside the cache file, so that
    `clinpred cache info` can say where cached note text came from and `cache clear --source` purge it.
    """
    sources = _as_list(sources)
    cache_file = cache_path(sources, cache_dir) if use_cache else None
    if cache_file is not None and cache_file.exists():
        table, errors = _read_cache(cache_file, filters)
        from_cache = 1
    else:
        bounds = None if patients is None or len(patients) == 0 else _patient_ranges(np.asarray(patients))
        job = _Job(sources, columns, normalise, progress, bounds)
        table, errors = _read_source(job, filters, cache_file)
        from_cache = 0
    repaired: dict[str, int] = {}
    if admissions is not None:
        try:
            table, repaired = repair_notes(
                table, sources=sources, id_column=columns[0], admissions=admissions
            )
        except InputError:  # a refused source (an id repeated with other content) leaves no note cache
            if cache_file is not None:
                cache_file.unlink(missing_ok=True)
            raise
    if charttimes_cleared := pc.sum(table.column("charttime_out_of_range")).as_py():
        repaired = {**repaired, CHARTTIME_SET_MISSING: int(charttimes_cleared)}
    if cache_file is not None:
        from clinpred.data.note_cache import record_note_source

        record_note_source(cache_file, sources, origin)
    frame = notes_frame(table)
    del table
    counts = {
        "error_notes_dropped": int(errors) if filters.drop_errors else 0,
        "notes_read_from_cache": from_cache,
        **repaired,
    }
    return conform(frame, NOTE_DTYPES), counts
