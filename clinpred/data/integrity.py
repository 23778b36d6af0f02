"""Damaged source rows: what a reader repaired, by which stated rule, and when there is too much of it.

DESIGN.md rule 9: a duplicated, inconsistent or out-of-range source row never changes a number in
silence. A reader either refuses it (``InputError``: file, column, rows) or repairs it by one of the
rules below and counts it in ``Cohort.counts`` under the rule's key. Those counts travel with the cohort
into `clinpred data check`, results.json (``cohort`` and ``evaluation``) and RESULTS.md, beside the
numbers they affect, and `clinpred run` refuses a source where a rule with a limit repaired more than
that share of its table's rows (``[data] max_repaired_share`` relaxes it, and the relaxation is recorded).

Each repair class is declared once here, as MTEB declares tasks: the count's key, the table it counts
rows of, the rule in words, and whether the share limit applies (rules that the real release needs on
clean data, such as MIMIC-III's ISERROR notes, have none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clinpred.data.tables import BIRTH_YEARS, EVENT_YEARS


@dataclass(frozen=True)
class Repair:
    """One class of damaged source rows and the rule that repairs it."""

    key: str  # the count's name in Cohort.counts
    table: str  # the table whose rows it counts: notes, admissions, patients, diagnoses
    rule: str  # what was done to each such row, in words (RESULTS.md and `data check` print it)
    limited: bool = True  # False: expected in clean releases, counted but never a reason to refuse


REPAIRS: dict[str, Repair] = {}


def declare(*repairs: Repair) -> None:
    """Add repair classes to the registry (each key once)."""
    for repair in repairs:
        if repair.key in REPAIRS and REPAIRS[repair.key] != repair:
            raise ValueError(f"repair class {repair.key!r} declared twice")
        REPAIRS[repair.key] = repair


def repairs_made(counts: Mapping[str, object]) -> list[tuple[Repair, int]]:
    """The declared repair classes with a non-zero count, in declaration order."""
    return [(r, int(counts[r.key])) for r in REPAIRS.values() if int(counts.get(r.key, 0) or 0) > 0]


# ---- dates outside their plausible years, and stays that end before they begin (tables.py) ----------
# The plausible years of each column are chosen in tables.PLAUSIBLE_YEARS; a required date (CHARTDATE,
# ADMITTIME, MIMIC-IV's note CHARTTIME) outside them is refused instead.

declare(
    Repair(
        "charttime_out_of_range_set_missing",
        "notes",
        f"a note CHARTTIME outside {EVENT_YEARS} was set missing: the note is dated by its CHARTDATE",
    ),
    Repair(
        "dischtime_out_of_range_set_missing",
        "admissions",
        f"a DISCHTIME outside {EVENT_YEARS} was set missing",
    ),
    Repair(
        "deathtime_out_of_range_set_missing",
        "admissions",
        f"a DEATHTIME outside {EVENT_YEARS} was set missing",
    ),
    Repair(
        "discharge_before_admission_set_missing",
        "admissions",
        "a DISCHTIME before its ADMITTIME was set missing",
    ),
    Repair(
        "death_before_admission_set_missing", "admissions", "a DEATHTIME before its ADMITTIME was set missing"
    ),
    Repair(
        "dob_out_of_range_set_missing",
        "patients",
        f"a date of birth outside {BIRTH_YEARS} (MIMIC-IV: anchor_year - anchor_age) was set missing",
    ),
    Repair("dod_out_of_range_set_missing", "patients", f"a DOD outside {EVENT_YEARS} was set missing"),
)
