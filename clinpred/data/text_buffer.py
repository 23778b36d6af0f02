"""One exact-size buffer for a column of note text, filled piece by piece.

The sorted text of a note file is built here rather than by Arrow's allocator: one anonymous memory
mapping of ordinary 4 KiB pages, whose size is known in advance, so that memory freed by temporaries
never adds to it. (Arrow's default allocator asks for transparent huge pages, which took three times
as long to fault in on a machine that compacts memory to make them.) Every array handed out is a
zero-copy view of the mapping, which lives as long as any of them.
"""

from __future__ import annotations

import mmap
import threading

import numpy as np
import pyarrow as pa


class TextBuffer:
    """Room for ``size`` bytes of text; ``place`` and ``read`` fill it from the front.

    With ``prefault``, every page is touched on a background thread from the start, for callers that
    have other work to do before they fill it.
    """

    def __init__(self, size: int, *, prefault: bool = False) -> None:
        flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
        mapping = mmap.mmap(-1, max(size, 1), **({"flags": flags} if flags else {}))
        self._bytes = np.frombuffer(mapping, dtype=np.uint8)
        self._buffer = pa.py_buffer(mapping)
        self._cursor = 0
        self._faulting: threading.Thread | None = None
        if prefault:  # page faults cost ~0.5 ms per MiB: take them on another core (numpy frees the GIL)
            self._faulting = threading.Thread(target=self._bytes.fill, args=(0,), daemon=True)
            self._faulting.start()

    def place(self, text: pa.Array) -> pa.LargeStringArray:
        """A copy of ``text`` in the next free part of the buffer."""
        offsets, data = layout(text)
        view = self._claim(len(data))
        view[:] = np.frombuffer(data, dtype=np.uint8)
        return self._strings(offsets - offsets[0], len(data))

    def read(self, file: object, start: int, lengths: np.ndarray) -> pa.LargeStringArray:
        """Strings of ``lengths`` stored end to end in ``file`` from ``start``, read straight in."""
        size = int(lengths.sum())
        read_fully(file, start, memoryview(self._claim(size)))
        return self._strings(offsets_of(lengths), size)

    def _claim(self, size: int) -> np.ndarray:
        if self._faulting is not None:
            self._faulting.join()
            self._faulting = None
        view = self._bytes[self._cursor : self._cursor + size]
        if len(view) != size:
            raise ValueError("more text than the buffer was made for")
        self._cursor += size
        return view

    def _strings(self, offsets: np.ndarray, size: int) -> pa.LargeStringArray:
        data = self._buffer.slice(self._cursor - size, size)
        return pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), data)


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


def read_fully(file: object, start: int, view: memoryview) -> None:
    """Fill ``view`` from ``file`` at ``start``; a short file is an error, not a short read."""
    file.seek(start)
    done = 0
    while done < len(view):
        got = file.readinto(view[done:])
        if not got:
            raise OSError(f"{getattr(file, 'name', 'a file')} ended before the expected {len(view)} bytes")
        done += got
