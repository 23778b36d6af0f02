"""Mine (note t, note t+1) pairs from given patients, counting what each filter removes.

Only the patients passed in are read, so a caller that passes the fine-tuning patients can be sure
no evaluation patient's note becomes an anchor, a positive, or (through the batch) a negative.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from clinpred.data.cohort import Cohort
from clinpred.finetune.config import PairConfig

PAIR_COLUMNS = ["anchor", "positive", "group"]


def usable_notes(cohort: Cohort, subject_ids: Sequence[int], config: PairConfig) -> tuple[pd.DataFrame, dict]:
    """The given patients' notes in time order, restricted to the chosen categories and non-empty text."""
    notes = cohort.notes
    counts: dict[str, int] = {"patients": len(set(int(s) for s in subject_ids))}
    notes = notes[notes["subject_id"].isin(np.asarray(subject_ids, dtype=np.int64))]
    counts["notes"] = len(notes)
    if config.categories is not None:
        notes = notes[notes["category"].isin(config.categories)]
    counts["notes_in_categories"] = len(notes)
    text = notes["text"].fillna("").str.strip()
    notes = notes[(text.str.len() > 0) & notes["time"].notna()]
    counts["notes_with_text_and_time"] = len(notes)
    return notes.reset_index(drop=True), counts


def consecutive_index(subjects: np.ndarray) -> np.ndarray:
    """Row positions i such that row i+1 is the same patient's next note (rows in patient-time order)."""
    return np.flatnonzero(subjects[1:] == subjects[:-1])


def mine_pairs(
    cohort: Cohort, subject_ids: Sequence[int], config: PairConfig
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Pairs (anchor = note t, positive = note t+1, group = subject_id) and the count after each filter.

    Filters, in order: patients, categories, empty text, consecutive pairs, time gap, per-patient cap
    (a seeded sample, kept in time order), then the optional reversed copies.
    """
    notes, counts = usable_notes(cohort, subject_ids, config)
    subjects = notes["subject_id"].to_numpy(dtype=np.int64)
    first = consecutive_index(subjects)
    counts["consecutive_pairs"] = len(first)

    if config.max_gap_hours is not None:
        times = notes["time"].to_numpy()
        gap_h = (times[first + 1] - times[first]) / np.timedelta64(1, "h")
        first = first[gap_h <= config.max_gap_hours]
    counts["pairs_within_gap"] = len(first)

    groups = subjects[first]
    if config.max_pairs_per_patient is not None and len(first):
        keys = np.random.default_rng(config.seed).random(len(first))
        order = np.lexsort((keys, groups))  # by patient, then by random key
        starts = np.r_[0, np.flatnonzero(groups[order][1:] != groups[order][:-1]) + 1]
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        keep = np.sort(order[rank < config.max_pairs_per_patient])  # back to patient-time order
        first, groups = first[keep], groups[keep]
    counts["pairs_after_cap"] = len(first)

    text = notes["text"].astype(str).to_numpy()
    anchor, positive = text[first], text[first + 1]
    if config.symmetric:
        anchor, positive = np.concatenate([anchor, positive]), np.concatenate([positive, anchor])
        groups = np.concatenate([groups, groups])
    pairs = pd.DataFrame({"anchor": anchor, "positive": positive, "group": groups.astype(np.int64)})
    counts["pairs"] = len(pairs)
    counts["patients_with_pairs"] = int(pd.unique(groups).size)
    return pairs, counts
