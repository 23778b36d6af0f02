"""A batch sampler that never puts two pairs of the same patient in one batch.

With in-batch negatives, every other positive in the batch is a negative. A second pair of the same
patient would make that patient's own notes negatives (false negatives that teach the model to push a
patient's notes apart, the opposite of the goal), so each batch holds at most one pair per patient.

Construction (deterministic from seed and epoch, so a resumed run replays the same batches):
shuffle the patients and each patient's pairs, lay the pairs out patient after patient, and deal
position p to batch p mod n_batches, with n_batches = max(ceil(n / batch_size), largest patient). A
patient's pairs occupy a contiguous run no longer than n_batches, so they land in distinct batches.
The batch order is then shuffled.

Several processes (torchrun / accelerate launch): accelerate hands batch i to process i mod R. The
sampler is built with ``num_replicas=R`` and deals into "super-batches" of R * batch_size pairs, each
cut into R consecutive batches, so the R batches trained at the same step are patient-disjoint
together, which keeps the property when the loss gathers negatives across devices.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from sentence_transformers.base.sampler import DefaultBatchSampler

from clinpred.errors import InputError


def patient_batches(
    groups: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int = 0,
    num_replicas: int = 1,
    drop_last: bool = False,
) -> list[list[int]]:
    """Index batches over ``groups`` (one patient id per pair) with no patient twice per super-batch.

    ``drop_last`` keeps only full super-batches, as many as the patients allow; a patient with more pairs
    than that keeps a random subset of its pairs for this epoch.
    """
    groups = np.asarray(groups)
    n = len(groups)
    size = batch_size * num_replicas
    if n == 0 or (drop_last and n < size):
        return []
    rng = np.random.default_rng([seed, epoch])
    uniq, inverse = np.unique(groups, return_inverse=True)
    group_rank = rng.permutation(len(uniq))[inverse]  # a random order of patients
    order = np.lexsort((rng.random(n), group_rank))  # patient after patient, pairs shuffled within
    if drop_last:  # shrink until every patient fits: then the first n_super * size pairs fill each batch
        sorted_groups = inverse[order]
        starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
        within = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        n_super = n // size
        while n_super > 0 and int((within < n_super).sum()) < n_super * size:
            n_super -= 1
        if n_super == 0:
            return []
        order = order[within < n_super][: n_super * size]
    else:
        n_super = max(math.ceil(n / size), int(np.bincount(inverse).max()))
    slot = np.arange(len(order)) % n_super
    supers = [order[slot == b] for b in rng.permutation(n_super)]
    if num_replicas > 1 and min(len(sb) for sb in supers) < num_replicas:
        raise InputError(
            f"one patient has {int(np.bincount(inverse).max())} of the {n} pairs: too many to give each of "
            f"{num_replicas} processes a batch at every step. Set pairs.max_pairs_per_patient lower."
        )
    batches = [chunk.tolist() for sb in supers for chunk in np.array_split(sb, num_replicas)]
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    return batches


class PatientBatchSampler(DefaultBatchSampler):
    """The trainer's batch sampler: batches from ``patient_batches``, reshuffled each epoch."""

    def __init__(
        self,
        dataset: Sequence,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        *,
        groups: Sequence[int],
        num_replicas: int = 1,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if len(groups) != len(dataset):
            raise ValueError(f"{len(groups)} group ids for {len(dataset)} pairs")
        self.groups = np.asarray(groups)
        self.per_process_batch_size = batch_size
        self.num_replicas = num_replicas
        self._cache: tuple[int, list[list[int]]] | None = None
        if num_replicas > 1:
            # Batch sizes may differ by one; accelerate's shard then yields every batch as it comes
            # instead of waiting for full ones (BatchSamplerShard treats batch_size None as dynamic).
            self.batch_size = None

    def _batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            batches = patient_batches(
                self.groups,
                self.per_process_batch_size,
                seed=self.seed,
                epoch=self.epoch,
                num_replicas=self.num_replicas,
                drop_last=self.drop_last,
            )
            self._cache = (self.epoch, batches)
        return self._cache[1]

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()
