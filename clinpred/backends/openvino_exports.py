"""The OpenVINO exports under ``<clinpred cache>/openvino/``: listed by `clinpred cache info`, removed by
`clinpred cache clear`.

Why: an export of a model fine-tuned on credentialed notes derives from those notes, as the model does,
so the user must see it and be able to remove it with the rest of the cache. The layout is
``clinpred.backends.openvino_engine``'s: one folder per export named by its 64-hex key, with
``clinpred-export.json`` written last (which model, when), ``<key>.lock`` beside it, and hidden
``.<key>.<pid>.tmp-XXXX`` folders while an export is written.

Only what clinpred wrote is removed, as for the embedding cache: folders named as the engine names
them (a key-named folder without its record is an export the engine itself would replace), under the
export's lock so that no running export or check is cut in half, and the hidden temporaries of
exports whose process is dead. Anything else in the folder is left, and so are the lock files: they
are empty, and deleting a lock another process may be waiting on would let two exports run at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from clinpred.backends.openvino_engine import EXPORT_RECORD, export_root
from clinpred.privacy.modes import mode_text
from clinpred.temporaries import remove_stale_temporaries, stale_temporaries

_KEY_NAME = re.compile(r"[0-9a-f]{64}")


@dataclass
class OpenVinoExport:
    """One export folder, or the temporary of an export whose process died."""

    path: Path
    bytes: int
    mode: str
    model: str | None  # as its record names it; None where there is no record
    exported: str | None
    complete: bool  # its record is there (written last)
    stale_temporary: bool = False


def _size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if not p.is_symlink() and p.is_file())


def _record(folder: Path) -> dict | None:
    try:
        body = json.loads((folder / EXPORT_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _ours(root: Path) -> list[Path]:
    """The export folders clinpred wrote under ``root``: named by a key, real folders (no links)."""
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if _KEY_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
    )


def list_exports(root: Path | None = None) -> list[OpenVinoExport]:
    """Every export folder under ``root`` (default: ``<cache>/openvino``), then stale temporaries."""
    root = root or export_root()
    found = []
    for folder in _ours(root):
        record = _record(folder)
        found.append(
            OpenVinoExport(
                path=folder,
                bytes=_size(folder),
                mode=mode_text(folder),
                model=str(record.get("model")) if record and record.get("model") else None,
                exported=str(record.get("exported")) if record and record.get("exported") else None,
                complete=record is not None,
            )
        )
    for path in stale_temporaries(root):
        size = _size(path) if path.is_dir() and not path.is_symlink() else path.lstat().st_size
        found.append(OpenVinoExport(path, size, mode_text(path), None, None, False, stale_temporary=True))
    return found


def clear_exports(root: Path | None = None) -> list[str]:
    """Remove every export folder clinpred wrote under ``root`` (each under its lock) and the stale
    temporaries of killed exports; returns the names removed. Nothing else there is touched."""
    root = root or export_root()
    removed = [p.name for p in remove_stale_temporaries(root)]
    for folder in _ours(root):
        with FileLock(str(root / f"{folder.name}.lock"), timeout=3600):  # the engine's lock for this key
            if not folder.is_dir():
                continue
            # renamed first (a temporary's name: a later start removes it if this process dies midway)
            doomed = folder.with_name(f".{folder.name}.{os.getpid()}.tmp-deleting")
            os.replace(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(folder.name)
    return removed
