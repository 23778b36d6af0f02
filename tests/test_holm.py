"""Many comparisons (issue 13): each paired difference carries a bootstrap p-value, and the comparison
marks which survive Holm's correction within each task and says how many comparisons each task made."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_report_comparable import write_run

from clinpred.report.compare import Difference, compare_runs, comparison_markdown, holm_by_task
from clinpred.tasks.result import Estimate, bootstrap_p_value


def diff(task: str, p: float) -> Difference:
    return Difference(
        task=task,
        metric=f"m{p}",
        backend="b",
        reference="r",
        patients=10,
        difference=Estimate(value=0.1),
        p_value=p,
    )


def test_holm_step_down_by_hand():
    # m = 4 in task a: thresholds 0.0125, 0.0167, 0.025, 0.05; 0.03 fails its 0.025, so 0.04 fails too
    family = [diff("a", p) for p in (0.01, 0.03, 0.04, 0.001)] + [diff("b", 0.04)]
    holm_by_task(family)
    assert [d.holm for d in family] == [True, False, False, True, True]


def test_bootstrap_p_value():
    from scipy.stats import norm

    draws = np.random.default_rng(0).normal(0.05, 0.01, size=1000)
    # observed 0.05 with a standard error of ~0.01: z ~ 5, far below what counting draws could give
    p = bootstrap_p_value(draws, 0.05)
    assert p == pytest.approx(2 * norm.sf(0.05 / np.std(draws, ddof=1)))
    assert p < 0.05 / 27 < 2 / 1001  # a count-based p-value could never pass Holm over 27 comparisons
    assert bootstrap_p_value(np.r_[np.full(50, -1.0), np.full(50, 1.0)], 0.0) == 1.0
    assert bootstrap_p_value(np.array([np.nan]), 0.1) is None
    assert bootstrap_p_value(draws, float("nan")) is None


def test_comparison_marks_holm_and_counts_comparisons(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.random(80) < 0.4
    strong = pd.DataFrame({"subject_id": range(1, 81), "p::A": np.where(y, 0.9, 0.1), "y::A": y})
    noise = pd.DataFrame({"subject_id": range(1, 81), "p::A": rng.random(80), "y::A": y})
    a = write_run(
        tmp_path / "a",
        patients=range(1, 81),
        seed=1,
        definition={},
        label="noise",
        units=noise,
        n_resamples=1000,
    )
    b = write_run(
        tmp_path / "b",
        patients=range(1, 81),
        seed=1,
        definition={},
        label="strong",
        units=strong,
        n_resamples=1000,
    )
    comparison = compare_runs([a, b], reference="noise")
    by_metric = {d.metric: d for d in comparison.differences}
    assert by_metric["macro_auroc"].p_value < 0.01 and by_metric["macro_auroc"].holm is True
    md = comparison_markdown(comparison)
    assert f"diagnosis: {len(comparison.differences)}" in md and "| Holm |" in md
    assert "Holm's correction at 0.05 over" in md and "{" not in md.split("## Paired")[-1]


def test_results_md_lists_paired_differences_with_holm_marks(tmp_path):
    from clinpred.pipeline import RunResults
    from clinpred.report.markdown import results_markdown

    rng = np.random.default_rng(0)
    y = rng.random(80) < 0.4
    strong = pd.DataFrame({"subject_id": range(1, 81), "p::A": np.where(y, 0.8, 0.3), "y::A": y})
    noise = pd.DataFrame({"subject_id": range(1, 81), "p::A": rng.random(80), "y::A": y})
    a = write_run(tmp_path / "a", patients=range(1, 81), seed=1, definition={}, label="noise", units=noise)
    b = write_run(tmp_path / "b", patients=range(1, 81), seed=1, definition={}, label="strong", units=strong)
    comparison = compare_runs([a, b], reference="noise")
    run = RunResults.model_validate_json((a / "results.json").read_text())
    run = run.model_copy(update={"split": {**run.split, "finetune_patients": 0, "validation_patients": 0}})
    run = run.model_copy(update={"evaluation": {"notes": 80}})
    md = results_markdown(run, comparison)
    assert "## Paired differences against `noise`" in md and "| Holm |" in md
    assert f"diagnosis: {len(comparison.differences)}" in md
