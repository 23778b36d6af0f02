"""report.html: one self-contained page per run (or per set of runs) that people read.

It opens on the comparison table (intervals, chance levels), then shows each task as the pictures
reviewers expect (recall curves, per-label AUROC, ROC and calibration, Kaplan-Meier by risk tertile,
UMAP), paired differences as a forest plot, and every definition in plain sentences with the raw JSON
folded away. Everything is inline (SVG figures, one style block, no script, no link to anything), so
the file opens offline and sends nothing anywhere. Figures are drawn from the units files the run
wrote, never from note text. jinja2 escapes every value; SVG from matplotlib is inserted as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clinpred.atomic import write_text
from clinpred.report import curves, sentences
from clinpred.report.markdown import tasks_in
from clinpred.report.table_rows import table_rows
from clinpred.tasks.registry import task_order, task_title
from clinpred.tasks.result import Estimate, TaskResult

TOP_LABELS = 5  # ROC and calibration panels: the most prevalent labels


@dataclass
class Shown:
    """One backend as the page shows it: its table label and where its units files are."""

    label: str
    run_dir: Path
    inner: str  # its label inside its run directory
    results: dict[str, TaskResult]
    _units: dict[str, pd.DataFrame | None] = field(default_factory=dict)

    def units(self, task: str) -> pd.DataFrame | None:
        if task not in self._units:
            path = self.run_dir / "units" / self.inner / f"{task}.parquet"
            self._units[task] = pd.read_parquet(path) if path.is_file() else None
        return self._units[task]


def _collect(run_dirs: list[Path]) -> tuple[list[Any], list[Shown]]:
    """Runs and their backends that ran, labelled as `clinpred report` labels them."""
    from clinpred.report.compare import load_run

    runs, shown, seen = [], [], set()
    for run_dir in run_dirs:
        run = load_run(run_dir)
        runs.append((Path(run_dir), run))
        for b in run.backends:
            if b.status != "ok":
                continue
            label = b.label if b.label not in seen else f"{b.label} ({Path(run_dir).name})"
            seen.add(label)
            # TaskResult keeps units out of results.json; the page reads them from units/ on demand
            shown.append(Shown(label, Path(run_dir), b.label, b.results))
    return runs, shown


def _table(shown: list[Shown]) -> list[dict[str, Any]]:
    """Rows of the opening table: every metric, its chance level in a column of its own."""
    rows = table_rows({s.label: s.results for s in shown}, all_metrics=True)
    return [
        {
            "task": task_title(r.task),
            "metric": r.metric,
            "main": r.main,
            "chance": r.chance,
            "cells": [_cell(e) for e in r.values],
        }
        for r in rows
    ]


def _cell(e: Estimate | None) -> tuple[str, str]:
    """(estimate, interval) as the table shows them; the interval may wrap under the estimate."""
    if e is None:
        return "-", ""
    text = str(e)
    value, _, interval = text.partition(" [")
    return value, f"[{interval}" if interval else ""


def _counts(results: dict[str, TaskResult]) -> dict[str, Any]:
    """Counts of one task as small tables, one column per backend."""
    labels = list(results)
    first = next(iter(results.values()))
    scalars = [name for name, _ in sentences.scalar_counts(first.counts)]
    by_label = {b: dict(sentences.scalar_counts(r.counts)) for b, r in results.items()}
    nested = []
    for name, table in sentences.nested_counts(first.counts).items():
        key = name.replace(" ", "_")
        rows = [(k, [_count(results[b].counts.get(key, {}).get(k, "-")) for b in labels]) for k in table]
        nested.append({"name": name, "rows": rows})
    return {
        "labels": labels,
        "scalars": [(n, [by_label[b].get(n, "-") for b in labels]) for n in scalars],
        "nested": nested,
        "same": all(r.counts == first.counts for r in results.values()),
    }


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _definition(results: dict[str, TaskResult]) -> dict[str, Any]:
    first = next(iter(results.values()))
    raw = {"definition": first.definition, "folds": first.folds, "bootstrap": first.bootstrap.model_dump()}
    return {
        "sentences": sentences.definition_sentences(first),
        "json": json.dumps(raw, indent=2, default=str, sort_keys=True),
        "warnings": {b: r.warnings for b, r in results.items() if r.warnings},
    }


class _Figures:
    """Draws each task's figures; with matplotlib absent the page says so instead."""

    def __init__(self, shown: list[Shown]):
        from clinpred.report import figures

        self.f = figures
        self.shown = shown
        self.colour = figures.colours([s.label for s in shown])

    def recall(self) -> tuple[str | None, bool]:
        data = {s.label: curves.recall_curves(u) for s in self.shown if (u := s.units("recall")) is not None}
        if not data:
            return None, False
        has_patient = all("patient" in c.columns for c in data.values())
        return self.f.recall_figure(data, self.colour), has_patient

    def diagnosis(self) -> dict[str, Any]:
        units = {s.label: u for s in self.shown if (u := s.units("diagnosis")) is not None}
        results = {s.label: s.results["diagnosis"] for s in self.shown if "diagnosis" in s.results}
        out: dict[str, Any] = {"per_label": None, "roc": None, "calibration": None, "top": 0}
        if not units:
            return out
        first = next(iter(units.values()))
        prevalence = {
            label: (int(first[f"y::{label}"].sum()), float(first[f"y::{label}"].mean()))
            for label in curves.diagnosis_labels(first)
        }
        per_label = {
            b: {n: m["auroc"] for n, m in r.per_label.items() if "auroc" in m} for b, r in results.items()
        }
        if any(per_label.values()):
            macro = {b: r.metrics.get("macro_auroc") for b, r in results.items()}
            out["per_label"] = self.f.per_label_figure(per_label, prevalence, self.colour, macro)
        top = curves.diagnosis_labels(first)[:TOP_LABELS]
        if top:
            roc = {b: {n: curves.roc_points(u, n) for n in top if f"p::{n}" in u} for b, u in units.items()}
            cal = {
                b: {n: curves.calibration_points(u, n) for n in top if f"p::{n}" in u}
                for b, u in units.items()
            }
            out["top"] = len(top)
            out["roc"] = self.f.roc_figure(roc, top, self.colour)
            out["calibration"] = self.f.calibration_figure(cal, top, self.colour)
        return out

    def survival(self) -> str | None:
        units = {s.label: u for s in self.shown if (u := s.units("survival")) is not None}
        if not units:
            return None
        groups = {b: curves.kaplan_meier_by_risk(u) for b, u in units.items()}
        c_index = {
            s.label: s.results["survival"].metrics.get("harrell_c")
            for s in self.shown
            if "survival" in s.results
        }
        return self.f.survival_figure(groups, c_index)

    def geometry(self) -> str | None:
        from clinpred.report.umap_figure import umap_figure

        panels = {}
        for s in self.shown:
            u = s.units("geometry")
            if "geometry" in s.results and u is not None:
                panels[s.label] = s.results["geometry"].model_copy().with_units(u)
        return self.f.to_svg(umap_figure(panels), "umap") if panels else None

    def forest(self, comparison: Any) -> str | None:
        if comparison is None:
            return None
        main = {t: r.main_metric for s in self.shown for t, r in s.results.items()}
        rows = _forest_rows(comparison, main)
        return self.f.forest_figure(rows, self.colour, comparison.reference) if rows else None


def _forest_rows(comparison: Any, main: dict[str, str]) -> list[tuple[str, str, Estimate]]:
    """(task and main metric, backend, difference) for each task's main metric, tasks in report order."""
    return [
        (f"{task_title(d.task)}, {d.metric}", d.backend, d.difference)
        for task in task_order(d.task for d in comparison.differences)
        for d in comparison.differences
        if d.task == task and d.metric == main.get(task)
    ]


def _figures(shown: list[Shown]) -> _Figures | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    return _Figures(shown)


def report_html(run_dirs: list[Path], comparison: Any = None, *, compare: bool = True) -> str:
    """The whole page for one or more run directories (their results.json and units/ files)."""
    from jinja2 import Environment, PackageLoader

    runs, shown = _collect([Path(r) for r in run_dirs])
    no_comparison = ""
    if comparison is None and compare and len(shown) > 1:
        from clinpred.errors import InputError
        from clinpred.report.compare import compare_runs

        try:
            comparison = compare_runs([Path(r) for r in run_dirs])
        except InputError as exc:  # the page is still worth having; it says why differences are missing
            no_comparison = str(exc)
    figs = _figures(shown)
    tasks = []
    for task in tasks_in({s.label: s.results for s in shown}):
        title = task_title(task)
        results = {s.label: s.results[task] for s in shown if task in s.results}
        if not results:
            continue
        entry: dict[str, Any] = {"key": task, "title": title, "counts": _counts(results)}
        entry["definition"] = _definition(results)
        entry["words"] = _recall_words(results) if task == "recall" else ""
        entry["main"] = [
            (b, str(r.metrics.get(r.main_metric, "-")), r.main_metric) for b, r in results.items()
        ]
        if figs is not None:
            entry.update(_task_figures(figs, task))
        tasks.append(entry)
    # autoescape always (the template's .j2 name would defeat select_autoescape): labels are user input
    env = Environment(loader=PackageLoader("clinpred.report", "templates"), autoescape=True)
    return env.get_template("report.html.j2").render(
        runs=[_run_summary(d, r) for d, r in runs],
        labels=[s.label for s in shown],
        table=_table(shown),
        tasks=tasks,
        not_run=[(b.label, b.reason) for _, r in runs for b in r.backends if b.status != "ok"],
        tasks_not_run=[
            (b.label, t, why) for _, r in runs for b in r.backends for t, why in b.tasks_not_run.items()
        ],
        backend_warnings=[(b.label, w) for _, r in runs for b in r.backends for w in b.warnings],
        comparison=comparison,
        no_comparison=no_comparison,
        forest=figs.forest(comparison) if figs is not None else None,
        figures_available=figs is not None,
        patient_rank_column=curves.PATIENT_RANK,
    )


def _recall_words(results: dict[str, TaskResult]) -> str:
    """The pool and the queries in a sentence (rule 4: recall states its pool)."""
    r = next(iter(results.values()))
    c = r.counts
    low, high = c.get("pool_size_min"), c.get("pool_size_max")
    pool = f"{low:,}" if low == high else f"{low:,} to {high:,}"
    chance = r.metrics.get(f"chance_{r.main_metric}")
    text = (
        f"{c.get('queries', 0):,} queries from {c.get('patients_with_queries', 0):,} patients: each query note "
        f"searched a pool of {pool} notes (the query itself never in it) for the same patient's next note"
    )
    sampled = sentences.sampled_recall_clause(r)  # only where recall sampled its queries
    text += f"; {sampled}" if sampled else ""
    return text + (f"; chance at {r.main_metric} is {chance.value:.4f}." if chance is not None else ".")


def _task_figures(figs: _Figures, task: str) -> dict[str, Any]:
    if task == "recall":
        svg, has_patient = figs.recall()
        return {"figures": [("Next-note recall at k = 1..50", svg)], "has_patient": has_patient}
    if task == "diagnosis":
        d = figs.diagnosis()
        return {
            "figures": [
                ("Macro-AUROC, then AUROC per label (label, positives, prevalence)", d["per_label"]),
                (f"ROC curves of the {d['top']} most prevalent labels", d["roc"]),
                (f"Calibration of the {d['top']} most prevalent labels (quantile bins)", d["calibration"]),
            ]
        }
    if task == "survival":
        return {"figures": [("Kaplan-Meier by tertile of out-of-fold predicted risk", figs.survival())]}
    if task == "geometry":
        return {"figures": [("UMAP of patient embeddings, coloured by primary phenotype", figs.geometry())]}
    return {"figures": []}  # a task without figures of its own: its table, counts and definition


def _run_summary(run_dir: Path, run: Any) -> dict[str, Any]:
    return {
        "dir": str(run_dir),
        "data": run.data,
        "created": run.created,
        "version": run.clinpred_version,
        "evaluation_patients": run.split.get("evaluation_patients"),
        "evaluation_notes": run.evaluation.get("notes"),
        "finetune_patients": run.split.get("finetune_patients", 0) + run.split.get("validation_patients", 0),
        "hash": str(run.split.get("evaluation_patients_sha256", ""))[:12],
        "backends": [
            {
                "label": b.label,
                "name": b.name,
                "status": b.status,
                "seconds": ", ".join(f"{k} {v:.0f}s" for k, v in b.seconds.items()),
                # fine-tuned models only: how much each reveals about who it was trained on (issue 29)
                "audit": sentences.audit_sentence(b.provenance.get("membership_audit"))
                if b.provenance.get("train_patients_sha256")
                else "",
                # fine-tuned models only: supervised (read codes) or self-supervised (DESIGN.md rule 10)
                "training": sentences.supervision_sentence(b.provenance) if b.provenance else "",
            }
            for b in run.backends
        ],
    }


def write_report_html(
    path: Path, run_dirs: list[Path], comparison: Any = None, *, compare: bool = True
) -> Path:
    """Write report.html atomically; returns its path."""
    return write_text(path, report_html(run_dirs, comparison, compare=compare))
