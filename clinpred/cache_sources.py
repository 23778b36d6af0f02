"""What clinpred's caches hold, grouped by the dataset it came from; and the purge of one dataset.

For `clinpred cache info` and `clinpred cache clear --source` (issue 29): when a project or a data use
agreement ends, the user must be able to see what a dataset left behind (sorted note text, embeddings
per model) and remove exactly that. Each note cache file has a source record beside it
(clinpred.data.note_cache), each embedding fingerprint folder a ``sources.json`` (clinpred.backends.cache).
Entries written before those records existed are "source unknown": `clinpred cache clear` removes them.
OpenVINO exports of models (``<cache>/openvino``) are listed beside them: they derive from a model, not
from a recorded dataset, and go with `clinpred cache clear`.
Run folders and fine-tuned models are the user's: nothing here deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinpred.backends.cache import CacheEntry, EmbeddingCache
from clinpred.backends.openvino_engine import export_root
from clinpred.backends.openvino_exports import OpenVinoExport, list_exports
from clinpred.data.note_cache import (
    NoteCacheFile,
    clear_note_source,
    note_cache_files,
    source_matcher,
)
from clinpred.data.note_stream import default_cache_dir
from clinpred.errors import InputError
from clinpred.privacy.modes import exposed_bits, exposed_paths, share_with_group
from clinpred.temporaries import remove_stale_temporaries

UNKNOWN = "source unknown"


@dataclass
class SourceGroup:
    """Everything the cache holds from one dataset (or of unknown source)."""

    path: str  # the dataset's absolute path, or UNKNOWN
    synthetic: bool = False
    readers: set[str] = field(default_factory=set)
    notes: list[NoteCacheFile] = field(default_factory=list)
    embeddings: list[CacheEntry] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(n.bytes for n in self.notes) + sum(e.bytes for e in self.embeddings)


@dataclass
class Exposure:
    """A cache path readable or writable beyond what the privacy setting allows."""

    path: Path
    mode: str
    who: str  # "others" or "group"


@dataclass
class CacheListing:
    """`clinpred cache info`'s content."""

    embedding_root: Path
    notes_root: Path
    groups: list[SourceGroup]
    entries: list[CacheEntry]
    note_files: list[NoteCacheFile]
    exposures: list[Exposure]
    exports_root: Path
    exports: list[OpenVinoExport]  # engine=openvino's exported models (clinpred.backends.openvino_exports)


def _exposures(root: Path, share: bool) -> list[Exposure]:
    found = []
    for path, mode in exposed_paths(root, share=share):
        who = "others" if exposed_bits(mode, share=share) & 0o007 else "group"
        found.append(Exposure(path, f"{mode:04o}", who))
    return found


def cache_listing(cache_dir: Path | None = None) -> CacheListing:
    """Every cache entry grouped by source, each with its mode, and every path readable beyond its owner
    (beyond the group with CLINPRED_SHARE_WITH_GROUP) among what derives from a credentialed or unknown
    source. What derives from the synthetic cohort alone keeps the usual permissions and is not flagged."""
    cache = EmbeddingCache(cache_dir)
    notes_root = default_cache_dir()
    entries = cache.info()
    note_files = note_cache_files(notes_root)
    groups: dict[str, SourceGroup] = {}

    def group(source: dict[str, Any] | None, path_key: str) -> SourceGroup:
        path = str(source.get(path_key) or UNKNOWN) if source else UNKNOWN
        g = groups.setdefault(path, SourceGroup(path, synthetic=bool(source and source.get("synthetic"))))
        if source and source.get("reader"):
            g.readers.add(str(source["reader"]))
        return g

    credentialed = False
    for f in note_files:
        for source in f.sources or [None]:
            group(source, "root").notes.append(f)
        credentialed |= not (f.sources and all(s.get("synthetic") is True for s in f.sources))
    for e in entries:
        for source in e.sources or [None]:
            group(source, "path").embeddings.append(e)
        credentialed |= not (e.sources and all(s.get("synthetic") is True for s in e.sources))
    exposures: list[Exposure] = []
    if credentialed:  # what the synthetic cohort alone left keeps the usual permissions: not flagged
        share = share_with_group()
        exposures = _exposures(notes_root.parent, share)
        if notes_root.parent not in cache.root.parents:  # a --cache-dir elsewhere
            exposures += _exposures(cache.root, share)
    ordered = sorted(groups.values(), key=lambda g: (g.path == UNKNOWN, g.synthetic, g.path))
    exports_root = export_root()
    exports = list_exports(exports_root)
    return CacheListing(
        cache.root, notes_root, ordered, entries, note_files, exposures, exports_root, exports
    )


@dataclass
class Purge:
    """What `clinpred cache clear --source` did."""

    source: Path
    notes_removed: list[str]
    fingerprints_removed: list[str]
    notes_kept: list[tuple[str, list[str]]]  # (file, the other sources it was also read from)
    fingerprints_kept: list[tuple[str, list[str]]]  # (key, the other sources it holds texts of)
    unknown: int  # fingerprint folders with no recorded source, left as they are
    temporaries_removed: int


def purge_source(source: Path, cache_dir: Path | None = None) -> Purge:
    """Remove everything the caches derived from ``source`` (a dataset folder or note file; it may be
    gone already): its note cache files and every embedding fingerprint whose only sources lie there.
    A file or fingerprint another source shares is kept and returned. Refused when nothing recorded
    there is found, so a mistyped path is not taken for a purge done."""
    matches = source_matcher(source)
    notes_removed, notes_kept = clear_note_source(matches)
    fingerprints_removed, fingerprints_kept, unknown = EmbeddingCache(cache_dir).clear_source(matches)
    temporaries = remove_stale_temporaries(default_cache_dir())  # note text of killed readers, any source
    if not (notes_removed or notes_kept or fingerprints_removed or fingerprints_kept):
        raise InputError(
            f"--source {source}: nothing in the cache is recorded as derived from it (see `clinpred cache "
            "info` for the sources it knows; entries of unknown source go with `clinpred cache clear`)."
        )
    return Purge(
        Path(source).expanduser().resolve(),
        notes_removed,
        fingerprints_removed,
        notes_kept,
        fingerprints_kept,
        unknown,
        len(temporaries),
    )
