"""`clinpred report`: several runs in one comparison, with paired differences between backends.

"Better" is a measured claim: for each task, every backend is compared with a reference backend on the
patients both were scored on, resampling the same patients for both sides (a paired bootstrap), so the
interval is the interval of the difference. The metric functions are the tasks' own
(``metrics_from_units``); this module only loads, checks, pairs and lays out.

Runs are compared only when they are comparable (DESIGN.md rule 8): the same evaluation patients (the
hash every run records) and the same task definitions. Anything else is refused with what differs;
``allow_different_definitions`` relaxes the second check only, and the comparison records what differed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ValidationError

from clinpred.atomic import write_text
from clinpred.errors import InputError
from clinpred.report.markdown import cell, table, tasks_in
from clinpred.run_folder import RunResults
from clinpred.tasks.registry import find_task
from clinpred.tasks.result import (
    Estimate,
    ResampledSide,
    TaskResult,
    difference_of_sides,
    resampled_side,
    shared_patients,
)

HOLM_ALPHA = 0.05


class Difference(BaseModel):
    """metric(backend) - metric(reference) on shared patients, paired bootstrap interval."""

    task: str
    metric: str
    backend: str
    reference: str
    patients: int
    difference: Estimate
    p_value: float | None = None  # two-sided, of "no difference": difference / paired-bootstrap SE
    holm: bool | None = None  # survives Holm's correction over the task's comparisons (family-wise 5%)


class Comparability(BaseModel):
    """What was checked before pairing, and what was let through."""

    evaluation_patients_sha256: str
    allow_different_definitions: bool = False
    definitions_differ: list[str] = []  # "task: backend vs reference: setting, ..." (only when allowed)


class Comparison(BaseModel):
    """What `clinpred report` writes as comparison.json."""

    runs: list[str]
    backends: dict[str, str]  # backend label -> the run directory it came from
    metrics: dict[str, dict[str, dict[str, Estimate]]]  # backend -> task -> metric -> estimate
    reference: str | None
    differences: list[Difference]
    comparability: Comparability | None = None


def _definition(result: TaskResult) -> dict:
    """The task definition without what a fit chose (``*_chosen``: e.g. the penalty per fold)."""
    return {k: v for k, v in result.definition.items() if not k.endswith("_chosen")}


def _same_patients(runs: dict[Path, object]) -> str:
    """The shared evaluation-patient hash; a user error naming the runs when they differ."""
    hashes = {
        str(d): (r.split.get("evaluation_patients_sha256"), r.split.get("evaluation_patients"))
        for d, r in runs.items()
    }
    distinct = {h for h, _ in hashes.values()}
    if None in distinct:
        missing = [d for d, (h, _) in hashes.items() if h is None]
        raise InputError(
            f"{missing[0]}: results.json records no evaluation-patient hash, so its patients cannot be "
            "checked against the other runs; rerun it with this version of clinpred."
        )
    if len(distinct) > 1:
        listing = "; ".join(f"{d}: {n} patients, sha256 {h[:12]}" for d, (h, n) in hashes.items())
        raise InputError(
            f"the runs have different evaluation patients ({listing}). Paired differences need the same "
            "patients: run every backend on the same data, split and seed."
        )
    return distinct.pop()


def _definition_differences(results: dict[str, dict[str, TaskResult]], reference: str) -> list[str]:
    """For each backend and task it shares with the reference, the settings whose values differ."""
    out = []
    for label, tasks in results.items():
        if label == reference:
            continue
        for task, result in tasks.items():
            ref = results[reference].get(task)
            if ref is None:
                continue
            a, b = _definition(result), _definition(ref)
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if keys:
                out.append(f"{task}: {label} vs {reference}: {', '.join(keys)}")
    return out


def load_run(run_dir: Path):
    """A run directory's results.json as RunResults; a user error when it is not a finished run."""
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


def compare_runs(
    run_dirs: list[Path], *, reference: str | None = None, allow_different_definitions: bool = False
) -> Comparison:
    """Combine comparable runs; paired differences against ``reference`` (default: the first backend).

    A user error when the runs' evaluation patients differ, or (unless ``allow_different_definitions``)
    when a backend's task definition differs from the reference's.
    """
    results: dict[str, dict[str, TaskResult]] = {}
    origin: dict[str, tuple[Path, str]] = {}  # table label -> (run directory, label inside that run)
    runs = {Path(d): load_run(d) for d in run_dirs}
    patients_hash = _same_patients(runs)
    for run_dir, run in runs.items():
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
    differ = _definition_differences(results, reference)
    if differ and not allow_different_definitions:
        raise InputError(
            "the runs' task definitions differ, so their numbers are not comparable: "
            + "; ".join(differ)
            + ". Run them with the same config, or pass --allow-different-definitions to compare anyway "
            "(the comparison then records what differed)."
        )
    differences = []
    # the reference's resamples, drawn once for every backend compared with it on the same patients and
    # scheme (which give the same draws): by task, patients and scheme
    reference_sides: dict[tuple[str, bytes, str], ResampledSide] = {}
    for label in results:
        if label == reference:
            continue
        for task, result in results[label].items():
            ref_result = results[reference].get(task)
            a, b = _units(*origin[label], task), _units(*origin[reference], task)
            if ref_result is None or a is None or b is None:
                continue
            spec = find_task(task)  # None: a task whose package is not installed here
            metric_fn = spec.metric_fn() if spec is not None else None
            if metric_fn is None:
                continue
            descriptive = spec.descriptive()
            shared = shared_patients(a, b)
            if len(shared) == 0:
                continue
            scheme = result.bootstrap
            key = (task, shared.tobytes(), scheme.model_dump_json())
            if key not in reference_sides:
                reference_sides[key] = resampled_side(b, shared, metric_fn, scheme)
            estimates, p_values = difference_of_sides(
                resampled_side(a, shared, metric_fn, scheme), reference_sides[key], scheme.confidence
            )
            for metric, estimate in estimates.items():
                # the task's reported metrics only (not per-label values: they would swamp the Holm
                # family); counts and chance levels: nothing to pair
                if metric not in result.metrics or metric in descriptive:
                    continue
                differences.append(
                    Difference(
                        task=task,
                        metric=metric,
                        backend=label,
                        reference=reference,
                        patients=len(shared),
                        difference=estimate,
                        p_value=p_values.get(metric),
                    )
                )
    holm_by_task(differences)
    metrics = {b: {t: r.metrics for t, r in res.items()} for b, res in results.items()}
    return Comparison(
        runs=[str(r) for r in run_dirs],
        backends={k: str(v[0]) for k, v in origin.items()},
        metrics=metrics,
        reference=reference,
        differences=differences,
        comparability=Comparability(
            evaluation_patients_sha256=patients_hash,
            allow_different_definitions=allow_different_definitions,
            definitions_differ=differ,
        ),
    )


def holm_by_task(differences: list[Difference], alpha: float = HOLM_ALPHA) -> None:
    """Mark which differences survive Holm's step-down correction, the family being every paired
    difference of one task (all backends, all metrics): sorted p-values p(1) <= ... <= p(m) are
    rejected while p(i) <= alpha / (m - i + 1)."""
    for task in {d.task for d in differences}:
        family = sorted(
            (d for d in differences if d.task == task and d.p_value is not None), key=lambda d: d.p_value
        )
        rejecting = True
        for i, d in enumerate(family):
            rejecting = rejecting and d.p_value <= alpha / (len(family) - i)
            d.holm = rejecting


def comparison_markdown(comparison: Comparison) -> str:
    """Metrics side by side, then the paired differences."""
    labels = list(comparison.metrics)
    rows = []
    for task in tasks_in(comparison.metrics):
        metrics: list[str] = []
        for b in labels:
            metrics += [m for m in comparison.metrics[b].get(task, {}) if m not in metrics]
        for m in metrics:
            rows.append((task, m, [comparison.metrics[b].get(task, {}).get(m) for b in labels]))
    lines = ["# clinpred comparison", "", f"Runs: {', '.join(comparison.runs)}", ""]
    check = comparison.comparability
    if check is not None:
        lines += [
            f"Evaluation patients: the same in every run (sha256 {check.evaluation_patients_sha256[:12]}).",
            "",
        ]
        if check.definitions_differ:
            lines += [
                "**Task definitions differ** (compared anyway: --allow-different-definitions):",
                "",
                *[f"- {d}" for d in check.definitions_differ],
                "",
            ]
    lines += table(labels, rows)
    return "\n".join(lines + differences_lines(comparison)) + "\n"


def differences_lines(comparison: Comparison) -> list[str]:
    """The paired-differences section (empty without differences): how many comparisons each task
    made, and which differences survive Holm's correction within the task."""
    lines: list[str] = []
    if comparison.differences:
        lines += [
            "",
            f"## Paired differences against `{comparison.reference}`",
            "",
            "Same patients on both sides; 95% paired bootstrap over patients. p: two-sided p-value of no "
            "difference (the difference over its paired-bootstrap standard error); Holm: survives Holm's "
            f"correction at {HOLM_ALPHA:g} over each task's comparisons "
            "("
            + ", ".join(
                f"{t}: {sum(d.task == t for d in comparison.differences)}"
                for t in dict.fromkeys(d.task for d in comparison.differences)
            )
            + ").",
            "",
            "| task | metric | backend | difference | p | Holm | patients |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in comparison.differences:
            p = "" if d.p_value is None else f"{d.p_value:.3g}"
            holm = "" if d.holm is None else ("yes" if d.holm else "no")
            lines.append(
                f"| {d.task} | {d.metric} | {d.backend} | {cell(d.difference)} | {p} | {holm} | {d.patients:,} |"
            )
    return lines


def comparison_csv(comparison: Comparison) -> str:
    """One row per backend, task and metric (and per paired difference)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "backend", "reference", "task", "metric", "value", "low", "high", "p_value", "holm"])
    for backend, tasks in comparison.metrics.items():
        for task, metrics in tasks.items():
            for metric, e in metrics.items():
                w.writerow(["metric", backend, "", task, metric, e.value, e.low, e.high])
    for d in comparison.differences:
        e = d.difference
        w.writerow(
            [
                "difference",
                d.backend,
                d.reference,
                d.task,
                d.metric,
                e.value,
                e.low,
                e.high,
                d.p_value,
                d.holm,
            ]
        )
    return buf.getvalue()


def write_comparison(comparison: Comparison, out: Path) -> list[Path]:
    """comparison.md, comparison.csv, comparison.json under ``out``, each written atomically."""
    return [
        write_text(out / "comparison.md", comparison_markdown(comparison)),
        write_text(out / "comparison.csv", comparison_csv(comparison)),
        write_text(out / "comparison.json", json.dumps(comparison.model_dump(mode="json"), indent=2)),
    ]
