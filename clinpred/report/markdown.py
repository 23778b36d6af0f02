"""RESULTS.md: backends side by side, one row per metric, intervals in brackets, definitions underneath.

Every number is printed with the definition that produced it (DESIGN.md rule 5): the task's settings,
its counts and its fold scheme follow the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clinpred.tasks.registry import BUILT_INS, task_order, task_title
from clinpred.tasks.result import Estimate, TaskResult

if TYPE_CHECKING:
    from clinpred.report.compare import Comparison
    from clinpred.run_folder import RunResults

# the built-in tasks' titles, in report order; any task's title: task_title (clinpred.tasks.registry)
TASK_TITLES = {name: spec.title for name, spec in BUILT_INS.items()}


def tasks_in(runs: dict[str, dict[str, object]]) -> list[str]:
    """The tasks any backend has a result for, in report order (built-ins first, then installed ones)."""
    return task_order(task for results in runs.values() for task in results)


def cell(estimate: Estimate | None) -> str:
    """'0.934 [0.921, 0.946]', or '-' where the backend has no such number."""
    return "-" if estimate is None else str(estimate)


def metric_rows(runs: dict[str, dict[str, TaskResult]]) -> list[tuple[str, str, list[Estimate | None]]]:
    """(task, metric, one estimate per backend) for every metric any backend reported, main metric first."""
    labels = list(runs)
    rows = []
    for task in tasks_in(runs):
        present = [runs[b][task] for b in labels if task in runs[b]]
        if not present:
            continue
        names: list[str] = [present[0].main_metric]
        for result in present:
            names += [m for m in result.metrics if m not in names]
        for metric in names:
            rows.append((task, metric, [_get(runs[b], task, metric) for b in labels]))
    return rows


def _get(results: dict[str, TaskResult], task: str, metric: str) -> Estimate | None:
    return results[task].metrics.get(metric) if task in results else None


def table(labels: list[str], rows: list[tuple[str, str, list[Estimate | None]]]) -> list[str]:
    """A markdown table with one column per backend."""
    lines = ["| task | metric | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for task, metric, values in rows:
        lines.append(f"| {task} | {metric} | " + " | ".join(cell(v) for v in values) + " |")
    return lines


def _definition(result: TaskResult) -> list[str]:
    """Short bullets in words; the full definition stays in results.json (and report.html)."""
    from clinpred.report.sentences import counts_sentence, definition_sentences

    lines = [f"- main metric: `{result.main_metric}`"]
    lines += [f"- {sentence}" for sentence in definition_sentences(result)]
    lines.append(f"- counts: {counts_sentence(result.counts)}")
    lines += [f"- warning: {w}" for w in result.warnings]
    return lines


def _provenance(provenance: dict) -> str:
    """Who a fine-tuned model was trained on, as results.json records it."""
    sha = provenance.get("train_patients_sha256")
    if not sha:
        return "fine-tuned on unknown patients: the model folder has no clinpred-finetune.json"
    from clinpred.report.sentences import supervision_sentence

    which = "this run's" if provenance.get("matches_this_run") else "not this run's"
    kind = supervision_sentence(provenance)
    return (
        f"fine-tuned on patients with sha256 `{sha[:12]}`: {which} fine-tuning patients"
        + (f"; {kind}" if kind else "")
        + _audit(provenance.get("membership_audit"))
    )


def _audit(audit: dict | None) -> str:
    """The model's membership-inference audit as a clause after who it was trained on (issue 29)."""
    from clinpred.report.sentences import audit_sentence

    return "; " + audit_sentence(audit)


def supervised_lines(backends: list) -> list[str]:
    """A sentence under the table naming the supervised fine-tunes (rule 10); nothing where there are none."""
    from clinpred.report.sentences import supervised_labels

    names = supervised_labels(backends)
    if not names:
        return []
    return [
        "",
        f"Supervised fine-tunes (they read the fine-tuning patients' diagnosis codes, never an evaluation "
        f"patient's): {', '.join(names)}. The other fine-tunes read notes only: compare each with its kind.",
    ]


def sampled_recall_lines(runs: dict[str, dict[str, TaskResult]]) -> list[str]:
    """A sentence under the table where recall scored a sample of its queries; nothing for an exact run."""
    from clinpred.report.sentences import sampled_recall_clause

    recall = next((results["recall"] for results in runs.values() if "recall" in results), None)
    clause = sampled_recall_clause(recall) if recall is not None else None
    return ["", f"Next-note {clause}."] if clause else []


def sampled_fit_lines(backends: list) -> list[str]:
    """A sentence under the table for each backend fitted on a sample of the fine-tuning notes (TF-IDF
    above its ``fit_max_notes``); nothing where every note was used."""
    said = [(r.label, r.description["fit_sample"]) for r in backends if r.description.get("fit_sample")]
    return [line for label, sample in said for line in ("", f"{label} was fitted on {sample}.")]


def repairs_lines(cohort: dict[str, object]) -> list[str]:
    """'Source rows repaired' under the table (DESIGN.md rule 9), only where the reader repaired any."""
    from clinpred.data.integrity import damage_repaired

    made = damage_repaired(cohort)
    if not made:
        return []
    lines = ["", "Source rows repaired (the numbers above are computed after these rules):", ""]
    return lines + [f"- {r.key.replace('_', ' ')}: {n:,} {r.table} rows ({r.rule})" for r, n in made]


def results_markdown(results: RunResults, comparison: Comparison | None = None) -> str:
    """The whole RESULTS.md of one run; with ``comparison``, the paired differences between its backends."""
    ok = {r.label: r.results for r in results.backends if r.status == "ok"}
    lines = [
        "# clinpred results",
        "",
        f"Data: {results.data}. Evaluation patients: {results.split['evaluation_patients']:,} "
        f"({results.evaluation['notes']:,} notes); fine-tuning patients "
        f"({results.split['finetune_patients'] + results.split['validation_patients']:,}) are never scored. "
        f"clinpred {results.clinpred_version}.",
        "",
    ]
    survival = next((res["survival"] for res in ok.values() if "survival" in res), None)
    if survival is not None and "events" in survival.counts:  # what the survival task's power rests on
        lines[2] += (
            f" Survival: {survival.counts['patients']:,} evaluation patients scored, "
            f"{survival.counts['events']:,} of them died within the horizon."
        )
    if ok:
        lines += table(list(ok), metric_rows(ok))
        lines += supervised_lines(results.backends)
        lines += sampled_recall_lines(ok)
        lines += sampled_fit_lines(results.backends)
    lines += repairs_lines(results.cohort)
    skipped = [r for r in results.backends if r.status != "ok"]
    if skipped:
        lines += ["", "Not run:", ""]
        lines += [f"- **{r.label}** (`{r.name}`): {r.reason}" for r in skipped]
    partial = [
        f"- **{r.label}**, {t}: not run ({why})"
        for r in results.backends
        for t, why in r.tasks_not_run.items()
    ]
    if partial:
        lines += ["", "Tasks not run:", "", *partial]
    warned = [f"- **{r.label}**: {w}" for r in results.backends for w in r.warnings]
    if warned:
        lines += ["", "Warnings:", "", *warned]
    if comparison is not None:
        from clinpred.report.compare import differences_lines

        lines += differences_lines(comparison)
    lines += ["", "## Backends", ""]
    for r in results.backends:
        if r.status == "ok":
            secs = ", ".join(f"{k} {v:.0f}s" for k, v in r.seconds.items())
            lines.append(f"- **{r.label}** (`{r.name}`), fingerprint `{r.fingerprint}`; {secs}")
            if r.provenance:
                lines.append(f"  - {_provenance(r.provenance)}")
    lines += ["", "## Task definitions", ""]
    lines += [
        "In words; every setting in full is in results.json, figures and count tables in report.html.",
        "",
    ]
    for task in tasks_in(ok):
        first = next((res[task] for res in ok.values() if task in res), None)
        if first is not None:
            lines += [f"### {task_title(task)}", "", *_definition(first), ""]
    return "\n".join(lines).rstrip() + "\n"
