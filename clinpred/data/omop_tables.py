"""Finding and reading OMOP CDM tables: CSV (.csv, .csv.gz) or Parquet, one file or a folder of parts.

An OMOP export writes each table as ``person.csv``, ``PERSON.csv.gz``, ``person.parquet`` or a folder
``person/`` of parts (``part-0.parquet``, ...), with lower- or upper-case headers, depending on the
database and tool that wrote it. Every table is matched case-insensitively, its columns upper-cased,
and read as text (Parquet's typed columns too: an id, a date and a datetime then follow one parsing
rule, that of ``clinpred.data.tables``, whatever the format). Errors name the part file, the column and
the data row within that file. Parquet is read with pyarrow (the library the note cache uses).

Datetimes are accepted as the exporters write them: ``YYYY-MM-DD HH:MM:SS``, with a ``T`` between date
and time, without seconds, with all-zero fractions (``.000000``: Parquet timestamps cast to text) and
a UTC zone (``Z``, ``+00:00``); anything else (a non-zero fraction, another zone) is refused by the
shared parser rather than rounded or shifted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clinpred.data.tables import (
    Years,
    parse_datetimes,
    parse_ints,
    read_header,
    read_text_csv,
    require_columns,
)
from clinpred.errors import InputError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")

# OMOP dates are real calendar dates (a warehouse's records) or, in a MIMIC conversion, MIMIC's shifted
# ones (about 2100-2215); the end stays clear of the nanosecond limit (2262) so no accepted time wraps.
EVENT_YEARS = Years(1900, 2250, "OMOP events: real dates, or MIMIC's shifted ones in a conversion")
BIRTH_YEARS = Years(1750, 2250, "OMOP births: real years, or MIMIC's shifted ones (over-89s in the 1800s)")

# the forms exporters write a datetime in -> YYYY-MM-DD HH:MM:SS (what tables.parse_time_strings reads)
ISO_DATETIME = r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.0*)?(?:Z|[+-]00:?00)?$"
NO_SECONDS = r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?:Z|[+-]00:?00)?$"


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in (*CSV_SUFFIXES, *PARQUET_SUFFIXES) if name.endswith(s)), None)


def _is_part(path: Path) -> bool:
    return path.is_file() and not path.name.startswith((".", "_")) and _suffix(path) is not None


def find_table(root: Path, name: str, *, required: bool = True) -> list[Path] | None:
    """The file(s) of one OMOP table in ``root``: ``name.csv[.gz]`` / ``name.parquet`` (any letter case)
    or a folder ``name/`` of parts (in name order). Two forms of one table are refused: which to read?"""
    found: list[list[Path]] = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        suffix = _suffix(entry)
        if entry.is_file() and suffix is not None and entry.name.lower() == name.lower() + suffix:
            found.append([entry])
        elif entry.is_dir() and entry.name.lower() == name.lower():
            parts = sorted((p for p in entry.iterdir() if _is_part(p)), key=lambda p: p.name)
            if parts:
                found.append(parts)
    if len(found) > 1:
        names = ", ".join(f[0].name if len(f) == 1 else f"{f[0].parent.name}/" for f in found)
        raise InputError(
            f"{root}: the OMOP table {name.upper()} is here more than once ({names}). Keep one of them."
        )
    if found:
        kinds = {_suffix(p) in PARQUET_SUFFIXES for p in found[0]}
        if len(kinds) > 1:
            raise InputError(f"{found[0][0].parent}: mixes CSV and Parquet parts of {name.upper()}.")
        return found[0]
    if required:
        raise InputError(
            f"{root}: no OMOP {name.upper()} table here ({name}.csv, {name}.csv.gz, {name}.parquet or a "
            f"folder {name}/ of parts). Point clinpred at the folder that holds the CDM tables."
        )
    return None


def is_parquet(path: Path) -> bool:
    return _suffix(path) in PARQUET_SUFFIXES


def parquet_columns(path: Path) -> list[str]:
    """A Parquet file's column names as written."""
    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: cannot be read as Parquet ({type(exc).__name__}). Is the file complete?"
        ) from None


def header(path: Path) -> list[str]:
    """A part's column names, stripped and upper-cased (a tab-separated file's too)."""
    if is_parquet(path):
        return [c.strip().upper() for c in parquet_columns(path)]
    names = read_header(path)
    return [c.strip() for c in names[0].split("\t")] if is_tab_separated(names) else names


def is_tab_separated(names: list[str]) -> bool:
    """Whether a header read as CSV is one tab-separated field (Athena's vocabulary files: CONCEPT.csv)."""
    return len(names) == 1 and "\t" in names[0]


def require(path: Path, columns: list[str], required: list[str], table: str) -> None:
    """Fail with the first missing required column, saying which table of the CDM it belongs to."""
    require_columns(
        path,
        columns,
        required,
        of=f" of the OMOP {table} table",
        hint="Is this an OMOP CDM v5.3 / v5.4 export?",
    )


def text_column(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Any Arrow column as text (ids, dates and datetimes as their usual form); null -> ""."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())  # an id exported as double: 3.0 -> "3" (3.5 stays, refused)
    return pc.fill_null(values, "")


def _read_part(path: Path, wanted: list[str]) -> pd.DataFrame:
    """One part's ``wanted`` columns (those it has), as text with "" for missing, UPPERCASE names."""
    if is_parquet(path):
        originals = {c.strip().upper(): c for c in parquet_columns(path)}
        try:
            table = pq.read_table(path, columns=[originals[c] for c in wanted if c in originals])
        except (pa.ArrowException, OSError) as exc:
            raise InputError(
                f"{path}: cannot be read as Parquet ({type(exc).__name__}). Is the file complete?"
            ) from None
        return pd.DataFrame(
            {
                name.strip().upper(): text_column(col).to_numpy(zero_copy_only=False)
                for name, col in zip(table.column_names, table.columns, strict=True)
            },
            dtype=object,
        )
    return read_text_csv(path, wanted, tabs=is_tab_separated(read_header(path)))  # Athena's TSV: no quotes


@dataclass(frozen=True)
class OmopTable:
    """One table read as text: its rows from every part, and where each part's rows start."""

    name: str
    parts: list[Path]
    frame: pd.DataFrame  # UPPERCASE columns, text, "" where missing or where the part lacks the column
    starts: np.ndarray  # the first row of each part in ``frame``

    def has(self, column: str) -> bool:
        """Whether the table has the column and it holds any value."""
        return column in self.frame and bool((self.frame[column] != "").any())

    def where(self, row: int) -> tuple[Path, int]:
        """The part file and its data row (1 = the first after the header) of a row of ``frame``."""
        part = int(np.searchsorted(self.starts, row, side="right") - 1)
        return self.parts[part], row - int(self.starts[part]) + 1

    def per_part(self, column: str, parse: Callable[[pd.Series, Path], pd.Series]) -> pd.Series:
        """``parse`` applied to each part's slice of a column (so its errors name that part's file and
        row), the results in one series."""
        return self.per_part_of(self.frame[column], parse)

    def per_part_of(self, values: pd.Series, parse: Callable[[pd.Series, Path], pd.Series]) -> pd.Series:
        """``parse`` applied to each part's slice of ``values`` (a series aligned with ``frame``)."""
        ends = [*self.starts[1:], len(values)]
        pieces = [parse(values.iloc[a:b], p) for p, a, b in zip(self.parts, self.starts, ends, strict=True)]
        return pd.concat(pieces) if len(pieces) > 1 else pieces[0]

    def ints(self, column: str, *, nullable: bool = False) -> pd.Series:
        """Whole numbers (tables.parse_ints: the rule of every table)."""
        return self.per_part(column, lambda v, p: parse_ints(v, p, column, nullable=nullable))

    def concept_ids(self, column: str) -> pd.Series:
        """A concept id column: a whole number, 0 where empty (OMOP's "no matching concept")."""
        if column not in self.frame:
            return pd.Series(0, index=self.frame.index, dtype="int64")
        return self.ints(column, nullable=True).fillna(0).astype("int64")

    def times(self, column: str, years: Years) -> tuple[pd.Series, int]:
        """A datetime or date column (NaT where empty); a value outside ``years`` set missing, counted."""
        if column not in self.frame:
            return pd.Series(pd.NaT, index=self.frame.index, dtype="datetime64[ns]"), 0
        text = self.frame[column].astype(str).str.strip()
        text = text.str.replace(ISO_DATETIME, r"\1 \2", regex=True).str.replace(
            NO_SECONDS, r"\1 \2:00", regex=True
        )
        counted = [0]

        def parse(values: pd.Series, path: Path) -> pd.Series:
            times, n = parse_datetimes(values, path, column, years, implausible="missing")
            counted[0] += n
            return times

        return self.per_part_of(text, parse), counted[0]

    def text(self, column: str) -> pd.Series:
        """A text column, stripped; <NA> where empty or absent."""
        if column not in self.frame:
            return pd.Series(pd.NA, index=self.frame.index, dtype="string")
        values = self.frame[column].astype("string").str.strip()
        return values.mask(values == "")

    def require_unique(self, ids: pd.Series, column: str, what: str) -> None:
        """Refuse a key that repeats (PERSON.person_id, VISIT_OCCURRENCE.visit_occurrence_id)."""
        repeated = ids.duplicated(keep="first").to_numpy()
        if repeated.any():
            row = int(np.flatnonzero(repeated)[0])
            path, at = self.where(row)
            raise InputError(
                f"{path}: column {column}, data row {at}: {ids.iloc[row]} appears again "
                f"({int(repeated.sum())} repeated value(s) in all). {what}"
            )


def read_omop_table(
    root: Path, name: str, required: list[str], optional: tuple[str, ...] = (), *, must_exist: bool = True
) -> OmopTable | None:
    """Read one OMOP table (every part) as text, after checking each part's header."""
    parts = find_table(root, name, required=must_exist)
    if parts is None:
        return None
    wanted = [*required, *optional]
    frames = []
    for path in parts:
        require(path, header(path), required, name.upper())
        frames.append(_read_part(path, wanted))
    starts = np.cumsum([0, *(len(f) for f in frames[:-1])])
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for column in wanted:
        if column not in frame:
            frame[column] = ""
    frame = frame[wanted].fillna("")
    return OmopTable(name.upper(), parts, frame.reset_index(drop=True), starts)
