"""Recall by a patient-stratified query sample against the full pool, measured against the exact method.

Sampling changes only which queries are scored: each sampled query's row must equal the exact method's
row for that query (ranks, ties, pool sizes, identity ranks), which is checked on vectors whose scores
are exact in float32 (so ties are exact, many and order-free). The sample's error is checked on a
cohort where the exact method is cheap: every recall metric's sampled estimate against the exact one's
interval, and the exact value against the sampled interval (which includes the sampling error).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clinpred.tasks.recall import (
    DESCRIPTIVE_METRICS,
    EXACT,
    SAMPLED,
    RecallConfig,
    evaluate_recall,
    sample_queries,
)
from clinpred.tasks.result import BootstrapScheme
from tests.test_recall import make_cohort

FEW = BootstrapScheme(n_resamples=20)
UNIT_COLUMNS = [
    "subject_id",
    "query_note_id",
    "target_note_id",
    "query_category",
    "target_category",
    "rank",
    "n_tied",
    "pool_size",
    "patient_rank",
    "patient_notes",
    "patient_pool_size",
    "within_rank",
]


def sign_cohort(seed: int, patients: int = 60):
    """Notes as 16-d vectors of +-1/4 (norm exactly 1, every dot product a multiple of 1/16: exact in
    float32 whatever the summation order, so ties are exact and many). Each note flips a few signs of
    the patient's previous note; three categories; a few copy-forward texts (identical pairs)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 14, size=patients)
    subjects = np.repeat(np.arange(1, patients + 1), sizes)
    vectors, texts = [], []
    for n in sizes:
        v = rng.choice([-0.25, 0.25], size=16)
        for _ in range(n):
            if rng.random() < 0.05 and texts:  # copy-forward: same text, same vector
                texts.append(texts[-1])
            else:
                flip = rng.choice(16, size=rng.integers(0, 5), replace=False)
                v = v.copy()
                v[flip] *= -1
                texts.append(f"text {len(texts)}")
            vectors.append(v)
    cats = rng.choice(["Nursing", "Radiology", "ECG"], size=len(subjects))
    return make_cohort(subjects, cats, texts), np.array(vectors, dtype=np.float32)


def signal_cohort(seed: int, patients: int = 400):
    """Gaussian notes that drift from a patient's own centre: recall well above chance, far from 1."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 25, size=patients)
    subjects = np.repeat(np.arange(1, patients + 1), sizes)
    rows = []
    for n in sizes:
        centre = rng.normal(size=32)
        drift = np.cumsum(rng.normal(scale=0.6, size=(n, 32)), axis=0)
        rows.append(0.8 * centre + drift + rng.normal(scale=1.2, size=(n, 32)))
    return make_cohort(subjects), np.concatenate(rows).astype(np.float32)


def force_sampling(n: int, **settings) -> RecallConfig:
    return RecallConfig(query_sample=n, exact_up_to=1, **settings)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"tie_rule": "optimistic", "identical_pairs": "keep"},
        {"pool": "target_category", "max_pool_size": 40, "seed": 3},
        {"categories": ["Nursing", "ECG"]},
    ],
    ids=str,
)
def test_sampled_queries_get_exactly_the_exact_methods_rows(settings):
    for seed in range(3):
        cohort, emb = sign_cohort(seed)
        exact = evaluate_recall(cohort, emb, RecallConfig(bootstrap=FEW, **settings))
        # other block sizes too: the blocks hold other queries than in the exact run
        sampled = evaluate_recall(
            cohort, emb, force_sampling(97, bootstrap=FEW, query_block=7, pool_block=50, **settings)
        )
        assert exact.definition["method"] == EXACT and sampled.definition["method"] == SAMPLED
        got = sampled.units[UNIT_COLUMNS].reset_index(drop=True)
        assert len(got) == 97 and got["query_note_id"].is_unique
        assert (got["n_tied"] > 0).sum() > 5  # the tie rule is exercised, not just present
        expected = exact.units[UNIT_COLUMNS].set_index("query_note_id").loc[got["query_note_id"]]
        pd.testing.assert_frame_equal(
            got, expected.reset_index()[UNIT_COLUMNS], check_dtype=False, check_index_type=False
        )


def test_the_sample_is_seeded_stratified_by_patient_and_recorded():
    cohort, emb = signal_cohort(0, patients=80)
    a = evaluate_recall(cohort, emb, force_sampling(300, bootstrap=FEW, seed=5))
    b = evaluate_recall(cohort, emb, force_sampling(300, bootstrap=FEW, seed=5))
    c = evaluate_recall(cohort, emb, force_sampling(300, bootstrap=FEW, seed=6))
    pd.testing.assert_frame_equal(a.units, b.units)
    assert set(a.units["query_note_id"]) != set(c.units["query_note_id"])
    queries = len(cohort.notes) - cohort.notes["subject_id"].nunique()  # every note but each last one
    assert a.counts["queries"] == 300 and a.counts["queries_before_sampling"] == queries
    assert a.definition["method"] == "sampled queries against the full pool"
    assert a.definition["query_sample"] == 300 and a.definition["exact_up_to"] == 1
    assert "patient-stratified" in a.definition["method_rule"]
    # the pool is the full pool: every used note but the query
    assert (a.units["pool_size"] == len(cohort.notes) - 1).all()
    # stratified: each patient gets floor or ceil of its share of the sample
    per_patient = cohort.notes.groupby("subject_id").size() - 1
    share = per_patient * 300 / queries
    drawn = a.units.groupby("subject_id").size().reindex(per_patient.index, fill_value=0)
    assert ((drawn == np.floor(share)) | (drawn == np.ceil(share))).all()


def test_sample_positions_are_exact_in_number_distinct_and_even():
    subjects = np.repeat(np.arange(50), np.arange(1, 51))  # 1,275 queries, patients of 1 to 50
    picks = sample_queries(subjects, 255, seed=0)  # one in five
    assert len(picks) == 255 and len(np.unique(picks)) == 255 and np.all(np.diff(picks) > 0)
    per_patient = np.bincount(subjects[picks], minlength=50)
    assert np.all(np.abs(per_patient - np.arange(1, 51) / 5) < 1)
    assert np.array_equal(sample_queries(subjects, 5000, seed=0), np.arange(len(subjects)))


def test_below_the_threshold_or_without_a_sample_size_the_method_is_exact():
    cohort, emb = signal_cohort(1, patients=40)
    n = len(cohort.notes) - 40
    for config in [
        RecallConfig(bootstrap=FEW),  # the defaults: 50,000 queries, far above this cohort (and the demo's)
        RecallConfig(bootstrap=FEW, query_sample=10, exact_up_to=n),  # at the threshold: exact
        RecallConfig(bootstrap=FEW, query_sample=None, exact_up_to=1),
        RecallConfig(bootstrap=FEW, query_sample=n, exact_up_to=1),  # a sample of everything: exact
    ]:
        result = evaluate_recall(cohort, emb, config)
        assert result.definition["method"] == "exact", config
        assert result.counts["queries"] == n and "queries_before_sampling" not in result.counts


def test_sampled_estimates_lie_within_the_exact_intervals():
    cohort, emb = signal_cohort(2)
    scheme = BootstrapScheme(n_resamples=400)
    exact = evaluate_recall(cohort, emb, RecallConfig(bootstrap=scheme))
    queries = exact.counts["queries"]
    sampled = evaluate_recall(cohort, emb, force_sampling(queries * 3 // 5, bootstrap=scheme))
    assert 0.2 < exact.metrics["top5"].value < 0.8  # a metric with room to move either way
    measured = [m for m in exact.metrics if m not in DESCRIPTIVE_METRICS]
    assert len(measured) == 9  # top1/5/10, mrr, patient_top1/5/10, within_top1, within_mrr
    for name in measured:
        e, s = exact.metrics[name], sampled.metrics[name]
        assert e.low <= s.value <= e.high, (name, s.value, e)
        assert s.low <= e.value <= s.high, (name, e.value, s)  # the sampled interval holds the truth
        assert s.high - s.low > e.high - e.low, name  # and is wider: it carries the sampling error


def test_results_md_and_report_html_say_when_recall_was_sampled(cli, tmp_path):
    """A sampled run says so in words beside its numbers; an exact run's text has no such clause."""
    config = tmp_path / "sampled.toml"
    config.write_text("[tasks.recall]\nexact_up_to = 50\nquery_sample = 100\n")
    env = {"CLINPRED_CACHE": str(tmp_path / "cache")}
    base = ("run", "--synthetic", "tiny", "-b", "tfidf", "-t", "recall", "--quiet")
    sampled, exact = tmp_path / "sampled", tmp_path / "exact"
    assert cli(*base, "--config", str(config), "--out", str(sampled), env=env).returncode == 0
    assert cli(*base, "--out", str(exact), env=env).returncode == 0

    # tiny: 20 evaluation patients, 392 notes, so 392 - 20 = 372 consecutive pairs; 100 of them scored
    clause = (
        "recall scored on a seeded, patient-stratified sample of 100 of 372 queries against the full pool "
        "(intervals include the sampling error)"
    )
    md = (sampled / "RESULTS.md").read_text()
    table_end = md.index("\n\n", md.index("| recall | top5 |"))
    assert md[table_end:].startswith(f"\n\nNext-note {clause}.\n")  # right under the numbers
    html = (sampled / "report.html").read_text()
    assert f"for the same patient&#39;s next note; {clause}; chance at top5 is" in html

    md, html = (exact / "RESULTS.md").read_text(), (exact / "report.html").read_text()
    assert "Next-note recall scored" not in md and "of 372 queries" not in md + html
    assert "372 queries from 20 patients" in html and "next note; chance at top5 is" in html


def test_query_sample_all_keeps_recall_exact_at_any_size():
    """TOML has no null: "all" (or "none"/"null") is how a config file asks for exact recall."""
    from clinpred.tasks.recall import RecallConfig, recall_method

    for word in ("all", "None", "null"):
        config = RecallConfig(query_sample=word, exact_up_to=1)
        assert config.query_sample is None and recall_method(config, 10_000_000) == "exact"
    assert recall_method(RecallConfig(exact_up_to=1), 10_000_000) != "exact"  # the default samples above it
