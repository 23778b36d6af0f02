"""The patient-aware sampler: no batch ever holds two pairs of one patient, on its actual batches."""

from __future__ import annotations

import numpy as np
import pytest

from clinpred.finetune.sampler import PatientBatchSampler, patient_batches


def groups_with_giant(seed: int = 0) -> np.ndarray:
    """300 pairs: one patient with 60 pairs, a few with 10, many with 1-3."""
    rng = np.random.default_rng(seed)
    groups = [0] * 60 + [g for g in range(1, 6) for _ in range(10)]
    g = 6
    while len(groups) < 300:
        groups += [g] * int(rng.integers(1, 4))
        g += 1
    groups = np.array(groups[:300])
    return groups[rng.permutation(len(groups))]


def assert_patient_disjoint(batches: list[list[int]], groups: np.ndarray) -> None:
    for batch in batches:
        patients = groups[batch]
        assert len(set(patients.tolist())) == len(patients), (
            f"a patient twice in one batch: {sorted(patients)}"
        )


@pytest.mark.parametrize("batch_size", [2, 8, 32, 64])
def test_sampler_batches_never_repeat_a_patient_and_cover_every_pair_once(batch_size):
    groups = groups_with_giant()
    sampler = PatientBatchSampler(list(range(len(groups))), batch_size, False, groups=groups, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert_patient_disjoint(batches, groups)
        assert sorted(i for b in batches for i in b) == list(range(len(groups)))
        assert max(len(b) for b in batches) <= batch_size


def test_one_patient_with_many_pairs_gets_one_batch_per_pair():
    groups = np.array([7] * 50 + [1, 2, 3])
    batches = patient_batches(groups, 16, seed=0)
    assert len(batches) == 50  # the 50 pairs of patient 7 need 50 batches
    assert_patient_disjoint(batches, groups)
    assert sorted(i for b in batches for i in b) == list(range(len(groups)))


def test_full_batches_when_patients_allow():
    groups = np.repeat(np.arange(64), 2)  # 128 pairs, two per patient
    batches = patient_batches(groups, 32, seed=0)
    assert [len(b) for b in batches] == [32] * 4
    assert_patient_disjoint(batches, groups)


def test_deterministic_per_seed_and_epoch_and_reshuffled_across_epochs():
    groups = groups_with_giant()
    a = patient_batches(groups, 16, seed=5, epoch=1)
    assert a == patient_batches(groups, 16, seed=5, epoch=1)
    assert a != patient_batches(groups, 16, seed=5, epoch=2)
    assert a != patient_batches(groups, 16, seed=6, epoch=1)


def test_replica_windows_are_patient_disjoint_together():
    """Under R processes, batches R*s .. R*s+R-1 train at the same step: no patient twice among them."""
    groups = groups_with_giant(1)
    replicas = 4
    batches = patient_batches(groups, 8, seed=0, num_replicas=replicas)
    assert len(batches) % replicas == 0
    windows = [[i for b in batches[s : s + replicas] for i in b] for s in range(0, len(batches), replicas)]
    assert_patient_disjoint(windows, groups)
    assert sorted(i for b in batches for i in b) == list(range(len(groups)))


def test_drop_last_yields_only_full_patient_disjoint_batches():
    groups = groups_with_giant(2)
    batches = patient_batches(groups, 32, seed=0, drop_last=True)
    assert batches and all(len(b) == 32 for b in batches)
    assert_patient_disjoint(batches, groups)


def test_sampler_checks_group_length():
    with pytest.raises(ValueError, match="group ids"):
        PatientBatchSampler(list(range(5)), 2, False, groups=[1, 2])


def test_replicas_refuse_a_patient_too_large_to_spread():
    from clinpred.errors import InputError

    groups = np.array([1] * 20 + [2, 3])  # 20 batches needed, only 22 pairs for 4 processes
    with pytest.raises(InputError, match="max_pairs_per_patient"):
        patient_batches(groups, 4, seed=0, num_replicas=4)


def test_patients_with_several_pairs_meet_new_patients_in_each_batch():
    """100 patients x 8 pairs, batches of 16: a patient's 8 batches hold ~8 x 15 other pairs. Dealt at
    random they come from ~72 of the 99 other patients; the earlier contiguous deal gave 27 (the same
    neighbours, the same negatives, in 7 of every 8 batches)."""
    groups = np.repeat(np.arange(100), 8)
    batches = patient_batches(groups, 16, seed=0)
    assert [len(b) for b in batches] == [16] * 50
    assert_patient_disjoint(batches, groups)
    met: dict[int, set[int]] = {p: set() for p in range(100)}
    for batch in batches:
        patients = set(groups[batch].tolist())
        for p in patients:
            met[p] |= patients - {p}
    assert np.mean([len(m) for m in met.values()]) > 60


def test_one_pair_per_patient_deals_exactly_as_before():
    """The demo fine-tunes one pair per patient: its batches (and so its committed models) are unchanged."""
    assert patient_batches(np.arange(10) * 3, 4, seed=0) == [[9, 0, 3], [7, 4, 1, 6], [2, 5, 8]]
