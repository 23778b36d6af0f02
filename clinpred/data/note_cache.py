"""What the note cache holds, for `clinpred cache info|clear`: file names and sizes, never their text.

The note cache (``$CLINPRED_CACHE/notes``) holds sorted copies of note files: credentialed text. Users
must be able to see it and remove it as easily as the embedding cache, temporaries of killed readers
included.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from clinpred.data.note_stream import default_cache_dir
from clinpred.temporaries import remove_stale_temporaries, stale_temporaries


class NoteCacheFile(BaseModel):
    """One file in the note cache."""

    name: str
    bytes: int
    stale_temporary: bool  # left by a reader that was killed before it finished


def note_cache_files(directory: Path | None = None) -> list[NoteCacheFile]:
    """Every cache file and every stale temporary in the note cache folder."""
    directory = directory or default_cache_dir()
    if not directory.is_dir():
        return []
    stale = set(stale_temporaries(directory))
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and (p.suffix == ".arrow" or p in stale)]
    return [NoteCacheFile(name=p.name, bytes=p.stat().st_size, stale_temporary=p in stale) for p in files]


def clear_note_cache(directory: Path | None = None) -> list[str]:
    """Delete every cache file and stale temporary (a live reader's temporary is left alone)."""
    directory = directory or default_cache_dir()
    removed = [p.name for p in remove_stale_temporaries(directory)]
    if directory.is_dir():
        for path in sorted(directory.glob("*.arrow")):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
