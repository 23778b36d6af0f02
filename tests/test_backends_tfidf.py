"""The TF-IDF baseline: fitted only on the text it is given, with the fit in its fingerprint."""

from __future__ import annotations

import numpy as np
import pytest

from clinpred.backends import CachedBackend, EmbeddingCache, create_backend
from clinpred.backends.tfidf import NotFittedError
from clinpred.config import parse_backend

FINETUNE_NOTES = [
    f"patient {i} admitted with {w} and fever, treated with antibiotics, discharged on day {i % 9}"
    for i, w in enumerate(["pneumonia", "sepsis", "cellulitis", "pyelonephritis", "bronchitis"] * 8)
]
OTHER_NOTES = [
    f"echocardiogram {i}: ejection fraction {30 + i}% with {w} regurgitation"
    for i, w in enumerate(["mitral", "aortic", "tricuspid", "pulmonic"] * 10)
]


def test_embed_before_fit_is_a_clear_error():
    backend = create_backend("tfidf", {})
    with pytest.raises(NotFittedError, match="fit"):
        backend.embed(["anything"])
    with pytest.raises(NotFittedError):
        backend.fingerprint()


def test_fit_only_on_the_given_text():
    backend = create_backend("tfidf", {"n_components": 8, "min_df": 1}).fit(FINETUNE_NOTES)
    vocabulary = set(backend._vectorizer.vocabulary_)
    assert "antibiotics" in vocabulary and "echocardiogram" not in vocabulary
    vectors = backend.embed([*FINETUNE_NOTES[:3], "echocardiogram regurgitation"], role="query")
    assert vectors.shape == (4, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-5)
    assert not vectors[3].any()  # words never seen in the fit text carry no signal
    assert backend.describe()["fitted_on_texts"] == len(FINETUNE_NOTES)


def test_fingerprint_follows_the_fitted_state(tmp_path):
    a = create_backend("tfidf", {"n_components": 8, "min_df": 1}).fit(FINETUNE_NOTES)
    again = create_backend("tfidf", {"n_components": 8, "min_df": 1}).fit(FINETUNE_NOTES)
    other = create_backend("tfidf", {"n_components": 8, "min_df": 1}).fit(OTHER_NOTES)
    assert a.fingerprint() == again.fingerprint()
    assert a.fingerprint() != other.fingerprint()
    # through the cache: a refit on other text never reuses vectors cached for the first fit
    backend = create_backend("tfidf", {"n_components": 8, "min_df": 1}).fit(FINETUNE_NOTES)
    cached = CachedBackend(backend, EmbeddingCache(tmp_path), progress=False)
    first = cached.embed(OTHER_NOTES[:5])
    assert cached.last_embedded == 5
    cached.fit(OTHER_NOTES)
    second = cached.embed(OTHER_NOTES[:5])
    assert cached.last_embedded == 5
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, other.embed(OTHER_NOTES[:5]), atol=1e-6)


def test_small_corpora_get_fewer_dimensions():
    backend = create_backend("tfidf", {"n_components": 256, "min_df": 1}).fit(FINETUNE_NOTES[:6])
    assert backend.dimension <= 5
    assert backend.embed(["fever"]).shape == (1, backend.dimension)


def test_above_fit_max_notes_a_seeded_sample_is_fitted_and_said():
    """A cap below the notes given: exactly that many are fitted on, the same ones for the same seed,
    and describe() says so; at or below the cap nothing is sampled."""
    notes = FINETUNE_NOTES + OTHER_NOTES  # 80
    capped = create_backend("tfidf", {"n_components": 4, "min_df": 1, "fit_max_notes": 30}).fit(notes)
    again = create_backend("tfidf", {"n_components": 4, "min_df": 1, "fit_max_notes": 30}).fit(notes)
    assert capped.n_fit_texts == 30 and capped.fingerprint() == again.fingerprint()
    assert capped.describe()["fit_sample"] == "a seeded uniform sample of 30 of 80 fine-tuning notes"
    other_seed = create_backend("tfidf", {"n_components": 4, "min_df": 1, "fit_max_notes": 30, "seed": 1})
    assert other_seed.fit(notes)._state_hash != capped._state_hash
    whole = create_backend("tfidf", {"n_components": 4, "min_df": 1, "fit_max_notes": 80}).fit(notes)
    assert whole.n_fit_texts == 80 and whole.describe()["fit_sample"] is None
    unlimited = create_backend("tfidf", {"n_components": 4, "min_df": 1, "fit_max_notes": None}).fit(notes)
    assert unlimited._state_hash == whole._state_hash  # the same fit: every note, in order
    spec = parse_backend("tfidf:fit_max_notes=all,n_components=4,min_df=1")  # as a user writes it
    assert create_backend("tfidf", spec.settings).fit(notes)._state_hash == whole._state_hash
