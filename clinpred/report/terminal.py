"""The table printed at the end of `clinpred run` and `clinpred demo`: fits a 100-column terminal.

It shows each task's main metric with its interval and chance level (``--all-metrics``: every
metric), as markdown tables that paste into an issue or a notebook. Where the backends do not fit
side by side in ``width`` columns, each interval goes on a line under its estimate, and if that is
not enough the backends are split over several tables, rather than wrapped mid-number.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from clinpred.report.table_rows import Row, table_rows
from clinpred.tasks.result import Estimate

if TYPE_CHECKING:
    from clinpred.run_folder import RunResults

WIDTH = 100


def _line(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def _cells(row: Row, columns: list[int], two_lines: bool) -> list[list[str]]:
    values = [row.values[i] for i in columns]
    if not two_lines:
        return [[row.task, row.metric, row.chance, *("-" if v is None else str(v) for v in values)]]
    first = [row.task, row.metric, row.chance, *("-" if v is None else f"{v.value:.3f}" for v in values)]
    second = ["", "", "", *(_interval(v) for v in values)]
    return [first, second] if any(second) else [first]


def _interval(v: Estimate | None) -> str:
    return "" if v is None or v.low is None or v.high is None else f"[{v.low:.3f}, {v.high:.3f}]"


def _markdown(labels: list[str], rows: list[Row], columns: list[int], two_lines: bool = False) -> list[str]:
    head = ["task", "metric", "chance", *(labels[i] for i in columns)]
    body = [line for r in rows for line in _cells(r, columns, two_lines)]
    widths = [max(len(line[j]) for line in [head, *body]) for j in range(len(head))]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [_line(head, widths), rule, *(_line(b, widths) for b in body)]


def _layout(labels: list[str], rows: list[Row], width: int) -> tuple[bool, list[list[int]]]:
    """One line per metric if every backend fits; else the interval on a line of its own; else split."""
    everyone = list(range(len(labels)))
    for two_lines in (False, True):
        if max(map(len, _markdown(labels, rows, everyone, two_lines))) <= width:
            return two_lines, [everyone]
    groups: list[list[int]] = [[]]
    for i in everyone:
        if groups[-1] and max(map(len, _markdown(labels, rows, [*groups[-1], i], True))) > width:
            groups.append([])
        groups[-1].append(i)
    return True, groups


def results_text(results: RunResults, *, all_metrics: bool = False, width: int = WIDTH) -> str:
    """The tables, then the backends and tasks that did not run, with their reasons."""
    ok = {r.label: r.results for r in results.backends if r.status == "ok"}
    labels = list(ok)
    rows = table_rows(ok, all_metrics=all_metrics)
    lines: list[str] = []
    if rows:
        two_lines, groups = _layout(labels, rows, width)
        for group in groups:
            lines += [*_markdown(labels, rows, group, two_lines), ""]
    notes = []
    for r in results.backends:
        if r.status != "ok":
            notes.append(f"not run: {r.label} ({r.reason})")
        notes += [f"not run: {r.label}, {task} ({why})" for task, why in r.tasks_not_run.items()]
    lines += [wrapped for note in notes for wrapped in textwrap.wrap(note, width, subsequent_indent="  ")]
    return "\n".join(lines).rstrip() + "\n"
