"""A batch sampler that never puts two pairs of the same patient in one batch.

With in-batch negatives, every other positive in the batch is a negative. A second pair of the same
patient would make that patient's own notes negatives (false negatives that teach the model to push a
patient's notes apart, the opposite of the goal), so each batch holds at most one pair per patient.

Construction (deterministic from seed and epoch, so a resumed run replays the same batches), with
n_batches = max(ceil(n / batch_size), largest patient):
- one pair per patient (the demo): shuffle the patients and deal position p to batch p mod n_batches;
- several pairs per patient: patient after patient in a random order, each pair goes to a batch drawn
  at random among the least filled ones that do not hold the patient yet. Batches stay within one pair
  of each other in size, and a patient's pairs meet new patients in each of their batches. (Dealing a
  patient's contiguous run of pairs to consecutive batches, as before, made k-pair patients share
  (k-1)/k of their batches with the same few neighbours: the same in-batch negatives again and again.)
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
    if np.bincount(inverse).max() > 1:
        return _spread_batches(inverse, batch_size, rng, num_replicas, drop_last)
    # one pair per patient: a random order of patients dealt round the super-batches
    patient_rank = rng.permutation(len(uniq))[inverse]
    order = np.lexsort((rng.random(n), patient_rank))
    n_super = n // size if drop_last else math.ceil(n / size)
    order = order[: n_super * size] if drop_last else order
    slot = np.arange(len(order)) % n_super
    supers = [order[slot == b] for b in rng.permutation(n_super)]
    return _split(supers, inverse, n, batch_size, num_replicas, drop_last)


def _split(
    supers: list[np.ndarray], inverse: np.ndarray, n: int, batch_size: int, num_replicas: int, drop_last: bool
) -> list[list[int]]:
    """Each super-batch cut into one batch per process (checked: every process gets one)."""
    if num_replicas > 1 and min(len(sb) for sb in supers) < num_replicas:
        raise InputError(
            f"one patient has {int(np.bincount(inverse).max())} of the {n} pairs: too many to give each of "
            f"{num_replicas} processes a batch at every step. Set pairs.max_pairs_per_patient lower."
        )
    batches = [chunk.tolist() for sb in supers for chunk in np.array_split(sb, num_replicas)]
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    return batches


def _spread_batches(
    inverse: np.ndarray, batch_size: int, rng: np.random.Generator, num_replicas: int, drop_last: bool
) -> list[list[int]]:
    """Patients with several pairs: each pair to a random least-filled super-batch without the patient."""
    n, size = len(inverse), batch_size * num_replicas
    counts = np.bincount(inverse)
    if drop_last:  # the most full super-batches the patients allow (a patient fills at most one slot each)
        n_super = n // size
        while n_super > 0 and int(np.minimum(counts, n_super).sum()) < n_super * size:
            n_super -= 1
        if n_super == 0:
            return []
        capacity = n_super * size
    else:
        n_super, capacity = max(math.ceil(n / size), int(counts.max())), n
    members = np.argsort(inverse, kind="stable")  # pair indices, patient by patient
    starts = np.r_[0, np.cumsum(counts)]
    supers: list[list[int]] = [[] for _ in range(n_super)]
    pool: list[int] = []  # super-batches at the lowest fill not yet given a pair at that fill, random order
    placed = 0
    for patient in rng.permutation(len(counts)):
        pairs = rng.permutation(members[starts[patient] : starts[patient + 1]])[:n_super]
        taken: set[int] = set()
        skipped: list[int] = []  # at the current fill but already holding this patient: for later patients
        for pair in pairs:
            if placed == capacity:
                break
            while True:
                if not pool:
                    pool = rng.permutation(n_super).tolist()
                slot = pool.pop()
                if slot not in taken:
                    break
                skipped.append(slot)
            supers[slot].append(int(pair))
            taken.add(slot)
            placed += 1
        pool.extend(skipped)
    order = [np.asarray(supers[b], dtype=np.int64) for b in rng.permutation(n_super)]
    return _split(order, inverse, n, batch_size, num_replicas, drop_last)


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
