"""The OMOP CONCEPT table, read only for the concept ids the reader asks about.

A vocabulary downloaded from Athena ships CONCEPT.csv with 5-7 million rows (about 1 GB, tab-separated,
nothing quoted); the reader needs the vocabulary and name of a few hundred of them (the source concepts
of the conditions, the visit and note concepts). Reading it whole as text would take several GB, so
it is read with pyarrow, which decodes only the columns asked for and filters without Python objects:

- CSV (comma or Athena's tabs, .csv or .csv.gz): streamed a block (``BLOCK_BYTES``) at a time
  (``pyarrow.csv.open_csv``), only CONCEPT_ID, VOCABULARY_ID and CONCEPT_NAME decoded, each block
  filtered to the ids asked about and the rest freed;
- Parquet: ``pyarrow.dataset`` with the filter on concept_id pushed into the scan.

Memory is bounded by a block plus the rows kept, whatever the vocabulary's size. ``ConceptLookup``
remembers what it has asked: ids asked again are answered from the rows kept, and ids registered in
advance (``want``) are looked up in the same pass as the first question, so the reader passes over the
file once for the visits and conditions, and once more only when the notes hold concept ids not asked
before.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

from clinpred.data.omop_tables import find_table, header, is_parquet, parquet_columns, require, text_column
from clinpred.data.tables import GZIP_ERRORS, open_text, read_raw_header, unreadable
from clinpred.errors import InputError

REQUIRED = ["CONCEPT_ID", "VOCABULARY_ID"]
COLUMNS = [*REQUIRED, "CONCEPT_NAME"]
# CSV bytes parsed at a time. pyarrow's streaming reader holds a few tens of blocks in flight (measured:
# its pool peaks near 35 MB with 1 MB blocks, 140 MB with 4 MB, 220 MB with 16 MB), and 1 MB blocks
# were no slower (benchmarks/omop_concept.py)
BLOCK_BYTES = 1 << 20


def _originals(path: Path) -> dict[str, str]:
    """UPPERCASE name -> the column's name as written in the part (CSV, tab-separated or Parquet)."""
    if is_parquet(path):
        names = parquet_columns(path)
    else:
        names = read_raw_header(path)
        if len(names) == 1 and "\t" in names[0]:
            names = names[0].split("\t")
    return {n.strip().upper(): n for n in names}


def _csv_batches(path: Path, columns: list[str], block_bytes: int) -> Iterator[pa.RecordBatch]:
    """The part's ``columns`` as text, a block at a time (Athena's tabs: nothing is quoted)."""
    tabs = len(raw := read_raw_header(path)) == 1 and "\t" in raw[0]
    parse = (
        pacsv.ParseOptions(delimiter="\t", quote_char=False)
        if tabs
        else pacsv.ParseOptions(newlines_in_values=True)
    )
    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="detect"),
        read_options=pacsv.ReadOptions(block_size=block_bytes),
        parse_options=parse,
        convert_options=pacsv.ConvertOptions(
            include_columns=columns,
            column_types={c: pa.string() for c in columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    with reader:
        yield from reader


def _short_row(path: Path, seen: int) -> int | None:
    """The first data row after ``seen`` whose number of fields is not the header's (only when Arrow
    has refused the file: its message quotes the row, this names it)."""
    with open_text(path) as f:
        first = f.readline()
        tabs = "\t" in first and len(next(csv.reader([first]))) == 1
        rows = (line.rstrip("\r\n").split("\t") for line in f) if tabs else csv.reader(f)
        width = len(first.split("\t")) if tabs else len(next(csv.reader([first])))
        for number, row in enumerate(rows, 1):
            if number > seen and len(row) != width:
                return number
    return None


def _read_csv_part(path: Path, originals: dict[str, str], ids: pa.Array, block_bytes: int) -> pa.Table:
    """The rows of one CSV part whose CONCEPT_ID is one of ``ids`` (text), the columns UPPERCASE."""
    columns = [originals[c] for c in COLUMNS if c in originals]
    kept, seen = [], 0
    try:
        for batch in _csv_batches(path, columns, block_bytes):
            wanted = pc.is_in(pc.utf8_trim_whitespace(batch.column(originals["CONCEPT_ID"])), value_set=ids)
            kept.append(pa.Table.from_batches([batch]).filter(wanted))
            seen += batch.num_rows
    except GZIP_ERRORS as exc:
        raise unreadable(path, exc) from None
    except UnicodeDecodeError as exc:
        raise unreadable(path, exc) from None
    except pa.ArrowInvalid as exc:  # Arrow's message quotes the row: named by its number instead
        reason = str(exc).split(":")[1].strip() if str(exc).count(":") >= 2 else type(exc).__name__
        at = _short_row(path, seen)
        raise InputError(
            f"{path}: column CONCEPT_ID, data row {at if at else f'after {seen:,}'}: cannot be read as the "
            f"OMOP CONCEPT table ({reason}). Is the file complete, every row with as many fields as the "
            "header?"
        ) from None
    table = pa.concat_tables(kept) if kept else pa.table({c: pa.array([], pa.string()) for c in columns})
    return table.rename_columns([c.strip().upper() for c in table.column_names])


def _read_parquet_part(path: Path, originals: dict[str, str], ids: list[int]) -> pa.Table:
    """The rows of one Parquet part whose CONCEPT_ID is one of ``ids``, the filter in the scan."""
    columns = [originals[c] for c in COLUMNS if c in originals]
    try:
        dataset = ds.dataset(path, format="parquet")
        key = originals["CONCEPT_ID"]
        kind = dataset.schema.field(key).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            values = pa.array(ids, pa.int64()).cast(kind)
        else:
            values = pa.array([str(i) for i in ids], pa.string()).cast(kind)
        table = dataset.to_table(columns=columns, filter=ds.field(key).isin(values))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: cannot be read as Parquet ({type(exc).__name__}). Is the file complete?"
        ) from None
    return pa.table({c.strip().upper(): text_column(table.column(c)) for c in table.column_names})


class ConceptLookup:
    """vocabulary_id and concept_name of concept ids, from the CONCEPT table where there is one."""

    def __init__(self, root: Path, *, block_bytes: int = BLOCK_BYTES) -> None:
        self.block_bytes = block_bytes
        self.passes = 0  # passes over the CONCEPT file(s)
        self.parts = find_table(root, "concept", required=False) or []
        self.vocabulary: dict[int, str] = {}
        self.name: dict[int, str] = {}
        self._asked: set[int] = set()
        self._wanted: set[int] = set()

    def want(self, ids: Iterable[int]) -> None:
        """Ids to look up with the next question (one pass over the file for all of them)."""
        self._wanted |= {int(i) for i in ids}

    def vocabularies(self, ids: Iterable[int]) -> dict[int, str]:
        """The vocabulary_id of each of ``ids`` that CONCEPT holds."""
        ids = self._fetch(ids)
        return {i: self.vocabulary[i] for i in ids if i in self.vocabulary}

    def names(self, ids: Iterable[int]) -> dict[int, str]:
        """The concept_name of each of ``ids`` that CONCEPT holds (and names)."""
        ids = self._fetch(ids)
        return {i: self.name[i] for i in ids if i in self.name}

    def _fetch(self, ids: Iterable[int]) -> set[int]:
        ids = {int(i) for i in ids}
        new = sorted((ids | self._wanted) - self._asked - {0})
        self._wanted = set()
        if new and self.parts:
            self.passes += 1
            for path in self.parts:
                self._read(path, new)
        self._asked.update(new)
        return ids

    def _read(self, path: Path, ids: list[int]) -> None:
        require(path, header(path), REQUIRED, "CONCEPT")
        originals = _originals(path)
        if is_parquet(path):
            table = _read_parquet_part(path, originals, ids)
        else:
            table = _read_csv_part(
                path, originals, pa.array([str(i) for i in ids], pa.string()), self.block_bytes
            )
        cid = [int(v) for v in pc.utf8_trim_whitespace(table.column("CONCEPT_ID")).to_pylist()]
        vocab = pc.utf8_trim_whitespace(table.column("VOCABULARY_ID")).to_pylist()
        self.vocabulary.update(zip(cid, vocab, strict=True))
        if "CONCEPT_NAME" in table.column_names:
            names = pc.utf8_trim_whitespace(table.column("CONCEPT_NAME")).to_pylist()
            self.name.update((c, n) for c, n in zip(cid, names, strict=True) if n)
