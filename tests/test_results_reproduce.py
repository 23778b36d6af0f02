"""The committed results/synthetic/ is what `clinpred demo` produces: regenerated and compared in CI."""

from __future__ import annotations

import time

import pytest

from clinpred.pipeline import RunResults
from clinpred.report.reproduce import TOLERANCE, differences
from tests.conftest import REPO
from tests.demo_checks import check_a_first_demo


@pytest.mark.slow(minutes=9)  # idle, alone: 538 s
def test_committed_synthetic_results_reproduce(cli, tmp_path):
    """A fresh demo, as a user runs it (logged, --out relative to the working folder): its numbers are
    the committed ones, and its stage table and paths are what a first demo's must be."""
    committed_path = REPO / "results" / "synthetic" / "results.json"
    committed = RunResults.model_validate_json(committed_path.read_text())
    t0 = time.monotonic()
    proc = cli(
        "demo",
        "--out",
        "demo",
        cwd=tmp_path,
        env={"CLINPRED_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": ""},
        timeout=3000,  # the demo takes ~9 min on an idle 2-core machine; CI machines run slower
    )
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "demo"
    fresh = RunResults.model_validate_json((out / "results.json").read_text())
    problems = differences(committed, fresh, tolerance=TOLERANCE)
    assert not problems, "results/synthetic no longer reproduces:\n" + "\n".join(problems)
    check_a_first_demo(proc, wall, out, machine=[str(tmp_path), str(tmp_path.resolve()), "site-packages"])


def test_a_changed_metric_is_caught():
    committed = RunResults.model_validate_json((REPO / "results" / "synthetic" / "results.json").read_text())
    fresh = committed.model_copy(deep=True)
    assert differences(committed, fresh) == []
    backend = next(b for b in fresh.backends if b.status == "ok")
    task = next(iter(backend.results.values()))
    task.metrics[task.main_metric].value += 2 * TOLERANCE
    assert len(differences(committed, fresh)) == 1


def test_counts_must_match_except_near_tie_noise():
    committed = RunResults.model_validate_json((REPO / "results" / "synthetic" / "results.json").read_text())
    fresh = committed.model_copy(deep=True)
    recall = next(b for b in fresh.backends if b.status == "ok").results["recall"]
    recall.counts["queries_with_ties"] += 1  # floating-point near-ties: a handful may move
    assert differences(committed, fresh) == []
    recall.counts["patients"] += recall.counts["patients"] // 10  # well beyond the 2% count tolerance
    assert differences(committed, fresh) == [f"{fresh.backends[0].label}/recall: count patients differs"]


def test_the_measured_openvino_spread_passes_and_a_larger_one_is_caught():
    """bf16 OpenVINO embeddings are not bit-reproducible: calibration slopes may swing (measured up to
    0.124) and near-tie counts move (up to 5.3%); beyond the wider bounds they are still caught."""
    committed = RunResults.model_validate_json((REPO / "results" / "synthetic" / "results.json").read_text())
    fresh = committed.model_copy(deep=True)
    backend = next(b for b in fresh.backends if "diagnosis" in b.results and "survival" in b.results)
    backend.results["diagnosis"].metrics["median_calibration_slope"].value += 0.124
    backend.results["survival"].metrics["calibration_slope_horizon"].value -= 0.124
    recall = backend.results["recall"]
    recall.counts["queries_with_ties"] = round(recall.counts["queries_with_ties"] * 1.053)
    assert differences(committed, fresh) == []
    backend.results["diagnosis"].metrics["median_calibration_slope"].value += 0.3
    recall.counts["queries_with_ties"] = round(recall.counts["queries_with_ties"] * 1.2)
    assert differences(committed, fresh) == [
        f"{backend.label}/recall: count queries_with_ties differs",
        f"{backend.label}/diagnosis/median_calibration_slope: committed "
        f"{committed.backends[fresh.backends.index(backend)].results['diagnosis'].metrics['median_calibration_slope'].value:.4f}, "
        f"fresh {backend.results['diagnosis'].metrics['median_calibration_slope'].value:.4f}",
    ]
