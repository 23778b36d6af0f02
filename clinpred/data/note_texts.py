"""Note text as a sequence that makes Python strings only for the notes being read.

At MIMIC-III's size the evaluation notes' text is about 1.2 GB and the fine-tuning notes' 1.1 GB; a
``list`` of them as Python strings, or a masked copy of the fine-tuning notes made up front, adds as
much again beside the column they came from. Embedding and fitting read the notes a block at a time,
so a view is enough: the cohort's Arrow column stays the only copy, a block's strings (with the
PHI-placeholder setting applied to that block alone) are made as it is read and freed after.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import overload

import numpy as np
import pandas as pd
import pyarrow as pa

from clinpred.data.cohort import arrow_chunks
from clinpred.data.memory import release_mapped_pages
from clinpred.data.phi import PhiMode, placeholder_replacements, replace_in_arrow

BLOCK = 2048  # notes read at a time when iterating
RELEASE_EVERY = 64  # blocks (about 130,000 notes, 150 MB of MIMIC text) between releases of read pages


def take_rows(array: pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """``array.take(rows)`` from the chunks that hold the rows, one run of same-chunk rows at a time.

    pyarrow's ``ChunkedArray.take`` joins every chunk into one array before taking (measured with
    pyarrow 26: a copy of the whole column per call, ~0.1 s per 0.5 GB), which a block-at-a-time read
    would pay once per block.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if array.num_chunks == 1 or len(rows) == 0:
        return array.take(pa.array(rows))
    lengths = np.array([len(chunk) for chunk in array.iterchunks()], dtype=np.int64)
    ends = np.cumsum(lengths)
    which = np.searchsorted(ends, rows, side="right")
    if rows.min() < 0 or which.max() >= array.num_chunks:
        raise IndexError("note index out of range")
    starts = ends - lengths
    bounds = np.r_[0, np.flatnonzero(np.diff(which)) + 1, len(rows)]
    pieces = [
        array.chunk(int(which[a])).take(pa.array(rows[a:b] - starts[which[a]])) for a, b in pairwise(bounds)
    ]
    return pa.chunked_array(pieces, type=array.type)


class NoteTexts(Sequence[str]):
    """A read-only ``Sequence[str]`` over a text column (Arrow-backed or not); missing text reads as ''.

    ``rows``: only these rows of the column, in this order (the fine-tuning patients' notes of the whole
    cohort's column, without copying their text out of it). ``phi``: the PHI-placeholder setting,
    applied to each block as it is read (``keep``: the text as written).
    """

    def __init__(self, column: pd.Series, rows: np.ndarray | None = None, phi: PhiMode = "keep") -> None:
        array = arrow_chunks(column)
        if array is None:  # a plain object column (a hand-built frame): Arrow copies it once
            array = pa.chunked_array([pa.array(column.astype(object).tolist(), type=pa.large_string())])
        self._array: pa.ChunkedArray = array.fill_null("") if array.null_count else array
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._replacements = placeholder_replacements(phi)
        self._phi = phi

    def subset(self, positions: Sequence[int] | np.ndarray) -> NoteTexts:
        """These positions of this sequence, as another view (a sample to fit on, say)."""
        view = NoteTexts.__new__(NoteTexts)
        view._array, view._replacements, view._phi = self._array, self._replacements, self._phi
        positions = np.asarray(positions, dtype=np.int64)
        view._rows = positions if self._rows is None else self._rows[positions]
        return view

    def __len__(self) -> int:
        return len(self._array) if self._rows is None else len(self._rows)

    def _read(self, start: int, stop: int) -> list[str]:
        """Positions start..stop as strings, the setting applied to this block only."""
        if self._rows is None:
            block = self._array.slice(start, stop - start)
        else:
            block = take_rows(self._array, self._rows[start:stop])
        if self._replacements:
            block = replace_in_arrow(block, self._replacements)
        return block.to_pylist()

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._read(start, max(start, stop))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("note index out of range")
        return self._read(index, index + 1)[0]

    def __iter__(self) -> Iterator[str]:
        for i, start in enumerate(range(0, len(self), BLOCK)):
            if i and i % RELEASE_EVERY == 0:
                release_mapped_pages()  # a pass over all the text: its pages need not all stay resident
            yield from self._read(start, min(start + BLOCK, len(self)))
