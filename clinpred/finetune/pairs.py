"""Mine (note t, note t+1) pairs from given patients, counting what each filter removes.

Only the patients passed in are read, so a caller that passes the fine-tuning patients can be sure
no evaluation patient's note becomes an anchor, a positive, or (through the batch) a negative.

At MIMIC-III's size the fine-tuning notes' text is about 1.1 GB, held once by the cohort's Arrow column.
Mining selects rows by position without copying that text (the empty-text check trims one Arrow chunk
at a time), and the pairs' anchors, positives and negatives are taken from that column as Arrow text,
with no Python string per note.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clinpred.data.cohort import Cohort, arrow_chunks, rows_where
from clinpred.data.identity import IdentityMode, apply_identity_setting
from clinpred.data.labels import code_levels, label_matrix
from clinpred.data.note_texts import take_rows
from clinpred.data.phi import PhiMode, apply_phi_setting
from clinpred.data.splits import PatientSplit
from clinpred.errors import InputError
from clinpred.finetune.config import CODE_LOSSES, FinetuneConfig, PairConfig

PAIR_COLUMNS = ["anchor", "positive", "group"]


def has_text(text: pd.Series, rows: np.ndarray) -> np.ndarray:
    """Whether each of these rows' text is non-empty once whitespace is stripped (``str.strip``; on
    Arrow text pandas' own kernel, ``utf8_trim_whitespace``, one chunk's rows at a time)."""
    chunks = arrow_chunks(text)
    if chunks is None:
        return (text.iloc[rows].fillna("").str.strip().str.len() > 0).to_numpy(dtype=bool)
    out = np.zeros(len(rows), dtype=bool)
    for start in range(0, len(rows), 4096):
        part = take_rows(chunks, rows[start : start + 4096])
        length = pc.utf8_length(pc.utf8_trim_whitespace(part))
        out[start : start + 4096] = pc.fill_null(pc.greater(length, 0), False).to_numpy()
    return out


def usable_rows(cohort: Cohort, subject_ids: Sequence[int], config: PairConfig) -> tuple[np.ndarray, dict]:
    """Positions in ``cohort.notes`` of the given patients' usable notes (time order), and the counts."""
    notes = cohort.notes
    counts: dict[str, int] = {"patients": len(set(int(s) for s in subject_ids))}
    rows = np.flatnonzero(notes["subject_id"].isin(np.asarray(subject_ids, dtype=np.int64)).to_numpy())
    counts["notes"] = len(rows)
    if config.categories is not None:
        rows = rows[notes["category"].iloc[rows].isin(config.categories).to_numpy(dtype=bool)]
    counts["notes_in_categories"] = len(rows)
    rows = rows[has_text(notes["text"], rows) & notes["time"].iloc[rows].notna().to_numpy()]
    counts["notes_with_text_and_time"] = len(rows)
    return rows, counts


def usable_notes(cohort: Cohort, subject_ids: Sequence[int], config: PairConfig) -> tuple[pd.DataFrame, dict]:
    """The given patients' notes in time order, restricted to the chosen categories and non-empty text."""
    rows, counts = usable_rows(cohort, subject_ids, config)
    keep = np.zeros(len(cohort.notes), dtype=bool)
    keep[rows] = True
    return rows_where(cohort.notes, keep).reset_index(drop=True), counts


def text_at(text: pd.Series, rows: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The text of these rows as pandas' ``str`` column, taken from the cohort's Arrow chunks (no Python
    string per note: a pairs frame built from Python strings converted them to this dtype anyway)."""
    chunks = arrow_chunks(text)
    if chunks is None:
        return pd.array(text.iloc[rows].astype(str).to_numpy(), dtype="str")
    return pd.array(take_rows(chunks, rows), dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def consecutive_index(subjects: np.ndarray) -> np.ndarray:
    """Row positions i such that row i+1 is the same patient's next note (rows in patient-time order)."""
    return np.flatnonzero(subjects[1:] == subjects[:-1])


def positive_index(notes: pd.DataFrame, config: PairConfig) -> np.ndarray:
    """For each row (notes in patient-time order), the row of its positive, or -1 where it has none.

    ``next``: the next row of the same patient. ``next_other_category``: the first later row of the same
    patient whose category differs (the row after the run of same-category notes). ``window``: a seeded
    uniform choice among the same patient's later rows charted within ``window_hours``.
    """
    subjects = notes["subject_id"].to_numpy(dtype=np.int64)
    n = len(subjects)
    out = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return out
    if config.positives == "next":
        first = consecutive_index(subjects)
        out[first] = first + 1
        return out
    if config.positives == "next_other_category":
        category = notes["category"].astype(str).to_numpy()
        # a new run starts where the patient or the category changes; row i's positive is the start of
        # the run after its own, when that run is the same patient's
        new_run = np.r_[True, (subjects[1:] != subjects[:-1]) | (category[1:] != category[:-1])]
        run_id = np.cumsum(new_run) - 1
        run_starts = np.flatnonzero(new_run)
        nxt = np.r_[run_starts[1:], -1][run_id]
        ok = (nxt >= 0) & (subjects[np.maximum(nxt, 0)] == subjects)
        out[ok] = nxt[ok]
        return out
    # window: later rows j of the same patient with time_j - time_i <= window_hours
    hours = (notes["time"].to_numpy() - np.datetime64("1970-01-01")) / np.timedelta64(1, "h")
    key = subjects.astype(np.float64) * 1e7 + hours  # patient-major, time-minor (hours < 1e7)
    last = np.searchsorted(key, key + config.window_hours, side="right") - 1
    last = np.minimum(last, np.searchsorted(subjects, subjects, side="right") - 1)
    rows = np.arange(n)
    has = last > rows
    pick = np.random.default_rng([config.seed, 1]).random(n)
    out[has] = rows[has] + 1 + np.floor(pick[has] * (last[has] - rows[has])).astype(np.int64)
    return out


def style_negatives(
    notes: pd.DataFrame, positive: np.ndarray, groups: np.ndarray, seed: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Per pair, a row of ANOTHER patient among ``notes`` with the positive's category and caregiver.

    ``notes`` are the fine-tuning patients' usable notes only, so a negative is never an evaluation
    patient's. The caregiver (cgid) is matched where the positive has one and another patient has a
    note of that caregiver and category; otherwise the category alone is matched; a pair whose category
    no other patient has gets -1 (dropped by the caller). Seeded.
    """
    rng = np.random.default_rng([seed, 2])
    subjects = notes["subject_id"].to_numpy(dtype=np.int64)
    category = notes["category"].astype(str).to_numpy()
    cgid = notes["cgid"].astype("Int64").fillna(-1).to_numpy(dtype=np.int64) if "cgid" in notes else None
    out = np.full(len(positive), -1, dtype=np.int64)
    counts = {"negatives_same_caregiver": 0, "negatives_same_category": 0, "negatives_missing": 0}

    def pools(keys: list[np.ndarray]) -> dict[tuple, np.ndarray]:
        frame = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)})
        by = list(frame.columns) if len(keys) > 1 else "k0"
        return {(k if isinstance(k, tuple) else (k,)): idx for k, idx in frame.groupby(by).indices.items()}

    by_category = pools([category])
    by_caregiver = pools([category, cgid]) if cgid is not None else {}

    def draw(pool: np.ndarray, subject: int) -> int:
        for _ in range(8):  # a few random tries, then an exact pass over the pool
            j = int(pool[rng.integers(len(pool))])
            if subjects[j] != subject:
                return j
        others = pool[subjects[pool] != subject]
        return int(others[rng.integers(len(others))]) if len(others) else -1

    for i, pos in enumerate(positive):
        subject = int(groups[i])
        j = -1
        if cgid is not None and cgid[pos] >= 0:
            j = draw(by_caregiver[(category[pos], int(cgid[pos]))], subject)
            if j >= 0:
                counts["negatives_same_caregiver"] += 1
        if j < 0:
            j = draw(by_category[(category[pos],)], subject)
            if j >= 0:
                counts["negatives_same_category"] += 1
        if j < 0:
            counts["negatives_missing"] += 1
        out[i] = j
    return out, counts


def mine_pairs(
    cohort: Cohort, subject_ids: Sequence[int], config: PairConfig
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Pairs (anchor = note t, positive = a later note per ``positives``, group = subject_id), an optional
    style-matched ``negative``, and the count after each filter.

    Filters, in order: patients, categories, empty text, pairs with a positive, time gap, per-patient cap
    (a seeded sample, kept in time order), then the optional reversed copies, then the negatives (a pair
    with no possible negative is dropped). Columns ``anchor_category``, ``positive_category``,
    ``negative_category`` and ``negative_group`` describe each pair (no text); only anchor, positive
    and negative are trained on.
    """
    rows, counts = usable_rows(cohort, subject_ids, config)
    notes = cohort.notes.drop(columns="text").iloc[rows].reset_index(drop=True)  # no text copied
    subjects = notes["subject_id"].to_numpy(dtype=np.int64)
    counts["consecutive_pairs"] = len(consecutive_index(subjects))
    target = positive_index(notes, config)
    first = np.flatnonzero(target >= 0)
    second = target[first]
    counts["pairs_with_positive"] = len(first)

    if config.max_gap_hours is not None:
        times = notes["time"].to_numpy()
        gap_h = (times[second] - times[first]) / np.timedelta64(1, "h")
        keep_gap = gap_h <= config.max_gap_hours
        first, second = first[keep_gap], second[keep_gap]
    counts["pairs_within_gap"] = len(first)

    groups = subjects[first]
    if config.max_pairs_per_patient is not None and len(first):
        keys = np.random.default_rng(config.seed).random(len(first))
        order = np.lexsort((keys, groups))  # by patient, then by random key
        starts = np.r_[0, np.flatnonzero(groups[order][1:] != groups[order][:-1]) + 1]
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        keep = np.sort(order[rank < config.max_pairs_per_patient])  # back to patient-time order
        first, second, groups = first[keep], second[keep], groups[keep]
    counts["pairs_after_cap"] = len(first)

    if config.symmetric:
        first, second = np.concatenate([first, second]), np.concatenate([second, first])
        groups = np.concatenate([groups, groups])

    category = notes["category"].astype(str).to_numpy()
    frame = {
        "anchor": first,
        "positive": second,
        "group": groups.astype(np.int64),
        "anchor_category": category[first],
        "positive_category": category[second],
    }
    if config.negatives == "style_matched":
        negative, neg_counts = style_negatives(notes, second, groups, config.seed)
        counts.update(neg_counts)
        has = negative >= 0
        frame = {k: v[has] for k, v in frame.items()}
        negative = negative[has]
        frame["negative"] = negative
        frame["negative_category"] = category[negative]
        frame["negative_group"] = subjects[negative]
        groups = groups[has]
    for c in ("anchor", "positive", "negative"):  # usable-row positions -> the notes' text
        if c in frame:
            frame[c] = text_at(cohort.notes["text"], rows[frame[c]])
    pairs = pd.DataFrame(frame)
    counts["pairs"] = len(pairs)
    counts["patients_with_pairs"] = int(pd.unique(groups).size)
    return pairs, counts


def check_pairs_frame(pairs: pd.DataFrame, config: FinetuneConfig) -> None:
    """A team's pairs file can feed this recipe: anchor and positive columns, and no recipe that reads
    diagnosis codes (a pairs file has none). Checked before torch is imported, so a bad file is refused
    at once."""
    missing = [c for c in ("anchor", "positive") if c not in pairs.columns]
    if missing:
        raise InputError(
            f"pairs: missing column(s) {', '.join(missing)}; found {', '.join(map(str, pairs.columns))}. "
            "Give columns anchor, positive and optionally group."
        )
    if config.supervised:
        raise InputError(
            f"loss {config.loss} with negative_weights {config.negative_weights} reads each patient's "
            "diagnosis codes, which a pairs file does not carry: use --data or --synthetic, or loss mnrl "
            "with negative_weights uniform."
        )


def fine_tuning_cohort(
    cohort: Cohort, subject_ids: Sequence[int], phi: PhiMode, identity: IdentityMode = "keep"
) -> Cohort:
    """Only the given (fine-tuning) patients, their note text under the PHI-placeholder setting and the
    identity-details setting (``clinpred.data.identity``).

    Every later step (pairs, negatives, phenotype labels, validation recall) reads this cohort, so it
    cannot see an evaluation patient; masking before mining masks anchors, positives and negatives alike.
    """
    if phi == "keep" and identity == "keep":
        return cohort.subset(subject_ids)
    from dataclasses import replace

    notes = cohort.notes
    keep = notes["subject_id"].isin({int(s) for s in subject_ids}).to_numpy(dtype=bool)
    sub = replace(cohort, notes=notes.drop(columns="text")).subset(subject_ids)
    text = _masked_rows(
        notes["text"], keep, lambda t: apply_identity_setting(apply_phi_setting(t, phi), identity)
    )
    return replace(sub, notes=sub.notes.assign(text=text)[list(notes.columns)])


def _masked_rows(text: pd.Series, keep: np.ndarray, mask: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``mask(text[keep])``, one Arrow chunk's kept rows at a time: the unmasked copy of the kept text
    (about 1.1 GB of fine-tuning notes at MIMIC-III's size) is never held whole beside the masked one."""
    chunks = arrow_chunks(text)
    if chunks is None:
        return mask(text[keep].reset_index(drop=True))
    pieces, start = [], 0
    for chunk in chunks.iterchunks():
        part, start = keep[start : start + len(chunk)], start + len(chunk)
        if part.any():
            kept = pa.chunked_array([chunk.filter(pa.array(part))], type=chunks.type)
            pieces.extend(mask(pd.Series(pd.array(kept, dtype=text.dtype))).array._pa_array.chunks)
    return pd.Series(pd.array(pa.chunked_array(pieces, type=chunks.type), dtype=text.dtype), name=text.name)


def phenotype_labels(cohort: Cohort, subject_ids: Sequence[int]) -> pd.DataFrame:
    """Patients-by-phenotype (CCS benchmark, 25 columns) indicators of the given patients only: the
    diagnosis rows of any other patient are dropped before a code is mapped."""
    ids = sorted({int(s) for s in subject_ids})
    return label_matrix(training_diagnoses(cohort, ids), ids, scheme="ccs_benchmark")


def training_data(
    cohort: Cohort, split: PatientSplit, config: FinetuneConfig
) -> tuple[Cohort, pd.DataFrame, dict[str, int]]:
    """What ``finetune`` trains on: the fine-tuning patients' cohort (training and validation patients,
    text under ``phi_placeholders`` and ``identity_details``), the pairs mined from the training patients, and their counts.

    A supervised recipe (``config.supervised``) also gets, per pair, its patient's codes read from the
    training patients' diagnoses only: ``phenotypes`` (the 25 CCS benchmark indicators; label-aware,
    supervised and mixed losses) and ``ccs_single`` / ``chapters`` (hierarchy-weighted negatives).
    """
    cohort = fine_tuning_cohort(cohort, split.finetune_all, config.phi_placeholders, config.identity_details)
    pairs, counts = mine_pairs(cohort, split.finetune, config.pairs)
    if pairs.empty:
        return cohort, pairs, counts
    groups = pairs["group"].to_numpy()
    if config.loss in CODE_LOSSES:
        labels = phenotype_labels(cohort, split.finetune).loc[groups]
        pairs["phenotypes"] = list(labels.to_numpy(dtype=np.float32))
        counts["pairs_with_a_phenotype"] = int(labels.any(axis=1).sum())
    if config.negative_weights == "hierarchy":
        levels = code_levels(training_diagnoses(cohort, split.finetune), list(split.finetune))
        pairs["ccs_single"] = list(levels["ccs_single"].loc[groups].to_numpy(dtype=np.float32))
        pairs["chapters"] = list(levels["chapter"].loc[groups].to_numpy(dtype=np.float32))
        counts["pairs_with_a_ccs_code"] = int(levels["ccs_single"].loc[groups].any(axis=1).sum())
    return cohort, pairs, counts


def training_diagnoses(cohort: Cohort, subject_ids: Sequence[int]) -> pd.DataFrame:
    """The diagnosis rows of the given (training) patients only: what a supervised recipe may read."""
    return cohort.diagnoses[cohort.diagnoses["subject_id"].isin({int(s) for s in subject_ids})]
