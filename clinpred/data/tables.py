"""Reading the small MIMIC tables (everything but the notes) with clear errors.

MIMIC-III ships quoted UPPERCASE headers and its open-access demo lowercase ones; MIMIC-IV is
lowercase. Columns are matched case-insensitively and returned in UPPERCASE. Every error a user can
cause names the file, the column and, for bad values, the first bad data row.

The value rules the note reader shares live here too, so that a date or an identifier means the same
in every table: ``parse_time_strings`` (plausible years, impossible calendar dates) and
``parse_whole_numbers`` (identifiers that are negative or overflow int64).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clinpred.errors import InputError


def locate(directory: Path, name: str, *, required: bool = True) -> Path | None:
    """Find NAME.csv.gz or NAME.csv (any letter case) in a directory."""
    candidates = {}
    if directory.is_dir():
        candidates = {p.name.lower(): p for p in directory.iterdir() if p.is_file()}
    gz, plain = candidates.get(name.lower() + ".csv.gz"), candidates.get(name.lower() + ".csv")
    if gz is not None and plain is not None and not _same_size(gz, plain):
        raise InputError(
            f"{directory}: both {gz.name} and {plain.name} are here and they differ (the decompressed "
            "size of one is not the size of the other). Remove the one that is not the download."
        )
    hit = gz if gz is not None else plain
    if hit is not None:
        return hit
    if required:
        raise InputError(
            f"{directory}: no {name}.csv.gz or {name}.csv here. "
            f"Point clinpred at the directory that holds the {name} table."
        )
    return None


def _same_size(gz: Path, plain: Path) -> bool:
    """Whether ``gz`` decompresses to as many bytes as ``plain`` holds (``gunzip -k`` leaves both).

    The gzip trailer gives the size modulo 2**32 of its last member; only when that disagrees (several
    members, or a different file) is the file decompressed to count.
    """
    size = plain.stat().st_size
    with gz.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() >= 18:
            f.seek(-4, os.SEEK_END)
            if int.from_bytes(f.read(4), "little") == size % 2**32:
                return True
    total = 0
    try:
        with gzip.open(gz, "rb") as f:
            while block := f.read(1 << 24):
                total += len(block)
    except GZIP_ERRORS:
        return False
    return total == size


def open_text(path: Path) -> io.TextIOBase:
    """Open a .csv or .csv.gz file as text."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # a byte-order mark (Excel's) is not a column


GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, OSError)


def unreadable(path: Path, exc: BaseException) -> InputError:
    """The one message for a file that cannot be decompressed or decoded."""
    if isinstance(exc, UnicodeDecodeError):
        return InputError(
            f"{path}: holds bytes that are not UTF-8 text. MIMIC files are UTF-8: was the file converted "
            "to another encoding? Download or decompress it again."
        )
    kind = "gzip" if path.name.lower().endswith(".gz") else "CSV"
    return InputError(
        f"{path}: cannot be read as {kind} ({type(exc).__name__}). "
        "The file is truncated or corrupt: download or decompress it again."
    )


def read_raw_header(path: Path) -> list[str]:
    """The file's column names as written. An empty file is an error."""
    try:
        with open_text(path) as f:
            header = next(csv.reader(f), None)
    except GZIP_ERRORS as exc:
        raise unreadable(path, exc) from None
    except UnicodeDecodeError as exc:
        raise unreadable(path, exc) from None
    except csv.Error as exc:  # e.g. a first line longer than the csv module's field limit: not a header
        raise InputError(
            f"{path}: the first line is not a CSV header ({exc}). Is this a MIMIC table, complete?"
        ) from None
    if not header:
        raise InputError(f"{path}: the file is empty (no header line).")
    return header


def read_header(path: Path) -> list[str]:
    """The file's column names, stripped and upper-cased, for case-insensitive matching."""
    return [h.strip().upper() for h in read_raw_header(path)]


def require_columns(
    path: Path,
    header: Iterable[str],
    required: Iterable[str],
    *,
    of: str = "",
    hint: str = "Is this the right table, from MIMIC-III v1.4 / MIMIC-IV?",
) -> None:
    """Fail with the first missing column's name (``of``: which table it belongs to, for the message)."""
    have = set(header)
    missing = [c for c in required if c not in have]
    if missing:
        raise InputError(
            f"{path}: required column {missing[0]}{of} is missing"
            + (f" (also {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + f". {hint}"
        )


def read_text_csv(path: Path, wanted: Iterable[str], *, tabs: bool = False) -> pd.DataFrame:
    """A CSV's ``wanted`` columns (names matched stripped and case-folded) as strings, "" where empty,
    UPPERCASE names; an unreadable file is one message. ``tabs``: tab-separated and unquoted, as
    Athena's vocabulary files are."""
    wanted = set(wanted)
    try:
        frame = pd.read_csv(
            path,
            sep="\t" if tabs else ",",
            quoting=csv.QUOTE_NONE if tabs else csv.QUOTE_MINIMAL,
            dtype=str,
            keep_default_na=False,
            na_values=[],
            usecols=lambda c: c.strip().upper() in wanted,
        )
    except GZIP_ERRORS as exc:
        raise unreadable(path, exc) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise unreadable(path, exc) from None
    frame.columns = [c.strip().upper() for c in frame.columns]
    return frame


def read_table(path: Path, required: list[str], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a whole small table as strings, UPPERCASE columns, after checking the header; a table with
    a header and no rows is refused as such.

    ``optional`` columns are read where the file has them and come back empty ("") where it does not.
    """
    header = read_header(path)
    require_columns(path, header, required)
    frame = read_text_csv(path, [*required, *(c for c in optional if c in header)])
    if frame.empty:  # else the first thing to notice would be a table with no patients, say
        raise InputError(
            f"{path} has a header but no rows. Is the download or export complete, or was the table "
            "filtered to nothing?"
        )
    for column in optional:
        if column not in frame.columns:
            frame[column] = ""
    return frame[[*required, *optional]]


def optional_text(raw: pd.DataFrame, *columns: str) -> pd.Series:
    """The first of ``columns`` that holds any value, stripped; empty cells become <NA>."""
    for column in columns:
        values = raw[column].astype("string").str.strip() if column in raw else None
        if values is not None and (values != "").any():
            return values.mask(values == "")
    return pd.Series(pd.NA, index=raw.index, dtype="string")


def require_unique(ids: pd.Series, path: Path, column: str) -> None:
    """Refuse a table whose key repeats (PATIENTS.SUBJECT_ID, ADMISSIONS.HADM_ID): rows would count twice."""
    repeated = ids.duplicated(keep="first")
    if repeated.any():
        row = int(np.flatnonzero(repeated.to_numpy())[0])
        raise InputError(
            f"{path}: column {column}, data row {row + 1}: {ids.iloc[row]} appears again "
            f"({int(repeated.sum())} repeated value(s) in all). Each {column} must appear once: "
            "is the file concatenated twice, or are two releases mixed?"
        )


Implausible = Literal["refuse", "missing"]  # what to do with a datetime outside its column's years


def parse_datetimes(
    values: pd.Series, path: Path, column: str, years: Years, *, implausible: Implausible = "refuse"
) -> tuple[pd.Series, int]:
    """Parse MIMIC datetimes (`YYYY-MM-DD HH:MM:SS` or a bare date); empty means missing.

    A value that is not a datetime, or not a calendar date (February 30), is refused, naming the file,
    column and first bad data row (1 = the first row after the header). A datetime outside ``years``
    is refused where ``implausible`` is "refuse" and set missing where it is "missing". Returns the
    times (nanoseconds: every plausible year fits) and how many were set missing.
    """
    text = values.astype(str).str.strip().where(values.notna(), "")
    parsed = parse_time_strings(pa.array(text.to_numpy(dtype=object), pa.string()), years)
    for mask, problem in ((parsed.unparseable, _UNPARSEABLE), (parsed.impossible, _IMPOSSIBLE)):
        if pc.any(mask).as_py():
            row = pc.index(mask, True).as_py()
            raise InputError(f"{path}: column {column}, data row {row + 1}: {text.iloc[row]!r} {problem}")
    n_implausible = pc.sum(parsed.implausible).as_py() or 0
    if n_implausible and implausible == "refuse":
        row = pc.index(parsed.implausible, True).as_py()
        raise InputError(
            f"{path}: column {column}, data row {row + 1}: {text.iloc[row]!r} lies outside the years "
            f"{years} ({years.why}); the column is required ({n_implausible} such row(s) in all). "
            "Is the file from MIMIC, and were its dates written as the release has them?"
        )
    times = pd.Series(parsed.times.to_numpy(zero_copy_only=False), index=values.index)
    return times.astype("datetime64[ns]"), int(n_implausible)


_UNPARSEABLE = "cannot be parsed as a datetime (expected YYYY-MM-DD HH:MM:SS or YYYY-MM-DD)."
_IMPOSSIBLE = (
    "is not a date on the calendar (a day past the end of its month, such as February 30, or a 60th "
    "second). Fix the value at the source: clinpred never rolls it into the next day or month."
)


def unique_ints(values: pd.Series, path: Path, column: str) -> pd.Series:
    """A key column: whole numbers, each appearing once."""
    parsed = parse_ints(values, path, column)
    require_unique(parsed, path, column)
    return parsed


def parse_ints(values: pd.Series, path: Path, column: str, *, nullable: bool = False) -> pd.Series:
    """Parse identifiers and counts (whole numbers from 0 to int64's maximum); empty only where
    ``nullable``. Anything else is refused with the file, column and first bad data row."""
    text = values.astype(str).str.strip().where(values.notna(), "")
    parsed, row, problem = parse_whole_numbers(pa.array(text.to_numpy(dtype=object), pa.string()))
    if row is None and not nullable and pc.any(pc.is_null(parsed)).as_py():
        row, problem = pc.index(pc.is_null(parsed), True).as_py(), "is empty: expected a whole number"
    if row is not None:
        raise InputError(f"{path}: column {column}, data row {row + 1}: {text.iloc[row]!r} {problem}.")
    series = pd.Series(pd.Int64Dtype().__from_arrow__(parsed), index=values.index)
    return series if nullable else series.astype("int64")


# ---- value rules shared with the note reader ---------------------------------------------------


@dataclass(frozen=True)
class Years:
    """A span of calendar years a column's dates can plausibly fall in (first and last included)."""

    first: int
    last: int
    why: str

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


# MIMIC-III and MIMIC-IV shift every patient's dates by a random offset into the future: events fall in
# about 2100-2215 (MIMIC-III: 2100-2210; MIMIC-IV: anchor years 2110-2214 plus the years of follow-up).
# Events are accepted from 2000, which keeps notes written before a patient's first shifted admission
# and exports of unshifted data in MIMIC's format, to 2250, which stays clear of the nanosecond limit
# (2262-04-11) so that no accepted time can wrap. Dates of birth of patients over 89 are shifted about
# 300 years back (to the 1800s: ages near 300 that callers cap), so births start in 1750.
EVENT_YEARS = Years(2000, 2250, "MIMIC's shifted event dates fall in about 2100-2215")
BIRTH_YEARS = Years(1750, 2250, "MIMIC's shifted births, those of patients over 89 about 300 years back")
# Per source and column (UPPERCASE, as read), the one place these spans are chosen.
PLAUSIBLE_YEARS: dict[str, dict[str, Years]] = {
    "mimic3": {
        "CHARTDATE": EVENT_YEARS,  # NOTEEVENTS: required
        "CHARTTIME": EVENT_YEARS,  # NOTEEVENTS: set missing (the note falls back to CHARTDATE)
        "ADMITTIME": EVENT_YEARS,  # ADMISSIONS: required
        "DISCHTIME": EVENT_YEARS,  # ADMISSIONS: set missing
        "DEATHTIME": EVENT_YEARS,  # ADMISSIONS: set missing
        "DOB": BIRTH_YEARS,  # PATIENTS: set missing
        "DOD": EVENT_YEARS,  # PATIENTS: set missing
    },
    "mimic4": {
        "CHARTTIME": EVENT_YEARS,  # discharge/radiology notes: required (no date to fall back to)
        "ADMITTIME": EVENT_YEARS,
        "DISCHTIME": EVENT_YEARS,
        "DEATHTIME": EVENT_YEARS,
        "DOB": BIRTH_YEARS,  # anchor_year - anchor_age: set missing
        "DOD": EVENT_YEARS,
    },
}


@dataclass(frozen=True)
class ParsedTimes:
    """Datetimes parsed from text, with why each null that is not an empty cell is null."""

    times: pa.Array  # timestamp[s]; null where empty, unparseable, impossible or implausible
    unparseable: pa.Array  # bool: neither `YYYY-MM-DD HH:MM:SS` nor `YYYY-MM-DD`
    impossible: pa.Array  # bool: the right form, but no such day or second (February 30, 12:00:60)
    implausible: pa.Array  # bool: a real datetime outside the column's plausible years


_PARTS = r"^(?P<y>[0-9]+)-(?P<mo>[0-9]+)-(?P<d>[0-9]+)(?: (?P<h>[0-9]+):(?P<mi>[0-9]+):(?P<s>[0-9]+))?$"


def parse_time_strings(values: pa.Array | pa.ChunkedArray, years: Years) -> ParsedTimes:
    """Parse stripped MIMIC datetime strings; "" and null are missing.

    Arrow's strptime rolls a day past the end of its month into the next month (Feb 30 -> Mar 2) and
    a 60th second into the next minute, so each parsed field is compared with the one written. Times
    are parsed in seconds (any year fits) and checked against ``years`` before a caller narrows them.
    """
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    full = pc.strptime(values, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    date = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
    parsed = pc.coalesce(full, date)
    present = pc.is_valid(values)
    unparseable = pc.and_(present, pc.is_null(parsed))
    written = pc.extract_regex(values, _PARTS)
    same = pa.array(np.ones(len(values), dtype=bool))
    for i, part in enumerate((pc.year, pc.month, pc.day, pc.hour, pc.minute, pc.second)):
        field = pc.struct_field(written, [i])
        field = pc.cast(pc.if_else(pc.equal(field, ""), "0", field), pa.int64())
        same = pc.and_(same, pc.equal(pc.cast(part(parsed), pa.int64()), field))
    impossible = pc.fill_null(pc.and_(pc.is_valid(parsed), pc.invert(same)), False)
    year = pc.year(parsed)
    outside = pc.or_(pc.less(year, years.first), pc.greater(year, years.last))
    implausible = pc.fill_null(pc.and_(pc.invert(impossible), outside), False)
    keep = pc.and_(pc.is_valid(parsed), pc.invert(pc.or_(impossible, implausible)))
    times = pc.if_else(keep, parsed, pa.scalar(None, parsed.type))
    return ParsedTimes(times, pc.fill_null(unparseable, False), impossible, implausible)


INT64_MAX = str(np.iinfo(np.int64).max)
_WHOLE = r"^[+-]?[0-9]+(\.0*)?$"  # "100.0": an export of a nullable integer column as floats


def parse_whole_numbers(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, int | None, str | None]:
    """Parse stripped whole numbers from 0 to int64's maximum, exactly (never through float64).

    Returns the numbers (null where "" or null), and the position of the first value that is not such
    a number with what is wrong with it (None, None where all are).
    """
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    present = pc.is_valid(values)
    whole = pc.fill_null(pc.match_substring_regex(values, _WHOLE), False)
    magnitude = pc.replace_substring_regex(
        pc.replace_substring_regex(values, r"\.0*$", ""), r"^[+-]?0*", ""
    )  # "-007.0" -> "7"
    digits = pc.utf8_length(magnitude)
    overflow = pc.and_(
        whole,
        pc.or_(
            pc.greater(digits, len(INT64_MAX)),
            pc.and_(pc.equal(digits, len(INT64_MAX)), pc.greater(magnitude, INT64_MAX)),
        ),
    )
    negative = pc.and_(whole, pc.and_(pc.starts_with(values, "-"), pc.greater(digits, 0)))  # "-0" is 0
    problems = (
        (pc.and_(present, pc.invert(whole)), "is not a whole number (is a column shifted?)"),
        (
            pc.fill_null(overflow, False),
            f"overflows int64 (above {INT64_MAX}): no MIMIC value is this long, check the column at the source",
        ),
        (
            pc.fill_null(negative, False),
            "is negative: identifiers and counts are 0 or more, check the column at the source",
        ),
    )
    first: tuple[int, str] | None = None
    for mask, problem in problems:
        if pc.any(mask).as_py():
            row = pc.index(mask, True).as_py()
            if first is None or row < first[0]:
                first = (row, problem)
    if first is not None:
        return pa.nulls(len(values), pa.int64()), first[0], first[1]
    numbers = pc.if_else(pc.equal(magnitude, ""), "0", magnitude)
    return pc.cast(numbers, pa.int64()), None, None


# Count keys (declared in integrity.py) of the date rules below.
OUT_OF_RANGE_SET_MISSING = "{}_out_of_range_set_missing"  # .format(column.lower()): dischtime, dob, ...
BEFORE_ADMISSION_SET_MISSING = {
    "DISCHTIME": "discharge_before_admission_set_missing",
    "DEATHTIME": "death_before_admission_set_missing",
}


def optional_datetimes(
    raw: pd.DataFrame, path: Path, column: str, source: str
) -> tuple[pd.Series, dict[str, int]]:
    """A datetime column that may be empty: a value outside its plausible years is set missing and
    counted (``<column>_out_of_range_set_missing``), never wrapped."""
    times, n = parse_datetimes(
        raw[column], path, column, PLAUSIBLE_YEARS[source][column], implausible="missing"
    )
    return times, {OUT_OF_RANGE_SET_MISSING.format(column.lower()): n} if n else {}


def admission_times(
    raw: pd.DataFrame, path: Path, source: str
) -> tuple[dict[str, pd.Series], dict[str, int]]:
    """ADMITTIME, DISCHTIME and DEATHTIME of an ADMISSIONS table, by one rule for every source.

    ADMITTIME is required: empty or outside its plausible years is refused. DISCHTIME and DEATHTIME
    outside theirs, or before ADMITTIME, are set missing and counted (an admission cannot end before it
    begins: such a stay would have a negative length and mortality or readmission windows that end
    before they start).
    """
    admit, _ = parse_datetimes(raw["ADMITTIME"], path, "ADMITTIME", PLAUSIBLE_YEARS[source]["ADMITTIME"])
    if admit.isna().any():
        row = int(np.flatnonzero(admit.isna().to_numpy())[0])
        raise InputError(
            f"{path}: column ADMITTIME, data row {row + 1}: the admission time is empty; every admission "
            "needs one."
        )
    times, counts = {"admittime": admit}, {}
    for column, before_key in BEFORE_ADMISSION_SET_MISSING.items():
        values, repaired = optional_datetimes(raw, path, column, source)
        before = (values < admit).to_numpy()
        times[column.lower()] = values.mask(before)
        counts.update(repaired)
        if before.any():
            counts[before_key] = int(before.sum())
    return times, counts
