"""Note-to-unit aggregation against hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clinpred.tasks.aggregate import aggregate


def _notes() -> tuple[pd.DataFrame, np.ndarray]:
    notes = pd.DataFrame(
        {
            "subject_id": [1, 1, 1, 3, 3],
            "hadm_id": pd.array([10, 10, None, 30, 31], dtype="Int64"),
            "time": pd.to_datetime(["2100-01-01", "2100-01-31", "2100-03-01", "2100-01-01", "2100-01-02"]),
        }
    )
    emb = np.array([[1, 0], [0, 1], [3, 4], [0, -2], [2, 0]], dtype=np.float32)
    return notes, emb


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def test_mean_in_the_order_of_units_with_mask_and_zero_rows():
    notes, emb = _notes()
    feats, mask = aggregate(notes, emb, [3, 2, 1])
    assert feats.dtype == np.float32 and feats.shape == (3, 2)
    assert mask.tolist() == [True, False, True]
    np.testing.assert_allclose(feats[0], _unit([1, -1]), atol=1e-6)  # mean of (0,-2), (2,0)
    np.testing.assert_array_equal(feats[1], [0, 0])
    np.testing.assert_allclose(feats[2], _unit([4 / 3, 5 / 3]), atol=1e-6)


def test_last_k_mean_takes_the_latest_notes():
    notes, emb = _notes()
    feats, _ = aggregate(notes, emb, [1, 3], method="last_k_mean", k=2)
    np.testing.assert_allclose(feats[0], _unit([1.5, 2.5]), atol=1e-6)  # notes 2 and 3 of patient 1
    np.testing.assert_allclose(feats[1], _unit([1, -1]), atol=1e-6)
    feats1, _ = aggregate(notes, emb, [1], method="last_k_mean", k=1)
    np.testing.assert_allclose(feats1[0], _unit([3, 4]), atol=1e-6)


def test_max_is_elementwise_and_not_normalised():
    notes, emb = _notes()
    feats, _ = aggregate(notes, emb, [1, 3], method="max")
    np.testing.assert_array_equal(feats, [[3, 4], [2, 0]])


def test_decay_mean_halves_weight_per_half_life_before_the_last_note():
    notes, emb = _notes()
    feats, _ = aggregate(notes, emb, [1], method="decay_mean", half_life_days=30.0)
    # patient 1: last note 2100-03-01; ages 59 and 29 days before it, 0 for the last
    w = np.array([0.5 ** (59 / 30), 0.5 ** (29 / 30), 1.0])
    expected = (w[:, None] * emb[:3]).sum(0) / w.sum()
    np.testing.assert_allclose(feats[0], _unit(expected), atol=1e-6)


def test_admission_key_skips_notes_without_an_admission():
    notes, emb = _notes()
    feats, mask = aggregate(notes, emb, [31, 10, 99], key="hadm_id")
    assert mask.tolist() == [True, True, False]
    np.testing.assert_allclose(feats[0], [1, 0], atol=1e-6)
    np.testing.assert_allclose(feats[1], _unit([0.5, 0.5]), atol=1e-6)  # the hadm-less note is left out


def _random_notes(rng: np.random.Generator, n: int, patients: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` notes of ``patients`` patients in (subject_id, time) order, and 8-d embeddings."""
    subjects = np.sort(rng.integers(0, patients, size=n))
    times = pd.Timestamp("2100-01-01") + pd.to_timedelta(rng.integers(0, 10**6, size=n), unit="min")
    notes = pd.DataFrame({"subject_id": subjects, "time": times}).sort_values(["subject_id", "time"])
    return notes.reset_index(drop=True), rng.normal(size=(n, 8)).astype(np.float32)


def test_a_subset_of_notes_and_unsorted_units_agree_with_a_loop():
    rng = np.random.default_rng(0)
    notes, emb = _random_notes(rng, 300, 40)
    units = rng.permutation(np.arange(45))
    for method in ("mean", "last_k_mean", "max", "decay_mean"):
        feats, mask = aggregate(notes, emb, units, method=method, k=3, half_life_days=7.0)
        for i, s in enumerate(units):
            rows = np.flatnonzero(notes["subject_id"].to_numpy() == s)
            assert mask[i] == (len(rows) > 0)
            if not len(rows):
                continue
            e = emb[rows].astype(float)
            if method == "max":
                np.testing.assert_allclose(feats[i], e.max(0), atol=1e-6)
                continue
            if method == "mean":
                v = e.mean(0)
            elif method == "last_k_mean":
                v = e[-3:].mean(0)
            else:
                t = notes["time"].to_numpy()[rows]
                w = 0.5 ** ((t.max() - t) / np.timedelta64(1, "D") / 7.0)
                v = (w[:, None] * e).sum(0)
            np.testing.assert_allclose(feats[i], _unit(v), atol=1e-5)


def test_misaligned_embeddings_and_duplicate_units_are_refused():
    notes, emb = _notes()
    with pytest.raises(ValueError, match="embedding rows"):
        aggregate(notes, emb[:3], [1])
    with pytest.raises(ValueError, match="unique"):
        aggregate(notes, emb, [1, 1])


@pytest.mark.parametrize("method", ["mean", "last_k_mean", "max", "decay_mean"])
def test_selected_rows_read_in_place_equal_a_copied_subset_to_the_bit(method):
    """Tasks pass their feature notes' rows (rows_of) instead of copying that subset of the embeddings
    (3 GB for a million 768-d notes): the features are the same bits, by mask or by positions."""
    rng = np.random.default_rng(1)
    notes, emb = _random_notes(rng, 200, 30)
    keep = rng.random(200) > 0.4
    units = rng.permutation(np.arange(32))
    kw = {"method": method, "k": 3, "half_life_days": 7.0}
    copied, mask = aggregate(notes[keep], emb[keep], units, **kw)
    for rows in (keep, np.flatnonzero(keep)):
        in_place, same_mask = aggregate(notes[keep], emb, units, rows_of=rows, **kw)
        assert np.array_equal(in_place, copied) and np.array_equal(same_mask, mask)
    with pytest.raises(ValueError, match="embedding rows"):
        aggregate(notes[keep], emb, units, rows_of=np.flatnonzero(keep)[:-1], **kw)
