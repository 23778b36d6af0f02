"""Temporary files and folders named for the process that writes them, and the clean-up of the dead's.

Everything clinpred writes goes first to a hidden sibling named ``.NAME.<pid>.tmp`` (a file) or
``.NAME.<pid>.tmp-XXXX`` (a folder), then is renamed into place. A process killed with ``kill -9``
cannot clean up after itself, and what it leaves can be note text (a half-written note cache, a
half-generated cohort). Each later start removes, in the folders it writes to, the temporaries whose
process no longer exists. The cache root is meant to be on local disk, where a pid names one process.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)\.tmp(-[A-Za-z0-9_]+)?$")


def temporary_file_name(path: Path) -> Path:
    """The hidden sibling that ``path`` is written to before it is renamed into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def temporary_directory(path: Path) -> Path:
    """A new hidden sibling folder of ``path`` (same file system, so a rename puts it in place).

    It gets the mode a plain mkdir would (mkdtemp's 0700 follows no setting): owner-only, or 0750, when
    the source is credentialed (clinpred.privacy.modes narrowed the umask), the usual mode otherwise.
    """
    from clinpred.privacy.modes import current_umask

    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.tmp-", dir=path.parent))
    folder.chmod(0o777 & ~current_umask())
    return folder


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stale_temporaries(directory: Path) -> list[Path]:
    """Temporaries in ``directory`` (not below it) left by processes that are no longer running."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and not _alive(int(match["pid"])):
            found.append(entry)
    return sorted(found)


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete what ``stale_temporaries`` finds; returns what was removed."""
    removed = []
    for entry in stale_temporaries(directory):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
