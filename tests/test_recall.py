"""Next-note recall and the chunked top-k: exact against brute force, known answers by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clinpred.data.cohort import (
    ADMISSION_DTYPES,
    DIAGNOSIS_DTYPES,
    NOTE_DTYPES,
    PATIENT_DTYPES,
    Cohort,
    conform,
)
from clinpred.errors import InputError
from clinpred.tasks.recall import RecallConfig, evaluate_recall, metrics_from_units
from clinpred.tasks.result import BootstrapScheme, paired_difference
from clinpred.tasks.topk import PoolSpec, chunked_topk

FEW = BootstrapScheme(n_resamples=20)


def make_cohort(
    subject_ids: list[int] | np.ndarray,
    categories: list[str] | np.ndarray | None = None,
    texts: list[str] | None = None,
    diagnoses: list[tuple[int, str]] | None = None,
) -> Cohort:
    """A small Cohort in canonical form: one note per entry, hourly times, in (subject_id, time) order.

    ``diagnoses`` are (subject_id, ICD-9 code) rows, one admission per patient.
    """
    subject_ids = np.asarray(subject_ids, dtype=np.int64)
    assert np.all(np.diff(subject_ids) >= 0), "give notes in patient order"
    n = len(subject_ids)
    notes = pd.DataFrame(
        {
            "note_id": [f"n{i}" for i in range(n)],
            "subject_id": subject_ids,
            "hadm_id": subject_ids * 10,
            "time": pd.Timestamp("2150-01-01") + pd.to_timedelta(np.arange(n), unit="h"),
            "time_is_date": False,
            "category": list(categories) if categories is not None else ["Nursing"] * n,
            "description": "",
            "cgid": pd.NA,
            "text": texts if texts is not None else [f"note text {i}" for i in range(n)],
        }
    )
    people = np.unique(subject_ids)
    patients = pd.DataFrame(
        {"subject_id": people, "gender": "F", "dob": pd.Timestamp("2100-01-01"), "dod": pd.NaT}
    )
    admissions = pd.DataFrame(
        {
            "subject_id": people,
            "hadm_id": people * 10,
            "admittime": pd.Timestamp("2150-01-01"),
            "dischtime": pd.Timestamp("2150-03-01"),
            "deathtime": pd.NaT,
            "hospital_expire_flag": 0,
        }
    )
    dx = pd.DataFrame(diagnoses or [], columns=["subject_id", "icd_code"])
    dx = dx.assign(
        hadm_id=dx["subject_id"] * 10, seq_num=dx.groupby("subject_id").cumcount() + 1, icd_version=9
    )
    return Cohort(
        conform(notes, NOTE_DTYPES),
        conform(patients, PATIENT_DTYPES),
        conform(admissions, ADMISSION_DTYPES),
        conform(dx, DIAGNOSIS_DTYPES),
        source="mimic3",
        synthetic=True,
    )


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- chunked top-k against brute force


def brute_topk(q: np.ndarray, p: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
    """Top-k rows by (score descending, index ascending) from the full matrix, -1 padded."""
    scores = q.astype(np.float64) @ p.T.astype(np.float64)
    out = np.full((len(q), k), -1)
    for i in range(len(q)):
        idx = np.flatnonzero(allowed[i])
        best = idx[np.lexsort((idx, -scores[i, idx]))][:k]
        out[i, : len(best)] = best
    return out


def random_spec(
    rng: np.random.Generator,
    n_q: int,
    n_p: int,
    exclude: np.ndarray | None = None,
    always: np.ndarray | None = None,
) -> tuple[PoolSpec, np.ndarray]:
    """A pool description with every part set (``exclude`` / ``always`` random unless given), and the
    allowed (query, pool row) matrix it means."""
    spec = PoolSpec(
        exclude=rng.integers(-1, n_p, size=n_q) if exclude is None else exclude,
        query_group=rng.integers(0, 3, size=n_q),
        pool_group=rng.integers(0, 3, size=n_p),
        pool_order=rng.permutation(n_p),
        query_cutoff=rng.integers(0, n_p, size=n_q),
        always=rng.integers(-1, n_p, size=n_q) if always is None else always,
    )
    allowed = (spec.query_group[:, None] == spec.pool_group[None, :]) & (
        spec.pool_order[None, :] <= spec.query_cutoff[:, None]
    )
    rows = np.flatnonzero(spec.always >= 0)
    allowed[rows, spec.always[rows]] = True
    rows = np.flatnonzero(spec.exclude >= 0)
    allowed[rows, spec.exclude[rows]] = False
    return spec, allowed


@pytest.mark.parametrize("seed", range(6))
def test_topk_equals_brute_force_with_ties_and_pool_masks(seed):
    rng = np.random.default_rng(seed)
    n_q, n_p, dim = int(rng.integers(5, 70)), int(rng.integers(5, 90)), int(rng.integers(1, 4))
    # small integer vectors: exact products in any summation order, and many exact ties
    q = rng.integers(-2, 3, size=(n_q, dim)).astype(np.float32)
    p = rng.integers(-2, 3, size=(n_p, dim)).astype(np.float32)
    spec, allowed = random_spec(rng, n_q, n_p)
    k = int(rng.integers(1, 12))
    found = chunked_topk(
        q, p, k, spec=spec, query_block=int(rng.integers(1, 25)), pool_block=int(rng.integers(1, 25))
    )
    assert np.array_equal(found.indices, brute_topk(q, p, k, allowed))
    assert np.array_equal(found.pool_size, allowed.sum(axis=1))
    expected_scores = np.where(found.indices >= 0, (q @ p.T)[np.arange(n_q)[:, None], found.indices], -np.inf)
    assert np.array_equal(found.scores, expected_scores.astype(np.float32))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("same_array", [True, False])
def test_wide_blocks_and_one_array_as_queries_and_pool_equal_brute_force(seed, same_array):
    """Blocks wide enough for the group-maximum bound (more than 32 x k columns), and queries that are
    the pool itself (each product read both ways), with exact ties, masks and target ranks."""
    rng = np.random.default_rng(100 + seed)
    n, dim, k = int(rng.integers(700, 1300)), int(rng.integers(1, 4)), int(rng.integers(1, 12))
    x = rng.integers(-2, 3, size=(n, dim)).astype(np.float32)  # exact products, many exact ties
    targets = (np.arange(n) + rng.integers(1, n, size=n)) % n  # never the query's own row
    if seed % 2:  # groups and a sample; the target kept whatever they say, as recall keeps it
        spec, allowed = random_spec(rng, n, n, exclude=np.arange(n), always=targets)
    else:
        spec, allowed = PoolSpec(exclude=np.arange(n)), ~np.eye(n, dtype=bool)
    found = chunked_topk(
        x,
        x if same_array else x.copy(),
        k,
        spec=spec,
        targets=targets,
        query_block=int(rng.integers(200, 500)),
        pool_block=int(rng.integers(400, 900)),
    )
    assert np.array_equal(found.indices, brute_topk(x, x, k, allowed))
    assert np.array_equal(found.pool_size, allowed.sum(axis=1))
    scores = np.where(allowed, x @ x.T, -np.inf)
    target_scores = (x @ x.T)[np.arange(n), targets]
    assert np.array_equal(found.n_greater, (scores > target_scores[:, None]).sum(axis=1))
    assert np.array_equal(found.n_tied, (scores == target_scores[:, None]).sum(axis=1) - 1)


def test_topk_ranks_equal_brute_force_and_never_contain_the_excluded_row():
    rng = np.random.default_rng(7)
    p = rng.integers(-2, 3, size=(120, 3)).astype(np.float32)
    q_rows = np.arange(0, 119)
    targets = q_rows + 1
    found = chunked_topk(
        p[q_rows], p, 10, spec=PoolSpec(exclude=q_rows), targets=targets, query_block=17, pool_block=23
    )
    scores = p[q_rows] @ p.T
    scores[np.arange(len(q_rows)), q_rows] = -np.inf
    ts = scores[np.arange(len(q_rows)), targets]
    greater = (scores > ts[:, None]).sum(axis=1)
    equal = (scores == ts[:, None]).sum(axis=1) - 1
    assert np.array_equal(found.n_greater, greater)
    assert np.array_equal(found.n_tied, equal)
    assert equal.sum() > 0  # the data do have ties
    assert not np.any(found.indices == q_rows[:, None])
    assert np.all(found.pool_size == len(p) - 1)


# ---------------------------------------------------------------- recall against a brute-force definition


def brute_recall(cohort: Cohort, emb: np.ndarray, config: RecallConfig) -> pd.DataFrame:
    """The task's definition, written out query by query with explicit pools and float64 scores."""
    notes = cohort.notes
    keep = (
        np.ones(len(notes), bool) if config.categories is None else notes["category"].isin(config.categories)
    )
    notes, emb = notes[np.asarray(keep)].reset_index(drop=True), emb[np.asarray(keep)].astype(np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    n = len(notes)
    perm = np.random.default_rng(config.seed).permutation(n)
    rows = []
    for i in range(n - 1):
        j = i + 1
        if notes.at[i, "subject_id"] != notes.at[j, "subject_id"]:
            continue
        if config.identical_pairs == "drop" and notes.at[i, "text"] == notes.at[j, "text"]:
            continue
        eligible = [
            c
            for c in (perm if config.max_pool_size else range(n))
            if c not in (i, j)
            and (config.pool == "all" or notes.at[c, "category"] == notes.at[j, "category"])
        ]
        if config.max_pool_size:
            eligible = eligible[: config.max_pool_size - 1]
        pool = [*eligible, j]
        s = emb[pool] @ emb[i]
        st = emb[j] @ emb[i]
        greater = int(np.sum(s > st + config.tie_tolerance))
        tied = int(np.sum(np.abs(s - st) <= config.tie_tolerance)) - 1
        rank = 1 + greater + (tied if config.tie_rule == "pessimistic" else 0)
        rows.append((notes.at[i, "note_id"], notes.at[j, "note_id"], rank, len(pool), tied))
    return pd.DataFrame(rows, columns=["query_note_id", "target_note_id", "rank", "pool_size", "n_tied"])


def tied_cohort(seed: int) -> tuple[Cohort, np.ndarray]:
    """Random notes with repeated texts (identical vectors: exact ties) and three categories."""
    rng = np.random.default_rng(seed)
    n = 90
    subjects = np.sort(rng.integers(1, 15, size=n))
    text_id = rng.integers(0, 60, size=n)  # ~1/3 of notes share a text with another note
    vocab = rng.normal(size=(60, 8))
    cats = rng.choice(["Nursing", "Radiology", "ECG"], size=n)
    return make_cohort(subjects, cats, [f"text {t}" for t in text_id]), vocab[text_id].astype(np.float32)


CONFIGS = [
    RecallConfig(),
    RecallConfig(tie_rule="optimistic", identical_pairs="keep"),
    RecallConfig(pool="target_category"),
    RecallConfig(max_pool_size=7, seed=3),
    RecallConfig(pool="target_category", max_pool_size=4, seed=1),
    RecallConfig(categories=["Nursing", "ECG"], max_pool_size=2),
]


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: str(c.model_dump(exclude={"bootstrap"}, exclude_defaults=True))
)
def test_recall_equals_brute_force(config):
    for seed in range(3):
        cohort, emb = tied_cohort(seed)
        config = config.model_copy(update={"query_block": 13, "pool_block": 11, "bootstrap": FEW})
        got = evaluate_recall(cohort, emb, config).units
        expected = brute_recall(cohort, emb, config)
        cols = ["query_note_id", "target_note_id", "rank", "pool_size", "n_tied"]
        pd.testing.assert_frame_equal(
            got[cols].reset_index(drop=True), expected, check_dtype=False, check_index_type=False
        )


def test_ties_count_against_the_target_by_default():
    cohort, emb = tied_cohort(0)
    pessimistic = evaluate_recall(cohort, emb, RecallConfig(bootstrap=FEW))
    optimistic = evaluate_recall(cohort, emb, RecallConfig(tie_rule="optimistic", bootstrap=FEW))
    diff = pessimistic.units["rank"] - optimistic.units["rank"]
    assert np.array_equal(diff, pessimistic.units["n_tied"])
    assert pessimistic.units["n_tied"].sum() > 0
    assert pessimistic.counts["queries_with_ties"] == int((pessimistic.units["n_tied"] > 0).sum())
    assert any("counted against the target" in w for w in pessimistic.warnings)


def test_identical_pairs_dropped_and_counted():
    texts = ["a", "a", "b", "c", "c", "c", "d", "e"]
    cohort = make_cohort([1, 1, 1, 2, 2, 2, 2, 3], texts=texts)
    emb = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    dropped = evaluate_recall(cohort, emb, RecallConfig(bootstrap=FEW))
    kept = evaluate_recall(cohort, emb, RecallConfig(identical_pairs="keep", bootstrap=FEW))
    # pairs: (a,a) (a,b) | (c,c) (c,c) (c,d): three identical
    assert dropped.counts["identical_pairs"] == 3 == dropped.counts["identical_pairs_dropped"]
    assert len(dropped.units) == 2 and len(kept.units) == 5
    assert kept.counts["identical_pairs_dropped"] == 0


# ---------------------------------------------------------------- known answers by construction


def successor_is_nearest(notes_per_patient: list[int]) -> tuple[Cohort, np.ndarray]:
    """Each patient's notes on an arc in its own plane, with shrinking steps: note t+1 is t's nearest."""
    dim = 2 * len(notes_per_patient)
    subjects, rows = [], []
    for p, count in enumerate(notes_per_patient):
        angles = np.concatenate([[0.0], np.cumsum(0.6 / np.arange(1, count))])
        for a in angles:
            v = np.zeros(dim)
            v[2 * p], v[2 * p + 1] = np.cos(a), np.sin(a)
            rows.append(v)
            subjects.append(p + 1)
    return make_cohort(subjects), np.array(rows, dtype=np.float32)


def test_successor_nearest_gives_perfect_recall():
    cohort, emb = successor_is_nearest([5, 2, 8, 3, 6])
    result = evaluate_recall(cohort, emb, RecallConfig(bootstrap=FEW, query_block=3, pool_block=4))
    assert result.metrics["top1"].value == 1.0
    assert result.metrics["mrr"].value == 1.0
    assert result.counts["queries"] == 4 + 1 + 7 + 2 + 5
    assert result.main_metric == "top5" and result.task == "recall"


def test_random_embeddings_score_near_chance():
    rng = np.random.default_rng(11)
    subjects = np.sort(rng.integers(1, 60, size=600))
    cohort = make_cohort(subjects)
    emb = rng.normal(size=(600, 64)).astype(np.float32)
    result = evaluate_recall(cohort, emb, RecallConfig(bootstrap=BootstrapScheme(n_resamples=200)))
    m = result.metrics
    assert m["pool_size"].value == 599  # every note but the query itself
    assert m["chance_top10"].value == pytest.approx(10 / 599)
    assert m["chance_top5"].value == pytest.approx(5 / 599)
    assert abs(m["top10"].value - m["chance_top10"].value) < 0.03
    assert abs(m["mrr"].value - m["chance_mrr"].value) < 0.03
    assert m["top10"].low is not None and m["top10"].low <= m["top10"].value <= m["top10"].high


def test_pool_options_sizes_and_seeds():
    rng = np.random.default_rng(5)
    subjects = np.sort(rng.integers(1, 20, size=200))
    cats = rng.choice(["Nursing", "Radiology"], size=200)
    cohort = make_cohort(subjects, cats)
    emb = rng.normal(size=(200, 16)).astype(np.float32)
    per_cat = pd.Series(cats).value_counts()
    by_cat = evaluate_recall(cohort, emb, RecallConfig(pool="target_category", bootstrap=FEW)).units
    same = by_cat["query_category"] == by_cat["target_category"]
    expected = per_cat.reindex(by_cat["target_category"]).to_numpy() - same.to_numpy()
    assert np.array_equal(by_cat["pool_size"], expected)
    a = evaluate_recall(cohort, emb, RecallConfig(max_pool_size=10, seed=1, bootstrap=FEW)).units
    b = evaluate_recall(cohort, emb, RecallConfig(max_pool_size=10, seed=1, bootstrap=FEW)).units
    c = evaluate_recall(cohort, emb, RecallConfig(max_pool_size=10, seed=2, bootstrap=FEW)).units
    assert (a["pool_size"] == 10).all()
    pd.testing.assert_frame_equal(a, b)
    assert not a["rank"].equals(c["rank"])


def test_results_do_not_depend_on_block_sizes():
    cohort, emb = tied_cohort(4)
    base = evaluate_recall(cohort, emb, RecallConfig(bootstrap=FEW)).units
    for qb, pb in [(1, 1), (7, 1000), (1000, 3)]:
        other = evaluate_recall(cohort, emb, RecallConfig(bootstrap=FEW, query_block=qb, pool_block=pb)).units
        pd.testing.assert_frame_equal(base, other)


def test_metrics_and_paired_difference_from_units():
    cohort, emb = successor_is_nearest([4, 4, 4, 4, 4, 4])
    good = evaluate_recall(cohort, emb, RecallConfig(bootstrap=FEW)).units
    noise = np.random.default_rng(0).normal(size=emb.shape).astype(np.float32)
    bad = evaluate_recall(cohort, noise, RecallConfig(bootstrap=FEW)).units
    m = metrics_from_units(good)
    assert m["top1"] == 1.0 and m["queries"] == 18.0
    diff = paired_difference(good, bad, metrics_from_units, FEW)
    assert diff["top1"].value == pytest.approx(1.0 - metrics_from_units(bad)["top1"])
    assert diff["pool_size"].value == 0.0


def test_unknown_category_and_no_query_are_input_errors():
    cohort, emb = tied_cohort(0)
    with pytest.raises(InputError, match=r"recall\.categories: 'Nursin' not found"):
        evaluate_recall(cohort, emb, RecallConfig(categories=["Nursin"]))
    single = make_cohort([1, 2, 3])
    with pytest.raises(InputError, match="no query"):
        evaluate_recall(single, np.eye(3, dtype=np.float32), RecallConfig())


def test_bad_task_settings_reach_the_user_as_one_message(cli, tmp_path):
    """Through the real CLI: a mistyped category and an impossible phenotype minimum name the setting."""
    config = tmp_path / "bad.toml"
    config.write_text(
        '[tasks.recall]\ncategories = ["Nursin"]\n\n[tasks.geometry]\nmin_patients_per_phenotype = 100000\n'
    )
    proc = cli(
        "run",
        "--synthetic",
        "tiny",
        "--backend",
        "tfidf",
        "--task",
        "recall",
        "--task",
        "geometry",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        env={"CLINPRED_CACHE": str(tmp_path / "cache")},
    )
    output = proc.stdout + proc.stderr
    assert "recall.categories: 'Nursin' not found among the cohort's note categories" in output
    assert "min_patients_per_phenotype" in output
    assert "Traceback" not in output


# ---------------------------------------------------------------- identity versus content (rule 7)


def brute_identity(cohort: Cohort, emb: np.ndarray, tol: float = 1e-5) -> pd.DataFrame:
    """patient@k's rank and the within-patient rank, query by query with explicit candidate lists."""
    notes = cohort.notes
    emb = emb.astype(np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    subject = notes["subject_id"].to_numpy()
    rows = []
    for i in range(len(notes) - 1):
        j = i + 1
        if subject[i] != subject[j]:
            continue
        others = [c for c in range(len(notes)) if c != i]
        own = [c for c in others if subject[c] == subject[i]]
        s = {c: float(emb[c] @ emb[i]) for c in others}
        best = max(s[c] for c in own)
        # pessimistic: other patients' notes tied with the patient's best note count against it
        patient_rank = 1 + sum(
            1 for c in others if subject[c] != subject[i] and (s[c] > best + tol or abs(s[c] - best) <= tol)
        )
        st = s[j]
        within = 1 + sum(1 for c in own if c != j and (s[c] > st + tol or abs(s[c] - st) <= tol))
        rows.append((patient_rank, len(own), within))
    return pd.DataFrame(rows, columns=["patient_rank", "patient_notes", "within_rank"])


@pytest.mark.parametrize("seed", range(4))
def test_patient_at_k_and_within_patient_ranks_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 70
    subjects = np.sort(rng.integers(1, 12, size=n))
    vocab = rng.normal(size=(40, 6))
    text_id = rng.integers(0, 40, size=n)  # repeated vectors: exact ties inside and across patients
    cohort = make_cohort(subjects, texts=[f"t{t}" for t in text_id])
    emb = vocab[text_id].astype(np.float32)
    got = evaluate_recall(
        cohort, emb, RecallConfig(identical_pairs="keep", bootstrap=FEW, query_block=7, pool_block=9)
    ).units
    expected = brute_identity(cohort, emb)
    pd.testing.assert_frame_equal(
        got[list(expected.columns)].reset_index(drop=True), expected, check_dtype=False
    )


def test_identity_metrics_separate_knowing_the_patient_from_knowing_what_comes_next():
    """Notes that carry only the patient's identity: patient@1 is perfect, within-patient at chance."""
    rng = np.random.default_rng(3)
    per_patient = 6
    subjects = np.repeat(np.arange(1, 41), per_patient)
    centre = rng.normal(size=(40, 32))
    emb = (np.repeat(centre, per_patient, axis=0) * 5 + rng.normal(size=(240, 32))).astype(np.float32)
    m = evaluate_recall(make_cohort(subjects), emb, RecallConfig(bootstrap=FEW)).metrics
    assert m["patient_top1"].value == 1.0
    assert m["chance_patient_top1"].value == pytest.approx(5 / 239)
    # which of the patient's notes comes next is random: within-patient top-1 near 1/m (m = 5)
    assert m["chance_within_top1"].value == pytest.approx(1 / 5)
    assert abs(m["within_top1"].value - 0.2) < 0.1
    assert m["within_queries"].value == 40 * (per_patient - 1)
    assert m["top5"].value > 0.9  # next-note recall looks excellent: identity alone explains it


def test_chance_of_any_own_note_in_top_k_matches_simulation():
    from clinpred.tasks.recall import _chance_any_in_top

    rng = np.random.default_rng(0)
    pool, own, k = 30, 4, 5
    hits = np.mean([np.any(rng.permutation(pool)[:k] < own) for _ in range(20000)])
    assert _chance_any_in_top(k, np.array([pool]), np.array([own]))[0] == pytest.approx(hits, abs=0.01)


def test_normalising_a_million_rows_makes_one_copy_and_the_same_bits(monkeypatch):
    """Recall normalises the whole pool once: with every row kept no subset is copied, the norms are
    taken a block at a time (no squared copy of the array), and the result is np.linalg.norm's to the bit."""
    import clinpred.backends.base as base

    monkeypatch.setattr(base, "NORM_BLOCK_ROWS", 7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    x[3] = 0.0
    keep = rng.random(50) > 0.3

    def reference(v: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)

    before = x.copy()
    assert np.array_equal(base.l2_normalise(x), reference(x))
    assert np.array_equal(base.l2_normalise(x, np.ones(50, dtype=bool)), reference(x))
    assert np.array_equal(base.l2_normalise(x, keep), reference(x[keep]))
    assert np.array_equal(x, before)  # the caller's array (a cache's memory map) is never written
    assert not np.shares_memory(base.l2_normalise(x), x)
