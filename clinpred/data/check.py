"""`clinpred data check`: validate a data directory and summarise what a study would use."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from clinpred.data.labels import label_matrix
from clinpred.data.load import detect_layout, load_cohort


class CheckReport(BaseModel):
    """What `data check` found. Counts and prevalences only: never note text."""

    path: str
    layout: str
    summary: dict[str, object]
    phenotype_prevalence: dict[str, float]  # share of patients with diagnoses carrying each label


def check_data(path: str | Path, *, use_cache: bool = True, progress: bool = True) -> CheckReport:
    """Read the whole directory through the normal reader (so every validation runs) and summarise."""
    layout = detect_layout(path)
    cohort = load_cohort(path, use_cache=use_cache, progress=progress)
    labels = label_matrix(cohort.diagnoses, scheme="ccs_benchmark")
    prevalence = {k: round(float(v), 4) for k, v in labels.mean().items()} if len(labels) else {}
    return CheckReport(
        path=str(path), layout=layout, summary=cohort.summary(), phenotype_prevalence=prevalence
    )


def render_check(report: CheckReport, console: Console) -> None:
    """Print the report as a few small tables."""
    s = report.summary
    console.print(
        f"[bold]{report.path}[/]: {report.layout} layout" + (" (synthetic)" if s["synthetic"] else "")
    )
    overview = Table(show_header=False, box=None)
    for key in (
        "patients",
        "admissions",
        "diagnosis_rows",
        "notes",
        "error_notes_dropped",
        "diagnosis_rows_without_code",
        "share_with_notes",
        "share_with_diagnoses",
        "first_note",
        "last_note",
    ):
        if key in s:
            overview.add_row(key.replace("_", " "), str(s[key]))
    console.print(overview)
    cats = Table("category", "notes", title="notes by category")
    for cat, n in s["notes_by_category"].items():  # type: ignore[union-attr]
        cats.add_row(cat, f"{n:,}")
    console.print(cats)
    prev = Table("phenotype (CCS benchmark)", "prevalence", title="label prevalence, patients with diagnoses")
    for name, share in sorted(report.phenotype_prevalence.items(), key=lambda kv: -kv[1]):
        prev.add_row(name, f"{share:.1%}")
    console.print(prev)
