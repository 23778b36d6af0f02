"""Files appear whole or not at all: write under a temporary name beside them, then rename.

Run folders (written whole the same way, and guarded) are clinpred.run_folder's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from clinpred.errors import InputError
from clinpred.interrupts import raise_if_interrupted
from clinpred.temporaries import temporary_file_name


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; on success it replaces ``path`` in one step."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder must be (say, in the cache)
        raise InputError(
            f"{path.parent}: cannot hold {path.name}: a file is in the way of this folder (or of a folder "
            "above it). Move that file away, then run again."
        ) from None
    tmp = temporary_file_name(path)
    try:
        yield tmp
        raise_if_interrupted()  # an interrupt that was lost on its way (clinpred.interrupts)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk or ulimit -f: the message names the file, not the temporary
        if exc.filename is None or exc.filename == str(tmp):
            exc.filename = str(path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def check_directory_path(path: Path, *, option: str = "--out") -> None:
    """Refuse a directory path that is a file or lies under a file (mkdir would fail half-way)."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"lies under {parent}, which is a file"
            raise InputError(f"{option} {path}: {where}. Give a directory path.")
