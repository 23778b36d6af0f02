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
from typing import TYPE_CHECKING

from clinpred.data.tables import BIRTH_YEARS, EVENT_YEARS
from clinpred.errors import InputError

if TYPE_CHECKING:
    from clinpred.data.cohort import Cohort


@dataclass(frozen=True)
class Repair:
    """One class of damaged source rows and the rule that repairs it."""

    key: str  # the count's name in Cohort.counts
    table: str  # the table whose rows it counts: notes, admissions, patients, diagnoses
    rule: str  # what was done to each such row, in words (RESULTS.md and `data check` print it)
    limited: bool = True  # False: expected in clean releases, counted but never a reason to refuse
    # True: the clean release itself has such rows (MIMIC-III's ISERROR notes, diagnoses without a code):
    # counted and shown as the release's own, never reported as damage (the synthetic cohort has them too)
    expected: bool = False


REPAIRS: dict[str, Repair] = {}


def declare(*repairs: Repair) -> None:
    """Add repair classes to the registry (each key once)."""
    for repair in repairs:
        if repair.key in REPAIRS and REPAIRS[repair.key] != repair:
            raise ValueError(f"repair class {repair.key!r} declared twice")
        REPAIRS[repair.key] = repair


def repairs_made(counts: Mapping[str, object]) -> list[tuple[Repair, int]]:
    """The declared repair classes with a non-zero count, in declaration order."""
    import clinpred.data.load  # noqa: F401  (the readers declare their classes: all known, even in `report`)

    return [(r, int(counts[r.key])) for r in REPAIRS.values() if int(counts.get(r.key, 0) or 0) > 0]


def damage_repaired(counts: Mapping[str, object]) -> list[tuple[Repair, int]]:
    """The repairs made to damaged rows: those of ``repairs_made`` that a clean release does not need."""
    return [(r, n) for r, n in repairs_made(counts) if not r.expected]


# ---- note and diagnosis rows (source_repairs.py, cohort.py, the readers) ----------------------------

declare(
    Repair(
        "duplicate_note_rows_dropped",
        "notes",
        "a note row repeated whole (same ROW_ID / note_id, same content) was dropped; the first copy is kept",
    ),
    Repair("empty_notes_dropped", "notes", "a note whose TEXT is empty or white space only was dropped"),
    Repair(
        "notes_of_another_patients_admission_dropped",
        "notes",
        "a note whose HADM_ID is another patient's admission was dropped",
    ),
    Repair(
        "note_admission_links_unknown_cleared",
        "notes",
        "a note whose HADM_ID names no admission in ADMISSIONS was kept without an admission",
    ),
    Repair(
        "note_categories_normalised",
        "notes",
        "a CATEGORY written in another case or spacing (e.g. 'discharge SUMMARY') was read as the "
        "MIMIC category it names",
        limited=False,
    ),
    Repair(
        "error_notes_dropped",
        "notes",
        "a note marked ISERROR=1 (an error in the release) was dropped",
        limited=False,
        expected=True,
    ),
    Repair(
        "notes_of_patients_missing_from_patients_dropped",
        "notes",
        "a note of a SUBJECT_ID missing from PATIENTS was dropped",
    ),
    Repair(
        "admissions_of_patients_missing_from_patients_dropped",
        "admissions",
        "an admission of a SUBJECT_ID missing from PATIENTS was dropped",
    ),
    Repair(
        "diagnoses_of_patients_missing_from_patients_dropped",
        "diagnoses",
        "a diagnosis of a SUBJECT_ID missing from PATIENTS was dropped",
    ),
    Repair(
        "diagnoses_of_unknown_admission_dropped",
        "diagnoses",
        "a diagnosis whose HADM_ID names no admission in ADMISSIONS was dropped",
    ),
    Repair(
        "diagnoses_of_another_patients_admission_dropped",
        "diagnoses",
        "a diagnosis whose HADM_ID is another patient's admission was dropped",
    ),
    Repair(
        "diagnosis_rows_without_code",
        "diagnoses",
        "a diagnosis row without an ICD code (present in the MIMIC-III release) was dropped",
        limited=False,
        expected=True,
    ),
)

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

# the setting that relaxes the share limit, as a user writes it
SHARE_SETTING = "max_repaired_share"


@dataclass(frozen=True)
class Excess:
    """A limited repair class that repaired more than the allowed share of its table's rows."""

    repair: Repair
    count: int
    rows: int  # the table's rows as read (kept + dropped by any rule)
    share: float

    def message(self, limit: float) -> str:
        return (
            f"{self.repair.key}: {self.count:,} of {self.rows:,} {self.repair.table} rows "
            f"({self.share:.1%}) were repaired ({self.repair.rule}), more than the limit of {limit:.1%}"
        )


def table_rows(counts: Mapping[str, object], kept: Mapping[str, int]) -> dict[str, int]:
    """Each table's rows as read: those kept plus those any declared rule dropped (keys ``*_dropped``
    by convention; other rules keep the row)."""
    rows = dict(kept)
    for repair, n in repairs_made(counts):
        if repair.key.endswith("_dropped") and repair.table in rows:
            rows[repair.table] += n
    return rows


def excesses(counts: Mapping[str, object], kept: Mapping[str, int], limit: float) -> list[Excess]:
    """The limited repair classes above ``limit`` (a share of their table's rows as read)."""
    rows = table_rows(counts, kept)
    out = []
    for repair, n in repairs_made(counts):
        total = rows.get(repair.table, 0)
        share = n / total if total else 1.0
        if repair.limited and share > limit:
            out.append(Excess(repair, n, total, share))
    return out


def kept_rows(cohort: Cohort) -> dict[str, int]:
    """The rows of each table a cohort kept."""
    return {name: len(getattr(cohort, name)) for name in ("notes", "admissions", "patients", "diagnoses")}


def refuse_excess(cohort: Cohort, limit: float, source: str, relax: str | None = None) -> None:
    """Refuse a source where a limited rule repaired more than ``limit`` of its table (before any
    embedding: numbers built on such a source would rest on the repairs). ``relax``: the setting that
    relaxes it as the command takes it (default: the run config's [data] max_repaired_share)."""
    found = excesses(cohort.counts, kept_rows(cohort), limit)
    if found:
        setting = relax or f"[data] {SHARE_SETTING} in the run's config"
        raise InputError(
            f"{source}: too many damaged rows: "
            + "; ".join(e.message(limit) for e in found)
            + f". Check the files (`clinpred data check`), or accept the repairs by raising {setting} "
            f"(now {limit:g})."
        )
