"""The on-disk embedding cache: a text is embedded once per fingerprint, ever.

Layout under the root (default ``$CLINPRED_CACHE/embeddings``, else ``~/.cache/clinpred/embeddings``)::

    <sha256(fingerprint)>/
        index.json            fingerprint, dimension, and every shard with its row count
        index.lock            held (filelock) while the index is rewritten
        sources.json          each data source whose texts were embedded under it: path, counts, dates
        shards/<name>.shard   keys and float32 vectors of one embedded chunk, never rewritten

A key is ``sha256(role + "\\0" + text)``: the cache holds hashes and vectors, never text. Each chunk of
new vectors becomes one shard, written to a temporary name, fsynced and renamed, so a shard is whole or
absent; a process killed with ``kill -9`` loses at most the chunk it was embedding, and the next run
embeds only what is missing. Writers never touch each other's shards, and the index is rewritten
atomically under a lock, so processes sharing a cache never corrupt it. Readers trust shard files
over the index: a shard renamed into place just before a crash is read, and adopted into the index by
the next writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from pydantic import BaseModel

from clinpred.backends.base import Role
from clinpred.paths import cache_root
from clinpred.privacy.modes import cap_to, narrow_folders
from clinpred.temporaries import remove_stale_temporaries

_MAGIC = b"CLINPRED-EMB1\n"
_HEADER = len(_MAGIC) + 16  # magic, then uint64 count and uint64 dimension
_KEY_BYTES = 32
DEFAULT_CHUNK = 512


def default_cache_root() -> Path:
    """``embeddings/`` under clinpred's cache root: where ``clinpred run`` writes, and ``cache`` looks."""
    return cache_root() / "embeddings"


_KEY_NAME = re.compile(r"[0-9a-f]{64}")


def fingerprint_key(fingerprint: str) -> str:
    """The directory name of a fingerprint: its sha256."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()


def text_key(role: Role, text: str) -> bytes:
    """The 32-byte key of one text in one role; the text itself is never stored."""
    return hashlib.sha256(f"{role}\0{text}".encode()).digest()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp-{uuid.uuid4().hex}")
    try:
        with tmp.open("wb") as handle:
            cap_to(handle.fileno(), path.parent)  # no wider than its folder: see privacy.modes
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # a full disk, ulimit -f, an interrupt: no half-written shard is left
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):
            exc.filename = str(path)  # the message names the shard, not its temporary
        raise
    _fsync_dir(path.parent)


def _read_header(path: Path) -> tuple[int, int]:
    with path.open("rb") as handle:
        head = handle.read(_HEADER)
    if len(head) != _HEADER or not head.startswith(_MAGIC):
        raise ValueError(f"{path} is not a clinpred embedding shard")
    count, dim = np.frombuffer(head[len(_MAGIC) :], dtype="<u8")
    return int(count), int(dim)


class CacheEntry(BaseModel):
    """One fingerprint's share of the cache, for ``clinpred cache info``."""

    key: str
    fingerprint: str
    dimension: int
    vectors: int
    shards: int
    bytes: int
    sources: list[dict[str, Any]] = []  # sources.json's entries; empty: written before sources were kept
    created: str | None = None  # the earliest date a source was recorded
    mode: str = ""  # the folder's permission bits, 0700-style


SOURCES_FILE = "sources.json"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class _Loaded:
    """What one process has read of one fingerprint's shards: key -> (shard, row), and open memmaps."""

    def __init__(self) -> None:
        self.shards: dict[str, np.ndarray] = {}  # shard name -> memmap of its vectors
        self.where: dict[bytes, tuple[str, int]] = {}


class EmbeddingCache:
    """Content-addressed vectors per backend fingerprint; safe to share between processes."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self._loaded: dict[str, _Loaded] = {}

    # ---- paths

    def directory(self, fingerprint: str) -> Path:
        """Where one fingerprint's vectors live."""
        return self.root / fingerprint_key(fingerprint)

    def _lock(self, directory: Path) -> FileLock:
        return FileLock(str(directory / "index.lock"), timeout=600)

    def embedding_lock(self, fingerprint: str) -> FileLock:
        """Held while a process embeds texts of this fingerprint (released by the OS if it dies)."""
        directory = self.directory(fingerprint)
        (directory / "shards").mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(directory / "shards")
        return FileLock(str(directory / "embedding.lock"))

    # ---- reading

    def _refresh(self, fingerprint: str) -> _Loaded:
        key = fingerprint_key(fingerprint)
        loaded = self._loaded.setdefault(key, _Loaded())
        shard_dir = self.root / key / "shards"
        if not shard_dir.is_dir():
            return loaded
        for path in sorted(shard_dir.glob("*.shard")):
            if path.name in loaded.shards:
                continue
            count, dim = _read_header(path)
            keys = np.fromfile(path, dtype=np.uint8, count=count * _KEY_BYTES, offset=_HEADER)
            keys = keys.reshape(count, _KEY_BYTES)
            vectors = np.memmap(
                path, dtype="<f4", mode="r", offset=_HEADER + count * _KEY_BYTES, shape=(count, dim)
            )
            loaded.shards[path.name] = vectors
            for row in range(count):
                loaded.where.setdefault(keys[row].tobytes(), (path.name, row))
        return loaded

    def lookup(self, fingerprint: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys`` (float32 rows), read from every complete shard on disk."""
        loaded = self._refresh(fingerprint)
        by_shard: dict[str, list[tuple[bytes, int]]] = {}
        for key in keys:
            hit = loaded.where.get(key)
            if hit is not None:
                by_shard.setdefault(hit[0], []).append((key, hit[1]))
        found: dict[bytes, np.ndarray] = {}
        for shard, hits in by_shard.items():
            rows = np.asarray([row for _, row in hits])
            block = np.asarray(loaded.shards[shard][rows], dtype=np.float32)
            for (key, _), vector in zip(hits, block, strict=True):
                found[key] = vector
        return found

    # ---- writing

    def store(self, fingerprint: str, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Write one shard durably (temp name, fsync, rename), then record it in the index under the lock."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise ValueError(f"{len(keys)} keys but vectors of shape {vectors.shape}")
        if not keys:
            return
        directory = self.directory(fingerprint)
        shard_dir = directory / "shards"
        shard_dir.mkdir(parents=True, exist_ok=True)
        index = self._read_index(directory)
        if index and index.get("dimension") != vectors.shape[1]:
            raise ValueError(
                f"vectors of dimension {vectors.shape[1]} for a fingerprint cached at {index.get('dimension')}"
            )
        header = _MAGIC + np.asarray([len(keys), vectors.shape[1]], dtype="<u8").tobytes()
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:12]}.shard"
        _write_atomic(shard_dir / name, header + b"".join(keys) + vectors.tobytes())
        with self._lock(directory):
            index = self._read_index(directory) or {
                "fingerprint": fingerprint,
                "dimension": int(vectors.shape[1]),
                "shards": {},
            }
            for path in shard_dir.glob("*.shard"):  # ours, and any orphan left by a crash before indexing
                if path.name not in index["shards"]:
                    index["shards"][path.name] = _read_header(path)[0]
            _write_atomic(directory / "index.json", json.dumps(index, sort_keys=True).encode())

    def record_source(self, fingerprint: str, source: dict[str, Any], embedded: int) -> None:
        """Note under the index lock that texts of ``source`` (a plain value: its absolute ``path``,
        ``synthetic``, ``reader``) were embedded (``embedded`` new ones) or read under this fingerprint,
        so that `clinpred cache clear --source` can remove what one dataset left behind."""
        if not source.get("path"):
            return
        directory = self.directory(fingerprint)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock(directory):
            record = self.read_sources(directory)
            entry = next((e for e in record if e.get("path") == source["path"]), None)
            if entry is None:
                entry = {**source, "texts_embedded": 0, "first_used": _now()}
                record.append(entry)
            entry["texts_embedded"] = int(entry.get("texts_embedded", 0)) + int(embedded)
            entry["last_used"] = _now()
            body = json.dumps({"fingerprint": fingerprint, "sources": record}, indent=1, sort_keys=True)
            _write_atomic(directory / SOURCES_FILE, body.encode())
        if not source.get("synthetic"):  # a folder made by a synthetic run now holds credentialed vectors
            narrow_folders([directory, directory / "shards"])

    @staticmethod
    def read_sources(directory: Path) -> list[dict[str, Any]]:
        """The sources recorded for one fingerprint folder ([] when none were: an older cache)."""
        try:
            sources = json.loads((directory / SOURCES_FILE).read_text()).get("sources", [])
        except (OSError, ValueError, AttributeError):
            return []
        return [s for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []

    @staticmethod
    def _read_index(directory: Path) -> dict[str, Any] | None:
        try:
            return json.loads((directory / "index.json").read_text())
        except FileNotFoundError:
            return None

    # ---- housekeeping

    def _directories(self) -> Iterable[Path]:
        if not self.root.is_dir():
            return []
        # only folders named as the cache names them (a fingerprint's sha256): `cache clear` never
        # deletes a folder it did not write, even under a --cache-dir that holds other things
        return sorted(p for p in self.root.iterdir() if p.is_dir() and _KEY_NAME.fullmatch(p.name))

    def info(self) -> list[CacheEntry]:
        """Every fingerprint in the cache with its vector count (distinct texts) and bytes on disk."""
        entries = []
        for directory in self._directories():
            index = self._read_index(directory)
            if index is None:
                continue
            shards = sorted((directory / "shards").glob("*.shard"))
            distinct: set[bytes] = set()
            for path in shards:
                count, _ = _read_header(path)
                keys = np.fromfile(path, dtype=np.uint8, count=count * _KEY_BYTES, offset=_HEADER)
                distinct.update(keys.reshape(count, _KEY_BYTES)[row].tobytes() for row in range(count))
            size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
            sources = self.read_sources(directory)
            firsts = sorted(str(s["first_used"]) for s in sources if s.get("first_used"))
            entries.append(
                CacheEntry(
                    key=directory.name,
                    fingerprint=index["fingerprint"],
                    dimension=index["dimension"],
                    vectors=len(distinct),
                    shards=len(shards),
                    bytes=size,
                    sources=sources,
                    created=firsts[0] if firsts else None,
                    mode=f"{directory.stat().st_mode & 0o777:04o}",
                )
            )
        return entries

    def clear(self, fingerprint: str | None = None) -> list[str]:
        """Remove every fingerprint, or the one given (full fingerprint, its key, or a key prefix)."""
        removed = []
        for directory in self._directories():
            if fingerprint is not None:
                index = self._read_index(directory) or {}
                matches = (
                    fingerprint == index.get("fingerprint")
                    or directory.name == fingerprint_key(fingerprint)
                    or (len(fingerprint) >= 6 and directory.name.startswith(fingerprint))
                )
                if not matches:
                    continue
            self._remove(directory)
            removed.append(directory.name)
        return removed

    def _remove(self, directory: Path) -> None:
        with self._lock(directory):
            doomed = directory.with_name(f".{directory.name}.deleting-{uuid.uuid4().hex}")
            os.replace(directory, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        self._loaded.pop(directory.name, None)

    def clear_source(self, matches: Any) -> tuple[list[str], list[tuple[str, list[str]]], int]:
        """Remove every fingerprint folder whose recorded sources all satisfy ``matches(path)``.

        Returns the removed keys, the folders kept because another source shares them (key, the other
        sources' paths), and how many folders have no recorded source (left: `cache clear` removes them).
        """
        removed: list[str] = []
        shared: list[tuple[str, list[str]]] = []
        unknown = 0
        for directory in self._directories():
            sources = self.read_sources(directory)
            if not sources:
                unknown += 1
                continue
            ours = [s for s in sources if matches(str(s.get("path", "")))]
            if not ours:
                continue
            others = [s for s in sources if s not in ours]
            if others:  # the vectors stay (another source has them); the cleared source is no longer listed
                shared.append((directory.name, [str(s.get("path")) for s in others]))
                with self._lock(directory):
                    index = self._read_index(directory) or {}
                    body = json.dumps({"fingerprint": index.get("fingerprint"), "sources": others}, indent=1)
                    _write_atomic(directory / SOURCES_FILE, body.encode())
                continue
            self._remove(directory)
            removed.append(directory.name)
        return removed, shared, unknown


class _Picked(Sequence[str]):
    """Some of a sequence's texts, in a given order, read from it only when asked (a chunk at a time)."""

    def __init__(self, texts: Sequence[str], rows: list[int]) -> None:
        self._texts, self._rows = texts, rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._texts[row] for row in self._rows[index]]
        return self._texts[self._rows[index]]


class CachedBackend:
    """Wraps any backend so that each text is embedded once per fingerprint, ever; itself a backend.

    Missing texts are embedded longest first in chunks (``chunk_size``, else the backend's
    ``preferred_chunk_size``, else 512), each chunk stored durably as it completes. Duplicates within a
    call are embedded once. A backend with ``plan(texts) -> str`` (OpenAI: texts, tokens, cost) has its
    plan printed to stderr before it runs, unless ``progress`` is off.
    """

    def __init__(
        self,
        backend: Any,
        cache: EmbeddingCache,
        progress: bool = True,
        chunk_size: int | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.source = source  # where the texts come from (path, synthetic, reader): kept in sources.json
        self.progress = progress
        self.chunk_size = int(chunk_size or getattr(backend, "preferred_chunk_size", None) or DEFAULT_CHUNK)
        self.name = backend.name
        self.last_embedded = 0  # how many texts the last call sent to the wrapped backend

    def __getattr__(self, attribute: str) -> Any:
        # describe(), fit(), dimension, sends_text_off_machine, ...: whatever the wrapped backend offers.
        if attribute == "backend":  # not yet set (during unpickling): never recurse
            raise AttributeError(attribute)
        return getattr(self.backend, attribute)

    def fingerprint(self) -> str:
        """The wrapped backend's fingerprint: the cache adds nothing to what the vectors mean."""
        return self.backend.fingerprint()

    def embed(self, texts: Sequence[str], *, role: Role = "document") -> np.ndarray:
        """Cached vectors where present; the rest embedded by the wrapped backend and stored."""
        # ``texts`` is read by index, never copied: a NoteTexts view makes each string only as it is read
        texts = texts if isinstance(texts, Sequence) else list(texts)
        self.last_embedded = 0
        if not len(texts):
            return self.backend.embed([], role=role)
        fingerprint = self.backend.fingerprint()
        keys = [text_key(role, text) for text in texts]
        first: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        found = self.cache.lookup(fingerprint, list(first))
        if len(found) < len(first):
            # One process embeds a fingerprint at a time: a second run on the same texts waits, then
            # finds them cached, instead of embedding them all again beside the first.
            with self.cache.embedding_lock(fingerprint):
                found = self.cache.lookup(fingerprint, list(first))
                missing = sorted((k for k in first if k not in found), key=lambda k: -len(texts[first[k]]))
                if missing:
                    picked = _Picked(texts, [first[k] for k in missing])
                    self._embed_missing(fingerprint, picked, missing, role, found)
        if self.source:
            self.cache.record_source(fingerprint, self.source, self.last_embedded)
        out = np.empty((len(texts), next(iter(found.values())).shape[0]), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = found[key]
        return out

    def _embed_missing(
        self,
        fingerprint: str,
        texts: Sequence[str],
        keys: list[bytes],
        role: Role,
        found: dict[bytes, np.ndarray],
    ) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True, markup=False, highlight=False)
        plan = getattr(self.backend, "plan", None)
        if self.progress and callable(plan):
            console.print(str(plan(texts)), highlight=False)
        with Progress(
            TextColumn(f"embedding ({self.name})"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.progress,
            transient=True,
        ) as bar:
            task = bar.add_task("embed", total=len(texts))
            for start in range(0, len(texts), self.chunk_size):
                chunk_texts = texts[start : start + self.chunk_size]
                chunk_keys = keys[start : start + self.chunk_size]
                vectors = np.asarray(self.backend.embed(chunk_texts, role=role), dtype=np.float32)
                if vectors.ndim != 2 or vectors.shape[0] != len(chunk_texts):
                    raise RuntimeError(
                        f"backend {self.name} returned shape {vectors.shape} for {len(chunk_texts)} texts"
                    )
                self.cache.store(fingerprint, chunk_keys, vectors)
                found.update(zip(chunk_keys, vectors, strict=True))
                self.last_embedded += len(chunk_texts)
                bar.advance(task, len(chunk_texts))
