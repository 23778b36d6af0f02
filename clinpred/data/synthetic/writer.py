"""Writing MIMIC-III-format .csv.gz tables: quoted UPPERCASE headers, deterministic gzip members.

A gzip file may hold several members one after another; every reader (Python's gzip, pyarrow,
pandas) reads them as one stream. So each worker writes its chunk of NOTEEVENTS as one member, and
the final table is the header member followed by the chunks in order: no recompression, bounded
memory, and byte-identical output for the same seed (mtime 0, no file name in the member header).
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

PATIENTS_COLUMNS = ("ROW_ID", "SUBJECT_ID", "GENDER", "DOB", "DOD", "DOD_HOSP", "DOD_SSN", "EXPIRE_FLAG")
ADMISSIONS_COLUMNS = (
    "ROW_ID",
    "SUBJECT_ID",
    "HADM_ID",
    "ADMITTIME",
    "DISCHTIME",
    "DEATHTIME",
    "ADMISSION_TYPE",
    "ADMISSION_LOCATION",
    "DISCHARGE_LOCATION",
    "INSURANCE",
    "LANGUAGE",
    "RELIGION",
    "MARITAL_STATUS",
    "ETHNICITY",
    "EDREGTIME",
    "EDOUTTIME",
    "DIAGNOSIS",
    "HOSPITAL_EXPIRE_FLAG",
    "HAS_CHARTEVENTS_DATA",
)
DIAGNOSES_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE")
D_ICD_COLUMNS = ("ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE")
NOTEEVENTS_COLUMNS = (
    "ROW_ID",
    "SUBJECT_ID",
    "HADM_ID",
    "CHARTDATE",
    "CHARTTIME",
    "STORETIME",
    "CATEGORY",
    "DESCRIPTION",
    "CGID",
    "ISERROR",
    "TEXT",
)


def fmt_time(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def fmt_date(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def header_line(columns: Sequence[str]) -> str:
    """MIMIC-III quotes its header names."""
    return ",".join(f'"{c}"' for c in columns) + "\n"


class MemberWriter:
    """CSV rows into one gzip member of an open binary file, flushed in blocks."""

    def __init__(self, path: Path, *, level: int, header: Sequence[str] | None = None) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._file, compresslevel=level, mtime=0)
        self._buf = io.StringIO()
        self._csv = csv.writer(self._buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        if header is not None:
            self._buf.write(header_line(header))

    def rows(self, rows: Iterable[Sequence[object]]) -> None:
        self._csv.writerows(rows)
        if self._buf.tell() > 4 << 20:
            self.flush()

    def flush(self) -> None:
        self._gz.write(self._buf.getvalue().encode("utf-8"))
        self._buf.seek(0)
        self._buf.truncate()

    def close(self) -> None:
        self.flush()
        self._gz.close()
        self._file.close()


def write_table(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]], *, level: int) -> None:
    """A whole small table as one gzip member."""
    writer = MemberWriter(path, level=level, header=columns)
    writer.rows(rows)
    writer.close()


def concatenate(dest: Path, parts: Sequence[Path]) -> None:
    """Join gzip members into one file, in order, deleting each part once copied."""
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 8 << 20)
            part.unlink()
