"""Open any supported data directory: detect MIMIC-III (NOTEEVENTS) or MIMIC-IV (hosp/ + note/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from clinpred.data.cohort import Cohort
from clinpred.data.mimic3 import read_mimic3
from clinpred.data.mimic4 import read_mimic4
from clinpred.data.tables import locate
from clinpred.errors import InputError

Layout = Literal["mimic3", "mimic4"]


def detect_layout(path: str | Path) -> Layout:
    """Which reader a directory needs. A user error when it is neither layout."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such directory.")
    if not path.is_dir():
        raise InputError(f"{path}: not a directory. Give the folder that holds the MIMIC CSV files.")
    if (path / "hosp").is_dir() or (path / "note").is_dir():
        return "mimic4"
    if locate(path, "NOTEEVENTS", required=False) is not None:
        return "mimic3"
    raise InputError(
        f"{path}: neither a MIMIC-III directory (NOTEEVENTS.csv.gz with PATIENTS, ADMISSIONS, "
        "DIAGNOSES_ICD) nor a MIMIC-IV root (hosp/ and note/)."
    )


def load_cohort(path: str | Path, **options: Any) -> Cohort:
    """Read a MIMIC-III or MIMIC-IV(-Note) directory; options go to the matching reader."""
    if detect_layout(path) == "mimic4":
        options.pop("drop_errors", None)  # MIMIC-IV-Note has no error flag
        return read_mimic4(path, **options)
    return read_mimic3(path, **options)
