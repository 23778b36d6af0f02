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


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
