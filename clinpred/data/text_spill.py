"""Putting notes into patient/time order without holding their text twice.

A note file is not in patient order (MIMIC-III's NOTEEVENTS is in ROW_ID order), and sorting it in
memory holds the parsed text and its sorted copy at once: twice the text, about 8 GB for full
NOTEEVENTS. Instead, the text of each parsed block is appended to an unnamed temporary file as it is
parsed, and only the small columns stay in memory to be sorted. The file is then memory-mapped as one
string array, and the sorted text is taken from it one slice at a time, each slice to be written out
(to the note cache) and freed before the next.

So the text is held once, and in the page cache's pages rather than anonymous memory: the kernel can
drop them and read them back under pressure, and Arrow's ``take`` does the scattered copy in C++,
whatever the file's order. (An earlier version read the spill back with ``readinto`` and regrouped
scattered slices through a second file: two more copies of the text, each in fresh pages, which on a
virtual machine cost more than the copying itself.)

The file has no name (``tempfile.TemporaryFile``: unlinked at creation on Linux), so a crash or kill
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


class TextSpill:
    """Note text in source order on disk, to be read back in any order."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by __exit__)
        self._lengths: list[np.ndarray] = []

    def __enter__(self) -> TextSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def append(self, text: pa.Array | pa.ChunkedArray) -> None:
        """Append one column of strings (string or large_string), copying only its bytes."""
        for chunk in text.chunks if isinstance(text, pa.ChunkedArray) else [text]:
            offsets, data = layout(chunk)
            self._file.write(data)
            self._lengths.append(np.diff(offsets))

    def gather(self, order: np.ndarray, rows_per_slice: int) -> Iterator[pa.LargeStringArray]:
        """The text of rows ``order[0], order[1], ...``, in slices of ``rows_per_slice`` rows.

        Each slice is a copy of its own; the file is mapped only while slices are being taken.
        """
        offsets = offsets_of(np.concatenate([np.zeros(0, dtype=np.int64), *self._lengths]))
        mapping = map_file(self._file, populate=True) if offsets[-1] else None
        data = pa.py_buffer(mapping if mapping is not None else b"")
        text = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), data)
        del data
        try:
            for start in range(0, len(order), rows_per_slice):
                yield text.take(pa.array(order[start : start + rows_per_slice]))
        finally:
            del text  # the only view of the mapping: every slice was copied out of it
            if mapping is not None:
                with contextlib.suppress(BufferError):  # a view still alive: unmapped when it goes
                    mapping.close()


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
