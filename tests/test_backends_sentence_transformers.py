"""sentence-transformers backends with real models from disk: the bundled MiniLM and a tiny Gemma3."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from clinpred.backends import create_backend, l2_normalise
from clinpred.backends.chunking import split_into_windows, window_starts
from clinpred.backends.sentence_transformers_backend import GEMMA_DOCUMENT_PROMPT, GEMMA_QUERY_PROMPTS
from clinpred.errors import InputError
from tests.tiny_gemma import build_tiny_gemma

TEXTS = [
    "Patient admitted with chest pain; troponin negative, discharged home.",
    "CXR: no acute cardiopulmonary process.",
    "Sinus rhythm, rate 72.",
    "Nursing: pt resting comfortably, pain 2/10, tolerating diet.",
    "Echo: LVEF 35%, moderate mitral regurgitation.",
]


@pytest.fixture(scope="module")
def minilm(minilm_path: Path):
    return create_backend("sentence-transformers", {"model": str(minilm_path), "device": "cpu"})


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma(tmp_path_factory.mktemp("gemma"))


def test_minilm_matches_a_bare_sentence_transformer(minilm, minilm_path: Path):
    from sentence_transformers import SentenceTransformer

    vectors = minilm.embed(TEXTS)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    reference = SentenceTransformer(str(minilm_path), device="cpu").encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    described = minilm.describe()
    assert described["dimension"] == 384 and described["revision"].startswith("sha256:")
    assert described["sentence_transformers"] and described["transformers"]


def test_prompts_are_prepended_per_role(minilm, minilm_path: Path):
    prompted = create_backend(
        "sentence-transformers",
        {
            "model": str(minilm_path),
            "document_prompt": "passage: ",
            "query_prompt": "query: ",
            "device": "cpu",
        },
    )
    np.testing.assert_allclose(
        prompted.embed(TEXTS[:2]), minilm.embed(["passage: " + t for t in TEXTS[:2]]), atol=1e-5
    )
    np.testing.assert_allclose(
        prompted.embed(TEXTS[:2], role="query"), minilm.embed(["query: " + t for t in TEXTS[:2]]), atol=1e-5
    )
    assert prompted.fingerprint() != minilm.fingerprint()


def test_truncate_dim_renormalises(minilm, minilm_path: Path):
    short = create_backend("sentence-transformers", {"model": str(minilm_path), "truncate_dim": "64"})
    vectors = short.embed(TEXTS)
    assert vectors.shape == (5, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors, l2_normalise(minilm.embed(TEXTS)[:, :64]), atol=1e-5)
    assert short.fingerprint() != minilm.fingerprint()
    too_long = create_backend("sentence-transformers", {"model": str(minilm_path), "truncate_dim": "1000"})
    with pytest.raises(InputError, match="truncate_dim=1000 is larger than the model's dimension"):
        too_long.embed(TEXTS)


def test_int8_quantisation_is_close_to_float32_and_has_its_own_fingerprint(minilm, minilm_path: Path):
    int8 = create_backend("sentence-transformers", {"model": str(minilm_path), "quantize": "int8"})
    fast, exact = int8.embed(TEXTS), minilm.embed(TEXTS)
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, rtol=1e-5)
    cosine = (fast * exact).sum(axis=1)
    assert cosine.min() > 0.9 and not np.allclose(fast, exact, atol=1e-4)  # close, not exact
    assert '"quantize":"int8"' in int8.fingerprint() and "quantize" not in minilm.fingerprint()
    gpu = create_backend(
        "sentence-transformers", {"model": str(minilm_path), "quantize": "int8", "device": "cuda"}
    )
    with pytest.raises(InputError, match="quantize=int8 runs on the CPU only"):
        gpu.embed(TEXTS)


def test_batch_size_does_not_change_vectors(minilm_path: Path):
    one = create_backend("sentence-transformers", {"model": str(minilm_path), "batch_size": 1}).embed(TEXTS)
    many = create_backend("sentence-transformers", {"model": str(minilm_path), "batch_size": 16}).embed(TEXTS)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_chunk_mode_sees_the_end_of_long_notes(minilm, minilm_path: Path):
    chunked = create_backend(
        "sentence-transformers", {"model": str(minilm_path), "long_notes": "chunk", "overlap": 16}
    )
    opening = " ".join(f"Day {d}: vitals stable, afebrile, ambulating in hallway." for d in range(60))
    long_a = opening + " Final: patient developed septic shock and was intubated."
    long_b = opening + " Final: discharged home with outpatient physical therapy follow-up."
    # truncate mode only sees the (shared) opening; chunk mode sees the different endings
    truncated = minilm.embed([long_a, long_b])
    np.testing.assert_allclose(truncated[0], truncated[1], atol=1e-6)
    vectors = chunked.embed([TEXTS[0], long_a, long_b])
    assert np.dot(vectors[1], vectors[2]) < 0.9999
    np.testing.assert_allclose(vectors[0], minilm.embed([TEXTS[0]])[0], atol=1e-5)  # short: unchanged
    # the note's vector is the re-normalised mean of its windows' vectors
    windows, owners = split_into_windows([long_a], minilm._model.tokenizer, 254, 16)
    assert len(windows) > 2 and (owners == 0).all()
    expected = l2_normalise(minilm.embed(windows).mean(axis=0, keepdims=True))[0]
    np.testing.assert_allclose(vectors[1], expected, atol=1e-5)
    assert chunked.fingerprint() != minilm.fingerprint()


def test_window_starts_cover_every_token():
    assert window_starts(10, 20, 5) == [0]
    starts = window_starts(100, 30, 10)
    assert starts[0] == 0 and starts[-1] + 30 == 100
    assert all(b - a <= 20 for a, b in itertools.pairwise(starts))
    with pytest.raises(ValueError):
        window_starts(100, 10, 10)


def test_gemma_base_code_path_with_a_tiny_gemma3(tiny_gemma: Path):
    backend = create_backend("gemma-base", {"model": str(tiny_gemma), "device": "cpu"})
    assert backend.prompts == {"document": GEMMA_DOCUMENT_PROMPT, "query": GEMMA_QUERY_PROMPTS["search"]}
    documents, queries = backend.embed(TEXTS), backend.embed(TEXTS, role="query")
    assert documents.shape == (5, 48) and np.isfinite(documents).all()
    assert not np.allclose(documents, queries)
    bare = create_backend("gemma-base", {"model": str(tiny_gemma), "document_prompt": "", "device": "cpu"})
    np.testing.assert_allclose(documents, bare.embed([GEMMA_DOCUMENT_PROMPT + t for t in TEXTS]), atol=1e-5)
    similarity = create_backend("gemma-base", {"model": str(tiny_gemma), "query_task": "similarity"})
    assert similarity.prompts["query"] == GEMMA_QUERY_PROMPTS["similarity"]
    assert similarity.fingerprint() != backend.fingerprint()
    short = create_backend("gemma-base", {"model": str(tiny_gemma), "truncate_dim": 16})
    np.testing.assert_allclose(short.embed(TEXTS), l2_normalise(documents[:, :16]), atol=1e-5)


def test_gemma3_bfloat16_works_and_float16_is_refused(tiny_gemma: Path, cli):
    full = create_backend("gemma-finetuned", {"model": str(tiny_gemma)}).embed(TEXTS)
    half = create_backend("gemma-finetuned", {"model": str(tiny_gemma), "dtype": "bfloat16"}).embed(TEXTS)
    assert half.dtype == np.float32 and np.isfinite(half).all()
    np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1.0, rtol=1e-5)
    assert (np.sum(full * half, axis=1) > 0.95).all()
    with pytest.raises(InputError, match=r"float16 is refused.*Gemma3.*bfloat16"):
        create_backend("gemma-base", {"model": str(tiny_gemma), "dtype": "float16"})
    result = cli("backends", "check", "gemma-base", "-s", f"model={tiny_gemma}", "-s", "dtype=float16")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "float16" in result.stderr


def test_gemma_finetuned_uses_the_directory_s_saved_prompts(tiny_gemma: Path):
    backend = create_backend("gemma-finetuned", {"model": str(tiny_gemma)})
    assert backend.prompts["document"] == GEMMA_DOCUMENT_PROMPT  # saved in config_sentence_transformers.json
    with pytest.raises(InputError, match="clinpred finetune"):
        create_backend("gemma-finetuned", {})


def test_missing_models_fail_with_one_clear_message(tmp_path: Path, cli):
    with pytest.raises(InputError, match="does not exist"):
        create_backend("sentence-transformers", {"model": str(tmp_path / "nowhere")})
    empty_hf = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = cli("backends", "check", "gemma-base", env=empty_hf)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "google/embeddinggemma-300m" in message and "--backend-setting model=" in message
    assert "huggingface-cli download" in message and str(tmp_path / "hf") in message
    listed = cli("backends", "list", env={**empty_hf, "COLUMNS": "300"})
    assert listed.returncode == 0
    assert next(line for line in listed.stdout.splitlines() if "gemma-base" in line).count(" no ") == 1


def test_a_model_in_the_hugging_face_cache_loads_offline(tmp_path: Path, minilm_path: Path, minilm):
    """A hub id resolves from the local cache; the fingerprint is id + commit, not a file hash."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someorg--tiny-minilm"
    shutil.copytree(minilm_path, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    import huggingface_hub.constants as hub_constants

    old = hub_constants.HF_HUB_CACHE
    hub_constants.HF_HUB_CACHE = str(tmp_path / "hub")
    try:
        backend = create_backend("sentence-transformers", {"model": "someorg/tiny-minilm"})
    finally:
        hub_constants.HF_HUB_CACHE = old
    assert backend.resolved.revision == commit
    assert f"someorg/tiny-minilm@{commit}" in backend.fingerprint()
    np.testing.assert_allclose(backend.embed(TEXTS[:2]), minilm.embed(TEXTS[:2]), atol=1e-6)
