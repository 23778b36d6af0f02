"""The UMAP figure: one panel per backend, patients coloured by primary phenotype.

The geometry task computes the coordinates and the silhouette; this module only draws them. Colours
are shared across panels (the most frequent phenotypes over all panels get a colour each, the rest and
patients without a phenotype are grey and drawn underneath), so one legend reads every panel and
"tighter clusters" can be compared by eye next to the silhouette in each title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clinpred.atomic import atomic_path
from clinpred.tasks.result import TaskResult

OTHER = "other / none"
GREY = "#c8c8c8"
RASTER_ABOVE = 3000  # points per panel drawn as a bitmap in SVG output


def _legend_name(name: str, width: int = 45) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def top_phenotypes(panels: dict[str, TaskResult], top: int) -> list[str]:
    """The ``top`` most frequent primary phenotypes over all panels ("none" excluded), ties by name."""
    frames = [r.units for r in panels.values() if r.units is not None]
    if not frames:
        return []
    labels = pd.concat([f["primary_phenotype"] for f in frames])
    counts = labels[labels != "none"].value_counts()
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    return [str(p) for p in counts.index[:top]]


def umap_figure(panels: dict[str, TaskResult], *, top: int = 8):
    """Each backend's UMAP side by side, as a matplotlib Figure (no pyplot state)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if not panels:
        raise ValueError("umap_figure: no geometry result to draw")
    colours = colormaps["tab10"].colors
    shown = top_phenotypes(panels, min(top, len(colours)))
    colour_of = {p: colours[i] for i, p in enumerate(shown)}
    fig = Figure(figsize=(5.0 * len(panels), 5.4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (label, result) in zip(axes[0], panels.items(), strict=True):
        silhouette = result.metrics.get("silhouette")
        ax.set_title(f"{label}\nsilhouette {silhouette if silhouette is not None else 'n/a'}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        units = result.units
        if units is None or not np.isfinite(units["umap_x"].to_numpy(dtype=float)).any():
            ax.text(0.5, 0.5, "no UMAP coordinates", ha="center", va="center", transform=ax.transAxes)
            continue
        many = len(units) > RASTER_ABOVE  # thousands of points: a bitmap inside the SVG keeps the page light
        pheno = units["primary_phenotype"].astype(str)
        rest = ~pheno.isin(shown)
        ax.scatter(
            units.loc[rest, "umap_x"], units.loc[rest, "umap_y"], s=6, c=GREY, linewidths=0, rasterized=many
        )
        for p in shown:
            mine = pheno == p
            if mine.any():
                ax.scatter(
                    units.loc[mine, "umap_x"],
                    units.loc[mine, "umap_y"],
                    s=8,
                    color=colour_of[p],
                    linewidths=0,
                    rasterized=many,
                )
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colour_of[p], label=_legend_name(p)) for p in shown
    ]
    handles.append(Line2D([], [], marker="o", linestyle="", color=GREY, label=OTHER))
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(handles) + 2) // 3), 1, 1))
    return fig


def write_umap_figure(panels: dict[str, TaskResult], path: Path, *, top: int = 8) -> Path:
    """Draw each backend's UMAP side by side and write a PNG atomically; returns the path."""
    fig = umap_figure(panels, top=top)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
