"""Pair mining: consecutive notes per patient, each filter counted, only the patients asked for."""

from __future__ import annotations

import pandas as pd
import pytest

from clinpred.data.cohort import (
    ADMISSION_DTYPES,
    DIAGNOSIS_DTYPES,
    NOTE_DTYPES,
    PATIENT_DTYPES,
    Cohort,
    conform,
    empty_frame,
)
from clinpred.finetune import FinetuneConfig, PairConfig, mine_pairs

T0 = pd.Timestamp("2150-01-01")


def cohort_from(notes: list[tuple[int, float, str, str]]) -> Cohort:
    """A cohort from (subject_id, hours after T0, category, text) rows, deliberately out of order."""
    rows = [
        {
            "note_id": str(i),
            "subject_id": s,
            "hadm_id": s * 10,
            "time": T0 + pd.Timedelta(hours=h),
            "time_is_date": False,
            "category": cat,
            "description": "",
            "cgid": None,
            "text": text,
        }
        for i, (s, h, cat, text) in enumerate(notes)
    ]
    subjects = sorted({s for s, *_ in notes})
    patients = pd.DataFrame(
        {"subject_id": subjects, "gender": "F", "dob": pd.Timestamp("2100-01-01"), "dod": pd.NaT}
    )
    return Cohort(
        notes=conform(pd.DataFrame(rows), NOTE_DTYPES),
        patients=conform(patients, PATIENT_DTYPES),
        admissions=empty_frame(ADMISSION_DTYPES),
        diagnoses=empty_frame(DIAGNOSIS_DTYPES),
        source="mimic3",
        synthetic=True,
    )


NOTES = [
    (1, 30.0, "Nursing", "p1 n3"),
    (1, 0.0, "Nursing", "p1 n1"),
    (1, 10.0, "Radiology", "p1 n2"),
    (1, 100.0, "Nursing", "p1 n4"),  # 70 h after n3
    (2, 5.0, "Nursing", "p2 n1"),
    (2, 6.0, "Nursing", "   "),  # empty text: dropped before pairing
    (2, 7.0, "Nursing", "p2 n2"),
    (3, 1.0, "Nursing", "p3 only"),  # one note: no pair
    (4, 1.0, "Nursing", "p4 n1"),
    (4, 2.0, "Nursing", "p4 n2"),
]


def as_tuples(pairs: pd.DataFrame) -> list[tuple[str, str, int]]:
    return list(zip(pairs["anchor"], pairs["positive"], pairs["group"], strict=True))


def test_consecutive_pairs_in_time_order_and_counts():
    pairs, counts = mine_pairs(cohort_from(NOTES), [1, 2, 3], PairConfig())
    assert as_tuples(pairs) == [
        ("p1 n1", "p1 n2", 1),
        ("p1 n2", "p1 n3", 1),
        ("p1 n3", "p1 n4", 1),
        ("p2 n1", "p2 n2", 2),
    ]
    assert list(pairs.columns)[:3] == ["anchor", "positive", "group"]
    assert counts == {
        "patients": 3,
        "notes": 8,
        "notes_in_categories": 8,
        "notes_with_text_and_time": 7,
        "consecutive_pairs": 4,
        "pairs_with_positive": 4,
        "pairs_within_gap": 4,
        "pairs_after_cap": 4,
        "pairs": 4,
        "patients_with_pairs": 2,
    }


def test_only_the_given_patients_are_read():
    pairs, counts = mine_pairs(cohort_from(NOTES), [4], PairConfig())
    assert as_tuples(pairs) == [("p4 n1", "p4 n2", 4)]
    assert not any(t.startswith(("p1", "p2", "p3")) for t in [*pairs["anchor"], *pairs["positive"]])
    assert counts["notes"] == 2


def test_gap_filter_drops_pairs_further_apart_than_allowed():
    pairs, counts = mine_pairs(cohort_from(NOTES), [1], PairConfig(max_gap_hours=24))
    assert as_tuples(pairs) == [("p1 n1", "p1 n2", 1), ("p1 n2", "p1 n3", 1)]
    assert (counts["consecutive_pairs"], counts["pairs_within_gap"]) == (3, 2)


def test_categories_pair_consecutive_notes_within_the_kept_categories():
    pairs, counts = mine_pairs(cohort_from(NOTES), [1], PairConfig(categories=["Nursing"]))
    # The radiology note is gone, so n1 and n3 become consecutive.
    assert as_tuples(pairs) == [("p1 n1", "p1 n3", 1), ("p1 n3", "p1 n4", 1)]
    assert counts["notes"] == 4 and counts["notes_in_categories"] == 3


def test_symmetric_adds_each_pair_reversed():
    pairs, counts = mine_pairs(cohort_from(NOTES), [2, 4], PairConfig(symmetric=True))
    assert sorted(as_tuples(pairs)) == sorted(
        [("p2 n1", "p2 n2", 2), ("p2 n2", "p2 n1", 2), ("p4 n1", "p4 n2", 4), ("p4 n2", "p4 n1", 4)]
    )
    assert counts["pairs_after_cap"] == 2 and counts["pairs"] == 4


def many_notes(n_patients: int, per_patient: int) -> Cohort:
    return cohort_from(
        [
            (s, float(h), "Nursing", f"s{s} h{h:03d}")
            for s in range(1, n_patients + 1)
            for h in range(per_patient)
        ]
    )


def test_cap_samples_k_pairs_per_patient_seeded_and_keeps_time_order():
    cohort = many_notes(5, 30)
    pairs, counts = mine_pairs(cohort, cohort.subject_ids, PairConfig(max_pairs_per_patient=4, seed=1))
    assert counts["consecutive_pairs"] == 5 * 29 and counts["pairs_after_cap"] == 20
    assert pairs.groupby("group").size().tolist() == [4] * 5
    for _, g in pairs.groupby("group"):
        assert list(g["anchor"]) == sorted(g["anchor"])  # still in time order within a patient
        for a, p in zip(g["anchor"], g["positive"], strict=True):  # still consecutive
            assert int(p.split("h")[1]) == int(a.split("h")[1]) + 1
    again, _ = mine_pairs(cohort, cohort.subject_ids, PairConfig(max_pairs_per_patient=4, seed=1))
    other, _ = mine_pairs(cohort, cohort.subject_ids, PairConfig(max_pairs_per_patient=4, seed=2))
    pd.testing.assert_frame_equal(pairs, again)
    assert not pairs.equals(other)


def test_cap_leaves_short_patients_whole():
    pairs, _ = mine_pairs(cohort_from(NOTES), [1, 2], PairConfig(max_pairs_per_patient=2))
    assert pairs.groupby("group").size().to_dict() == {1: 2, 2: 1}


def test_no_usable_notes_gives_empty_frame_with_columns():
    pairs, counts = mine_pairs(cohort_from(NOTES), [1, 2], PairConfig(categories=["Echo"]))
    assert pairs.empty and list(pairs.columns)[:3] == ["anchor", "positive", "group"]
    assert counts["pairs"] == 0 and counts["patients_with_pairs"] == 0


def test_config_rejects_unknown_keys_and_names_the_setting():
    from clinpred.errors import InputError

    with pytest.raises(InputError, match="batch_sizes"):
        FinetuneConfig.from_values({"batch_sizes": 3})
    with pytest.raises(InputError, match=r"pairs\.max_gap_hours"):
        FinetuneConfig.from_values({"pairs": {"max_gap_hours": -1}})
    assert FinetuneConfig.from_values({"batch_size": 8}, {"batch_size": 16}).batch_size == 16
