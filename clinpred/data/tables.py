"""Reading the small MIMIC tables (everything but the notes) with clear errors.

MIMIC-III ships quoted UPPERCASE headers and its open-access demo lowercase ones; MIMIC-IV is
lowercase. Columns are matched case-insensitively and returned in UPPERCASE. Every error a user can
cause names the file, the column and, for bad values, the first bad data row.
"""

from __future__ import annotations

import csv
import gzip
import io
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
    for suffix in (".csv.gz", ".csv"):
        hit = candidates.get(name.lower() + suffix)
        if hit is not None:
            return hit
    if required:
        raise InputError(
            f"{directory}: no {name}.csv.gz or {name}.csv here. "
            f"Point clinpred at the directory that holds the {name} table."
        )
    return None


def open_text(path: Path) -> io.TextIOBase:
    """Open a .csv or .csv.gz file as text."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, OSError)


def unreadable(path: Path, exc: BaseException) -> InputError:
    """The one message for a file that cannot be decompressed or decoded."""
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


def read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """Read a whole small table as strings, UPPERCASE columns, after checking the header."""
    header = read_header(path)
    require_columns(path, header, required)
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[],
            usecols=lambda c: c.strip().upper() in required,
        )
    except GZIP_ERRORS as exc:
        raise unreadable(path, exc) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise unreadable(path, exc) from None
    frame.columns = [c.strip().upper() for c in frame.columns]
    return frame[required]


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
