"""Damaged variants of the hand-built MIMIC-III / MIMIC-IV files (tests/mimic_files.py) and the tiny cohort.

Every note carries the marker word ``MARK``: whatever the command prints or writes outside the cache is
searched for it, so a leaked note is found wherever it goes. Tables are lists of rows (the header
first), edited by column name, so a case reads as the damage it makes: ``cell(NOTES, 3, "TEXT", "")``.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mimic_files import (
    ADMISSIONS,
    DIAGNOSES,
    M4_ADMISSIONS,
    M4_DIAGNOSES,
    M4_DISCHARGE,
    M4_PATIENTS,
    M4_RADIOLOGY,
    NOTES,
    PATIENTS,
    write_mimic3,
    write_mimic4,
)
from mimic_files import _write as write_table

MARK = "ZQXHOSTILENOTE"  # in the text of every note of every fixture: must never leave the cache

Rows = list[list[str]]
# Numbers that a 64-bit integer cannot hold: 2**63 (just past int64) and one past uint64 too.
PAST_INT64 = "9223372036854775808"
PAST_UINT64 = "99999999999999999999"


def _marked(rows: Rows, text_column: str) -> Rows:
    i = rows[0].index(text_column)
    return [list(rows[0])] + [[*r[:i], f"{MARK} {r[i]} {MARK}", *r[i + 1 :]] for r in rows[1:]]


M3 = {
    "PATIENTS": PATIENTS,
    "ADMISSIONS": ADMISSIONS,
    "DIAGNOSES_ICD": DIAGNOSES,
    "NOTEEVENTS": _marked(NOTES, "TEXT"),
}
M4 = {
    "hosp/patients": M4_PATIENTS,
    "hosp/admissions": M4_ADMISSIONS,
    "hosp/diagnoses_icd": M4_DIAGNOSES,
    "note/discharge": _marked(M4_DISCHARGE, "text"),
    "note/radiology": _marked(M4_RADIOLOGY, "text"),
}


def m3_table(name: str) -> Rows:
    """A fresh copy of one marked MIMIC-III table (PATIENTS, ADMISSIONS, DIAGNOSES_ICD, NOTEEVENTS)."""
    return copy.deepcopy(M3[name])


def m4_table(name: str) -> Rows:
    """A fresh copy of one marked MIMIC-IV table (hosp/patients, ..., note/discharge, note/radiology)."""
    return copy.deepcopy(M4[name])


def cell(rows: Rows, data_row: int, column: str, value: str) -> Rows:
    """``rows`` with one cell replaced; ``data_row`` counts from 1 after the header, as messages do."""
    out = copy.deepcopy(rows)
    out[data_row][out[0].index(column)] = value
    return out


def column(rows: Rows, name: str, change: Callable[[str], str]) -> Rows:
    """``rows`` with ``change`` applied to every value of one column."""
    out = copy.deepcopy(rows)
    i = out[0].index(name)
    for row in out[1:]:
        row[i] = change(row[i])
    return out


def m3(directory: Path, *, gz: bool = True, upper: bool = True, **tables: Rows) -> Path:
    """The marked MIMIC-III files, any table replaced by name (NOTEEVENTS included)."""
    notes = tables.pop("NOTEEVENTS", M3["NOTEEVENTS"])
    return write_mimic3(directory, gz=gz, upper=upper, notes=notes, **tables)


def m4(directory: Path, **tables: Rows) -> Path:
    """The marked MIMIC-IV files, any table replaced by its path name ("note/discharge", ...)."""
    return write_mimic4(directory, **{**{k: v for k, v in M4.items() if k.startswith("note/")}, **tables})


def read_table(path: Path) -> Rows:
    """A (possibly gzipped) CSV as rows, header first."""
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.name.endswith(".gz") else data).decode("utf-8")
    return [list(r) for r in csv.reader(io.StringIO(text, newline=""))]


def edit_table(path: Path, change: Callable[[Rows], Rows]) -> None:
    """Rewrite a table file with ``change`` applied to its rows (format kept: quoted header, gzip)."""
    write_table(path, change(read_table(path)))


def edit_bytes(path: Path, change: Callable[[bytes], bytes]) -> None:
    """Apply ``change`` to a file's decompressed bytes; gzip files are recompressed."""
    gz = path.name.endswith(".gz")
    data = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    data = change(data)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def repeat_rows(rows: Rows, *data_rows: int) -> Rows:
    """``rows`` with the given data rows appended again, whole (a concatenation or a re-export)."""
    return copy.deepcopy(rows) + [list(rows[i]) for i in data_rows]


def twice(rows: Rows) -> Rows:
    """Every data row twice: a file concatenated with itself (its header once)."""
    return copy.deepcopy(rows) + copy.deepcopy(rows[1:])


def header_only(rows: Rows) -> Rows:
    return [list(rows[0])]


def mark_notes(source: Path, target: Path) -> Path:
    """A copy of a synthetic cohort with the marker word in every note. It is no longer sealed as
    synthetic (its notes changed), so clinpred treats it as credentialed data, as a user's copy is."""
    shutil.copytree(source, target)
    (target / "CLINPRED_SYNTHETIC.json").unlink()
    edit_table(target / "NOTEEVENTS.csv.gz", lambda rows: _marked(rows, "TEXT"))
    return target


def snapshot(root: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, bytes]:
    """Every file under ``root`` (links not followed) with its bytes: the user's files before a command."""
    found: dict[str, bytes] = {}
    if root.is_file():
        return {str(root): root.read_bytes()}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in filenames:
            path = here / name
            if path.is_symlink() or not path.is_file():
                continue
            found[str(path)] = path.read_bytes()
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (a server that is down)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
