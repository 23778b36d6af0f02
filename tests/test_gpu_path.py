"""The GPU path of issue 17, tested on the CPU: its decisions as plain functions, the out-of-memory
back-off with torch's real exception class, the multi-process pool on two CPU processes, and the torch
block top-k against the numpy one. No test here needs a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clinpred.backends import create_backend
from clinpred.backends.sentence_transformers_backend import (
    SentenceTransformerBackend,
    SentenceTransformerSettings,
    attention_plan,
    device_plan,
    encode_with_backoff,
    is_out_of_memory,
    resolve_dtype,
    start_batch_size,
)
from clinpred.tasks.topk import GPU_MIN_PAIRS, PoolSpec, chunked_topk, topk_device
from tests.tiny_gemma import build_tiny_gemma

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "Patient admitted with chest pain; troponin negative, discharged home.",
    "CXR: no acute cardiopulmonary process.",
    "Sinus rhythm, rate 72.",
    "Nursing: pt resting comfortably, pain 2/10, tolerating diet. " * 6,
    "Echo: LVEF 35%, moderate mitral regurgitation.",
]


# --------------------------------------------------------------------------- decisions


def test_dtype_auto_is_bfloat16_only_on_a_cuda_device_that_supports_it():
    assert resolve_dtype("auto", "cuda", True) == "bfloat16"
    assert resolve_dtype("auto", "cuda:1", True) == "bfloat16"
    assert resolve_dtype("auto", "cuda", False) == "float32"  # e.g. a V100 or T4
    assert resolve_dtype("auto", "cpu", True) == "float32"
    assert resolve_dtype("auto", "mps", True) == "float32"
    assert resolve_dtype("bfloat16", "cpu", False) == "bfloat16"  # an explicit setting is kept
    assert resolve_dtype("float32", "cuda", True) == "float32"


def test_attention_plan_prefers_flash_attention_only_on_cuda_in_bfloat16():
    assert attention_plan("cuda", "bfloat16", True) == ["flash_attention_2", "sdpa", None]
    assert attention_plan("cuda", "bfloat16", False) == ["sdpa", None]
    assert attention_plan("cuda", "float32", True) == ["sdpa", None]
    assert attention_plan("cpu", "bfloat16", True) == ["sdpa", None]


def test_device_plan_is_one_process_per_visible_cuda_device():
    assert device_plan("cuda", 1) == ["cuda"]
    assert device_plan("cuda", 2) == ["cuda:0", "cuda:1"]
    assert device_plan("cuda", 4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert device_plan("cpu", 0) == ["cpu"]
    assert device_plan("cpu", 8) == ["cpu"]  # device=cpu asked for: the GPUs stay unused
    assert device_plan("mps", 0) == ["mps"]


def test_auto_batch_size_is_32_off_cuda_and_a_token_budget_on_cuda():
    assert start_batch_size("auto", "cpu", 2048) == 32
    assert start_batch_size("auto", "mps", 128) == 32
    assert start_batch_size("auto", "cuda", 512) == 256
    assert start_batch_size("auto", "cuda", 2048) == 64
    assert start_batch_size("auto", "cuda", 128) == 1024
    assert start_batch_size("auto", "cuda", 32768) == 8
    assert start_batch_size("auto", "cuda", 300) == 256  # a power of two that fits 2^17 tokens
    assert start_batch_size(12, "cuda", 512) == 12


def test_out_of_memory_halves_the_batch_until_it_fits():
    assert issubclass(torch.cuda.OutOfMemoryError, RuntimeError)
    tried: list[int] = []
    backoffs: list[int] = []

    def encode(batch_size: int) -> str:
        tried.append(batch_size)
        if batch_size > 24:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return f"done at {batch_size}"

    result, used = encode_with_backoff(encode, 256, on_backoff=backoffs.append)
    assert (result, used) == ("done at 16", 16)
    assert tried == [256, 128, 64, 32, 16] and backoffs == [128, 64, 32, 16]


def test_out_of_memory_at_batch_one_and_other_errors_are_raised():
    def never_fits(batch_size: int) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        encode_with_backoff(never_fits, 4)
    calls: list[int] = []

    def broken(batch_size: int) -> None:
        calls.append(batch_size)
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        encode_with_backoff(broken, 64)
    assert calls == [64]  # no retry
    # a pool worker's error comes back as a RuntimeError carrying the worker's message
    assert is_out_of_memory(RuntimeError("torch.OutOfMemoryError: CUDA out of memory. Tried to ..."))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


# --------------------------------------------------------------------------- the backend on the CPU


def test_cpu_defaults_keep_float32_and_the_committed_fingerprint(minilm_path: Path):
    """dtype=auto is float32 on the CPU (torch, the library's default engine), and the demo's settings
    (engine=auto) give the fingerprint (the cache key) the committed results were embedded under where
    this CPU resolves them to the same engine and precision, so results/synthetic reproduces from its
    cache; where it resolves them otherwise, the key differs, so those embeddings are never served."""
    committed = json.loads((REPO / "results" / "synthetic" / "results.json").read_text())
    entry = next(b for b in committed["backends"] if b["label"] == "minilm-base")
    backend = create_backend("sentence-transformers", {"model": str(minilm_path), "max_seq_length": 128})
    assert backend.resolved_dtype() == "float32" and backend.resolved_engine() == "torch"
    explicit = create_backend(
        "sentence-transformers", {"model": str(minilm_path), "max_seq_length": 128, "dtype": "float32"}
    )
    assert explicit.fingerprint() == backend.fingerprint()
    demo = create_backend(
        "sentence-transformers", {"model": str(minilm_path), "max_seq_length": 128, "engine": "auto"}
    )
    recorded = entry["description"]["engine"]  # {"name": "openvino", "precision": "bf16", ...}
    here = demo.describe()["engine"]
    if (here["name"], here.get("precision")) == (recorded["name"], recorded.get("precision")):
        assert demo.fingerprint() == entry["fingerprint"]
    else:
        assert demo.fingerprint() != entry["fingerprint"]
    assert backend.fingerprint() != entry["fingerprint"]  # torch float32 is not what the demo embedded


def test_describe_records_the_resolved_dtype_attention_and_batch_size(minilm_path: Path):
    backend = create_backend("sentence-transformers", {"model": str(minilm_path), "device": "cpu"})
    before = backend.describe()
    assert before["dtype"] == "float32" and before["settings"]["dtype"] == "auto"
    assert before["attention"] == "sdpa" and before["devices"] == ["cpu"]
    assert before["batch_size"] == {"start": 32, "used": None, "out_of_memory_backoffs": 0}
    backend.embed(TEXTS)
    assert backend.describe()["batch_size"]["used"] == 32
    assert backend.preferred_chunk_size is None  # the cache's own chunks off CUDA


def test_backend_backs_off_on_out_of_memory_and_keeps_the_size(minilm_path: Path):
    """The real model's encode, refusing batches above 2 the way a full GPU does."""
    backend = create_backend("sentence-transformers", {"model": str(minilm_path), "batch_size": 8})
    expected = backend.embed(TEXTS)
    real_encode = backend._model.encode
    sizes: list[int] = []

    def small_gpu(texts, *args, batch_size, **kwargs):
        sizes.append(batch_size)
        if batch_size > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_encode(texts, *args, batch_size=batch_size, **kwargs)

    backend._model.encode = small_gpu
    np.testing.assert_allclose(backend.embed(TEXTS), expected, atol=1e-5)
    assert sizes == [8, 4, 2]
    backend.embed(TEXTS[:2])
    assert sizes == [8, 4, 2, 2]  # the size that fitted is where the next call starts
    described = backend.describe()["batch_size"]
    assert described["used"] == 2 and described["out_of_memory_backoffs"] == 2


def test_gemma3_auto_dtype_on_cpu_is_float32_with_sdpa(tmp_path: Path):
    gemma = build_tiny_gemma(tmp_path)
    backend = create_backend("gemma-finetuned", {"model": str(gemma)})
    explicit = create_backend("gemma-finetuned", {"model": str(gemma), "dtype": "float32"})
    assert backend.fingerprint() == explicit.fingerprint() and '"dtype":"float32"' in backend.fingerprint()
    np.testing.assert_array_equal(backend.embed(TEXTS), explicit.embed(TEXTS))
    described = backend.describe()
    assert described["dtype"] == "float32" and described["attention"] == "sdpa"
    assert "sdpa" in str(backend._model.transformers_model.config._attn_implementation)


@pytest.mark.slow
def test_multi_process_pool_on_two_cpu_processes_matches_one_process(minilm_path: Path):
    """sentence-transformers' own pool (one process per device), here two CPU processes (~25 s)."""
    settings = SentenceTransformerSettings(model=str(minilm_path), device="cpu")
    texts = [f"{t} day {i}" for i, t in enumerate(TEXTS * 8)]
    single = SentenceTransformerBackend(settings).embed(texts)
    pooled = SentenceTransformerBackend(settings, devices=["cpu", "cpu"])
    try:
        assert pooled.devices() == ["cpu", "cpu"]
        np.testing.assert_allclose(pooled.embed(texts), single, atol=1e-5)
        assert pooled._pool is not None and len(pooled._pool["processes"]) == 2
    finally:
        pooled.close()


# --------------------------------------------------------------------------- top-k on torch blocks


def _integer_data(rng: np.random.Generator, n_q: int, n_p: int, dim: int = 8):
    """Small-integer vectors: every dot product is exact in float32 whatever the summation order, so two
    matrix-product libraries give the same scores, and ties (repeated rows) are plentiful."""
    pool = rng.integers(-2, 3, size=(n_p, dim)).astype(np.float32)
    pool[rng.integers(0, n_p, n_p // 3)] = pool[rng.integers(0, n_p, n_p // 3)]
    queries = rng.integers(-2, 3, size=(n_q, dim)).astype(np.float32)
    return queries, pool


FIELDS = ("indices", "scores", "pool_size", "n_greater", "n_tied", "target_score")


@pytest.fixture
def one_torch_thread():
    """Many small blocks: on a busy 2-core machine torch's thread pool costs more than the products."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", range(4))
def test_torch_block_topk_equals_numpy_with_ties_masks_and_ranks(seed: int, one_torch_thread):
    rng = np.random.default_rng(seed)
    n_q, n_p = int(rng.integers(1, 200)), int(rng.integers(1, 500))
    queries, pool = _integer_data(rng, n_q, n_p)
    targets = rng.integers(0, n_p, n_q)
    exclude = rng.integers(-1, n_p, n_q)
    exclude = np.where(exclude == targets, -1, exclude)  # a target stays in its query's pool
    groups = rng.integers(0, 3, n_p)
    specs = [
        PoolSpec(),
        PoolSpec(exclude=exclude),
        PoolSpec(
            exclude=exclude,
            query_group=groups[targets],
            pool_group=groups,
            pool_order=rng.permutation(n_p),
            query_cutoff=rng.integers(0, n_p, n_q),
            always=targets,
        ),
    ]
    for spec in specs:
        for k in (0, 1, 5, 12):
            for tolerance in (0.0, 1.0):
                blocks = {"query_block": int(rng.integers(3, 50)), "pool_block": int(rng.integers(5, 90))}
                common = {"spec": spec, "targets": targets, "tie_tolerance": tolerance, **blocks}
                numpy_result = chunked_topk(queries, pool, k, device="cpu", **common)
                torch_result = chunked_topk(queries, pool, k, device="torch-cpu", **common)
                for field in FIELDS:
                    a, b = getattr(numpy_result, field), getattr(torch_result, field)
                    assert a.dtype == b.dtype and np.array_equal(a, b), (field, k, spec)


def test_torch_block_topk_on_float_vectors_and_short_pools(one_torch_thread):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((600, 64), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.arange(len(x))
    spec = PoolSpec(exclude=rows)
    numpy_result = chunked_topk(x, x, 10, spec=spec, targets=(rows + 1) % 600, device="cpu")
    torch_result = chunked_topk(x, x, 10, spec=spec, targets=(rows + 1) % 600, device="torch-cpu")
    assert np.array_equal(numpy_result.indices, torch_result.indices)
    np.testing.assert_allclose(numpy_result.scores, torch_result.scores, atol=1e-6)
    # ranks of float scores may differ by a near tie that one library rounds the other way
    assert np.abs(numpy_result.n_greater - torch_result.n_greater).max() <= 1
    # a pool of fewer rows than k: -1 and -inf fill the rest, as in the numpy path
    short = chunked_topk(x[:3], x[:4], 6, spec=PoolSpec(exclude=rows[:3]), device="torch-cpu")
    assert (short.indices[:, 3:] == -1).all() and np.isneginf(short.scores[:, 3:]).all()
    assert np.array_equal(
        short.indices, chunked_topk(x[:3], x[:4], 6, spec=PoolSpec(exclude=rows[:3])).indices
    )
    # every pool row the same: the lowest rows win, whatever the blocks
    tied = chunked_topk(x[:2], np.repeat(x[:1], 50, axis=0), 4, pool_block=7, device="torch-cpu")
    assert (tied.indices == np.arange(4)).all()


def test_topk_device_choice():
    assert topk_device("auto", 1000) == "cpu"  # small: numpy, torch not even asked
    assert topk_device("auto", GPU_MIN_PAIRS) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert topk_device("cpu", 10**12) == "cpu"
    assert topk_device("torch-cpu", 10) == "torch-cpu"
    assert topk_device("cuda:1", 10) == "cuda:1"
    with pytest.raises(ValueError, match="device must be"):
        topk_device("tpu", 10)
