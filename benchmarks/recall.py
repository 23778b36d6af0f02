"""Exact top-k for next-note recall: chunked blocks against the naive full matrix + argsort and FAISS.

    .venv/bin/python benchmarks/recall.py                      # 100,000 notes x 768, peers at 20,000
    .venv/bin/python benchmarks/recall.py --notes 30000 --naive-notes 10000 --ranks   # quicker, + ranks

Every note is a query (pool: every other note), k = 10, random L2-normalised float32 vectors (the
score distribution does not change the work done). Peak memory is what the method itself allocates
(tracemalloc, which sees numpy's buffers), not counting the input array. The naive peer builds the
N x N similarity matrix and argsorts it, so it is run only at a size it can hold; the chunked method
is run at that size too, on the same data, for a ratio, and its output is checked equal to the peer's.
The second peer is FAISS's exact inner-product search (``faiss.IndexFlatIP``, k + 1 neighbours, the
query itself dropped), on the CPU, at ``--faiss-notes`` (default: the naive size), also checked row by
row; it is skipped with a message where ``faiss-cpu`` is not installed (the dev extra pins it). When
the queries are the pool itself (this benchmark, and the geometry task's neighbours), the chunked
method computes each score block once and reads it both ways, half of FAISS's products; the same
search with the pool passed as a separate array is timed beside it, so the lead without that
symmetry (recall's query subsets do not have it) is printed too. Where
torch sees a CUDA GPU, the chunked method's torch block path is timed on it too.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from clinpred.tasks.topk import PoolSpec, chunked_topk


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def naive_topk(x: np.ndarray, k: int) -> np.ndarray:
    """The full similarity matrix, the query masked out of its own row, one argsort per row."""
    scores = x @ x.T
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def faiss_topk(x: np.ndarray, k: int) -> np.ndarray:
    """FAISS exact inner-product search of every row against all rows, the row itself dropped."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, found = index.search(x, k + 1)
    own = found == np.arange(len(x))[:, None]
    if (own.sum(axis=1) == 1).all():
        return found[~own].reshape(len(x), k)
    # a row whose own index is not among its k + 1 (a duplicate row crowded it out): drop it by hand
    return np.stack([row[row != i][:k] for i, row in enumerate(found)])


def chunked(
    x: np.ndarray,
    k: int,
    query_block: int | None,
    pool_block: int | None,
    with_ranks: bool,
    device: str = "cpu",
) -> np.ndarray:
    rows = np.arange(len(x))
    targets = (rows + 1) % len(x) if with_ranks else None
    return chunked_topk(
        x,
        x,
        k,
        spec=PoolSpec(exclude=rows),
        targets=targets,
        query_block=query_block,
        pool_block=pool_block,
        device=device,
    ).indices


def chunked_apart(x: np.ndarray, k: int, query_block: int, pool_block: int) -> np.ndarray:
    """``chunked`` with the pool handed over as a copy, so no score block is read both ways."""
    rows = np.arange(len(x))
    pool = x.copy()
    return chunked_topk(
        x, pool, k, spec=PoolSpec(exclude=rows), query_block=query_block, pool_block=pool_block, device="cpu"
    ).indices


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def faiss_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def measure(fn, *args) -> tuple[np.ndarray, float, float]:
    """Result, wall seconds, peak MiB allocated during the call."""
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, wall, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--naive-notes", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--query-block", type=int, default=1024)
    parser.add_argument("--pool-block", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--faiss-notes", type=int, default=None, help="size of the FAISS comparison (default --naive-notes)"
    )
    parser.add_argument(
        "--ranks", action="store_true", help="also time top-k + exact target ranks at --notes"
    )
    args = parser.parse_args()
    print(
        f"cpus visible: {os.cpu_count()} (shared with other users: wall times are upper bounds); "
        f"dim {args.dim}, k {args.k}, blocks {args.query_block} x {args.pool_block}"
    )
    print(f"{'method':<38}{'notes = queries':>16}{'wall s':>10}{'peak MiB':>10}", flush=True)

    def add(name: str, n: int, seconds: float, mib: float) -> None:
        print(f"{name:<38}{n:>16,}{seconds:>10.1f}{mib:>10.0f}", flush=True)

    x = unit_rows(args.naive_notes, args.dim, args.seed)
    naive_out, naive_s, naive_mb = measure(naive_topk, x, args.k)
    add("naive full matrix + argsort", args.naive_notes, naive_s, naive_mb)
    chunk_out, chunk_s, chunk_mb = measure(chunked, x, args.k, args.query_block, args.pool_block, False)
    add("chunked top-k", args.naive_notes, chunk_s, chunk_mb)
    same = float(np.mean(np.all(naive_out == chunk_out, axis=1)))
    gpu = cuda_available()
    if gpu:
        gpu_out, gpu_s, _ = measure(chunked, x, args.k, None, None, False, "cuda")
        add("chunked top-k, torch on cuda", args.naive_notes, gpu_s, float("nan"))
        gpu_same = float(np.mean(np.all(gpu_out == chunk_out, axis=1)))
    del naive_out

    faiss_n = args.faiss_notes or args.naive_notes
    faiss_line = "FAISS: not installed (pip install faiss-cpu; the dev extra pins it), skipped"
    if faiss_available():
        import faiss

        ours_out, ours_s = chunk_out, chunk_s
        if faiss_n != args.naive_notes:
            x = unit_rows(faiss_n, args.dim, args.seed)
            ours_out, ours_s, ours_mb = measure(chunked, x, args.k, args.query_block, args.pool_block, False)
            add("chunked top-k", faiss_n, ours_s, ours_mb)
        faiss_out, faiss_s, faiss_mb = measure(faiss_topk, x, args.k)
        add("FAISS IndexFlatIP (exact, CPU)", faiss_n, faiss_s, faiss_mb)
        # the same search with the pool passed as a copy: no product read both ways, as for recall's
        # query subsets, so the ratio without the symmetry is on record too
        apart_out, apart_s, apart_mb = measure(chunked_apart, x, args.k, args.query_block, args.pool_block)
        add("chunked top-k, pool a separate array", faiss_n, apart_s, apart_mb)
        faiss_same = float(np.mean(np.all(faiss_out == ours_out, axis=1)))
        apart_same = float(np.mean(np.all(apart_out == ours_out, axis=1)))
        del ours_out, faiss_out, apart_out
        faiss_line = (
            f"at {faiss_n:,}: chunked / FAISS IndexFlatIP wall = {ours_s / faiss_s:.2f} "
            f"(FAISS {faiss.__version__}, {faiss.omp_get_max_threads()} threads); rows identical: "
            f"{faiss_same:.2%}\n"
            f"at {faiss_n:,}: chunked with the pool a separate array (every product computed once per "
            f"query) / FAISS wall = {apart_s / faiss_s:.2f}; rows identical: {apart_same:.2%}"
        )
    del x, chunk_out

    x = unit_rows(args.notes, args.dim, args.seed)
    _, big_s, big_mb = measure(chunked, x, args.k, args.query_block, args.pool_block, False)
    add("chunked top-k", args.notes, big_s, big_mb)
    if gpu:
        _, big_gpu_s, _ = measure(chunked, x, args.k, None, None, False, "cuda")
        add("chunked top-k, torch on cuda", args.notes, big_gpu_s, float("nan"))
    if args.ranks:
        _, rank_s, rank_mb = measure(chunked, x, args.k, args.query_block, args.pool_block, True)
        add("chunked top-k + exact target ranks", args.notes, rank_s, rank_mb)

    full_mb = args.notes**2 * 4 / 2**20
    print(f"rows identical to the naive top-{args.k} at {args.naive_notes:,}: {same:.2%}")
    print(
        f"at {args.naive_notes:,}: chunked / naive wall = {chunk_s / naive_s:.2f}, "
        f"peak memory = {chunk_mb / naive_mb:.3f}"
    )
    print(faiss_line)
    if gpu:
        print(
            f"torch on cuda: rows identical to the numpy path at {args.naive_notes:,}: {gpu_same:.2%}; "
            f"at {args.notes:,} numpy / cuda wall = {big_s / big_gpu_s:.1f}x (GPU memory not traced)"
        )
    print(
        f"at {args.notes:,}: the naive N x N float32 matrix alone would take {full_mb:,.0f} MiB "
        f"(+ {2 * full_mb:,.0f} MiB of int64 argsort indices); chunked peak {big_mb:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
