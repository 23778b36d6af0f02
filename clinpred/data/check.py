"""`clinpred data check`: validate a data directory and summarise what a study would use."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clinpred.config import DataConfig
from clinpred.data.categories import unknown_categories
from clinpred.data.integrity import excesses, kept_rows, repairs_made
from clinpred.data.labels import label_matrix, mapped_rows, row_labels, unmapped_units
from clinpred.data.load import detect_layout, load_cohort


class VersionCoverage(BaseModel):
    """How far one ICD version's codes reach the CCS phenotypes."""

    diagnosis_rows: int
    rows_with_ccs_category: int  # the code is known to the grouper
    rows_in_a_phenotype: int  # ... and falls in one of the 25 benchmark phenotypes
    patients: int  # patients with at least one code in this version
    patients_only_this_version: int
    patients_with_a_phenotype: int  # from this version's codes
    unmapped_codes: dict[str, int]  # the most frequent codes the grouper does not know, with row counts


class RepairCount(BaseModel):
    """One class of damaged source rows that the reader repaired (clinpred/data/integrity.py)."""

    key: str
    table: str
    count: int
    rule: str
    limited: bool
    expected: bool = False  # rows the clean release itself has (ISERROR notes): not damage


class CheckReport(BaseModel):
    """What `data check` found. Counts, codes and prevalences only: never note text."""

    path: str
    layout: str
    summary: dict[str, object]
    phenotype_prevalence: dict[str, float]  # share of labelled patients (see check_data) with each label
    coverage: dict[str, VersionCoverage] = {}  # "icd9" / "icd10"
    patients_unmapped: int = 0  # patients with diagnoses, none of which maps: no labels, not negatives
    deaths: dict[str, int] = {}  # patients with a date of death; admissions ending in death
    repairs: list[RepairCount] = []  # what the reader repaired, by rule (nothing on clean data)
    omop: dict[str, dict[str, object]] = {}  # an OMOP source's details (omop.OmopDetails.summary)
    warnings: list[str] = []


def icd_coverage(diagnoses: pd.DataFrame, *, top: int = 10) -> dict[str, VersionCoverage]:
    """Phenotype coverage per ICD version present in the diagnoses."""
    known = mapped_rows(diagnoses).to_numpy()
    pheno = row_labels(diagnoses, "ccs_benchmark").notna().to_numpy()
    versions_of = diagnoses.groupby("subject_id")["icd_version"].agg(lambda v: frozenset(v))
    out = {}
    for version in sorted(diagnoses["icd_version"].unique()):
        rows = (diagnoses["icd_version"] == version).to_numpy()
        dx = diagnoses[rows]
        unknown = dx.loc[~known[rows], "icd_code"].astype(str).value_counts().head(top)
        out[f"icd{version}"] = VersionCoverage(
            diagnosis_rows=int(rows.sum()),
            rows_with_ccs_category=int((known & rows).sum()),
            rows_in_a_phenotype=int((pheno & rows).sum()),
            patients=int(dx["subject_id"].nunique()),
            patients_only_this_version=int((versions_of == frozenset([version])).sum()),
            patients_with_a_phenotype=int(diagnoses.loc[pheno & rows, "subject_id"].nunique()),
            unmapped_codes={str(k): int(v) for k, v in unknown.items()},
        )
    return out


def check_data(path: str | Path, *, use_cache: bool = True, progress: bool = True) -> CheckReport:
    """Read the whole directory through the normal reader (so every validation runs) and summarise.

    Prevalences are over patients with diagnoses of which at least one code maps (the patients the
    diagnosis task labels); the others are counted and warned about.
    """
    layout = detect_layout(path)
    omop: dict[str, dict[str, object]] = {}
    if layout == "omop":  # the reader's details: visits by concept, conditions by version rule, ...
        from clinpred.data.omop import read_omop_with_details

        cohort, details = read_omop_with_details(path, use_cache=use_cache, progress=progress)
        omop = details.summary()
    else:
        cohort = load_cohort(path, use_cache=use_cache, progress=progress)
    dx = cohort.diagnoses
    unmapped = unmapped_units(dx)
    labels = label_matrix(dx, scheme="ccs_benchmark")
    labels = labels[~labels.index.isin(unmapped)]
    prevalence = {k: round(float(v), 4) for k, v in labels.mean().items()} if len(labels) else {}
    warnings = []
    if len(unmapped):
        warnings.append(
            f"{len(unmapped)} patient(s) have diagnoses none of which maps to a CCS category: they get no "
            "phenotype labels and the diagnosis task leaves them out (not counted as negatives)"
        )
    unknown = unknown_categories(cohort.summary()["notes_by_category"])  # type: ignore[arg-type]
    if unknown:
        listed = ", ".join(f"{name!r} ({n:,} notes)" for name, n in unknown.items())
        warnings.append(
            f"note categories that are none of MIMIC-III's 15 (kept as written; filters and the "
            f"discharge-summary guard do not know them): {listed}"
        )
    limit = DataConfig.model_fields["max_repaired_share"].default
    for excess in excesses(cohort.counts, kept_rows(cohort), limit):
        warnings.append(
            f"{excess.message(limit)}: `clinpred run` refuses this source unless [data] "
            "max_repaired_share is raised"
        )
    return CheckReport(
        path=str(path),
        layout=layout,
        summary=cohort.summary(),
        phenotype_prevalence=prevalence,
        coverage=icd_coverage(dx),
        patients_unmapped=len(unmapped),
        deaths={
            "patients_with_date_of_death": int(cohort.patients["dod"].notna().sum()),
            "in_hospital_deaths": int(
                (
                    (cohort.admissions["hospital_expire_flag"] == 1) | cohort.admissions["deathtime"].notna()
                ).sum()
            ),
        },
        repairs=[
            RepairCount(
                key=r.key, table=r.table, count=n, rule=r.rule, limited=r.limited, expected=r.expected
            )
            for r, n in repairs_made(cohort.counts)
        ],
        omop=omop,
        warnings=warnings,
    )


def render_repairs(repairs: list[RepairCount], console: Console) -> None:
    """The source rows the reader repaired, each with its count and rule (clinpred/data/integrity.py),
    then the rows the release itself marks (ISERROR notes), apart: those are not damage."""
    damage = [r for r in repairs if not r.expected]
    console.print("source rows repaired:" + ("" if damage else " none"))
    for r in damage:  # lines, not a table: a narrow terminal wraps words, not columns into each other
        limit = "" if r.limited else "; no share limit"
        console.print(
            f"  {r.key.replace('_', ' ')}: {r.count:,} {r.table} rows ({r.rule}{limit})", markup=False
        )
    for r in repairs:
        if r.expected:
            console.print(
                f"as in the release: {r.key.replace('_', ' ')}: {r.count:,} ({r.rule})", markup=False
            )


def render_meds_events(summary: dict[str, object], console: Console) -> None:
    """A MEDS source: events read, and how many of them clinpred read as what (meds_read.py)."""
    if "meds_events_read" not in summary:
        return
    kinds = ("note", "diagnosis", "admission", "discharge", "birth", "death", "gender")
    read = ", ".join(f"{k} {int(summary.get(f'meds_{k}_events', 0)):,}" for k in kinds)  # type: ignore[call-overload]
    console.print(
        f"MEDS events read: {int(summary['meds_events_read']):,} in {summary.get('meds_shards', 0)} shard(s), "  # type: ignore[call-overload]
        f"{summary.get('meds_distinct_codes', 0):,} distinct codes; matched as {read}; "
        f"ignored (other codes) {int(summary.get('meds_events_ignored', 0)):,}",  # type: ignore[call-overload]
        markup=False,
    )


def render_omop(omop: dict[str, dict[str, object]], console: Console) -> None:
    """An OMOP source: what was read from which table, and what was not kept (counted and named)."""
    for key, title in (
        ("visits_by_concept", "visits by visit_concept_id (kept: admissions / not kept)"),
        ("conditions_by_version_rule", "conditions by how their ICD version was decided"),
        ("conditions_without_icd", "conditions without an ICD source (not kept), by condition_concept_id"),
        ("ambiguous_codes", "codes in both ICD-9-CM and ICD-10-CM (rule applied)"),
        ("notes_by_category_rule", "notes by how their category was decided"),
        ("admission_deaths", "deaths and admissions (the rule in clinpred/data/omop.py)"),
        ("follow_up", "OBSERVATION_PERIOD"),
    ):
        values = omop.get(key)
        if values:
            listed = "; ".join(
                f"{k}: " + (", ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict) else str(v))
                for k, v in values.items()
            )
            console.print(f"OMOP {title}: {listed}", markup=False)


def render_check(report: CheckReport, console: Console) -> None:
    """Print the report as a few small tables."""
    s = report.summary
    console.print(
        Text.assemble(
            (report.path, "bold"), f": {report.layout} layout" + (" (synthetic)" if s["synthetic"] else "")
        ),
        soft_wrap=True,  # a path is never broken across lines: it is copied from here
    )
    overview = Table(show_header=False, box=None)
    for key in (
        "patients",
        "admissions",
        "diagnosis_rows",
        "notes",
        "share_with_notes",
        "share_with_diagnoses",
        "first_note",
        "last_note",
    ):
        if key in s:
            overview.add_row(key.replace("_", " "), str(s[key]))
    console.print(overview)
    if report.deaths:
        console.print(
            f"deaths: {report.deaths['patients_with_date_of_death']:,} patients with a date of death, "
            f"{report.deaths['in_hospital_deaths']:,} admissions ending in death"
        )
    render_meds_events(s, console)
    render_repairs(report.repairs, console)
    cats = Table("category", "notes", title="notes by category")
    for cat, n in s["notes_by_category"].items():  # type: ignore[union-attr]
        cats.add_row(cat, f"{n:,}")
    console.print(cats)
    cov = Table(
        "ICD",
        "rows",
        "with CCS",
        "in phenotype",
        "patients",
        "only this ICD",
        "with phenotype",
        title="phenotype coverage by ICD version (diagnosis rows, patients)",
    )
    for version, c in report.coverage.items():
        cov.add_row(
            version,
            f"{c.diagnosis_rows:,}",
            f"{c.rows_with_ccs_category:,} ({c.rows_with_ccs_category / max(c.diagnosis_rows, 1):.1%})",
            f"{c.rows_in_a_phenotype:,} ({c.rows_in_a_phenotype / max(c.diagnosis_rows, 1):.1%})",
            f"{c.patients:,}",
            f"{c.patients_only_this_version:,}",
            f"{c.patients_with_a_phenotype:,}",
        )
    console.print(cov)
    for version, c in report.coverage.items():
        if c.unmapped_codes:
            codes = ", ".join(f"{k} ({v})" for k, v in c.unmapped_codes.items())
            console.print(f"{version} codes without a CCS category (most frequent): {codes}")
    console.print(f"patients whose codes all map to nothing: {report.patients_unmapped:,}")
    prev = Table(
        "phenotype (CCS benchmark)", "prevalence", title="label prevalence, patients with mapped diagnoses"
    )
    for name, share in sorted(report.phenotype_prevalence.items(), key=lambda kv: -kv[1]):
        prev.add_row(name, f"{share:.1%}")
    console.print(prev)
    render_omop(report.omop, console)
    for warning in report.warnings:
        console.print(f"warning: {warning}", markup=False)  # not markup: "[data]" would vanish
