"""`clinpred report`: several runs in one comparison, with paired differences between backends.

"Better" is a measured claim: for each task, every backend is compared with a reference backend on the
patients both were scored on, resampling the same patients for both sides (a paired bootstrap), so the
interval is the interval of the difference. The metric functions are the tasks' own
(``metrics_from_units``); this module only loads, pairs and lays out.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ValidationError

from clinpred.atomic import write_text
from clinpred.errors import InputError
from clinpred.report.markdown import TASK_TITLES, cell, table
from clinpred.tasks.result import Estimate, TaskResult, paired_difference


class Difference(BaseModel):
    """metric(backend) - metric(reference) on shared patients, paired bootstrap interval."""

    task: str
    metric: str
    backend: str
    reference: str
    patients: int
    difference: Estimate


class Comparison(BaseModel):
    """What `clinpred report` writes as comparison.json."""

    runs: list[str]
    backends: dict[str, str]  # backend label -> the run directory it came from
    metrics: dict[str, dict[str, dict[str, Estimate]]]  # backend -> task -> metric -> estimate
    reference: str | None
    differences: list[Difference]


def load_run(run_dir: Path):
    """A run directory's results.json as RunResults; a user error when it is not a finished run."""
    from clinpred.pipeline import RunResults

    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise InputError(f"{run_dir}: no results.json here. Give a directory written by `clinpred run`.")
    try:
        return RunResults.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise InputError(f"{path}: not a clinpred results file ({exc.error_count()} problems).") from None


def _units(run_dir: Path, label: str, task: str) -> pd.DataFrame | None:
    path = Path(run_dir) / "units" / label / f"{task}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def compare_runs(run_dirs: list[Path], *, reference: str | None = None) -> Comparison:
    """Combine runs; paired differences against ``reference`` (default: the first backend)."""
    results: dict[str, dict[str, TaskResult]] = {}
    origin: dict[str, tuple[Path, str]] = {}  # table label -> (run directory, label inside that run)
    for run_dir in run_dirs:
        run = load_run(run_dir)
        for backend in run.backends:
            if backend.status != "ok":
                continue
            label = (
                backend.label if backend.label not in results else f"{backend.label} ({Path(run_dir).name})"
            )
            results[label] = backend.results
            origin[label] = (Path(run_dir), backend.label)
    if not results:
        raise InputError("none of the given runs has a backend that ran.")
    reference = reference or next(iter(results))
    if reference not in results:
        raise InputError(f"--reference {reference!r}: no such backend; the runs have {', '.join(results)}.")
    differences = []
    for label in results:
        if label == reference:
            continue
        for task, result in results[label].items():
            ref_result = results[reference].get(task)
            a, b = _units(*origin[label], task), _units(*origin[reference], task)
            if ref_result is None or a is None or b is None:
                continue
            metric_fn = importlib.import_module(f"clinpred.tasks.{task}").metrics_from_units
            shared = len(set(a["subject_id"]) & set(b["subject_id"]))
            if shared == 0:
                continue
            for metric, estimate in paired_difference(a, b, metric_fn, result.bootstrap).items():
                differences.append(
                    Difference(
                        task=task,
                        metric=metric,
                        backend=label,
                        reference=reference,
                        patients=shared,
                        difference=estimate,
                    )
                )
    metrics = {b: {t: r.metrics for t, r in res.items()} for b, res in results.items()}
    return Comparison(
        runs=[str(r) for r in run_dirs],
        backends={k: str(v[0]) for k, v in origin.items()},
        metrics=metrics,
        reference=reference,
        differences=differences,
    )


def comparison_markdown(comparison: Comparison) -> str:
    """Metrics side by side, then the paired differences."""
    labels = list(comparison.metrics)
    rows = []
    for task in TASK_TITLES:
        metrics: list[str] = []
        for b in labels:
            metrics += [m for m in comparison.metrics[b].get(task, {}) if m not in metrics]
        for m in metrics:
            rows.append((task, m, [comparison.metrics[b].get(task, {}).get(m) for b in labels]))
    lines = ["# clinpred comparison", "", f"Runs: {', '.join(comparison.runs)}", "", *table(labels, rows)]
    if comparison.differences:
        lines += [
            "",
            f"## Paired differences against `{comparison.reference}`",
            "",
            "Same patients on both sides; 95% paired bootstrap over patients.",
            "",
            "| task | metric | backend | difference | patients |",
            "|---|---|---|---|---|",
        ]
        for d in comparison.differences:
            lines.append(f"| {d.task} | {d.metric} | {d.backend} | {cell(d.difference)} | {d.patients:,} |")
    return "\n".join(lines) + "\n"


def comparison_csv(comparison: Comparison) -> str:
    """One row per backend, task and metric (and per paired difference)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "backend", "reference", "task", "metric", "value", "low", "high"])
    for backend, tasks in comparison.metrics.items():
        for task, metrics in tasks.items():
            for metric, e in metrics.items():
                w.writerow(["metric", backend, "", task, metric, e.value, e.low, e.high])
    for d in comparison.differences:
        e = d.difference
        w.writerow(["difference", d.backend, d.reference, d.task, d.metric, e.value, e.low, e.high])
    return buf.getvalue()


def write_comparison(comparison: Comparison, out: Path) -> list[Path]:
    """comparison.md, comparison.csv, comparison.json under ``out``, each written atomically."""
    return [
        write_text(out / "comparison.md", comparison_markdown(comparison)),
        write_text(out / "comparison.csv", comparison_csv(comparison)),
        write_text(out / "comparison.json", json.dumps(comparison.model_dump(mode="json"), indent=2)),
    ]
