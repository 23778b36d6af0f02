"""Next-note recall: can a patient's next note be found from the current one? (DESIGN.md rule 4)

Definition, stated in every result:

- queries: every consecutive pair (note t, note t+1) of each evaluation patient, in the cohort's
  (subject_id, time) order, among the notes of the chosen categories (default: all); the query is note
  t, the target note t+1;
- pool: every evaluation note of those categories except the query itself (default); options: only
  notes of the target's category, and a maximum pool size by seeded sampling (the target is always
  kept: a random permutation of the notes is drawn once from the seed, and each query's pool is the
  target plus the first ``max_pool_size - 1`` eligible notes in that order);
- score: cosine similarity (dot product of L2-normalised rows); rank of the target = 1 + pool notes
  scoring above it + (pessimistic rule, default) pool notes tied with it. Scores within
  ``tie_tolerance`` are ties: float32 products are not exactly reproducible across block shapes, and
  identical texts give identical vectors whose tie must not be won by chance of ordering;
- identical texts: a pair whose target text equals its query text (copy-forward notes) is trivially
  solved by any model, so it is dropped by default and counted (``identical_pairs="keep"`` keeps it).
  Other notes with the target's exact text stay in the pool and count as ties against the target.

Metrics: top-1/5/10 accuracy, MRR, mean pool size, the number of queries and chance level for each k
(the mean over queries of min(k, pool size) / pool size), with patient-bootstrap intervals.

Method, stated in every result (``definition.method``): scoring every query against every pool note
costs queries x pool, quadratic in the cohort (hours at MIMIC-III size on a CPU). Up to
``exact_up_to`` queries every query is scored ("exact"); above it (and where ``query_sample`` is set)
a seeded, patient-stratified sample of ``query_sample`` queries is scored against the **full** pool
("sampled queries against the full pool"), so the cost is linear in the pool. Only which queries are
scored changes: each sampled query's pool, masks, target rank and tie rule are exactly those of the
exact method (the same rows of ``units``). The choice depends on the cohort and the config alone, never
on the machine, so two runs of one config always share a definition. On a GPU the exact method runs on
the torch block path (``clinpred.tasks.topk``); set ``query_sample = "all"`` (or a larger
``exact_up_to``) to have it at any size.

Identity or content (DESIGN.md rule 7)? A model can find note t+1 by recognising the patient. Beside
next-note recall, every result gives:

- patient@k: the share of queries whose top k holds any other note of the same patient (identity
  retrieval), with its chance level 1 - C(N-m, k) / C(N, k) for a pool of N notes of which m are the
  patient's; computed on the whole pool (every used note but the query), whatever the pool setting;
- within-patient next: the rank of note t+1 among the same patient's other notes only (top-1 and MRR,
  chance 1/m and H(m)/m), over queries whose patient has at least two candidates: does the model know
  which of the patient's notes comes next, beyond knowing the patient?
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.special import digamma, gammaln

from clinpred.backends.base import l2_normalise
from clinpred.bounds import MAX_BLOCK, MAX_POOL, MAX_SEED, MAX_TOLERANCE, all_means_none
from clinpred.data.cohort import Cohort, arrow_chunks, rows_where
from clinpred.errors import InputError
from clinpred.tasks.result import BootstrapScheme, TaskResult, bootstrap_metrics, without_intervals
from clinpred.tasks.subgroups import SubgroupConfig, subgroup_metrics
from clinpred.tasks.topk import PoolSpec, chunked_topk

KS: tuple[int, ...] = (1, 5, 10)
# what describes the test rather than measures the model: shown without interval, never paired
DESCRIPTIVE_METRICS = (
    "pool_size",
    "queries",
    *(f"chance_top{k}" for k in KS),
    "chance_mrr",
    *(f"chance_patient_top{k}" for k in KS),
    "within_queries",
    "chance_within_top1",
    "chance_within_mrr",
)


class RecallConfig(BaseModel):
    """Every setting of the recall task; the result records all of them."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    categories: list[str] | None = None  # note categories used for queries, targets and pool; None = all
    pool: Literal["all", "target_category"] = "all"
    # seeded sample per query, the target always kept
    max_pool_size: int | None = Field(None, ge=2, le=MAX_POOL)
    identical_pairs: Literal["drop", "keep"] = "drop"
    tie_rule: Literal["pessimistic", "optimistic"] = "pessimistic"
    tie_tolerance: float = Field(1e-5, ge=0.0, le=MAX_TOLERANCE)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # above exact_up_to queries, score a seeded patient-stratified sample of query_sample queries against
    # the full pool ("all", i.e. None: always exact); the sample's seed is ``seed``
    query_sample: int | None = Field(20_000, ge=1, le=MAX_POOL)
    exact_up_to: int = Field(50_000, ge=1, le=MAX_POOL)
    # memory bound only: results do not depend on block sizes; None: the device's (1024 x 8192 on the
    # CPU, 4096 x 32768 on a GPU: clinpred.tasks.topk)
    query_block: int | None = Field(None, ge=1, le=MAX_BLOCK)
    pool_block: int | None = Field(None, ge=1, le=MAX_BLOCK)
    bootstrap: BootstrapScheme = BootstrapScheme()

    @field_validator("query_sample", mode="before")
    @classmethod
    def _every_query(cls, value: object) -> object:
        """``"all"`` (or ``"none"``/``"null"``: TOML has no null) scores every query at any size."""
        return all_means_none(value)

    subgroups: SubgroupConfig = Field(default_factory=SubgroupConfig)


def metrics_from_units(units: pd.DataFrame) -> dict[str, float]:
    """Top-k accuracy, MRR, pool size, query count and chance levels from per-query rows."""
    rank = units["rank"].to_numpy(dtype=float)
    pool = units["pool_size"].to_numpy(dtype=float)
    if len(rank) == 0:
        nan = float("nan")
        return {
            **{f"top{k}": nan for k in KS},
            "mrr": nan,
            "pool_size": nan,
            "queries": 0.0,
            **{f"chance_top{k}": nan for k in KS},
            "chance_mrr": nan,
        }
    out = {f"top{k}": float(np.mean(rank <= k)) for k in KS}
    out["mrr"] = float(np.mean(1.0 / rank))
    out["pool_size"] = float(np.mean(pool))
    out["queries"] = float(len(rank))
    for k in KS:
        out[f"chance_top{k}"] = float(np.mean(np.minimum(k, pool) / pool))
    out["chance_mrr"] = float(np.mean(_harmonic(pool) / pool))
    if "patient_rank" in units:  # identity versus content (results written before them lack these)
        out.update(_identity_metrics(units))
    return out


def _harmonic(n: np.ndarray) -> np.ndarray:
    """H(n) = 1 + 1/2 + ... + 1/n: the expected reciprocal rank of a random position in n, times n."""
    return digamma(n + 1.0) + np.euler_gamma


def _chance_any_in_top(k: int, pool: np.ndarray, own: np.ndarray) -> np.ndarray:
    """P(at least one of ``own`` marked notes in the top k of a random order of ``pool`` notes)."""
    rest = pool - own
    log_none = (
        gammaln(rest + 1) - gammaln(np.maximum(rest - k, 0) + 1) - gammaln(pool + 1) + gammaln(pool - k + 1)
    )
    return np.where(rest < k, 1.0, 1.0 - np.exp(log_none))


def _identity_metrics(units: pd.DataFrame) -> dict[str, float]:
    """patient@k with its chance level, and within-patient next-note top-1 / MRR with theirs."""
    patient_rank = units["patient_rank"].to_numpy(dtype=float)
    own = units["patient_notes"].to_numpy(dtype=float)
    full_pool = units["patient_pool_size"].to_numpy(dtype=float)
    out: dict[str, float] = {}
    for k in KS:
        out[f"patient_top{k}"] = float(np.mean(patient_rank <= k))
        out[f"chance_patient_top{k}"] = float(np.mean(_chance_any_in_top(k, full_pool, own)))
    eligible = own >= 2  # with one candidate, "which of the patient's notes comes next" has one answer
    within = units["within_rank"].to_numpy(dtype=float)[eligible]
    candidates = own[eligible]
    out["within_queries"] = float(eligible.sum())
    nan = float("nan")
    out["within_top1"] = float(np.mean(within == 1)) if len(within) else nan
    out["within_mrr"] = float(np.mean(1.0 / within)) if len(within) else nan
    out["chance_within_top1"] = float(np.mean(1.0 / candidates)) if len(within) else nan
    out["chance_within_mrr"] = float(np.mean(_harmonic(candidates) / candidates)) if len(within) else nan
    return out


def _same_patient_ranks(
    vectors: np.ndarray,
    subject_ids: np.ndarray,
    q_idx: np.ndarray,
    t_idx: np.ndarray,
    tolerance: float,
    pessimistic: bool,
) -> dict[str, np.ndarray]:
    """Per query, from the patient's own notes (rows of one patient are contiguous):

    the best-scoring other note of the patient and how many others tie with it, the number of the
    patient's other notes, and the within-patient rank of the target among them.
    """
    n_q = len(q_idx)
    best = np.empty(n_q, dtype=np.int64)
    best_ties = np.empty(n_q, dtype=np.int64)
    own = np.empty(n_q, dtype=np.int64)
    within = np.empty(n_q, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, subject_ids[1:] != subject_ids[:-1]])
    ends = np.r_[starts[1:], len(subject_ids)]
    block = np.searchsorted(starts, q_idx, side="right") - 1
    order = np.argsort(block, kind="stable")
    bounds = np.flatnonzero(np.r_[True, block[order][1:] != block[order][:-1], True])
    for lo, hi in itertools.pairwise(bounds):
        sel = order[lo:hi]
        b = block[sel[0]]
        s, e = starts[b], ends[b]
        rows = np.arange(len(sel))
        scores = vectors[q_idx[sel]] @ vectors[s:e].T
        scores[rows, q_idx[sel] - s] = -np.inf  # the query is not its own candidate
        top = scores.argmax(axis=1)
        top_score = scores[rows, top]
        best[sel] = top + s
        best_ties[sel] = (scores >= (top_score - tolerance)[:, None]).sum(axis=1) - 1
        target_score = scores[rows, t_idx[sel] - s]
        greater = (scores > (target_score + tolerance)[:, None]).sum(axis=1)
        tied = (np.abs(scores - target_score[:, None]) <= tolerance).sum(axis=1) - 1
        within[sel] = 1 + greater + (tied if pessimistic else 0)
        own[sel] = (e - s) - 1
    return {"best": best, "best_ties": best_ties, "own": own, "within": within}


def _same_as_next(text: pd.Series) -> np.ndarray:
    """For each note, whether the next note's text is identical (the last: False).

    Compared on the text column's own Arrow storage, two zero-copy slices of it: no Python string per
    note and no gathered copy of the text (MIMIC's evaluation text is over a gigabyte).
    """
    if len(text) < 2:
        return np.zeros(len(text), dtype=bool)
    values = arrow_chunks(text)
    if values is None:
        values = pa.chunked_array([pa.array(text, from_pandas=True)])
    equal = pc.fill_null(
        pc.equal(values.slice(0, len(text) - 1), values.slice(1)), False
    )  # missing: not same
    return np.append(equal.to_numpy(zero_copy_only=False), False).astype(bool)


def _consecutive_pairs(subject_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query row, target row) for each note followed by another note of the same patient."""
    q = np.flatnonzero(subject_ids[1:] == subject_ids[:-1]).astype(np.int64)
    return q, q + 1


def _sample_cutoffs(
    pool_order: np.ndarray,
    groups: np.ndarray | None,
    queries: np.ndarray,
    targets: np.ndarray,
    max_pool_size: int,
) -> np.ndarray:
    """Per query, the largest permutation rank in its sample: max_pool_size - 1 eligible notes + target.

    Eligible: the notes of the target's group (or all), other than the query and the target. The first
    ones in permutation order are taken, so each pool is a uniform random sample of its eligible notes.
    """
    n = len(pool_order)
    cutoff = np.full(len(queries), n, dtype=np.int64)  # n: no cut (the whole eligible set)
    group_of = np.zeros(n, dtype=np.int64) if groups is None else groups
    need = max_pool_size - 2  # 0-based position of the last sampled non-target note
    for g in np.unique(group_of[targets]):
        sel = np.flatnonzero(group_of[targets] == g)
        ranks = np.sort(pool_order[group_of == g])
        q_rank, t_rank = pool_order[queries[sel]], pool_order[targets[sel]]
        q_in = group_of[queries[sel]] == g
        pos_q = np.where(q_in, np.searchsorted(ranks, q_rank), len(ranks))
        pos_t = np.searchsorted(ranks, t_rank)
        j = np.full(len(sel), need, dtype=np.int64)
        for _ in range(3):  # at most two removed positions: converges in two steps
            j = need + (pos_q <= j) + (pos_t <= j)
        inside = j < len(ranks)
        cutoff[sel[inside]] = ranks[j[inside]]
    return cutoff


EXACT = "exact"
SAMPLED = "sampled queries against the full pool"
QUERY_SAMPLE_STREAM = 25  # the query sample's own random stream of ``seed`` (the pool sample has another)


def recall_method(config: RecallConfig, n_queries: int) -> str:
    """``EXACT`` or ``SAMPLED``, from the config and the number of queries alone (never the machine)."""
    if config.query_sample is None or n_queries <= max(config.exact_up_to, config.query_sample):
        return EXACT
    return SAMPLED


def sample_queries(query_subjects: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Ascending positions of ``n`` of the queries: a seeded, patient-stratified systematic sample.

    The queries (``query_subjects``: each query's patient, patients contiguous) are laid out patient by
    patient, the patients in a seeded random order and each patient's queries shuffled; every
    ``len / n``-th position from a random start is taken. Every query is sampled with the same
    probability ``n / len`` (so each metric's estimate is unbiased for the exact one), and each patient
    gets ``floor`` or ``ceil`` of its share: the sample is spread over the patients as evenly as it can
    be, with less sampling error than a plain random sample of queries and far less than sampling
    whole patients.

    Why the patient bootstrap of the sampled queries' rows includes the sampling error: a metric is a
    ratio over patients, sum of each patient's scored hits / sum of its scored queries. Resampling
    patients with replacement estimates that ratio's variance from the spread of the per-patient terms
    (hits - metric x queries). For a sampled patient, that term is its exact term scaled by the sampling
    fraction plus the error of sampling its queries; the two add in the spread, so the interval widens
    by the sampling error's share on top of the patient-to-patient variation that the exact interval
    already holds (the "ultimate cluster" estimator of two-stage sampling). Patients none of whose
    queries were drawn add nothing to either sum, so leaving them out of the resampling changes the
    ratio's interval by no more than the random count of such patients would.
    """
    total = len(query_subjects)
    if n >= total:
        return np.arange(total)
    rng = np.random.default_rng([seed, QUERY_SAMPLE_STREAM])
    _, patient = np.unique(query_subjects, return_inverse=True)
    patient_order = rng.permutation(int(patient.max()) + 1)
    layout = np.lexsort((rng.random(total), patient_order[patient]))
    step = total / n
    positions = np.floor(rng.random() * step + step * np.arange(n)).astype(np.int64)
    return np.sort(layout[np.minimum(positions, total - 1)])


def _definition(config: RecallConfig, categories: list[str], method: str) -> dict[str, object]:
    pool = "every evaluation note of the used categories except the query itself"
    if config.pool == "target_category":
        pool += ", of the target's category only"
    if config.max_pool_size is not None:
        pool += (
            f", at most {config.max_pool_size} notes by seeded sampling (seed {config.seed}; the target"
            " always kept)"
        )
    tie = "plus pool notes tied with the target" if config.tie_rule == "pessimistic" else "ties ignored"
    if config.query_sample is None:
        rule = "every query scored, at any size"
    else:
        rule = (
            f"every query scored up to {max(config.exact_up_to, config.query_sample):,} queries; above that, a "
            f"seeded (seed {config.seed}) patient-stratified sample of {config.query_sample:,} queries, each "
            "scored against the full pool with the exact pool, masks, target rank and tie rule; the patient "
            "bootstrap resamples the sampled queries' patients, so the interval includes the sampling error"
        )
    return {
        **config.model_dump(mode="json", exclude={"bootstrap"}),
        "method": method,
        "method_rule": rule,
        "categories_used": categories,
        "query": "note t of each consecutive pair of an evaluation patient's notes in (subject_id, time) order",
        "target": "note t+1 of the same patient",
        "pool_description": pool,
        "similarity": "cosine (dot product of L2-normalised embeddings)",
        "rank": f"1 + pool notes scoring above the target by more than tie_tolerance, {tie}",
        "patient_at_k": (
            "share of queries whose top k (in the whole pool of used notes, the query excluded) holds any "
            "other note of the query's patient; chance 1 - C(N-m,k)/C(N,k) for m such notes in a pool of N"
        ),
        "within_patient_next": (
            "rank of note t+1 among the patient's other notes only (the query excluded), over queries "
            "whose patient has at least two such notes; chance top-1 1/m, MRR H(m)/m"
        ),
        "identical_pairs_rule": (
            "pairs whose target text equals the query text are dropped and counted"
            if config.identical_pairs == "drop"
            else "pairs whose target text equals the query text are kept"
        ),
    }


def evaluate_recall(cohort: Cohort, embeddings: np.ndarray, config: RecallConfig | None = None) -> TaskResult:
    """Score next-note recall on the cohort's (evaluation) patients; embeddings align with cohort.notes."""
    config = config or RecallConfig()
    notes = cohort.notes
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or len(embeddings) != len(notes):
        raise ValueError(f"recall: {len(notes)} notes but embeddings of shape {embeddings.shape}")
    present = sorted(str(c) for c in notes["category"].dropna().unique())
    if config.categories is None:
        categories = present
        keep = np.ones(len(notes), dtype=bool)
    else:
        unknown = sorted(set(config.categories) - set(present))
        if unknown:
            raise InputError(
                f"recall.categories: {', '.join(map(repr, unknown))} not found among the cohort's note "
                f"categories ({', '.join(present)}); use one of those or leave the setting empty for all"
            )
        categories = sorted(set(config.categories))
        keep = notes["category"].isin(categories).to_numpy(dtype=bool, na_value=False)
    used = rows_where(notes, keep)  # no copy of the text when every category is used
    vectors = l2_normalise(embeddings, keep)  # no copy of a million rows to keep them all
    subject_ids = used["subject_id"].to_numpy()
    q_idx, t_idx = _consecutive_pairs(subject_ids)

    identical = _same_as_next(used["text"])[q_idx]  # t_idx is q_idx + 1
    n_identical = int(identical.sum())
    if config.identical_pairs == "drop":
        q_idx, t_idx = q_idx[~identical], t_idx[~identical]
    if len(q_idx) == 0:
        raise InputError(
            "recall: no query: no evaluation patient has two notes in a row in the categories "
            f"{categories}{' (after dropping identical-text pairs)' if n_identical else ''}; "
            "use more patients or more categories (setting recall.categories)"
        )

    method = recall_method(config, len(q_idx))
    before_sampling = {"queries": len(q_idx), "patients": len(np.unique(subject_ids[q_idx]))}
    if method == SAMPLED:
        assert config.query_sample is not None
        chosen = sample_queries(subject_ids[q_idx], config.query_sample, config.seed)
        q_idx, t_idx = q_idx[chosen], t_idx[chosen]

    groups = None
    if config.pool == "target_category":
        groups = pd.factorize(used["category"].astype(object))[0].astype(np.int64)
    spec_parts: dict[str, np.ndarray | None] = {"exclude": q_idx}
    if groups is not None:
        spec_parts.update(query_group=groups[t_idx], pool_group=groups)
    if config.max_pool_size is not None:
        permutation = np.random.default_rng(config.seed).permutation(len(used))
        pool_order = np.empty(len(used), dtype=np.int64)
        pool_order[permutation] = np.arange(len(used))
        cutoff = _sample_cutoffs(pool_order, groups, q_idx, t_idx, config.max_pool_size)
        spec_parts.update(pool_order=pool_order, query_cutoff=cutoff, always=t_idx)
    found = chunked_topk(
        vectors[q_idx],
        vectors,
        0,
        spec=PoolSpec(**spec_parts),
        targets=t_idx,
        tie_tolerance=config.tie_tolerance,
        query_block=config.query_block,
        pool_block=config.pool_block,
    )
    assert found.n_greater is not None and found.n_tied is not None
    pessimistic = config.tie_rule == "pessimistic"
    rank = 1 + found.n_greater + (found.n_tied if pessimistic else 0)
    own = _same_patient_ranks(vectors, subject_ids, q_idx, t_idx, config.tie_tolerance, pessimistic)
    # patient@k: the rank of the patient's best other note in the whole pool (the query excluded)
    identity = chunked_topk(
        vectors[q_idx],
        vectors,
        0,
        spec=PoolSpec(exclude=q_idx),
        targets=own["best"],
        tie_tolerance=config.tie_tolerance,
        query_block=config.query_block,
        pool_block=config.pool_block,
    )
    assert identity.n_greater is not None and identity.n_tied is not None
    other_patients_tied = np.maximum(identity.n_tied - own["best_ties"], 0)  # ties among own notes: no matter
    patient_rank = 1 + identity.n_greater + (other_patients_tied if pessimistic else 0)
    category = used["category"].astype(object).to_numpy()
    note_id = used["note_id"].astype(object).to_numpy()
    units = pd.DataFrame(
        {
            "subject_id": subject_ids[q_idx],
            "query_note_id": note_id[q_idx],
            "target_note_id": note_id[t_idx],
            "query_category": category[q_idx],
            "target_category": category[t_idx],
            "rank": rank.astype(np.int64),
            "n_tied": found.n_tied,
            "pool_size": found.pool_size,
            "patient_rank": patient_rank.astype(np.int64),
            "patient_notes": own["own"],
            "patient_pool_size": identity.pool_size,
            "within_rank": own["within"],
        }
    )
    warnings = []
    n_ties = int((found.n_tied > 0).sum())
    if n_ties:
        rule = "counted against the target" if config.tie_rule == "pessimistic" else "ignored"
        warnings.append(
            f"{n_ties} queries have pool notes scoring the same as the target (e.g. identical texts); {rule}"
        )
    if config.max_pool_size is not None and int(found.pool_size.min()) < config.max_pool_size:
        warnings.append(
            f"{int((found.pool_size < config.max_pool_size).sum())} queries have fewer eligible notes "
            f"than max_pool_size={config.max_pool_size}; their whole eligible pool is used"
        )
    counts = {
        "patients": len(cohort.patients),
        "patients_with_notes": int(used["subject_id"].nunique()),
        "patients_with_queries": int(units["subject_id"].nunique()),
        "notes": len(used),
        "notes_by_category": {str(k): int(v) for k, v in used["category"].value_counts().items()},
        "queries": len(units),
        "identical_pairs": n_identical,
        "identical_pairs_dropped": n_identical if config.identical_pairs == "drop" else 0,
        "queries_with_ties": n_ties,
        "pool_size_min": int(found.pool_size.min()),
        "pool_size_max": int(found.pool_size.max()),
    }
    if method == SAMPLED:  # only then: an exact run's counts stay as they were
        counts["queries_before_sampling"] = before_sampling["queries"]
        counts["patients_with_queries_before_sampling"] = before_sampling["patients"]
    result = TaskResult(
        task="recall",
        main_metric="top5",
        definition=_definition(config, categories, method),
        counts=counts,
        metrics=without_intervals(
            bootstrap_metrics(units, metrics_from_units, config.bootstrap), DESCRIPTIVE_METRICS
        ),
        bootstrap=config.bootstrap,
        warnings=warnings,
    ).with_units(units)
    result.subgroups = subgroup_metrics(
        cohort, units, metrics_from_units, "top5", config.bootstrap, config.subgroups
    )
    return result
