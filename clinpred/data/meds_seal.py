"""Whether a MEDS dataset is clinpred's synthetic cohort: a seal in its dataset.json, never its name.

Every MEDS dataset is credentialed data (DESIGN.md rule 6) except one that `clinpred export meds` wrote
from the synthetic cohort and that nobody changed since. The export records, in
``metadata/dataset.json`` under ``clinpred_synthetic``, every parquet file it wrote (size and sha256)
and a keyed hash of that list, as the generator seals its CSV files (synthetic_seal.py, whose record
and check this module uses, under a key of its own). The dataset counts as synthetic only when that
record is intact and lists exactly the parquet files present, with the same content: a copied
dataset.json, a shard added, removed or rewritten makes it credentialed.
As with the generator's seal, this guards against accidents, not against a forged seal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clinpred.data.synthetic_seal import record_matches, sealed_record

SEAL_KEY = "clinpred_synthetic"  # the entry of dataset.json that holds the record
_KEY = b"clinpred synthetic MEDS seal v1"
DATASET_JSON = Path("metadata") / "dataset.json"


def parquet_files(root: Path) -> list[Path]:
    """Every parquet file of the dataset (data/ and metadata/), sorted by its path."""
    return sorted(p for p in Path(root).rglob("*.parquet") if p.is_file())


def _files(root: Path) -> dict[str, Path]:
    """The parquet files by their path relative to ``root`` (posix), as the record names them."""
    return {p.relative_to(root).as_posix(): p for p in parquet_files(root)}


def seal_record(root: Path, description: dict[str, Any]) -> dict[str, Any]:
    """The record to put in dataset.json of a synthetic export whose parquet files are all written."""
    return sealed_record(description, _files(Path(root)), key=_KEY)


def is_sealed_synthetic_meds(root: Path) -> bool:
    """True only when dataset.json holds an intact record listing exactly the parquet files here."""
    root = Path(root)
    try:
        record = json.loads((root / DATASET_JSON).read_text()).get(SEAL_KEY)
    except (OSError, ValueError, AttributeError):
        return False
    return record_matches(record, _files(root), key=_KEY)
