"""Putting notes into patient/time order without holding their text twice.

A note file is not in patient order (MIMIC-III's NOTEEVENTS is in ROW_ID order), and sorting it in
memory holds the parsed text and its sorted copy at once: twice the text, about 8 GB for full
NOTEEVENTS. Instead, the text of each parsed block is appended to an unnamed temporary file as it is
parsed, and only the small columns stay in memory to be sorted. The text then comes back one slice
of the sorted output at a time:

- a slice whose notes lie close together in the file (a file already in patient order, or long runs
  of one) is read straight from it and put in order;
- the notes of the other slices are first regrouped, in one sequential pass over the file, into a
  second file where each slice's notes lie together; each such slice is then read from there.

Peak memory is the sorted text plus a few reused buffers of a slice or a chunk, whatever the order of
the file. (A memory map would save the reads, but the kernel maps whole large folios around a page
fault: gathering 250 scattered notes through one mapped ~300 MB, so a shuffled file was held twice.)

The file has no name (``tempfile.TemporaryFile``: unlinked at creation on Linux), so a crash or kill
leaves no note text behind on disk.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from clinpred.data.memory import return_freed_memory
from clinpred.data.text_buffer import TextBuffer, layout, offsets_of, read_fully

CHUNK_BYTES = 8 << 20  # read at a time when regrouping
NEAR = 2  # a slice is read straight from the file when its notes span <= NEAR x their bytes (or a chunk)


class TextSpill:
    """Note text in source order on disk, to be read back in any order."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by __exit__)
        self._lengths: list[np.ndarray] = []

    def __enter__(self) -> TextSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def __len__(self) -> int:
        return sum(len(a) for a in self._lengths)

    def append(self, text: pa.Array | pa.ChunkedArray) -> None:
        """Append one column of strings (string or large_string), copying only its bytes."""
        for chunk in text.chunks if isinstance(text, pa.ChunkedArray) else [text]:
            offsets, data = layout(chunk)
            self._file.write(data)
            self._lengths.append(np.diff(offsets))

    def gather(self, order: np.ndarray, rows_per_slice: int) -> Iterator[pa.LargeStringArray]:
        """The text of rows ``order[0], order[1], ...``, in slices of ``rows_per_slice`` rows.

        All slices are views of one buffer of exactly the text's size (``TextBuffer``).
        """
        self._file.flush()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        offsets = offsets_of(lengths)
        slices = [order[i : i + rows_per_slice] for i in range(0, len(order), rows_per_slice)]
        far = [
            k
            for k, rows in enumerate(slices)
            if offsets[rows.max() + 1] - offsets[rows.min()] > max(NEAR * lengths[rows].sum(), CHUNK_BYTES)
        ]
        # with slices to regroup, the buffer's pages are touched on another core meanwhile
        out = TextBuffer(int(offsets[-1]), prefault=bool(far))
        scratch = _Scratch()
        with tempfile.TemporaryFile(dir=self._directory) if far else contextlib.nullcontext() as second:
            regrouped = self._regroup(second, far, order, rows_per_slice, offsets, lengths, scratch)
            for k, rows in enumerate(slices):
                lo, hi = int(rows.min()), int(rows.max()) + 1
                if k in regrouped:
                    start, dest = regrouped.pop(k)
                    lengths_there = lengths[order[dest]]
                    data = scratch.read(second, start, int(lengths_there.sum()))
                    there = _strings(lengths_there, data)
                    yield out.place(there.take(pa.array(np.argsort(dest, kind="stable"))))
                elif hi - lo == len(rows) and np.all(np.diff(rows) == 1):  # already in order
                    yield out.read(self._file, int(offsets[lo]), lengths[lo:hi])
                else:
                    data = scratch.read(self._file, int(offsets[lo]), int(offsets[hi] - offsets[lo]))
                    yield out.place(_strings(lengths[lo:hi], data).take(pa.array(rows - lo)))

    def _regroup(
        self,
        second: object,
        far: Sequence[int],
        order: np.ndarray,
        rows_per_slice: int,
        offsets: np.ndarray,
        lengths: np.ndarray,
        scratch: _Scratch,
    ) -> dict[int, tuple[int, np.ndarray]]:
        """Copy the notes of the ``far`` slices into ``second``, each slice's together, in one pass.

        Returns, per slice, where its notes start in ``second`` and their output rows in file order.
        """
        if not far:
            return {}
        n = len(lengths)
        destination = np.empty(n, dtype=np.int64)
        destination[order] = np.arange(n)
        is_far = np.zeros(-(-n // rows_per_slice), dtype=bool)
        is_far[list(far)] = True
        sizes = {k: int(lengths[order[k * rows_per_slice : (k + 1) * rows_per_slice]].sum()) for k in far}
        starts = dict(zip(far, np.cumsum([0, *(sizes[k] for k in far)])[:-1].tolist(), strict=True))
        cursor = dict(starts)
        placed: dict[int, list[np.ndarray]] = {k: [] for k in far}
        first = 0
        while first < n:
            last = max(first + 1, int(np.searchsorted(offsets, offsets[first] + CHUNK_BYTES, "right")) - 1)
            dest = destination[first:last]
            rows = np.flatnonzero(is_far[dest // rows_per_slice])
            if len(rows):
                rows = rows[np.argsort(dest[rows], kind="stable")]
                data = scratch.read(self._file, int(offsets[first]), int(offsets[last] - offsets[first]))
                chunk = _strings(lengths[first:last], data)
                owner = dest[rows] // rows_per_slice
                bounds = np.flatnonzero(np.diff(owner)) + 1
                for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(rows)], strict=True):
                    k = int(owner[lo])
                    _, piece = layout(chunk.take(pa.array(rows[lo:hi])))
                    second.seek(cursor[k])
                    second.write(piece)
                    cursor[k] += len(piece)
                    placed[k].append(dest[rows[lo:hi]])
            first = last
        second.flush()
        return_freed_memory()  # the pieces: the sorted text is about to fill its buffer
        return {k: (starts[k], np.concatenate(placed[k])) for k in far}


class _Scratch:
    """One buffer reused for every read, so that its pages are touched once, not once per read."""

    def __init__(self) -> None:
        self._buffer = np.empty(0, dtype=np.uint8)

    def read(self, file: object, start: int, size: int) -> np.ndarray:
        if size > len(self._buffer):
            self._buffer = np.empty(max(size, 2 * len(self._buffer)), dtype=np.uint8)
        read_fully(file, start, memoryview(self._buffer)[:size])
        return self._buffer[:size]


def _strings(lengths: np.ndarray, data: np.ndarray) -> pa.LargeStringArray:
    """Strings of the given byte lengths laid end to end in ``data`` (no copy)."""
    return pa.LargeStringArray.from_buffers(
        len(lengths), pa.py_buffer(offsets_of(lengths)), pa.py_buffer(data)
    )
