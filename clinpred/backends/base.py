"""The one interface every embedding backend meets (DESIGN.md, "The backend interface").

A backend sees lists of strings, never a Cohort or a patient. Besides the three required members, a
backend may offer these optional capabilities, which the pipeline discovers by duck typing:

- ``sends_text_off_machine: bool``: True for API backends (OpenAI). The pipeline refuses to give them
  credentialed (MIMIC) text unless the user passed ``--allow-external-api`` (DESIGN.md, rule 6).
- ``fit(texts)``: backends that learn from text (TF-IDF) are fitted on fine-tuning patients' notes
  only, never on evaluation notes; the fitted state enters the fingerprint.
- ``describe() -> dict``: model id, revision, versions and settings, recorded with every result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Role = Literal["document", "query"]


@runtime_checkable
class EmbeddingBackend(Protocol):
    """Turns texts into float32, L2-normalised rows; ``fingerprint()`` is the cache key."""

    name: str

    def fingerprint(self) -> str:
        """Model id + revision/hash + prompt + dimension + max length: what makes two vectors comparable."""
        ...

    def embed(self, texts: Sequence[str], *, role: Role = "document") -> np.ndarray:
        """float32 array of shape (len(texts), dim), each row of unit L2 norm."""
        ...


NORM_BLOCK_ROWS = 65_536  # rows squared at a time for the norms: 200 MB at 768-d, whatever the row count


def row_norms(vectors: np.ndarray) -> np.ndarray:
    """Each row's L2 norm, shape (n, 1): ``np.linalg.norm(vectors, axis=1, keepdims=True)`` to the bit,
    computed a block of rows at a time so that no squared copy of the whole array is made (3 GB for a
    million 768-d notes)."""
    norms = np.empty((len(vectors), 1), dtype=vectors.dtype)
    for start in range(0, len(vectors), NORM_BLOCK_ROWS):
        block = vectors[start : start + NORM_BLOCK_ROWS]
        norms[start : start + len(block)] = np.linalg.norm(block, axis=1, keepdims=True)
    return norms


def l2_normalise(vectors: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Rows scaled to unit length, as float32; zero rows stay zero. ``rows``: a boolean mask of the rows
    to keep (the subset is copied only when it drops some). One new array of the result's size is the
    only allocation: a subset is normalised in place, and the norms are computed in blocks."""
    vectors = np.asarray(vectors, dtype=np.float32)
    owned = False
    if rows is not None and not bool(np.all(rows)):
        vectors, owned = vectors[rows], True  # a copy already: scaled in place below
    norms = row_norms(vectors)
    out = vectors if owned else np.zeros_like(vectors)
    return np.divide(vectors, norms, out=out, where=norms > 0)
