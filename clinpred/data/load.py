"""Open any supported data directory: detect MIMIC-III (NOTEEVENTS), MIMIC-IV (hosp/ + note/) or MEDS
(data/*.parquet + metadata/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from clinpred.data.cohort import Cohort
from clinpred.data.meds_codes import MedsCodes
from clinpred.data.meds_read import is_meds_root, read_meds
from clinpred.data.mimic3 import read_mimic3
from clinpred.data.mimic4 import read_mimic4
from clinpred.data.omop import read_omop
from clinpred.data.omop_tables import find_table
from clinpred.data.tables import locate
from clinpred.errors import InputError

Layout = Literal["mimic3", "mimic4", "meds", "omop"]


def detect_layout(path: str | Path) -> Layout:
    """Which reader a directory needs. A user error when it is neither layout."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such directory.")
    if not path.is_dir():
        raise InputError(f"{path}: not a directory. Give the folder that holds the MIMIC CSV files.")
    if is_meds_root(path):  # before MIMIC-IV: a MEDS root has no hosp/, but say it first
        return "meds"
    if is_omop_root(path):  # before MIMIC-IV: an OMOP NOTE table can be a folder note/ of parts
        return "omop"
    if (path / "hosp").is_dir() or (path / "note").is_dir():
        return "mimic4"
    if locate(path, "NOTEEVENTS", required=False) is not None:
        return "mimic3"
    raise InputError(
        f"{path}: neither a MIMIC-III directory (NOTEEVENTS.csv.gz with PATIENTS, ADMISSIONS, "
        "DIAGNOSES_ICD), a MIMIC-IV root (hosp/ and note/), a MEDS root (data/*.parquet and "
        "metadata/dataset.json) nor an OMOP CDM folder (person and note tables, CSV or Parquet)."
    )


def is_omop_root(path: Path) -> bool:
    """An OMOP CDM folder: PERSON and NOTE tables (files or folders of parts, CSV or Parquet)."""
    return all(find_table(path, name, required=False) is not None for name in ("person", "note"))


def load_cohort(
    path: str | Path,
    *,
    meds_codes: MedsCodes | None = None,
    omop: dict[str, Any] | None = None,
    **options: Any,
) -> Cohort:
    """Read a MIMIC-III, MIMIC-IV(-Note), MEDS or OMOP directory; options go to the matching reader.

    ``meds_codes`` ([data.meds]) and ``omop`` ([data.omop]) reach only the reader of their format.
    """
    layout = detect_layout(path)
    if layout == "mimic3":
        return read_mimic3(path, **options)
    options.pop("drop_errors", None)  # only MIMIC-III's NOTEEVENTS has an error flag (ISERROR)
    if layout == "meds":
        return read_meds(path, codes=meds_codes, **options)
    if layout == "omop":
        return read_omop(path, **(omop or {}), **options)
    return read_mimic4(path, **options)
