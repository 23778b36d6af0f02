"""Exact top-k and exact target ranks by chunked matrix products, in bounded memory.

Next-note recall scores every query note against every pool note. Real evaluation halves hold
hundreds of thousands of notes, so the full query-by-pool similarity matrix (N x N float32: 40 GB at
100,000 notes) is never built. Queries are taken in blocks, the pool in blocks; each block of scores
(``query_block x pool_block`` float32) is used three ways before it is dropped:

- the running top-k of each query is merged with the block's candidates (scores above the running
  k-th score and not below a lower bound on the block's own k-th best, taken from maxima over groups
  of columns, so no row is sorted or partitioned whole), so the top-k is exact;
- the candidates scoring above the target's score are counted, so the rank of the target is exact;
- the candidates tied with the target (within ``tie_tolerance``) are counted, so the tie rule is
  applied by the caller, not by chance of ordering.

Pools differ per query (the query is never in its own pool; optionally only notes of one group, or a
seeded sample), so each query carries a ``PoolSpec`` description that is turned into a mask block by
block, never materialised as an N x N array. Ties in the top-k lists are broken by the lower pool
index, so the result does not depend on the block sizes.

Where torch sees a CUDA device and the work is large (``GPU_MIN_PAIRS`` query-pool pairs or more), the
same blocks run on the GPU (``device="auto"``, the default): torch matmul in full float32 (no TF32),
``torch.topk`` per block, and a stable sort to merge, with the same tie rule (lower pool index first),
the same masks, the same rank counts and the same outputs. ``device="cpu"`` is the numpy path below,
unchanged; ``device="torch-cpu"`` runs the torch block path on the CPU (tests compare it with numpy). A
different matrix-product library may round a score differently in the last bit, so two near-tied
candidates can swap between devices; exactly tied scores never do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

GPU_MIN_PAIRS = 50_000_000  # below this many query x pool scores, the numpy path is as quick as a GPU


@dataclass(frozen=True)
class PoolSpec:
    """Which pool rows each query may see (all optional; the default pool is every row).

    - ``exclude[q]``: one pool row never in query q's pool (its own note), -1 for none;
    - ``query_group[q]`` / ``pool_group[p]``: only pool rows of the query's group (e.g. the target's
      category);
    - ``pool_order[p]`` / ``query_cutoff[q]``: only pool rows with ``pool_order <= query_cutoff[q]``
      (a seeded sample: ``pool_order`` is a random permutation rank);
    - ``always[q]``: one pool row kept whatever the group and the sample say (the target), -1 for none;
      ``exclude`` still wins over it.
    """

    exclude: np.ndarray | None = None
    query_group: np.ndarray | None = None
    pool_group: np.ndarray | None = None
    pool_order: np.ndarray | None = None
    query_cutoff: np.ndarray | None = None
    always: np.ndarray | None = None


@dataclass(frozen=True)
class TopKResult:
    """Per query: top-k pool rows and scores (best first), and, where targets were given, rank counts.

    ``indices`` is -1 (score -inf) where a pool holds fewer than k rows. ``n_greater`` counts pool rows
    scoring above the target by more than the tolerance; ``n_tied`` counts other pool rows within the
    tolerance of the target's score; ``pool_size`` counts every row in the query's pool (target included).
    """

    indices: np.ndarray  # (n_queries, k) int64
    scores: np.ndarray  # (n_queries, k) float32
    pool_size: np.ndarray  # (n_queries,) int64
    n_greater: np.ndarray | None = None  # (n_queries,) int64
    n_tied: np.ndarray | None = None  # (n_queries,) int64
    target_score: np.ndarray | None = None  # (n_queries,) float32


def _select(spec_part: np.ndarray | None, rows: slice) -> np.ndarray | None:
    return None if spec_part is None else spec_part[rows]


def _mask_block(
    scores: np.ndarray, spec: PoolSpec, q: slice, p: slice, always_local: np.ndarray | None
) -> None:
    """Set scores of rows outside each query's pool to -inf, in place."""
    out = None
    if spec.query_group is not None and spec.pool_group is not None:
        out = spec.query_group[q][:, None] != spec.pool_group[p][None, :]
    if spec.pool_order is not None and spec.query_cutoff is not None:
        beyond = spec.pool_order[p][None, :] > spec.query_cutoff[q][:, None]
        out = beyond if out is None else out | beyond
    if out is not None:
        if always_local is not None:
            rows = np.flatnonzero(always_local >= 0)
            out[rows, always_local[rows]] = False
        scores[out] = -np.inf
    if spec.exclude is not None:
        local = spec.exclude[q] - p.start
        rows = np.flatnonzero((local >= 0) & (local < p.stop - p.start))
        scores[rows, local[rows]] = -np.inf


def _local(index: np.ndarray | None, q: slice, p: slice) -> np.ndarray | None:
    """Pool-block-local column of a per-query pool row (e.g. the target), -1 where outside the block."""
    if index is None:
        return None
    local = index[q] - p.start
    return np.where((local >= 0) & (local < p.stop - p.start), local, -1)


GROUP = 32  # columns per group when bounding a block's k-th best score by its group maxima


def _candidates(block: np.ndarray, threshold: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the block's scores that can enter each row's running top-k.

    A candidate scores strictly above the running k-th score (an equal score here has a higher pool
    index and loses) and not below the block's own k-th best. That k-th best is bounded from below
    without sorting the block: the columns are dealt into groups (column ``c`` into group ``c % G``),
    and the k-th largest group maximum is reached by k distinct scores, so nothing below it can be in
    the top-k. One maximum over the groups (a contiguous, vectorised pass) and a look inside the few
    groups at or above the bound replace a partition of every row.
    """
    n_rows, width = block.shape
    n_groups = width // GROUP
    if n_groups < k:  # a narrow block: every score above the running k-th is a candidate
        return np.nonzero(block > threshold[:, None])
    grouped = block[:, : n_groups * GROUP].reshape(n_rows, GROUP, n_groups)
    group_max = grouped.max(axis=1)
    bound = np.partition(group_max, n_groups - k, axis=1)[:, n_groups - k]
    rows, groups = np.nonzero((group_max >= bound[:, None]) & (group_max > threshold[:, None]))
    values = grouped[rows, :, groups]  # (candidate groups, GROUP): column c * n_groups + group
    keep = (values >= bound[rows, None]) & (values > threshold[rows, None])
    at, within = np.nonzero(keep)
    rows_out, cols_out = [rows[at]], [within * n_groups + groups[at]]
    if n_groups * GROUP < width:  # the columns that do not fill a last group
        tail = block[:, n_groups * GROUP :]
        tail_rows, tail_cols = np.nonzero((tail >= bound[:, None]) & (tail > threshold[:, None]))
        rows_out.append(tail_rows)
        cols_out.append(tail_cols + n_groups * GROUP)
    return np.concatenate(rows_out), np.concatenate(cols_out)


def _merge(
    run_scores: np.ndarray,
    run_index: np.ndarray,
    block: np.ndarray,
    offset: int,
    k: int,
) -> None:
    """Merge one score block into the running top-k (in place); ties go to the lower pool index."""
    rows, cols = _candidates(block, run_scores[:, -1], k)
    if len(rows) == 0:
        return
    # only the rows with a candidate are sorted: after the first blocks, most rows have none
    touched = np.flatnonzero(np.bincount(rows, minlength=run_scores.shape[0]))
    all_rows = np.concatenate([np.repeat(touched, k), rows])
    all_scores = np.concatenate([run_scores[touched].ravel(), block[rows, cols]])
    all_index = np.concatenate([run_index[touched].ravel(), cols.astype(np.int64) + offset])
    # -1 (empty slot) sorts after every real index among equal (-inf) scores
    tiebreak = np.where(all_index < 0, np.iinfo(np.int64).max, all_index)
    order = np.lexsort((tiebreak, -all_scores, all_rows))
    sorted_rows = all_rows[order]
    first = np.searchsorted(sorted_rows, sorted_rows, side="left")
    position = np.arange(len(order)) - first
    keep = position < k
    run_scores[sorted_rows[keep], position[keep]] = all_scores[order][keep]
    run_index[sorted_rows[keep], position[keep]] = all_index[order][keep]


def _block_pairs(
    n_q: int, n_p: int, query_block: int, pool_block: int, symmetric: bool
) -> Iterator[tuple[slice, slice]]:
    """The (query rows, pool rows) blocks to compute, each query's pool blocks in ascending order.

    ``symmetric`` (queries and pool are one array): square tiles of the same area, upper triangle
    only; the caller reads each off-diagonal tile a second time transposed, so half the products are
    computed. Tile (i, j), i < j, gives query tile j its pool tile i before the diagonal tile (j, j)
    and the tiles after it, so the order stays ascending for every query.
    """
    if not symmetric:
        for q0 in range(0, n_q, query_block):
            for p0 in range(0, n_p, pool_block):
                yield slice(q0, min(q0 + query_block, n_q)), slice(p0, min(p0 + pool_block, n_p))
        return
    side = max(1, math.isqrt(query_block * pool_block))
    for i0 in range(0, n_q, side):
        for j0 in range(i0, n_q, side):
            yield slice(i0, min(i0 + side, n_q)), slice(j0, min(j0 + side, n_q))


def _transpose_into(block: np.ndarray, out: np.ndarray, strip: int = 64) -> np.ndarray:
    """``block.T`` copied into ``out`` a strip of rows at a time: a strip's transpose stays in the
    cache, where one whole-array copy walks memory by columns and is about three times slower."""
    for r0 in range(0, block.shape[0], strip):
        out[:, r0 : r0 + strip] = block[r0 : r0 + strip].T
    return out


def _target_counters(
    queries: np.ndarray, pool: np.ndarray, targets: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Checked targets, each query's target score, and zeroed greater/tied counts (all None: no targets)."""
    if targets is None:
        return None, None, None, None
    n_q = len(queries)
    targets = np.asarray(targets, dtype=np.int64)
    if targets.shape != (n_q,) or (n_q and (targets.min() < 0 or targets.max() >= len(pool))):
        raise ValueError("chunked_topk: targets must be one pool row per query")
    target_score = np.einsum("ij,ij->i", queries, pool[targets]).astype(np.float32)
    return targets, target_score, np.zeros(n_q, dtype=np.int64), np.zeros(n_q, dtype=np.int64)


def chunked_topk(
    queries: np.ndarray,
    pool: np.ndarray,
    k: int,
    *,
    spec: PoolSpec | None = None,
    targets: np.ndarray | None = None,
    tie_tolerance: float = 0.0,
    query_block: int | None = None,
    pool_block: int | None = None,
    device: str = "auto",
) -> TopKResult:
    """Exact top-k pool rows by dot product for every query, and exact target rank counts.

    ``k=0`` skips the top-k lists (ranks only). ``targets[q]`` is the pool row whose rank is counted;
    it must be in query q's pool. Memory is ``O(query_block * pool_block + n_queries * k)``; the blocks
    default to 1024 x 8192 on the CPU and 4096 x 32768 on a GPU.

    ``device``: ``auto`` (a CUDA device for large inputs where torch has one, else numpy), ``cpu``
    (numpy), ``cuda`` / ``cuda:N`` (torch on that GPU), ``torch-cpu`` (torch's block path on the CPU).
    """
    symmetric = queries is pool  # every note against every note: each product serves both ways
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    pool = queries if symmetric else np.ascontiguousarray(pool, dtype=np.float32)
    if queries.ndim != 2 or pool.ndim != 2 or queries.shape[1] != pool.shape[1]:
        raise ValueError(f"chunked_topk: shapes {queries.shape} and {pool.shape} do not match")
    target = topk_device(device, len(queries) * len(pool))
    torch_path = target != "cpu"
    if query_block is None:
        query_block = 4096 if torch_path else 1024
    if pool_block is None:
        pool_block = 32768 if torch_path else 8192
    if k < 0 or query_block < 1 or pool_block < 1:
        raise ValueError("chunked_topk: k must be >= 0 and block sizes >= 1")
    spec = spec or PoolSpec()
    if torch_path:
        return _torch_topk(
            queries,
            pool,
            k,
            spec,
            targets,
            tie_tolerance,
            query_block,
            pool_block,
            target.replace("torch-", ""),
        )
    n_q, n_p = len(queries), len(pool)
    k_eff = min(k, n_p)
    top_scores = np.full((n_q, k), -np.inf, dtype=np.float32)
    top_index = np.full((n_q, k), -1, dtype=np.int64)
    pool_size = np.zeros(n_q, dtype=np.int64)
    targets, target_score, n_greater, n_tied = _target_counters(queries, pool, targets)
    masked = spec.query_group is not None or spec.query_cutoff is not None
    if not masked:  # every pool row but the excluded one: no need to count block by block
        pool_size[:] = n_p
        if spec.exclude is not None:
            pool_size -= (spec.exclude >= 0) & (spec.exclude < n_p)
    run_scores = np.full((n_q, k_eff), -np.inf, dtype=np.float32)
    run_index = np.full((n_q, k_eff), -1, dtype=np.int64)

    def use(q: slice, p: slice, block: np.ndarray) -> None:
        """Mask one block of scores, count it against the targets and merge it into the top-k."""
        _mask_block(block, spec, q, p, _local(spec.always, q, p))
        if masked:
            pool_size[q] += (block > -np.inf).sum(axis=1)
        if targets is not None:
            ts = target_score[q][:, None]
            n_greater[q] += (block > ts + tie_tolerance).sum(axis=1)
            tied = np.abs(block - ts) <= tie_tolerance  # -inf (outside the pool) is never tied
            target_local = _local(targets, q, p)
            rows = np.flatnonzero(target_local >= 0)
            if not np.all(np.isfinite(block[rows, target_local[rows]])):
                raise ValueError("chunked_topk: a target is outside its query's pool")
            tied[rows, target_local[rows]] = False
            n_tied[q] += tied.sum(axis=1)
        if k_eff:
            _merge(run_scores[q], run_index[q], block, p.start, k_eff)

    buffer = mirror = None
    for q, p in _block_pairs(n_q, n_p, query_block, pool_block, symmetric):
        shape = (q.stop - q.start, p.stop - p.start)
        if buffer is None or buffer.shape != shape:  # reused: a fresh 32 MB array per block costs
            buffer = np.empty(shape, dtype=np.float32)
        block = np.matmul(queries[q], pool[p].T, out=buffer)
        mirrored = None
        if symmetric and q != p:  # the same scores read the other way: pool rows p as queries
            if mirror is None or mirror.shape != shape[::-1]:
                mirror = np.empty(shape[::-1], dtype=np.float32)
            mirrored = _transpose_into(block, mirror)
        use(q, p, block)
        if mirrored is not None:
            use(p, q, mirrored)
    top_scores[:, :k_eff] = run_scores
    top_index[:, :k_eff] = np.where(np.isfinite(run_scores), run_index, -1)
    return TopKResult(top_index, top_scores, pool_size, n_greater, n_tied, target_score)


# --------------------------------------------------------------------------- the torch block path


def topk_device(device: str, pairs: int) -> str:
    """Where ``chunked_topk`` runs: ``cpu`` (numpy), ``torch-cpu``, or a CUDA device name.

    ``auto`` picks CUDA only for ``pairs >= GPU_MIN_PAIRS`` and only where torch is installed and sees a
    GPU (torch is imported for that check only when the work is that large or torch is loaded already).
    """
    if device in ("cpu", "torch-cpu") or device.startswith("cuda"):
        return device
    if device != "auto":
        raise ValueError(f"chunked_topk: device must be auto, cpu, torch-cpu or cuda[:N], not {device!r}")
    if pairs < GPU_MIN_PAIRS:
        return "cpu"
    if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class _FullFloat32:
    """Matrix products in full float32 for the duration: TF32 (10-bit mantissas) would make the scores,
    and so the top-k, differ from the exact ones. torch's long-standing global setting is used; where a
    process mixed torch's two TF32 APIs and reading it fails, the setting is left as it is."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.saved: str | None = None

    def __enter__(self) -> None:
        try:
            self.saved = self.torch.get_float32_matmul_precision()
            self.torch.set_float32_matmul_precision("highest")
        except RuntimeError:  # pragma: no cover - depends on what else the process did
            self.saved = None

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            with contextlib.suppress(RuntimeError):
                self.torch.set_float32_matmul_precision(self.saved)


def _block_best(torch: Any, block: Any, k: int) -> tuple[Any, Any]:
    """Each row's k best (score, column) of one block, columns in ascending order.

    The k-th score may be shared by more columns than fit: those of lower column win, as in the numpy
    path. torch.topk picks some k of them; rows where that matters are redone from the mask.
    """
    values, columns = torch.topk(block, k, dim=1, sorted=True)
    kth = values[:, -1:]
    if bool(((block >= kth).sum(dim=1) == k).all()):  # no row has spare ties at its k-th score
        columns = columns.sort(dim=1).values
        return torch.gather(block, 1, columns), columns
    greater = block > kth
    tied = block == kth  # -inf == -inf: a row short of k finite scores fills with -inf columns
    need = k - greater.sum(dim=1, keepdim=True)
    keep = greater | (tied & (torch.cumsum(tied, dim=1) <= need))
    columns = torch.nonzero(keep)[:, 1].reshape(block.shape[0], k)
    return torch.gather(block, 1, columns), columns


def _torch_topk(
    queries: np.ndarray,
    pool: np.ndarray,
    k: int,
    spec: PoolSpec,
    targets: np.ndarray | None,
    tie_tolerance: float,
    query_block: int,
    pool_block: int,
    device: str,
) -> TopKResult:
    """``chunked_topk`` with torch blocks on ``device``: the same outputs as the numpy path."""
    import torch

    dev = torch.device(device)
    n_q, n_p = len(queries), len(pool)
    k_eff = min(k, n_p)

    def on(array: np.ndarray | None) -> Any:
        return None if array is None else torch.as_tensor(np.asarray(array)).to(dev)

    pool_t = torch.as_tensor(pool).to(dev)
    exclude, always = on(spec.exclude), on(spec.always)
    query_group, pool_group = on(spec.query_group), on(spec.pool_group)
    pool_order, query_cutoff = on(spec.pool_order), on(spec.query_cutoff)
    grouped = query_group is not None and pool_group is not None
    sampled = pool_order is not None and query_cutoff is not None
    masked = spec.query_group is not None or spec.query_cutoff is not None

    top_scores = np.full((n_q, k), -np.inf, dtype=np.float32)
    top_index = np.full((n_q, k), -1, dtype=np.int64)
    pool_size = np.zeros(n_q, dtype=np.int64)
    # the numpy path's float32 reduction, so both paths count against the same target score
    targets, target_score, n_greater, n_tied = _target_counters(queries, pool, targets)
    targets_t = None
    if targets is not None:
        targets_t = on(targets)
        target_score_t = on(target_score)
    if not masked:
        pool_size[:] = n_p
        if spec.exclude is not None:
            pool_size -= (spec.exclude >= 0) & (spec.exclude < n_p)
    minus_inf = torch.tensor(-torch.inf, device=dev)

    def local(index: Any, q: slice, p0: int, width: int) -> tuple[Any, Any]:
        """(rows, block columns) of the per-query pool rows in ``index`` that fall in this pool block."""
        col = index[q] - p0
        rows = torch.nonzero((col >= 0) & (col < width)).flatten()
        return rows, col[rows]

    with torch.inference_mode(), _FullFloat32(torch):
        for q0 in range(0, n_q, query_block):
            q = slice(q0, min(q0 + query_block, n_q))
            n_rows = q.stop - q.start
            query_t = torch.as_tensor(queries[q]).to(dev)
            run_scores = torch.full((n_rows, k_eff), -torch.inf, device=dev)
            run_index = torch.full((n_rows, k_eff), -1, dtype=torch.int64, device=dev)
            greater_q = torch.zeros(n_rows, dtype=torch.int64, device=dev)
            tied_q = torch.zeros(n_rows, dtype=torch.int64, device=dev)
            size_q = torch.zeros(n_rows, dtype=torch.int64, device=dev)
            for p0 in range(0, n_p, pool_block):
                p = slice(p0, min(p0 + pool_block, n_p))
                width = p.stop - p.start
                block = query_t @ pool_t[p].T
                out = None
                if grouped:
                    out = query_group[q][:, None] != pool_group[p][None, :]
                if sampled:
                    beyond = pool_order[p][None, :] > query_cutoff[q][:, None]
                    out = beyond if out is None else out | beyond
                if out is not None:
                    if always is not None:
                        rows, cols = local(always, q, p0, width)
                        out[rows, cols] = False
                    block = torch.where(out, minus_inf, block)
                if exclude is not None:
                    rows, cols = local(exclude, q, p0, width)
                    block[rows, cols] = -torch.inf
                if masked:
                    size_q += (block > -torch.inf).sum(dim=1)
                if targets_t is not None:
                    ts = target_score_t[q][:, None]
                    greater_q += (block > ts + tie_tolerance).sum(dim=1)
                    tied = (block - ts).abs() <= tie_tolerance
                    rows, cols = local(targets_t, q, p0, width)
                    if not bool(torch.isfinite(block[rows, cols]).all()):
                        raise ValueError("chunked_topk: a target is outside its query's pool")
                    tied[rows, cols] = False
                    tied_q += tied.sum(dim=1)
                if k_eff:
                    best, columns = _block_best(torch, block, min(k_eff, width))
                    # running entries come from lower pool rows than this block's, and each part is in
                    # ascending pool row among equal scores, so a stable sort keeps the lower row first
                    scores = torch.cat([run_scores, best], dim=1)
                    index = torch.cat([run_index, columns + p0], dim=1)
                    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k_eff]
                    run_scores = torch.gather(scores, 1, order)
                    run_index = torch.gather(index, 1, order)
            if masked:
                pool_size[q] = size_q.cpu().numpy()
            if targets_t is not None:
                n_greater[q] = greater_q.cpu().numpy()
                n_tied[q] = tied_q.cpu().numpy()
            if k_eff:
                scores_np = run_scores.cpu().numpy()
                top_scores[q, :k_eff] = scores_np
                top_index[q, :k_eff] = np.where(np.isfinite(scores_np), run_index.cpu().numpy(), -1)
    return TopKResult(top_index, top_scores, pool_size, n_greater, n_tied, target_score)
