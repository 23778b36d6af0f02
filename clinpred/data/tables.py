"""Reading the small MIMIC tables (everything but the notes) with clear errors.

MIMIC-III ships quoted UPPERCASE headers and its open-access demo lowercase ones; MIMIC-IV is
lowercase. Columns are matched case-insensitively and returned in UPPERCASE. Every error a user can
cause names the file, the column and, for bad values, the first bad data row.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from clinpred.errors import InputError

DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


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
    if not header:
        raise InputError(f"{path}: the file is empty (no header line).")
    return header


def read_header(path: Path) -> list[str]:
    """The file's column names, stripped and upper-cased, for case-insensitive matching."""
    return [h.strip().upper() for h in read_raw_header(path)]


def require_columns(path: Path, header: Iterable[str], required: Iterable[str]) -> None:
    """Fail with the first missing column's name."""
    have = set(header)
    missing = [c for c in required if c not in have]
    if missing:
        raise InputError(
            f"{path}: required column {missing[0]} is missing"
            + (f" (also {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + ". Is this the right table, from MIMIC-III v1.4 / MIMIC-IV?"
        )


def read_table(path: Path, required: list[str], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a whole small table as strings, UPPERCASE columns, after checking the header.

    ``optional`` columns are read where the file has them and come back empty ("") where it does not.
    """
    header = read_header(path)
    require_columns(path, header, required)
    wanted = [*required, *(c for c in optional if c in header)]
    try:
        frame = pd.read_csv(
            path,
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


def parse_datetimes(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Parse MIMIC datetimes (`YYYY-MM-DD HH:MM:SS` or a bare date); empty means missing.

    Any other value is an error naming the file, column and first bad data row (1 = the first row
    after the header).
    """
    text = values.astype(str).str.strip()
    empty = text.eq("") | values.isna()
    parsed = pd.to_datetime(text.where(~empty), format=DATETIME_FORMATS[0], errors="coerce")
    retry = parsed.isna() & ~empty
    if retry.any():
        parsed[retry] = pd.to_datetime(text[retry], format=DATETIME_FORMATS[1], errors="coerce")
    bad = parsed.isna() & ~empty
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}: column {column}, data row {row + 1}: cannot parse {text.iloc[row]!r} as a datetime "
            "(expected YYYY-MM-DD HH:MM:SS or YYYY-MM-DD)."
        )
    return parsed.astype("datetime64[ns]")


def unique_ints(values: pd.Series, path: Path, column: str) -> pd.Series:
    """A key column: whole numbers, each appearing once."""
    parsed = parse_ints(values, path, column)
    require_unique(parsed, path, column)
    return parsed


def parse_ints(values: pd.Series, path: Path, column: str, *, nullable: bool = False) -> pd.Series:
    """Parse integer ids; empty is allowed only where ``nullable``."""
    text = values.astype(str).str.strip()
    empty = text.eq("")
    parsed = pd.to_numeric(text.where(~empty), errors="coerce")
    bad = (parsed.isna() & ~empty) | (empty & (not nullable))
    if not bad.any():
        ok = parsed.dropna()
        bad = pd.Series(False, index=values.index)
        bad.loc[ok.index] = ok.to_numpy() != np.floor(ok.to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}: column {column}, data row {row + 1}: expected a whole number, found {text.iloc[row]!r}."
        )
    return parsed.astype("Int64" if nullable else "int64")
