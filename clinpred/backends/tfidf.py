"""The lexical floor: TF-IDF, truncated SVD, L2 normalisation.

Every clinical embedding result should be read against this baseline. It learns from text, so the
pipeline fits it on the fine-tuning patients' notes only (DESIGN.md, rules 1-2), and its fingerprint
carries a hash of the fitted state: a refit on other text never reuses cached vectors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinpred.backends.base import Role, l2_normalise
from clinpred.bounds import all_means_none
from clinpred.errors import InputError


class TfidfSettings(BaseModel):
    """Every setting of the TF-IDF baseline; all enter the fingerprint."""

    model_config = ConfigDict(extra="forbid")

    n_components: int = Field(256, gt=0, description="SVD dimensions (fewer if the vocabulary is smaller)")
    min_df: int = Field(2, ge=1, description="ignore terms found in fewer notes")
    max_features: int | None = Field(100_000, gt=0, description="keep the most frequent terms")
    sublinear_tf: bool = True
    ngram_max: int = Field(1, ge=1, le=3, description="word n-grams from 1 to this")
    fit_max_notes: int | None = Field(
        200_000,
        gt=1,
        description="above this many fine-tuning notes, fit on a seeded uniform sample of this many "
        "(MIMIC-III has about 900,000: the vocabulary, idf and SVD settle long before, and the fit's "
        "sparse matrix would take about 4 GB); all: every note",
    )
    seed: int = 0

    @field_validator("fit_max_notes", mode="before")
    @classmethod
    def _every_note(cls, value: Any) -> Any:
        """``all`` (or ``none``/``null``, as a flag or TOML cannot write None): fit on every note."""
        return all_means_none(value)


class NotFittedError(RuntimeError):
    """``embed``/``fingerprint`` before ``fit``: a pipeline bug, not a user's mistake."""


class TfidfBackend:
    """TF-IDF + truncated SVD; call ``fit(texts)`` with fine-tuning patients' notes before embedding."""

    name = "tfidf"
    sends_text_off_machine = False

    def __init__(self, **settings: Any) -> None:
        try:
            self.settings = TfidfSettings(**settings)
        except ValidationError as exc:
            from clinpred.backends.registry import describe_validation_error

            raise InputError(describe_validation_error("tfidf", exc)) from None
        self._vectorizer: Any = None
        self._svd: Any = None
        self._state_hash: str | None = None
        self.n_fit_texts = self.n_available_texts = 0

    def fit(self, texts: Sequence[str]) -> TfidfBackend:
        """Learn the vocabulary and the SVD from these texts only (the fine-tuning patients' notes).

        ``texts`` is read once, in order, and not copied (a NoteTexts view stays a view), except above
        ``fit_max_notes``, where only the sample's strings are made.
        """
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        s = self.settings
        self.n_available_texts = len(texts)
        if s.fit_max_notes is not None and len(texts) > s.fit_max_notes:
            rows = np.sort(np.random.default_rng(s.seed).choice(len(texts), s.fit_max_notes, replace=False))
            texts = texts.subset(rows) if hasattr(texts, "subset") else [texts[int(i)] for i in rows]
        vectorizer = TfidfVectorizer(
            sublinear_tf=s.sublinear_tf,
            min_df=min(s.min_df, max(len(texts), 1)),
            max_features=s.max_features,
            ngram_range=(1, s.ngram_max),
            dtype=np.float32,
        )
        try:
            matrix = vectorizer.fit_transform(texts)
        except ValueError as exc:  # empty vocabulary: no texts, or only stop words / empty strings
            raise InputError(f"tfidf cannot be fitted on these {len(texts)} texts: {exc}") from None
        n_components = max(1, min(s.n_components, matrix.shape[1] - 1, matrix.shape[0] - 1))
        svd = TruncatedSVD(n_components=n_components, random_state=s.seed)
        svd.fit(matrix)
        self._vectorizer, self._svd, self.n_fit_texts = vectorizer, svd, len(texts)
        digest = hashlib.sha256()
        digest.update(json.dumps(sorted((t, int(i)) for t, i in vectorizer.vocabulary_.items())).encode())
        digest.update(np.ascontiguousarray(vectorizer.idf_, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(svd.components_, dtype=np.float64).tobytes())
        self._state_hash = digest.hexdigest()
        return self

    def _check_fitted(self) -> None:
        if self._state_hash is None:
            raise NotFittedError(
                "the tfidf backend is not fitted: call fit(texts) with the fine-tuning patients' notes first"
            )

    @property
    def dimension(self) -> int:
        """Length of the vectors (the SVD's components, at most n_components)."""
        self._check_fitted()
        return int(self._svd.n_components)

    def fingerprint(self) -> str:
        """Settings + a hash of the fitted vocabulary, idf weights and SVD components."""
        self._check_fitted()
        parts = {
            "kind": "tfidf",
            **self.settings.model_dump(),
            "dim": self.dimension,
            "state": self._state_hash,
        }
        return json.dumps(parts, sort_keys=True, separators=(",", ":"))

    def embed(self, texts: Sequence[str], *, role: Role = "document") -> np.ndarray:
        """float32 unit rows (zero rows for texts with no known term); the role makes no difference."""
        self._check_fitted()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        reduced = self._svd.transform(self._vectorizer.transform(texts))
        return l2_normalise(reduced)

    def describe(self) -> dict[str, Any]:
        """Settings, fitted size and library version, recorded with every result."""
        import sklearn

        self._check_fitted()
        return {
            "backend": self.name,
            "dimension": self.dimension,
            "vocabulary": len(self._vectorizer.vocabulary_),
            "fitted_on_texts": self.n_fit_texts,
            "fit_sample": None
            if self.n_fit_texts == self.n_available_texts
            else f"a seeded uniform sample of {self.n_fit_texts:,} of {self.n_available_texts:,} fine-tuning notes",
            "state": self._state_hash,
            "scikit_learn": sklearn.__version__,
            "settings": self.settings.model_dump(),
        }


def tfidf_status() -> tuple[bool, str]:
    """Always available: scikit-learn is a core dependency."""
    return True, "lexical baseline, fitted on the fine-tuning patients' notes"
