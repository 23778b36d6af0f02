"""Whether a MEDS dataset is clinpred's synthetic cohort: a seal in its dataset.json, never its name.

Every MEDS dataset is credentialed data (DESIGN.md rule 6) except one that `clinpred export meds` wrote
from the synthetic cohort and that nobody changed since. The export records, in
``metadata/dataset.json`` under ``clinpred_synthetic``, every parquet file it wrote (size and sha256)
and a keyed hash of that list, as the generator seals its CSV files (synthetic_seal.py). The dataset
counts as synthetic only when that record is intact and lists exactly the parquet files present, with
the same content: a copied dataset.json, a shard added, removed or rewritten makes it credentialed.
As with the generator's seal, this guards against accidents, not against a forged seal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

SEAL_KEY = "clinpred_synthetic"  # the entry of dataset.json that holds the record
_KEY = b"clinpred synthetic MEDS seal v1"
DATASET_JSON = Path("metadata") / "dataset.json"


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def parquet_files(root: Path) -> list[Path]:
    """Every parquet file of the dataset (data/ and metadata/), sorted by its path."""
    return sorted(p for p in Path(root).rglob("*.parquet") if p.is_file())


def _records(root: Path) -> dict[str, dict[str, Any]]:
    return {
        p.relative_to(root).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in parquet_files(root)
    }


def _seal(record: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in record.items() if k != "seal"}, sort_keys=True)
    return hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()


def seal_record(root: Path, description: dict[str, Any]) -> dict[str, Any]:
    """The record to put in dataset.json of a synthetic export whose parquet files are all written."""
    record = {**description, "files": _records(Path(root))}
    record["seal"] = _seal(record)
    return record


def is_sealed_synthetic_meds(root: Path) -> bool:
    """True only when dataset.json holds an intact record listing exactly the parquet files here."""
    root = Path(root)
    try:
        record = json.loads((root / DATASET_JSON).read_text()).get(SEAL_KEY)
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return False
    if not hmac.compare_digest(str(record.get("seal", "")), _seal(record)):
        return False
    files = record["files"]
    present = {p.relative_to(root).as_posix(): p for p in parquet_files(root)}
    if set(present) != set(files):
        return False
    if any(path.stat().st_size != files[name].get("bytes") for name, path in present.items()):
        return False
    return all(_sha256(path) == files[name].get("sha256") for name, path in present.items())
