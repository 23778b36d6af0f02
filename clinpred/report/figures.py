"""The report's figures, drawn with matplotlib and returned as SVG text to inline in report.html.

Each function takes plain values (curves from ``clinpred.report.curves``, estimates from the results)
and returns one ``<svg>`` element. Figures are built on ``matplotlib.figure.Figure`` directly (no
pyplot state, no GUI backend). Every backend keeps its colour across figures, so one legend reads all.
Text stays text (``svg.fonttype = none``): smaller pages, searchable labels. Each figure has its own
id salt, so the ids of several inline SVGs never collide and the page is the same on every run.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from clinpred.report.curves import TERTILES, RiskGroups
from clinpred.tasks.result import Estimate

CHANCE = "#888888"
TERTILE_COLOURS = dict(zip(TERTILES, ("#1a9850", "#fdae61", "#d73027"), strict=True))
PANEL_WIDTH = 3.3  # inches per small-multiple panel
MAX_WIDTH = 13.0


def colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour per backend, in table order (tab10, then tab20 beyond ten backends)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def to_svg(fig, name: str) -> str:
    """The figure as one inline ``<svg>`` element (no XML prolog), ids salted by ``name``."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"clinpred-{name}", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(min(width, MAX_WIDTH), height), layout="constrained")


def _panels(n: int, height: float = 3.2):
    fig = _figure(PANEL_WIDTH * n, height)
    axes = fig.subplots(1, n, squeeze=False)[0]
    return fig, list(axes)


def recall_figure(curves: dict[str, pd.DataFrame], colour: dict[str, str]) -> str:
    """next@k (solid) and patient@k (dashed, where recorded) per backend, chance dotted."""
    fig = _figure(7.5, 4.0)
    ax = fig.subplots()
    for label, c in curves.items():
        ax.plot(c["k"], c["next"], color=colour[label], label=f"{label}: next note")
        if "patient" in c.columns:
            ax.plot(c["k"], c["patient"], color=colour[label], linestyle="--", label=f"{label}: patient")
    first = next(iter(curves.values()))
    ax.plot(first["k"], first["chance"], color=CHANCE, linestyle=":", label="chance")
    ax.set_xlabel("k (top-k of the pool)")
    ax.set_ylabel("share of queries")
    ax.set_xlim(1, int(first["k"].max()))
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return to_svg(fig, "recall")


def per_label_figure(
    per_label: dict[str, dict[str, Estimate]],
    prevalence: dict[str, tuple[int, float]],
    colour: dict[str, str],
    summary: dict[str, Estimate | None] | None = None,
    metric: str = "auroc",
) -> str:
    """One row per label (most prevalent on top), a dot with its interval per backend, side by side.

    ``summary`` (e.g. each backend's macro-AUROC) is drawn as a first row above a line.
    """
    labels = sorted(prevalence, key=lambda name: (-prevalence[name][1], name))
    rows = [{b: per_label[b].get(n) for b in per_label} for n in labels]
    names = [f"{_short(n)}  ({prevalence[n][0]}, {prevalence[n][1]:.0%})" for n in labels]
    if summary:
        rows.insert(0, summary)
        names.insert(0, f"macro-{metric.upper()} over {len(labels)} labels")
    backends = list(per_label)
    fig = _figure(9.0, 0.32 * len(rows) + 1.2)
    ax = fig.subplots()
    step = 0.6 / max(len(backends), 1)
    for b, label in enumerate(backends):
        for row, estimates in enumerate(rows):
            e = estimates.get(label)
            if e is None or not np.isfinite(e.value):
                continue
            y = row + (b - (len(backends) - 1) / 2) * step
            if e.low is not None and e.high is not None:
                ax.plot([e.low, e.high], [y, y], color=colour[label], linewidth=1.2)
            ax.plot([e.value], [y], "o", color=colour[label], markersize=4, label=label if row == 0 else None)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names)
    ax.tick_params(axis="y", labelsize=7)
    if summary:
        ax.get_yticklabels()[0].set_fontweight("bold")
        ax.axhline(0.5, color="black", linewidth=0.6)
    ax.invert_yaxis()
    ax.axvline(0.5, color=CHANCE, linestyle=":", linewidth=1)
    ax.set_xlabel(f"{metric.upper()} with 95% interval (dotted: chance)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return to_svg(fig, f"per-label-{metric}")


def _short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def roc_figure(
    points: dict[str, dict[str, tuple[np.ndarray, np.ndarray] | None]],
    labels: list[str],
    colour: dict[str, str],
) -> str:
    """One panel per label, one ROC curve per backend; ``points[backend][label]`` = (fpr, tpr)."""
    fig, axes = _panels(len(labels))
    for ax, name in zip(axes, labels, strict=True):
        for backend, per_label in points.items():
            curve = per_label.get(name)
            if curve is not None:
                ax.plot(*curve, color=colour[backend], label=backend, linewidth=1.2)
        ax.plot([0, 1], [0, 1], color=CHANCE, linestyle=":", linewidth=1)
        _square(ax, _short(name, 34), "false positive rate", "true positive rate")
    axes[0].legend(fontsize=7, loc="lower right")
    return to_svg(fig, "roc")


def calibration_figure(
    points: dict[str, dict[str, tuple[np.ndarray, np.ndarray] | None]],
    labels: list[str],
    colour: dict[str, str],
) -> str:
    """One panel per label: observed share against mean predicted probability in quantile bins."""
    fig, axes = _panels(len(labels))
    for ax, name in zip(axes, labels, strict=True):
        top = 0.05
        for backend, per_label in points.items():
            curve = per_label.get(name)
            if curve is not None:
                ax.plot(*curve, "o-", color=colour[backend], label=backend, markersize=3, linewidth=1)
                top = max(top, float(np.max(curve[0])), float(np.max(curve[1])))
        top = min(1.0, top * 1.1)
        ax.plot([0, top], [0, top], color=CHANCE, linestyle=":", linewidth=1)
        _square(ax, _short(name, 34), "mean predicted probability", "observed share", limit=top)
    axes[0].legend(fontsize=7, loc="upper left")
    return to_svg(fig, "calibration")


def _square(ax, title: str, xlabel: str, ylabel: str, limit: float = 1.0) -> None:
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_xlim(0, limit)
    ax.set_ylim(0, limit)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def survival_figure(groups: dict[str, RiskGroups | None], c_index: dict[str, Estimate | None]) -> str:
    """Kaplan-Meier curves of risk tertiles, one panel per backend, log-rank and C-index in the title."""
    fig, axes = _panels(len(groups), height=3.4)
    for ax, (backend, g) in zip(axes, groups.items(), strict=True):
        c = c_index.get(backend)
        title = backend + (f"\nHarrell's C {c}" if c is not None else "")
        if g is None:
            ax.text(0.5, 0.5, "too few patients or events", ha="center", va="center", transform=ax.transAxes)
        else:
            for name, (days, survival) in g.curves.items():
                label = f"{name} (n={g.sizes[name]}, {g.events[name]} deaths)"
                ax.step(days, survival, where="post", color=TERTILE_COLOURS[name], label=label)
            title += f"\nlog-rank χ² {g.chisq:.2f} ({g.dof} df), p = {g.pvalue:.3g}"
            ax.legend(fontsize=6.5, loc="lower left")
            ax.set_ylim(min(0.5, ax.get_ylim()[0]), 1.02)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("days from first admission", fontsize=8)
        ax.set_ylabel("survival probability", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return to_svg(fig, "survival")


def forest_figure(rows: list[tuple[str, str, Estimate]], colour: dict[str, str], reference: str) -> str:
    """Paired differences from the reference: one row per (task metric, backend), interval as a bar."""
    fig = _figure(8.0, 0.38 * len(rows) + 1.2)
    ax = fig.subplots()
    for i, (_what, backend, e) in enumerate(rows):
        if e.low is not None and e.high is not None:
            ax.plot([e.low, e.high], [i, i], color=colour.get(backend, "black"), linewidth=2)
        ax.plot([e.value], [i], "D", color=colour.get(backend, "black"), markersize=5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{what}: {backend}" for what, backend, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"difference from {reference} (95% paired bootstrap interval)")
    ax.grid(axis="x", alpha=0.3)
    return to_svg(fig, "forest")
