"""Putting notes into patient/time order without holding their text twice.

A note file is not in patient order (MIMIC-III's NOTEEVENTS is in ROW_ID order), and sorting it in
memory holds the parsed text and its sorted copy at once: twice the text, about 8 GB for full
NOTEEVENTS. Instead, the text of each parsed block is appended to unnamed temporary files as it is
parsed, and only the small columns stay in memory to be sorted. The sorted text is then taken back one
slice at a time, each slice to be written out (to the note cache) and freed before the next.

The text is spread over buckets: each row goes to the partition its caller names (a range of patients,
so that a partition's notes are needed together), and a partition starts a new bucket every
SEGMENT_BYTES (so that a file already in patient order is consumed bucket after bucket). A bucket is a
file of its own, memory-mapped when a slice first needs it and closed as soon as no later slice does.
So only the buckets in use are mapped, and the pages of a closed bucket go straight back to the
kernel, which hands them out again for the cache being written. (Fresh pages are the dear part on a
virtual machine: about 2 ms per MiB here, against 0.2 ms to reuse freed ones.) Arrow's ``take`` does
the scattered copy out of a mapped bucket in C++.

The files have no name (``tempfile.TemporaryFile``: unlinked at creation on Linux), so a crash or kill
leaves no note text behind on disk.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from clinpred.data.memory import map_file

SEGMENT_BYTES = 32 << 20  # a partition starts a new bucket after this much text...
# ...and twice as much for every BUCKETS_PER_DOUBLING buckets already made: each bucket is an open
# file, and 100 GB of text then takes about 650, under the usual limit of 1,024 (full NOTEEVENTS: ~160).
BUCKETS_PER_DOUBLING = 128


class _Bucket:
    """One spill file: the text of some rows of one partition, end to end, in the order appended."""

    def __init__(self, directory: Path | None) -> None:
        self.file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by close())
        self.size = 0
        self.rows = 0
        self.lengths: list[np.ndarray] = []
        self._mapping = None
        self._text: pa.LargeStringArray | None = None

    def write(self, lengths: np.ndarray, data: memoryview) -> np.ndarray:
        """Append strings of these byte lengths laid end to end in ``data``; returns their ranks here."""
        self.file.write(data)
        ranks = np.arange(self.rows, self.rows + len(lengths))
        self.rows += len(lengths)
        self.size += len(data)
        self.lengths.append(lengths)
        return ranks

    def text(self) -> pa.LargeStringArray:
        """Every string of the bucket, a view of the file mapped (on first use) as it is."""
        if self._text is None:
            offsets = offsets_of(np.concatenate(self.lengths))
            self._mapping = map_file(self.file, populate=True) if self.size else None
            data = pa.py_buffer(self._mapping if self._mapping is not None else b"")
            self._text = pa.LargeStringArray.from_buffers(self.rows, pa.py_buffer(offsets), data)
        return self._text

    def close(self) -> None:
        self._text = None  # the only view of the mapping: slices were copied out of it
        if self._mapping is not None:
            with contextlib.suppress(BufferError):  # a view still alive: unmapped when it goes
                self._mapping.close()
            self._mapping = None
        self.file.close()


class TextSpill:
    """Note text on disk in buckets, to be read back in any order."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._buckets: list[_Bucket] = []
        self._filling: dict[int, int] = {}  # partition -> the bucket it is filling
        self._row_bucket: list[np.ndarray] = []
        self._row_rank: list[np.ndarray] = []

    def __enter__(self) -> TextSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        for bucket in self._buckets:
            bucket.close()

    @property
    def where(self) -> str:
        """The folder the spill files are written to (for a message when it is full)."""
        return str(self._directory) if self._directory is not None else tempfile.gettempdir()

    @property
    def open_buckets(self) -> int:
        """How many bucket files are still open (each is closed after the last slice that needs it)."""
        return sum(not b.file.closed for b in self._buckets)

    def append(self, text: pa.Array | pa.ChunkedArray, partition: np.ndarray | None = None) -> None:
        """Append a column of strings (string or large_string); row i goes to ``partition[i]`` (0 if None)."""
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks() if text.num_chunks != 1 else text.chunk(0)
        n = len(text)
        if n == 0:
            return
        if partition is None or np.all(partition == partition[0]):
            groups = [(0 if partition is None else int(partition[0]), np.arange(n))]
            grouped = text
        else:  # one copy of the block, its rows grouped by partition, each group written in one piece
            by_part = np.argsort(partition, kind="stable")
            bounds = np.flatnonzero(np.diff(partition[by_part])) + 1
            groups = [(int(partition[rows[0]]), rows) for rows in np.split(by_part, bounds)]
            grouped = text.take(pa.array(by_part))
        offsets, data = layout(grouped)
        row_bucket = np.empty(n, dtype=np.int32)
        row_rank = np.empty(n, dtype=np.int64)
        start = 0
        for part, rows in groups:
            stop = start + len(rows)
            k = self._bucket_for(part)
            lo, hi = int(offsets[start] - offsets[0]), int(offsets[stop] - offsets[0])
            row_rank[rows] = self._buckets[k].write(np.diff(offsets[start : stop + 1]), data[lo:hi])
            row_bucket[rows] = k
            start = stop
        self._row_bucket.append(row_bucket)
        self._row_rank.append(row_rank)

    def _bucket_for(self, part: int) -> int:
        k = self._filling.get(part)
        if k is None or self._buckets[k].size >= SEGMENT_BYTES << (
            len(self._buckets) // BUCKETS_PER_DOUBLING
        ):
            self._buckets.append(_Bucket(self._directory))
            k = self._filling[part] = len(self._buckets) - 1
        return k

    def gather(self, order: np.ndarray, rows_per_slice: int) -> Iterator[pa.LargeStringArray]:
        """The text of rows ``order[0], order[1], ...``, in slices of ``rows_per_slice`` rows.

        Each slice is a copy of its own. A bucket is mapped when a slice first needs it and closed
        after the last slice that does.
        """
        empty = np.zeros(0, dtype=np.int64)
        bucket = np.concatenate([empty.astype(np.int32), *self._row_bucket])[order]
        rank = np.concatenate([empty, *self._row_rank])[order]
        last_use = np.full(len(self._buckets), -1, dtype=np.int64)
        np.maximum.at(last_use, bucket, np.arange(len(order)) // rows_per_slice)
        for k, start in enumerate(range(0, len(order), rows_per_slice)):
            b, r = bucket[start : start + rows_per_slice], rank[start : start + rows_per_slice]
            used = np.unique(b)
            if len(used) == 1:
                yield self._buckets[used[0]].text().take(pa.array(r))
            else:  # the rows of each bucket taken together, then put back in order
                where = [np.flatnonzero(b == u) for u in used]
                pieces = [
                    self._buckets[u].text().take(pa.array(r[w])) for u, w in zip(used, where, strict=True)
                ]
                back = np.argsort(np.concatenate(where), kind="stable")
                yield pa.concat_arrays(pieces).take(pa.array(back))
            for u in used[last_use[used] == k]:
                self._buckets[u].close()


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """Arrow offsets (int64, n + 1) of strings with these byte lengths laid end to end."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def layout(strings: pa.Array) -> tuple[np.ndarray, memoryview]:
    """A string array's offsets (int64) and the bytes they index, without copying the bytes."""
    if len(strings) == 0:
        return np.zeros(1, dtype=np.int64), memoryview(b"")
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(strings.buffers()[1], dtype=width)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    offsets = offsets.astype(np.int64)
    data = strings.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return offsets, memoryview(b"")
    return offsets, memoryview(data)[int(offsets[0]) : int(offsets[-1])]
