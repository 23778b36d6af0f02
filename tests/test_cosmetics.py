"""Numbers that describe the test carry no bootstrap interval and are never paired, and the demo's
MiniLM fine-tune is not recorded as Gemma (issue 13, defect 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_recall import make_cohort
from test_report_comparable import write_run

from clinpred.demo import demo_config
from clinpred.report.compare import compare_runs
from clinpred.tasks.recall import DESCRIPTIVE_METRICS, RecallConfig, evaluate_recall
from clinpred.tasks.result import BootstrapScheme


def test_counts_and_chance_levels_have_no_interval():
    rng = np.random.default_rng(11)
    cohort = make_cohort(np.sort(rng.integers(1, 60, size=400)))
    result = evaluate_recall(
        cohort,
        rng.normal(size=(400, 32)).astype(np.float32),
        RecallConfig(bootstrap=BootstrapScheme(n_resamples=50)),
    )
    m = result.metrics
    for key in ("queries", "pool_size", "chance_top1", "chance_top5", "chance_top10", "chance_mrr"):
        assert m[key].low is None and m[key].high is None, key
        assert str(m[key]) == str(m[key]).split(" [")[0]
    assert m["queries"].value == result.counts["queries"]
    assert m["top5"].low is not None and m["mrr"].low is not None


def test_paired_differences_leave_out_descriptive_metrics(tmp_path):
    runs = []
    for seed, label in ((1, "base"), (2, "tuned")):
        rng = np.random.default_rng(seed)
        units = pd.DataFrame(
            {"subject_id": np.repeat(np.arange(1, 41), 3), "rank": rng.integers(1, 30, 120), "pool_size": 119}
        )
        runs.append(
            write_run(
                tmp_path / label,
                patients=range(1, 41),
                seed=seed,
                definition={},
                label=label,
                task="recall",
                units=units,
            )
        )
    paired = {d.metric for d in compare_runs(runs).differences}
    assert {"top1", "top5", "top10", "mrr"} <= paired
    assert not paired & set(DESCRIPTIVE_METRICS)


def test_the_demo_records_its_minilm_finetune_under_a_truthful_backend_name(tmp_path):
    config = demo_config(tmp_path / "models", size="tiny")
    by_label = {b.display: b.name for b in config.backends}
    assert by_label["minilm-seed"] == by_label["minilm-clinical"] == "sentence-transformers"
    assert "gemma-finetuned" not in by_label.values() and "gemma-base" not in by_label.values()
