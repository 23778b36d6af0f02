"""`clinpred report` pairs only comparable runs (issue 13, defect 3; DESIGN.md rule 8): the same
evaluation patients and the same task definitions, or an explicit, recorded relaxation of the latter."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinpred.errors import InputError
from clinpred.pipeline import BackendRun, RunResults
from clinpred.report.compare import compare_runs
from clinpred.tasks.result import BootstrapScheme, TaskResult, bootstrap_metrics

SCHEME = BootstrapScheme(n_resamples=20, seed=0)


def write_run(
    directory: Path,
    *,
    patients: range,
    seed: int,
    definition: dict,
    label: str,
    task: str = "diagnosis",
    units: pd.DataFrame | None = None,
    n_resamples: int = SCHEME.n_resamples,
) -> Path:
    """A run directory holding one backend's result of one task (diagnosis by default) and its units."""
    rng = np.random.default_rng(seed)
    y = rng.random(len(patients)) < 0.4
    units = (
        units
        if units is not None
        else pd.DataFrame(
            {
                "subject_id": list(patients),
                "p::A": 1 / (1 + np.exp(-(y + rng.normal(0, 0.8, len(patients))))),
                "y::A": y,
            }
        )
    )
    metric_fn = importlib.import_module(f"clinpred.tasks.{task}").metrics_from_units
    scheme = SCHEME.model_copy(update={"n_resamples": n_resamples})
    result = TaskResult(
        task=task,
        main_metric="macro_auroc",
        definition=definition,
        counts={"patients": len(units)},
        metrics=bootstrap_metrics(units, metric_fn, scheme),
        bootstrap=scheme,
    )
    run = RunResults(
        clinpred_version="test",
        created="now",
        data="test",
        cohort={},
        split={
            "evaluation_patients": len(patients),
            "evaluation_patients_sha256": f"hash-of-{patients.start}-{patients.stop}",
        },
        evaluation={},
        allow_external_api=False,
        versions={},
        config={},
        backends=[BackendRun(label=label, name="tfidf", status="ok", results={task: result})],
    )
    (directory / "units" / label).mkdir(parents=True)
    units.to_parquet(directory / "units" / label / f"{task}.parquet", index=False)
    (directory / "results.json").write_text(run.model_dump_json())
    return directory


DEFINITION = {"label_scheme": "ccs_benchmark", "unit": "patient", "c_chosen": {"A": [0.1]}}


def test_same_patients_and_definitions_are_compared(tmp_path):
    a = write_run(tmp_path / "a", patients=range(1, 61), seed=1, definition=DEFINITION, label="base")
    other = {**DEFINITION, "c_chosen": {"A": [1.0]}}  # what a fit chose is not part of the definition
    b = write_run(tmp_path / "b", patients=range(1, 61), seed=2, definition=other, label="tuned")
    comparison = compare_runs([a, b], reference="base")
    assert {d.metric for d in comparison.differences} >= {"macro_auroc"}
    assert comparison.comparability.evaluation_patients_sha256 == "hash-of-1-61"
    assert comparison.comparability.definitions_differ == []


def test_different_evaluation_patients_are_refused_naming_the_runs(tmp_path):
    a = write_run(tmp_path / "a", patients=range(1, 61), seed=1, definition=DEFINITION, label="base")
    b = write_run(tmp_path / "b", patients=range(31, 91), seed=2, definition=DEFINITION, label="tuned")
    with pytest.raises(InputError, match="different evaluation patients") as info:
        compare_runs([a, b], allow_different_definitions=True)  # the flag never relaxes this check
    assert str(a) in str(info.value) and str(b) in str(info.value)


def test_different_definitions_are_refused_unless_allowed_and_then_recorded(tmp_path, cli):
    a = write_run(tmp_path / "a", patients=range(1, 61), seed=1, definition=DEFINITION, label="base")
    other = {**DEFINITION, "label_scheme": "icd_topk"}
    b = write_run(tmp_path / "b", patients=range(1, 61), seed=2, definition=other, label="tuned")
    with pytest.raises(InputError, match="diagnosis: tuned vs base: label_scheme"):
        compare_runs([a, b], reference="base")
    refused = cli("report", str(a), str(b), "--reference", "base", "--out", str(tmp_path / "r1"))
    assert refused.returncode == 2 and "label_scheme" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "r1" / "comparison.json").exists()
    allowed = cli(
        "report",
        str(a),
        str(b),
        "--reference",
        "base",
        "--allow-different-definitions",
        "--out",
        str(tmp_path / "r2"),
    )
    assert allowed.returncode == 0, allowed.stderr
    saved = json.loads((tmp_path / "r2" / "comparison.json").read_text())
    assert saved["comparability"]["allow_different_definitions"] is True
    assert saved["comparability"]["definitions_differ"] == ["diagnosis: tuned vs base: label_scheme"]
    assert "Task definitions differ" in (tmp_path / "r2" / "comparison.md").read_text()
