"""What the note cache holds, for `clinpred cache info|clear`: file names and sizes, never their text.

The note cache (``$CLINPRED_CACHE/notes``) holds sorted copies of note files: credentialed text. Users
must be able to see it and remove it as easily as the embedding cache, temporaries of killed readers
included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from clinpred.data.note_stream import default_cache_dir
from clinpred.temporaries import remove_stale_temporaries, stale_temporaries

SIDECAR = ".source.json"  # notes/<stem>-<digest>.arrow.source.json: where that file's note text came from


class NoteCacheFile(BaseModel):
    """One file in the note cache."""

    name: str
    bytes: int
    stale_temporary: bool  # left by a reader that was killed before it finished
    sources: list[dict[str, Any]] = []  # the sidecar's entries; empty: written before sources were kept
    created: str | None = None
    mode: str = ""  # permission bits, 0600-style


def sidecar(cache_file: Path) -> Path:
    """The source record beside one cache file."""
    return cache_file.with_name(cache_file.name + SIDECAR)


def read_note_sources(cache_file: Path) -> list[dict[str, Any]]:
    """The sources recorded for one cache file ([] when none were: an older cache)."""
    try:
        sources = json.loads(sidecar(cache_file).read_text()).get("sources", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [s for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []


def record_note_source(
    cache_file: Path,
    files: Sequence[Path],
    origin: tuple[str, Path] | None,
    *,
    synthetic: bool | None = None,
) -> None:
    """Record, beside ``cache_file``, the note files it was read from: their absolute paths, the dataset
    root, the reader, the content digest (the cache key, a SHA-256 over the files' SHA-256s) and the date.
    ``synthetic``: whether the root is the sealed synthetic cohort, where the reader knows (a MEDS
    export's seal is in its dataset.json); else the root's synthetic marker is checked.

    Written atomically (a temporary, then a rename) with the process's modes: owner-only for a
    credentialed source. A copy of a dataset elsewhere has the same content, so the same cache file:
    each path is listed once. Nothing is rewritten when this path is already recorded.
    """
    from filelock import FileLock

    from clinpred.atomic import atomic_path
    from clinpred.data.synthetic_seal import MARKER, is_sealed_synthetic
    from clinpred.privacy.modes import cap_to

    reader, root = origin if origin is not None else (None, Path(files[0]).parent)
    root = Path(root).resolve()
    paths = [str(Path(f).resolve()) for f in files]
    if any(s.get("files") == paths for s in read_note_sources(cache_file)):
        return
    with FileLock(str(cache_file.parent / "sources.lock"), timeout=600):
        sources = read_note_sources(cache_file)
        if any(s.get("files") == paths for s in sources):
            return
        sources.append(
            {
                "root": str(root),
                "files": paths,
                "reader": reader,
                "content_digest": cache_file.stem.rsplit("-", 1)[-1],
                "synthetic": synthetic
                if synthetic is not None
                else (root / MARKER).is_file() and is_sealed_synthetic(root),
                "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )
        with atomic_path(sidecar(cache_file)) as tmp, tmp.open("w", encoding="utf-8") as handle:
            if sources[:-1]:  # a record that lists a credentialed source stays as private as it was
                cap_to(handle.fileno(), cache_file.parent)
                cap_to(handle.fileno(), sidecar(cache_file))
            handle.write(json.dumps({"sources": sources}, indent=1, sort_keys=True) + "\n")


def _rewrite_record(cache_file: Path, sources: list[dict[str, Any]]) -> None:
    from clinpred.atomic import atomic_path
    from clinpred.privacy.modes import cap_to

    with atomic_path(sidecar(cache_file)) as tmp, tmp.open("w", encoding="utf-8") as handle:
        cap_to(handle.fileno(), sidecar(cache_file))
        handle.write(json.dumps({"sources": sources}, indent=1, sort_keys=True) + "\n")


def source_matcher(path: Path) -> Callable[[str], bool]:
    """Whether a recorded path is ``path`` or lies under it (both absolute, links resolved)."""
    target = Path(path).expanduser().resolve()

    def matches(recorded: str) -> bool:
        if not recorded:
            return False
        candidate = Path(recorded)
        return candidate == target or target in candidate.parents

    return matches


def _note_source_matches(source: dict[str, Any], matches: Callable[[str], bool]) -> bool:
    return matches(str(source.get("root", ""))) or any(matches(str(f)) for f in source.get("files", []))


def clear_note_source(
    matches: Callable[[str], bool], directory: Path | None = None
) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Delete the cache files read from a source that ``matches``; a file another source (a copy of the
    same files elsewhere) was also read from is kept. Returns the removed names and the kept ones with
    the other sources' roots. Files without a record are left (`cache clear --notes` removes them)."""
    directory = directory or default_cache_dir()
    removed: list[str] = []
    shared: list[tuple[str, list[str]]] = []
    if not directory.is_dir():
        return removed, shared
    for path in sorted(directory.glob("*.arrow")):
        sources = read_note_sources(path)
        ours = [s for s in sources if _note_source_matches(s, matches)]
        if not ours:
            continue
        others = [s for s in sources if s not in ours]
        if others:  # the text stays (another source has it); the cleared source is no longer listed
            shared.append((path.name, [str(s.get("root")) for s in others]))
            _rewrite_record(path, others)
            continue
        path.unlink(missing_ok=True)
        sidecar(path).unlink(missing_ok=True)
        removed.append(path.name)
    return removed, shared


def note_cache_files(directory: Path | None = None) -> list[NoteCacheFile]:
    """Every cache file and every stale temporary in the note cache folder."""
    directory = directory or default_cache_dir()
    if not directory.is_dir():
        return []
    stale = set(stale_temporaries(directory))
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and (p.suffix == ".arrow" or p in stale)]
    listed = []
    for p in files:
        sources = read_note_sources(p)
        dates = sorted(str(s["recorded"]) for s in sources if s.get("recorded"))
        listed.append(
            NoteCacheFile(
                name=p.name,
                bytes=p.stat().st_size,
                stale_temporary=p in stale,
                sources=sources,
                created=dates[0] if dates else None,
                mode=f"{p.stat().st_mode & 0o777:04o}",
            )
        )
    return listed


def clear_note_cache(directory: Path | None = None) -> list[str]:
    """Delete every cache file and stale temporary (a live reader's temporary is left alone)."""
    directory = directory or default_cache_dir()
    removed = [p.name for p in remove_stale_temporaries(directory)]
    if directory.is_dir():
        for path in sorted(directory.glob("*.arrow")):
            path.unlink(missing_ok=True)
            sidecar(path).unlink(missing_ok=True)
            removed.append(path.name)
        for orphan in directory.glob("*.arrow" + SIDECAR):  # a record whose file is already gone
            orphan.unlink(missing_ok=True)
    return removed
