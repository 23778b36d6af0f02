"""The rows of the comparison table shared by report.html and the terminal: metrics with chance levels.

Chance levels are not metrics of their own in these tables: each metric row carries its chance level
(computed by the task, e.g. recall's ``chance_top5``, or fixed by the metric, 0.5 for an AUROC), so a
reader sees the number and what a model without signal would score side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from clinpred.report.markdown import tasks_in
from clinpred.tasks.result import Estimate, TaskResult


@dataclass
class Row:
    """One metric of one task, one estimate per backend (None: the backend has no such number)."""

    task: str
    metric: str
    main: bool
    chance: str
    values: list[Estimate | None]


def chance_level(metrics: dict[str, Estimate], metric: str) -> str:
    """The chance level of a metric where it has one, as text; '' where it has none."""
    if f"chance_{metric}" in metrics:
        return f"{metrics[f'chance_{metric}'].value:.3f}"
    if metric == "knn_agreement" and "knn_chance" in metrics:
        return f"{metrics['knn_chance'].value:.3f}"
    if "auroc" in metric or metric in ("harrell_c", "uno_c") or metric.startswith("auc_"):
        return "0.500"
    if metric == "silhouette":
        return "0"
    return ""


# Shown beside a task's main metric even in the short table: recall's identity check (DESIGN.md rule 7)
# -- does the model find the next note, any note of the patient, or the next of the patient's notes?
COMPANIONS: dict[str, tuple[str, ...]] = {"recall": ("patient_top5", "within_top1")}


def is_chance(metric: str) -> bool:
    """A chance level reported as a metric (shown in the chance column instead)."""
    return metric.startswith("chance_") or metric == "knn_chance"


def table_rows(runs: dict[str, dict[str, TaskResult]], *, all_metrics: bool = True) -> list[Row]:
    """Rows per task in report order, the main metric first; only the main metrics unless ``all_metrics``."""
    labels = list(runs)
    rows = []
    for task in tasks_in(runs):
        present = [runs[b][task] for b in labels if task in runs[b]]
        if not present:
            continue
        main = present[0].main_metric
        names = [main, *[m for m in COMPANIONS.get(task, ()) if m in present[0].metrics]]
        if all_metrics:
            for r in present:
                names += [m for m in r.metrics if m not in names and not is_chance(m)]
        for m in names:
            values = [runs[b][task].metrics.get(m) if task in runs[b] else None for b in labels]
            rows.append(Row(task, m, m == main, chance_level(present[0].metrics, m), values))
    return rows
