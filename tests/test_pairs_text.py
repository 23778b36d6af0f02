"""Pair mining reads note text from the cohort's Arrow chunks by position: the same pairs as the text
itself would give, whatever the chunks."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_finetune_pairs import NOTES, as_tuples, cohort_from

from clinpred.data.note_texts import take_rows
from clinpred.finetune import PairConfig, mine_pairs
from clinpred.finetune.pairs import fine_tuning_cohort, usable_notes


def chunked(values: list[str | None], cuts: list[int]) -> pa.ChunkedArray:
    return pa.chunked_array(
        [pa.array(values[a:b], type=pa.large_string()) for a, b in pairwise(cuts)],
        type=pa.large_string(),
    )


def test_take_rows_reads_across_chunks_in_the_order_asked_and_refuses_a_row_past_the_end():
    values = [f"n{i}" for i in range(10)]
    array = chunked(values, [0, 3, 3, 7, 10])  # an empty chunk in the middle
    rows = np.array([9, 0, 3, 4, 2, 7, 6, 6])
    assert take_rows(array, rows).to_pylist() == [values[i] for i in rows]
    assert take_rows(array, np.array([], dtype=np.int64)).to_pylist() == []
    with pytest.raises(IndexError):
        take_rows(array, np.array([10]))


def with_chunked_text(cohort, cuts: list[int]):
    """The cohort with its note text split into Arrow chunks at ``cuts`` (as the note cache holds it)."""
    from dataclasses import replace

    text = cohort.notes["text"]
    array = chunked([None if pd.isna(v) else v for v in text.tolist()], cuts)
    notes = cohort.notes.assign(text=pd.Series(pd.array(array, dtype=text.dtype), index=text.index))
    return replace(cohort, notes=notes)


def test_pairs_from_chunked_text_are_the_hand_counted_ones():
    # rows in patient-time order: p1 n1 n2 n3 n4 | p2 n1, '   ', n2 | p3 only | p4 n1 n2 (+ an em space)
    notes = [*NOTES, (4, 3.0, "Nursing", "\u2003")]  # whitespace str.strip removes: no text
    cohort = with_chunked_text(cohort_from(notes), [0, 2, 5, 5, 9, 11])
    assert cohort.notes["text"].array._pa_array.num_chunks == 5
    pairs, counts = mine_pairs(cohort, [1, 2, 3, 4], PairConfig())
    assert as_tuples(pairs) == [
        ("p1 n1", "p1 n2", 1),
        ("p1 n2", "p1 n3", 1),
        ("p1 n3", "p1 n4", 1),
        ("p2 n1", "p2 n2", 2),
        ("p4 n1", "p4 n2", 4),
    ]
    assert counts["notes"] == 11 and counts["notes_with_text_and_time"] == 9  # two without text
    assert counts["pairs"] == 5 and counts["patients_with_pairs"] == 3
    kept, _ = usable_notes(cohort, [1, 2, 3, 4], PairConfig())
    expected = ["p1 n1", "p1 n2", "p1 n3", "p1 n4", "p2 n1", "p2 n2", "p3 only", "p4 n1", "p4 n2"]
    assert kept["text"].tolist() == expected


def test_chunked_and_single_chunk_text_give_the_same_pairs_with_style_negatives():
    config = PairConfig(negatives="style_matched", symmetric=True, seed=3)
    whole, whole_counts = mine_pairs(cohort_from(NOTES), [1, 2, 4], config)
    split, split_counts = mine_pairs(
        with_chunked_text(cohort_from(NOTES), [0, 1, 4, 8, 10]), [1, 2, 4], config
    )
    pd.testing.assert_frame_equal(whole, split)
    assert whole_counts == split_counts
    # 5 consecutive pairs (p1: 3, p2: 1, p4: 1) and their reversed copies; the two whose positive is
    # p1's Radiology note have no other patient's Radiology note to draw, and are dropped
    assert whole_counts["negatives_missing"] == 2 and len(whole) == 2 * 5 - 2
    assert "p1 n2" not in set(whole["positive"])
    assert (whole["negative_group"] != whole["group"]).all()


def test_fine_tuning_cohort_masks_only_the_patients_asked_for_one_chunk_at_a_time():
    notes = [
        (1, 0.0, "Nursing", "seen [**2150-1-2**] by [**First Name8 (NamePattern2) 42**]"),
        (1, 5.0, "Nursing", "68 yo F, stable"),
        (2, 1.0, "Nursing", "p2 on [**2150-1-3**]"),  # not asked for: dropped, not masked
        (3, 2.0, "Nursing", "p3 at [**Hospital 12**]"),
        (3, 3.0, "Nursing", None),
    ]
    cohort = with_chunked_text(cohort_from(notes), [0, 1, 3, 3, 5])
    sub = fine_tuning_cohort(cohort, [1, 3], "mask", "mask")
    assert sub.notes["subject_id"].tolist() == [1, 1, 3, 3]
    assert sub.notes["text"].tolist()[:3] == ["seen [DATE] by [NAME]", "[AGE] F, stable", "p3 at [HOSPITAL]"]
    assert sub.notes["text"].isna().tolist() == [False, False, False, True]
    assert list(sub.notes.columns) == list(cohort.notes.columns)
    assert sub.notes["text"].dtype == cohort.notes["text"].dtype
    assert sub.patients["subject_id"].tolist() == [1, 3]
