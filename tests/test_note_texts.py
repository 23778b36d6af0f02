"""NoteTexts: the note text read a block at a time, equal to the column it views, with the PHI setting
applied exactly as the whole-column masking does."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow as pa

from clinpred.data.note_texts import BLOCK, NoteTexts
from clinpred.data.phi import mask_placeholders

WORDS = ["seen [**2151-7-16**] by Dr. [**Last Name (NamePattern1) 123**]", "no placeholder", "", "x"]


def _column(n: int) -> pd.Series:
    """n notes in three Arrow chunks (as the note cache returns them), one of them null."""
    texts = [f"{i}: {WORDS[i % len(WORDS)]}" for i in range(n)]
    texts[7] = None
    cut = [0, n // 3, n // 3, 2 * n // 3, n]  # an empty chunk in the middle
    chunks = [pa.array(texts[a:b], type=pa.large_string()) for a, b in pairwise(cut)]
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(chunks)))


def test_a_view_reads_every_note_as_the_column_holds_it():
    column = _column(BLOCK + 100)  # more than one block
    expected = column.fillna("").tolist()
    texts = NoteTexts(column)
    assert len(texts) == len(expected) and list(texts) == expected
    assert (
        texts[7] == ""
        and texts[-1] == expected[-1]
        and texts[BLOCK - 2 : BLOCK + 3] == expected[BLOCK - 2 : BLOCK + 3]
    )
    assert texts[::700] == expected[::700]
    plain = pd.Series(expected, dtype=object)  # a hand-built frame's column
    assert list(NoteTexts(plain)) == expected


def test_rows_subsets_and_masking_match_the_whole_column_masked():
    column = _column(300)
    masked = mask_placeholders(column.fillna("")).tolist()
    rows = np.array([299, 4, 7, 150, 0])
    texts = NoteTexts(column, rows, phi="mask")
    assert list(texts) == [masked[r] for r in rows]
    assert texts[1] == masked[4] and "[DATE]" in texts[1] and "[**" not in "".join(texts)
    assert list(texts.subset([4, 0])) == [masked[0], masked[299]]
    assert list(NoteTexts(column, rows, phi="keep")) == [column.fillna("")[r] for r in rows]
