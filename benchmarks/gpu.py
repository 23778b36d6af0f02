"""EmbeddingGemma-300m-sized speed on whatever device is here, against the hardware limit (issue 17).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu.py        # a GPU machine: < 8 min, writes
                                                               # benchmarks/results/gpu-<device>.json
    .venv/bin/python benchmarks/gpu.py --tiny --out /tmp/g.json  # toy config on the CPU, well under a minute

The model is EmbeddingGemma-300m's architecture with random weights, built offline from its published
configuration (``ARCHS["embeddinggemma-300m"]``: a Gemma3 text encoder of 24 layers, hidden 768, MLP 1152,
3 query heads and 1 key/value head of 256, vocabulary 262,144, bidirectional attention with sliding
windows of 512 on five layers in six, mean pooling, Dense 768 -> 3072 -> 768, Normalize); random weights
cost exactly what trained ones do. Every note is exactly ``L`` tokens (texts are longer and truncated),
so tokens = notes x L. Measured, each against a peer in the same run:

- encode at L = 512 and 2048: bare ``SentenceTransformer.encode`` in float32 and in bfloat16 (batch 32,
  as the public A100 reproduction ran) against clinpred's backend (``dtype=auto``, SDPA or FlashAttention-2,
  ``batch_size=auto`` with out-of-memory back-off); notes/s, tokens/s, model FLOP utilisation (MFU), and
  the cosine between each path's vectors and the float32 ones;
- fine-tuning pairs/s at L = 512 (``--train-tokens``), MNRL and cached MNRL, clinpred's ``finetune_pairs``
  against the plain ``SentenceTransformerTrainer``: steady-state steps (a callback stamps each step's end
  after the warm-up steps) and end to end (load, train, save);
- recall top-10 of 100,000 x 768 vectors against themselves on the GPU (torch block path of
  ``chunked_topk``), its rows checked against the numpy path on a 20,000-row subset.

FLOPs (forward, per token, for a sequence of L tokens), from the configuration of the model built::

    F(L) = 2 * P_matmul + sum over layers of 4 * (n_heads * head_dim) * K_layer(L) + 2 * P_head / L

    P_matmul = layers * (h*q + 2*h*kv + q*h + 3*h*m)   # q, k, v, o projections; gate, up, down of the MLP
               (h hidden, q = n_heads*head_dim, kv = n_kv_heads*head_dim, m = intermediate; the token
               embedding is a lookup and costs no product; norms and activations are not counted)
    K_layer(L) = L on full-attention layers; on sliding layers the mean number of keys each query may
               see, (1/L) * sum_i #{j : |i - j| < w} with w the (exclusive) bidirectional window
    4 * q * K  = the two attention products, QK^T and AV, 2 FLOPs per multiply-add each
    P_head     = the Dense projections after pooling (768*3072 + 3072*768), once per sequence

``flops_per_token.full_attention`` is the same with K = L on every layer (what a kernel that ignores the
window computes: SDPA with a mask does; FlashAttention-2 with a window does not). MFU = tokens/s x F(L)
/ peak, against the card's dense bfloat16 peak for bfloat16 paths and its float32 (non-tensor) peak for
float32 ones (``PEAKS``; ``--peak-bf16`` / ``--peak-fp32`` set them). Training MFU counts 3 x F(L) per
token (forward and backward), so cached MNRL's extra forward pass shows as lower MFU.

A time budget (``--budget``, 450 s) guards the whole run: a measurement that would not fit in what is
left is recorded as skipped, never started. The JSON is written whatever happens (a failing measurement
is recorded with its error).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.tiny_gemma import _WORDS as tiny_words  # noqa: E402
from tests.tiny_gemma import GEMMA_PROMPTS, TINY_SHAPE, build_gemma  # noqa: E402  (the tests' builder, any size)

DOCUMENT_PROMPT = GEMMA_PROMPTS["document"]


@dataclass(frozen=True)
class Arch:
    """The parts of an EmbeddingGemma configuration that shape the work."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    sliding_window: int  # as published (transformers halves it for bidirectional attention)
    query_pre_attn_scalar: int
    dense_size: int  # the first Dense projection after pooling
    output_dim: int  # the second (the embedding dimension)
    tokenizer_vocab: int  # the toy tokenizer trained here; the embedding table keeps vocab_size rows
    full_attention_every: int = 6  # every n-th layer attends to the whole text, the others to a window

    def layer_types(self) -> list[str]:
        n = self.full_attention_every
        return [
            "full_attention" if (i + 1) % n == 0 else "sliding_attention"
            for i in range(self.num_hidden_layers)
        ]


ARCHS = {
    # google/embeddinggemma-300m's config.json and its 2_Dense / 3_Dense modules
    "embeddinggemma-300m": Arch(
        vocab_size=262_144,
        hidden_size=768,
        intermediate_size=1152,
        num_hidden_layers=24,
        num_attention_heads=3,
        num_key_value_heads=1,
        head_dim=256,
        max_position_embeddings=2048,
        sliding_window=512,
        query_pre_attn_scalar=256,
        dense_size=3072,
        output_dim=768,
        tokenizer_vocab=2000,
    ),
    # the same shape at toy size (tests/tiny_gemma.py's sizes): the --tiny run on a CPU
    "tiny": Arch(
        vocab_size=1024,
        hidden_size=32,
        intermediate_size=64,
        **TINY_SHAPE,
        dense_size=128,
        output_dim=48,
        tokenizer_vocab=1000,
        full_attention_every=2,  # one layer of each kind
    ),
}

# Dense (no sparsity) peak TFLOP/s from the vendors' data sheets: (bfloat16 tensor, float32 non-tensor).
# Checked in order, so that a more specific name wins ("H100 NVL" before "H100", "A100" before "A10").
PEAKS: list[tuple[str, str, float | None, float]] = [
    ("GH200", "GH200", 989.4, 66.9),
    ("H200 NVL", "H200 NVL", 835.0, 60.0),
    ("H200", "H200 SXM", 989.4, 66.9),
    ("H100 NVL", "H100 NVL", 835.0, 60.0),
    ("H100 PCIe", "H100 PCIe", 756.0, 51.2),
    ("H100", "H100 SXM", 989.4, 66.9),
    ("H800", "H800 SXM", 989.4, 66.9),
    ("B200", "B200", 2250.0, 75.0),
    ("A100", "A100", 312.0, 19.5),
    ("A800", "A800", 312.0, 19.5),
    ("L40S", "L40S", 362.05, 91.6),
    ("L40", "L40", 181.05, 90.5),
    ("L4", "L4", 121.0, 30.3),
    ("A10G", "A10G", 70.0, 31.2),
    ("A10", "A10", 125.0, 31.2),
    ("RTX 4090", "RTX 4090", 165.2, 82.6),
    ("V100", "V100 (no bf16)", None, 15.7),
    ("T4", "T4 (no bf16)", None, 8.1),
]

# the tests' toy words, and a few more a note holds
_WORDS = (
    tiny_words
    + (
        "mg dose day lasix heparin insulin metoprolol vancomycin cefepime creatinine lactate troponin bnp wbc "
        "hgb plt"
    ).split()
)


# --------------------------------------------------------------------------- the model


def vocabulary(arch: Arch) -> list[str]:
    """Words that each become one token of the toy tokenizer."""
    return _WORDS + [str(i) for i in range(arch.tokenizer_vocab - len(_WORDS) - 200)]


def build_model(directory: Path, arch: Arch, device: str) -> Path:
    """Write a sentence-transformers directory holding ``arch`` with random weights; return its path."""
    return build_gemma(
        directory,
        texts=[" ".join(vocabulary(arch))] * 3 + [GEMMA_PROMPTS["document"], GEMMA_PROMPTS["query"]],
        tokenizer_vocab=arch.tokenizer_vocab,
        max_seq_length=arch.max_position_embeddings,
        dense_size=arch.dense_size,
        output_dim=arch.output_dim,
        name="model",
        vocab_size=arch.vocab_size,
        device=device,
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads,
        head_dim=arch.head_dim,
        max_position_embeddings=arch.max_position_embeddings,
        sliding_window=arch.sliding_window,
        query_pre_attn_scalar=arch.query_pre_attn_scalar,
        layer_types=arch.layer_types(),
    )


# --------------------------------------------------------------------------- FLOPs and peaks


def matmul_parameters(arch: Arch) -> int:
    """Weights of the backbone's matrix products (the token embedding excluded: it is a lookup)."""
    h, m = arch.hidden_size, arch.intermediate_size
    q = arch.num_attention_heads * arch.head_dim
    kv = arch.num_key_value_heads * arch.head_dim
    return arch.num_hidden_layers * (h * q + 2 * h * kv + q * h + 3 * h * m)


def keys_per_query(length: int, window: int | None) -> float:
    """Mean number of keys a query attends to: all ``length``, or those with |i - j| < ``window``."""
    if window is None or window >= length:
        return float(length)
    i = np.arange(length)
    seen = np.minimum(length - 1, i + window - 1) - np.maximum(0, i - window + 1) + 1
    return float(seen.mean())


def flops_per_token(arch: Arch, length: int, layer_types: list[str], window: int) -> dict[str, float]:
    """Forward FLOPs per token at ``length`` tokens (the module docstring gives the formula)."""
    q = arch.num_attention_heads * arch.head_dim
    head = 2 * (arch.hidden_size * arch.dense_size + arch.dense_size * arch.output_dim) / length
    dense = 2 * matmul_parameters(arch)
    attention = sum(
        4 * q * keys_per_query(length, window if kind == "sliding_attention" else None)
        for kind in layer_types
    )
    full = 4 * q * length * arch.num_hidden_layers
    return {"exact": dense + attention + head, "full_attention": dense + full + head}


def peak_tflops(name: str, bf16: float | None, fp32: float | None) -> dict[str, Any]:
    """The assumed dense peaks of the card called ``name`` (flags override the table)."""
    for key, label, table_bf16, table_fp32 in PEAKS:
        if key.lower() in name.lower():
            return {
                "bf16": bf16 if bf16 is not None else table_bf16,
                "fp32": fp32 if fp32 is not None else table_fp32,
                "source": f"table: {label}" + (" (flag overrides)" if bf16 or fp32 else ""),
            }
    return {"bf16": bf16, "fp32": fp32, "source": "flags" if bf16 or fp32 else "unknown device: no MFU"}


def device_info(bf16_flag: float | None, fp32_flag: float | None) -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        props = torch.cuda.get_device_properties(0)
        info = {
            "kind": "cuda",
            "name": name,
            "count": torch.cuda.device_count(),
            "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "bf16_supported": bool(torch.cuda.is_bf16_supported()),
            "cuda": torch.version.cuda,
        }
    else:
        name = f"CPU {platform.processor() or platform.machine()}".strip()
        info = {"kind": "cpu", "name": name, "count": os.cpu_count(), "bf16_supported": False}
    info["peak_tflops"] = peak_tflops(name, bf16_flag, fp32_flag)
    info["slug"] = "cpu" if info["kind"] == "cpu" else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return info


# --------------------------------------------------------------------------- the run's plumbing


class Budget:
    """Seconds left of the run; a measurement starts only if its estimate fits."""

    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def guarded(budget: Budget, estimate_s: float, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``'s record, or a 'skipped' record when it would not fit, or a 'failed' one when it raises."""
    if budget.left() < estimate_s:
        print(f"  skipped {what}: {budget.left():.0f} s left, about {estimate_s:.0f} s needed", flush=True)
        return {
            "status": "skipped",
            "reason": f"time budget: {budget.left():.0f} s left < {estimate_s:.0f} s",
        }
    t0 = time.perf_counter()
    try:
        record = {"status": "ok", **fn()}
    except Exception as exc:  # a failure is a result too: the rest of the run goes on
        traceback.print_exc()
        record = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:500]}"}
    free_memory()
    record["wall_s"] = round(time.perf_counter() - t0, 2)
    print(f"  {what}: {record['status']} in {record['wall_s']:.1f} s", flush=True)
    return record


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def make_notes(n: int, words: int, vocab: list[str], seed: int) -> list[str]:
    """``n`` distinct notes of ``words`` one-token words each."""
    rng = np.random.default_rng(seed)
    table = np.asarray(vocab, dtype=object)
    return [" ".join(table[rng.integers(0, len(table), words)]) for _ in range(n)]


def cycle(texts: list[str], n: int) -> list[str]:
    return [texts[i % len(texts)] for i in range(n)]


def finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values)


def ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 4) if finite(a, b) else None


# --------------------------------------------------------------------------- encode


def timed_encode(
    encode: Callable[[list[str]], np.ndarray], notes: list[str], warm: int, target_s: float, max_notes: int
) -> dict[str, Any]:
    """Warm up, calibrate on a few batches, then time enough notes to take about ``target_s``."""
    encode(notes[:warm])
    calibrate = cycle(notes, 2 * warm)
    sync()
    t0 = time.perf_counter()
    encode(calibrate)
    sync()
    rate = len(calibrate) / max(time.perf_counter() - t0, 1e-9)
    n = int(min(max_notes, max(len(calibrate), rate * target_s)))
    batch = cycle(notes, n)
    sync()
    t0 = time.perf_counter()
    encode(batch)
    sync()
    seconds = time.perf_counter() - t0
    return {"notes": n, "seconds": round(seconds, 3), "notes_per_s": round(n / seconds, 2)}


def cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = np.sum(a * b, axis=1)
    return {"min": round(float(c.min()), 6), "mean": round(float(c.mean()), 6)}


def measure_encode(
    path: Path,
    how: str,
    length: int,
    notes: list[str],
    reference: np.ndarray | None,
    flops: dict[str, float],
    peaks: dict[str, Any],
    sizes: dict[str, Any],
) -> tuple[dict[str, Any], np.ndarray]:
    """One encode path at one length: its rate, MFU and its vectors for the first notes."""
    import torch

    check = notes[: sizes["check_notes"]]
    if how == "clinpred":
        from clinpred.backends.sentence_transformers_backend import (
            SentenceTransformerBackend,
            SentenceTransformerSettings,
        )

        # every setting at its default (dtype, attention, batch size); one device, like the bare peers
        # (with several GPUs the backend would run one pool process per device)
        backend = SentenceTransformerBackend(
            SentenceTransformerSettings(model=str(path), max_seq_length=length), devices=[sizes["device"]]
        )

        def encode(texts: list[str]) -> np.ndarray:
            return backend.embed(texts)

        vectors = encode(check)
        described = backend.describe()
        settings = {
            "dtype": described["dtype"],
            "attention": described["attention"],
            "batch_size": described["batch_size"],
            "devices": described["devices"],
        }
        model = backend._model
    else:
        from sentence_transformers import SentenceTransformer

        dtype = torch.float32 if how == "bare-float32" else torch.bfloat16
        model = SentenceTransformer(str(path), device=sizes["device"], model_kwargs={"dtype": dtype})
        model.max_seq_length = length

        def encode(texts: list[str]) -> np.ndarray:
            return model.encode(
                texts,
                prompt=DOCUMENT_PROMPT,
                batch_size=sizes["bare_batch"],
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )

        vectors = encode(check)
        settings = {
            "dtype": str(dtype).replace("torch.", ""),
            "attention": getattr(model.config, "_attn_implementation", None),
            "batch_size": sizes["bare_batch"],
        }
    tokens = model.preprocess([notes[0]], prompt=DOCUMENT_PROMPT)["input_ids"].shape[1]
    if tokens != length:
        raise RuntimeError(f"a note came to {tokens} tokens, not {length}: the texts are too short")
    # warm up and calibrate on whole batches of this path's own size
    first_batch = settings["batch_size"]["start"] if how == "clinpred" else sizes["bare_batch"]
    warm = max(sizes["warm_notes"], first_batch)
    record = timed_encode(encode, notes, warm, sizes["target_s"], sizes["max_notes"])
    if how == "clinpred":
        settings["batch_size"] = backend.describe()["batch_size"]
        backend.close()
    record["tokens_per_s"] = round(record["notes_per_s"] * length, 1)
    peak = peaks["bf16"] if settings["dtype"] == "bfloat16" else peaks["fp32"]
    record["mfu"] = (
        round(record["tokens_per_s"] * flops["exact"] / (peak * 1e12), 5) if finite(peak) else None
    )
    record["mfu_against"] = f"{'bf16' if settings['dtype'] == 'bfloat16' else 'fp32'} peak {peak} TFLOP/s"
    record["cosine_to_float32"] = cosines(vectors, reference) if reference is not None else None
    return {"path": how, "tokens": length, **settings, **record}, vectors


# --------------------------------------------------------------------------- fine-tuning


def step_timer():
    """A trainer callback stamping the end of every step (after a device sync)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            self.stamps.append(time.perf_counter())

    return StepTimer()


def plain_trainer(path: Path, pairs, loss_name: str, steps: int, sizes: dict[str, Any], out: Path, timer):
    """The peer: the stock SentenceTransformerTrainer with the same loss, batch, length and precision."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import losses

    model = SentenceTransformer(str(path))
    model.max_seq_length = sizes["train_tokens"]
    loss = (
        losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=sizes["mini_batch"])
        if loss_name == "cached_mnrl"
        else losses.MultipleNegativesRankingLoss(model)
    )
    data = Dataset.from_dict({"anchor": pairs["anchor"].tolist(), "positive": pairs["positive"].tolist()})
    bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "ckpt"), max_steps=steps, per_device_train_batch_size=sizes["train_batch"],
        learning_rate=2e-5, warmup_steps=0.1, seed=0, report_to="none", save_strategy="no",
        disable_tqdm=True, bf16=bf16, logging_steps=10**6, dataloader_pin_memory=torch.cuda.is_available(),
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=loss, callbacks=[timer]
    )
    trainer.train()
    model.save_pretrained(str(out / "model"))
    return "bf16" if bf16 else "fp32"


def clinpred_trainer(path: Path, pairs, loss_name: str, steps: int, sizes: dict[str, Any], out: Path, timer):
    """Ours: clinpred.finetune.finetune_pairs (patient-aware sampler, run record, model card)."""
    from clinpred.finetune import FinetuneConfig
    from clinpred.finetune.train import finetune_pairs

    config = FinetuneConfig(
        preset="seed", base_model=str(path), loss=loss_name, max_steps=steps,
        batch_size=sizes["train_batch"], mini_batch_size=sizes["mini_batch"],
        max_seq_length=sizes["train_tokens"], learning_rate=2e-5, warmup_ratio=0.1, seed=0,
        save_steps=10**6, logging_steps=10**6,
    )  # fmt: skip
    finetune_pairs(pairs, config, out / "model", progress=False, callbacks=[timer])
    record = json.loads((out / "model" / "clinpred-finetune.json").read_text())
    return record.get("precision")


def measure_finetune(
    path: Path, who: str, loss_name: str, pairs, sizes: dict[str, Any], flops: dict[str, float], peaks
) -> dict[str, Any]:
    warm, steps = sizes["warm_steps"], sizes["train_steps"]
    timer = step_timer()
    with tempfile.TemporaryDirectory() as tmp:
        run = plain_trainer if who == "plain" else clinpred_trainer
        t0 = time.perf_counter()
        precision = run(path, pairs, loss_name, warm + steps, sizes, Path(tmp), timer)
        end_to_end = time.perf_counter() - t0
    stamps = timer.stamps
    if len(stamps) < warm + steps:
        raise RuntimeError(f"only {len(stamps)} steps were stamped, {warm + steps} expected")
    steady = stamps[warm + steps - 1] - stamps[warm - 1]
    batch, length = sizes["train_batch"], sizes["train_tokens"]
    pairs_per_s = steps * batch / steady
    peak = peaks["bf16"] if precision == "bf16" else peaks["fp32"]
    tokens_per_s = pairs_per_s * 2 * length
    return {
        "trainer": who,
        "loss": loss_name,
        "precision": precision,
        "batch_pairs": batch,
        "mini_batch": sizes["mini_batch"] if loss_name == "cached_mnrl" else None,
        "tokens": length,
        "warm_steps": warm,
        "steps_timed": steps,
        "steady_seconds": round(steady, 3),
        "pairs_per_s": round(pairs_per_s, 2),
        "tokens_per_s": round(tokens_per_s, 1),
        "end_to_end_s": round(end_to_end, 2),
        "end_to_end_pairs_per_s": round((warm + steps) * batch / end_to_end, 2),
        "mfu": round(tokens_per_s * 3 * flops["exact"] / (peak * 1e12), 5) if finite(peak) else None,
    }


# --------------------------------------------------------------------------- recall


def measure_recall(sizes: dict[str, Any], device: str) -> dict[str, Any]:
    """Top-10 of N x d unit vectors against themselves (the row itself excluded) on ``device``."""
    from clinpred.tasks.topk import PoolSpec, chunked_topk

    n, dim, k, check = sizes["recall_notes"], sizes["recall_dim"], 10, sizes["recall_check"]
    x = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.arange(n)
    chunked_topk(x[:256], x[:4096], k, spec=PoolSpec(exclude=rows[:256]), device=device)  # warm up
    sync()
    t0 = time.perf_counter()
    found = chunked_topk(x, x, k, spec=PoolSpec(exclude=rows), device=device)
    sync()
    seconds = time.perf_counter() - t0
    del found
    sub = x[:check]
    t0 = time.perf_counter()
    ours = chunked_topk(sub, sub, k, spec=PoolSpec(exclude=rows[:check]), device=device)
    sub_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    numpy = chunked_topk(sub, sub, k, spec=PoolSpec(exclude=rows[:check]), device="cpu")
    numpy_seconds = time.perf_counter() - t0
    return {
        "device": device,
        "notes": n,
        "dim": dim,
        "k": k,
        "seconds": round(seconds, 3),
        "queries_per_s": round(n / seconds, 1),
        "check_notes": check,
        "check_seconds": round(sub_seconds, 3),
        "numpy_check_seconds": round(numpy_seconds, 3),
        "numpy_over_device_at_check": ratio(numpy_seconds, sub_seconds),
        "rows_identical_to_numpy": round(float(np.mean(np.all(ours.indices == numpy.indices, axis=1))), 6),
        "max_score_difference": float(np.abs(ours.scores - numpy.scores).max()),
    }


# --------------------------------------------------------------------------- the run


def sizes_for(tiny: bool, device: str) -> dict[str, Any]:
    if tiny:
        return {
            "device": device, "lengths": [32, 128], "bare_batch": 32, "warm_notes": 8, "target_s": 0.3,
            "max_notes": 256, "distinct_notes": 64, "check_notes": 16,
            "train_tokens": 32, "train_batch": 4, "mini_batch": 2, "warm_steps": 1, "train_steps": 2,
            "recall_notes": 3000, "recall_dim": 64, "recall_check": 1000,
            "estimates": {"encode": 5, "finetune": 10, "recall": 5},
        }  # fmt: skip
    return {
        "device": device, "lengths": [512, 2048], "bare_batch": 32, "warm_notes": 64, "target_s": 10.0,
        "max_notes": 50_000, "distinct_notes": 2048, "check_notes": 256,
        "train_tokens": 512, "train_batch": 32, "mini_batch": 16, "warm_steps": 3, "train_steps": 10,
        "recall_notes": 100_000, "recall_dim": 768, "recall_check": 20_000,
        "estimates": {"encode": 45, "finetune": 60, "recall": 40},
    }  # fmt: skip


def versions() -> dict[str, str]:
    import sentence_transformers
    import torch
    import transformers

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    try:
        import flash_attn

        out["flash_attn"] = flash_attn.__version__
    except Exception:  # absent, or present but not loadable here
        out["flash_attn"] = None
    return out


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Ratios against the peers and the issue's targets."""
    encode = {(e.get("path"), e.get("tokens")): e for e in result["encode"] if e.get("status") == "ok"}
    ratios: dict[str, Any] = {}
    for length in result["sizes"]["lengths"]:
        ours, fp32, bf16 = (
            encode.get((p, length), {}) for p in ("clinpred", "bare-float32", "bare-bfloat16")
        )
        ratios[f"encode_{length}"] = {
            "clinpred_over_bare_float32": ratio(ours.get("notes_per_s"), fp32.get("notes_per_s")),
            "clinpred_over_bare_bfloat16": ratio(ours.get("notes_per_s"), bf16.get("notes_per_s")),
            "bare_bfloat16_over_bare_float32": ratio(bf16.get("notes_per_s"), fp32.get("notes_per_s")),
            "clinpred_mfu": ours.get("mfu"),
        }
    train = {(t.get("trainer"), t.get("loss")): t for t in result["finetune"] if t.get("status") == "ok"}
    for loss in ("mnrl", "cached_mnrl"):
        ours, plain = train.get(("clinpred", loss), {}), train.get(("plain", loss), {})
        ratios[f"finetune_{loss}"] = {
            "clinpred_over_plain": ratio(ours.get("pairs_per_s"), plain.get("pairs_per_s")),
            "clinpred_over_plain_end_to_end": ratio(
                ours.get("end_to_end_pairs_per_s"), plain.get("end_to_end_pairs_per_s")
            ),
        }
    first = f"encode_{result['sizes']['lengths'][0]}"
    speedup, mfu = ratios[first]["clinpred_over_bare_float32"], ratios[first]["clinpred_mfu"]
    fine = [ratios[f"finetune_{loss}"]["clinpred_over_plain"] for loss in ("mnrl", "cached_mnrl")]
    targets = {
        "encode_at_least_2x_bare_float32": None if speedup is None else speedup >= 2.0,
        "mfu_at_least_35_percent": None if mfu is None else mfu >= 0.35,
        "finetune_within_1.1x_of_plain": None if None in fine else all(r >= 1 / 1.1 for r in fine),
    }
    return {"ratios": ratios, "targets": targets}


def print_table(result: dict[str, Any]) -> None:
    device = result["device"]
    peaks = device["peak_tflops"]
    print()
    print(f"device: {device['name']} ({device['kind']}, {device['count']} visible)")
    print(f"assumed peak: bf16 {peaks['bf16']} / fp32 {peaks['fp32']} TFLOP/s dense ({peaks['source']})")
    model = result["model"]
    for length, f in model["flops_per_token"].items():
        print(
            f"forward FLOPs per token at {length}: {f['exact'] / 1e6:.1f} M (full attention on every layer: "
            f"{f['full_attention'] / 1e6:.1f} M); matmul parameters {model['matmul_parameters']:,}"
        )
    print(f"\n{'encode':<16}{'tokens':>7}{'dtype':>10}{'attention':>20}{'batch':>7}{'notes/s':>11}"
          f"{'tokens/s':>13}{'MFU':>8}{'cos min':>9}")  # fmt: skip
    for e in result["encode"]:
        if e.get("status") != "ok":
            print(f"{e.get('path', '?'):<16}{e.get('tokens', ''):>7}  {e['status']}: {e.get('reason', '')}")
            continue
        batch = e["batch_size"]["used"] if isinstance(e["batch_size"], dict) else e["batch_size"]
        mfu = f"{e['mfu']:.1%}" if e["mfu"] is not None else "-"
        cos = f"{e['cosine_to_float32']['min']:.4f}" if e["cosine_to_float32"] else "-"
        print(
            f"{e['path']:<16}{e['tokens']:>7}{e['dtype']:>10}{e['attention']!s:>20}{batch!s:>7}"
            f"{e['notes_per_s']:>11,.1f}{e['tokens_per_s']:>13,.0f}{mfu:>8}{cos:>9}"
        )
    print(
        f"\n{'fine-tune':<10}{'loss':>12}{'precision':>10}{'batch':>7}{'pairs/s':>10}{'e2e pairs/s':>13}{'MFU':>8}"
    )
    for t in result["finetune"]:
        if t.get("status") != "ok":
            print(f"{t.get('trainer', '?'):<10}{t.get('loss', ''):>12}  {t['status']}: {t.get('reason', '')}")
            continue
        mfu = f"{t['mfu']:.1%}" if t["mfu"] is not None else "-"
        print(
            f"{t['trainer']:<10}{t['loss']:>12}{t['precision']!s:>10}{t['batch_pairs']:>7}"
            f"{t['pairs_per_s']:>10,.1f}{t['end_to_end_pairs_per_s']:>13,.1f}{mfu:>8}"
        )
    r = result["recall"]
    if r.get("status") == "ok":
        print(
            f"\nrecall top-{r['k']} of {r['notes']:,} x {r['dim']} on {r['device']}: {r['seconds']:.2f} s "
            f"({r['queries_per_s']:,.0f} queries/s); at {r['check_notes']:,} rows identical to numpy "
            f"{r['rows_identical_to_numpy']:.2%}, numpy / {r['device']} = {r['numpy_over_device_at_check']}x"
        )
    else:
        print(f"\nrecall: {r['status']}: {r.get('reason', '')}")
    print("\nratios:")
    for name, values in result["summary"]["ratios"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    toy = " (a toy run: these say nothing about a GPU)" if result["tiny"] else ""
    print(
        f"targets (issue 17){toy}: " + ", ".join(f"{k} {v}" for k, v in result["summary"]["targets"].items())
    )
    print(f"wall {result['wall_s']:.0f} s of a {result['budget_s']:.0f} s budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy config and sizes (a CPU, the test)")
    parser.add_argument("--out", type=Path, default=None, help="JSON to write (default below)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run")
    parser.add_argument("--peak-bf16", type=float, default=None, help="dense bf16 TFLOP/s of this card")
    parser.add_argument("--peak-fp32", type=float, default=None, help="float32 TFLOP/s of this card")
    parser.add_argument("--workdir", type=Path, default=None, help="where the model is built (a temp dir)")
    args = parser.parse_args()

    budget = Budget(args.budget)
    import pandas as pd
    import torch
    import transformers

    if args.tiny:  # toy sizes gain nothing from threads, and a busy machine's thread pool stalls them
        torch.set_num_threads(1)

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    device = device_info(args.peak_bf16, args.peak_fp32)
    torch_device = "cuda" if device["kind"] == "cuda" else "cpu"
    arch_name = "tiny" if args.tiny else "embeddinggemma-300m"
    arch = ARCHS[arch_name]
    sizes = sizes_for(args.tiny, torch_device)
    estimates = sizes.pop("estimates")
    if args.out is not None:
        out = args.out
    elif args.tiny:  # never a file under benchmarks/results/ that could pass for a GPU figure
        out = Path(tempfile.mkdtemp(prefix="clinpred-gpu-tiny-")) / f"gpu-{device['slug']}-tiny.json"
    else:
        out = REPO / "benchmarks" / "results" / f"gpu-{device['slug']}.json"
    print(f"{device['name']}; {arch_name}; budget {args.budget:.0f} s; writing {out}", flush=True)

    result: dict[str, Any] = {
        "kind": "clinpred-gpu-benchmark",
        "tiny": args.tiny,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "budget_s": args.budget,
        "device": device,
        "versions": versions(),
        "sizes": sizes,
        "encode": [],
        "finetune": [],
        "recall": {"status": "skipped", "reason": "not reached"},
    }
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="clinpred-gpu-"))
    try:
        path = build_model(workdir, arch, torch_device)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(workdir / "_backbone"))
        flops = {
            length: flops_per_token(arch, length, list(config.layer_types), int(config.sliding_window))
            for length in sizes["lengths"]
        }
        if sizes["train_tokens"] not in flops:
            flops[sizes["train_tokens"]] = flops_per_token(
                arch, sizes["train_tokens"], list(config.layer_types), int(config.sliding_window)
            )
        from safetensors import safe_open

        with safe_open(str(workdir / "_backbone" / "model.safetensors"), "pt") as weights:
            linear = sum(
                math.prod(weights.get_slice(name).get_shape())
                for name in weights.keys()  # noqa: SIM118 - safe_open has keys(), not iteration
                if name.endswith("_proj.weight")
            )
        if linear != matmul_parameters(arch):
            raise RuntimeError(
                f"matmul parameters: {linear:,} in the model, {matmul_parameters(arch):,} counted"
            )
        result["model"] = {
            "arch": arch_name,
            "config": asdict(arch),
            "layer_types": list(config.layer_types),
            "attention_window_exclusive": int(config.sliding_window),
            "matmul_parameters": linear,
            "flops_per_token": {str(k): v for k, v in flops.items()},
        }
        vocab = vocabulary(arch)
        peaks = device["peak_tflops"]

        # encode at the first length, recall, fine-tuning, then encode at the second length: the
        # measurements the targets need come first, in case the budget runs out
        def encode_length(length: int, seed: int) -> None:
            notes = make_notes(sizes["distinct_notes"], length + 16, vocab, seed)
            reference = None
            for how in ("bare-float32", "bare-bfloat16", "clinpred"):
                holder: dict[str, Any] = {}

                def run(how=how, holder=holder, reference=reference) -> dict[str, Any]:
                    record, vectors = measure_encode(
                        path, how, length, notes, reference, flops[length], peaks, sizes
                    )
                    holder["vectors"] = vectors
                    return record

                record = guarded(budget, estimates["encode"], f"encode {how} at {length}", run)
                result["encode"].append({"path": how, "tokens": length, **record})
                if how == "bare-float32":
                    reference = holder.get("vectors")

        encode_length(sizes["lengths"][0], 1)
        recall_device = "cuda" if torch_device == "cuda" else "torch-cpu"
        result["recall"] = guarded(
            budget, estimates["recall"], "recall", lambda: measure_recall(sizes, recall_device)
        )
        n_pairs = sizes["train_batch"] * (sizes["warm_steps"] + sizes["train_steps"])
        texts = make_notes(2 * n_pairs, sizes["train_tokens"] + 16, vocab, 2)
        pairs = pd.DataFrame({"anchor": texts[:n_pairs], "positive": texts[n_pairs:]})
        for loss in ("mnrl", "cached_mnrl"):
            for who in ("plain", "clinpred"):
                record = guarded(
                    budget,
                    estimates["finetune"],
                    f"fine-tune {who} {loss}",
                    lambda who=who, loss=loss: measure_finetune(
                        path, who, loss, pairs, sizes, flops[sizes["train_tokens"]], peaks
                    ),
                )
                result["finetune"].append({"trainer": who, "loss": loss, **record})
        for length in sizes["lengths"][1:]:
            encode_length(length, 3)
    finally:
        result["wall_s"] = round(budget.elapsed(), 1)
        result.setdefault("model", None)
        if result["model"] is not None:
            result["summary"] = summarise(result)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.with_name(f".{out.name}.tmp")
        staging.write_text(json.dumps(result, indent=2, default=str) + "\n")
        staging.replace(out)
        if args.workdir is None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    print_table(result)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
