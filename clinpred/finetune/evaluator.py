"""Next-note recall on the validation patients, logged during fine-tuning.

Query = a patient's note t; target = the same patient's note t+1; pool = every validation note except
the query itself (DESIGN.md, rule 4). The validation patients are a slice of the fine-tuning patients,
never evaluation patients: this curve is for watching training, not for the published numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sentence_transformers.base.evaluation import BaseEvaluator

from clinpred.data.cohort import Cohort
from clinpred.finetune.config import PairConfig
from clinpred.finetune.pairs import consecutive_index, usable_notes


@dataclass(frozen=True)
class RecallSet:
    """Texts of the pool and, per query, the pool positions of the query and its target."""

    texts: list[str]
    query: np.ndarray
    target: np.ndarray

    @property
    def pool_size(self) -> int:
        return len(self.texts)


def recall_set(
    cohort: Cohort,
    subject_ids: Sequence[int],
    pairs: PairConfig,
    *,
    max_queries: int | None = None,
    seed: int = 0,
) -> RecallSet:
    """Pool and queries from the given patients' notes (the pair categories apply; no gap or cap)."""
    notes, _ = usable_notes(cohort, subject_ids, pairs)
    query = consecutive_index(notes["subject_id"].to_numpy(dtype=np.int64))
    if max_queries is not None and len(query) > max_queries:
        query = np.sort(np.random.default_rng(seed).choice(query, size=max_queries, replace=False))
    return RecallSet(texts=notes["text"].astype(str).tolist(), query=query, target=query + 1)


def ranks(query_vecs: np.ndarray, pool_vecs: np.ndarray, query: np.ndarray, target: np.ndarray) -> np.ndarray:
    """0-based rank of each target among the pool, the query itself excluded; ties count against."""
    out = np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), 1024):  # chunks bound the similarity matrix's memory
        stop = min(start + 1024, len(query))
        sims = query_vecs[start:stop] @ pool_vecs.T
        rows = np.arange(stop - start)
        sims[rows, query[start:stop]] = -np.inf
        target_sim = sims[rows, target[start:stop]]
        out[start:stop] = (sims >= target_sim[:, None]).sum(axis=1) - 1
    return out


def recall_metrics(rank: np.ndarray, ks: Sequence[int], pool_size: int) -> dict[str, float]:
    """recall@k, MRR and the chance level of recall@k (one target among pool_size - 1 candidates)."""
    if len(rank) == 0:
        return {}
    metrics = {f"recall@{k}": float(np.mean(rank < k)) for k in ks}
    metrics["mrr"] = float(np.mean(1.0 / (rank + 1)))
    metrics["queries"] = float(len(rank))
    metrics["pool"] = float(pool_size)
    for k in ks:
        metrics[f"chance@{k}"] = min(1.0, k / max(pool_size - 1, 1))
    return metrics


class NextNoteRecallEvaluator(BaseEvaluator):
    """sentence-transformers evaluator: embeds the pool once, ranks every query's next note."""

    def __init__(
        self,
        data: RecallSet,
        *,
        ks: Sequence[int] = (1, 5, 10),
        query_prompt: str = "",
        document_prompt: str = "",
        batch_size: int = 64,
        name: str = "next_note",
    ) -> None:
        super().__init__()
        self.data = data
        self.ks = list(ks)
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.batch_size = batch_size
        self.name = name
        self.primary_metric = "recall@5"
        self.history: list[dict[str, float]] = []

    def compute(self, model) -> dict[str, float]:
        """Unprefixed metrics of ``model`` on this set."""
        d = self.data
        if len(d.query) == 0:
            return {}
        kwargs = {"batch_size": self.batch_size, "normalize_embeddings": True, "show_progress_bar": False}
        pool = model.encode(d.texts, prompt=self.document_prompt, **kwargs).astype(np.float32)
        if self.query_prompt == self.document_prompt:
            queries = pool[d.query]
        else:
            texts = [d.texts[i] for i in d.query]
            queries = model.encode(texts, prompt=self.query_prompt, **kwargs).astype(np.float32)
        return recall_metrics(ranks(queries, pool, d.query, d.target), self.ks, d.pool_size)

    def __call__(self, model, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict:
        metrics = self.compute(model)
        self.history.append({"step": float(steps), **metrics})
        return self.prefix_name_to_metrics(metrics, self.name)
