"""Long notes as overlapping token windows, and a note's vector as the mean of its windows' vectors.

Real discharge summaries run to thousands of tokens; a model that truncates at 256 or 2048 tokens sees
only their beginning. ``chunk`` mode cuts each text into windows of the model's own tokens (with
overlap), embeds every window, and averages. Windows are cut at token boundaries but taken from the
original text by character offsets, so no text is rewritten by a decode round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clinpred.backends.base import l2_normalise


def window_starts(n_tokens: int, chunk_tokens: int, overlap: int) -> list[int]:
    """Start indices of windows of ``chunk_tokens`` tokens, each overlapping the last by ``overlap``."""
    if chunk_tokens <= 0 or not 0 <= overlap < chunk_tokens:
        raise ValueError("need chunk_tokens > 0 and 0 <= overlap < chunk_tokens")
    if n_tokens <= chunk_tokens:
        return [0]
    step = chunk_tokens - overlap
    starts = list(range(0, n_tokens - chunk_tokens, step))
    starts.append(n_tokens - chunk_tokens)  # the last window ends exactly at the last token
    return starts


def split_into_windows(
    texts: Sequence[str], tokenizer: Any, chunk_tokens: int, overlap: int
) -> tuple[list[str], np.ndarray]:
    """Every text's windows, in order, and for each window the index of the text it came from.

    Texts of at most ``chunk_tokens`` tokens stay whole (one window, the text unchanged), so chunk mode
    and truncate mode agree on them exactly. ``tokenizer`` is a Hugging Face fast tokenizer.
    """
    encoded = tokenizer(
        list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
    )
    pieces: list[str] = []
    owners: list[int] = []
    for index, (text, offsets) in enumerate(zip(texts, encoded["offset_mapping"], strict=True)):
        if len(offsets) <= chunk_tokens:
            pieces.append(text)
            owners.append(index)
            continue
        for start in window_starts(len(offsets), chunk_tokens, overlap):
            end = start + chunk_tokens
            pieces.append(text[offsets[start][0] : offsets[end - 1][1]])
            owners.append(index)
    return pieces, np.asarray(owners, dtype=np.int64)


def mean_of_windows(window_vectors: np.ndarray, owners: np.ndarray, n_texts: int) -> np.ndarray:
    """Each text's vector: the re-normalised mean of its (unit-length) window vectors."""
    window_vectors = l2_normalise(window_vectors)
    sums = np.zeros((n_texts, window_vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, owners, window_vectors)
    counts = np.bincount(owners, minlength=n_texts).astype(np.float64)[:, None]
    return l2_normalise(sums / np.maximum(counts, 1.0))
