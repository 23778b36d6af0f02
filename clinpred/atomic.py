"""Files and run folders appear whole or not at all: write under a temporary name beside them, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from clinpred.errors import InputError
from clinpred.temporaries import remove_stale_temporaries, temporary_directory, temporary_file_name


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; on success it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# What a run directory may hold: anything else means --out is someone's folder, not an earlier run.
RUN_ENTRIES = frozenset(
    {"config.json", "results.json", "RESULTS.md", "umap.png", "report.html", "units", "model", "models"}
)


def check_directory_path(path: Path, *, option: str = "--out") -> None:
    """Refuse a directory path that is a file or lies under a file (mkdir would fail half-way)."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"lies under {parent}, which is a file"
            raise InputError(f"{option} {path}: {where}. Give a directory path.")


def check_output_directory(path: Path, *, option: str = "--out") -> None:
    """Refuse an --out that is a file, lies under a file, or is a folder of something other than a run."""
    check_directory_path(path, option=option)
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in RUN_ENTRIES)
        if foreign:
            raise InputError(
                f"{option} {path}: holds files that a clinpred run did not write ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}). Choose a new directory or empty this one."
            )


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``path`` whole.

    An earlier run in ``path`` is replaced entirely (no file of it survives), except the entries named
    in ``keep`` (the demo's fine-tuned model), which are moved into the new folder. On failure or
    interrupt the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    check_output_directory(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        tmp = temporary_directory(path)
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write here ({exc.strerror}).") from None
    try:
        yield tmp
        carried = [name for name in keep if (path / name).exists() and not (tmp / name).exists()]
        for name in carried:
            os.replace(path / name, tmp / name)
        try:
            if path.exists():
                old = temporary_directory(path)
                os.replace(path, old / "previous")
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            for name in carried:  # put back what was carried, so a failed swap loses nothing
                if (tmp / name).exists() and path.is_dir():
                    os.replace(tmp / name, path / name)
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
