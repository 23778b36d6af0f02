"""The synthetic cohort's seal: the generator's record of the exact files it wrote.

Whether text may go to an external API depends on whether it is synthetic (DESIGN.md rule 6), so that
must not be decided by a file name that anyone can drop into a MIMIC folder. The generator writes
``CLINPRED_SYNTHETIC.json`` listing every file it wrote with its size and sha256, and a seal: a keyed
hash of that list. A folder counts as synthetic only when the seal is intact and every CSV in the
folder is listed with the same size and content. Anything else is treated as protected. This guards
against accidents (a copied marker, a file added or replaced), not against someone forging a seal on
purpose: that takes intent, and the flag --allow-external-api exists for people who have it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MARKER = "CLINPRED_SYNTHETIC.json"
_KEY = b"clinpred synthetic cohort seal v1"


def _is_data_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (name.endswith(".csv") or name.endswith(".csv.gz"))


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _data_files(directory: Path) -> dict[str, Path]:
    """Every CSV file of ``directory``, by name."""
    return {p.name: p for p in sorted(Path(directory).iterdir()) if _is_data_file(p)}


def _seal(record: dict[str, Any], key: bytes) -> str:
    body = json.dumps({k: v for k, v in record.items() if k != "seal"}, sort_keys=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def sealed_record(
    description: dict[str, Any], files: Mapping[str, Path], *, key: bytes = _KEY
) -> dict[str, Any]:
    """``description`` plus ``files`` (name -> {bytes, sha256} of each ``{name: path}``, in the mapping's
    order) and ``seal``, a keyed hash of the rest under ``key`` (each kind of seal has its own key)."""
    record = {
        **description,
        "files": {name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for name, p in files.items()},
    }
    record["seal"] = _seal(record, key)
    return record


def record_matches(record: Any, files: Mapping[str, Path], *, key: bytes = _KEY) -> bool:
    """True only when ``record`` (as ``sealed_record`` made it) has an intact seal under ``key`` and
    lists exactly the names of ``files``, each with the same size, then the same sha256."""
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return False
    if not hmac.compare_digest(str(record.get("seal", "")), _seal(record, key)):
        return False
    listed = record["files"]
    if set(files) != set(listed) or not all(isinstance(listed[name], dict) for name in files):
        return False
    for name, path in files.items():  # sizes first: cheap, and catches most changes
        if path.stat().st_size != listed[name].get("bytes"):
            return False
    return all(_sha256(path) == listed[name].get("sha256") for name, path in files.items())


def write_seal(directory: Path, description: dict[str, Any]) -> None:
    """Write the marker for the files now in ``directory`` (the generator's last step)."""
    record = sealed_record(description, _data_files(directory))
    (directory / MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def is_sealed_synthetic(directory: Path) -> bool:
    """True only when the marker is intact and lists exactly the CSV files here, unchanged (a MEDS
    dataset: its own seal, meds_seal.py)."""
    directory = Path(directory)
    if (directory / "metadata" / "dataset.json").is_file() and (directory / "data").is_dir():
        from clinpred.data.meds_seal import is_sealed_synthetic_meds

        return is_sealed_synthetic_meds(directory)
    try:
        record = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return record_matches(record, _data_files(directory))
