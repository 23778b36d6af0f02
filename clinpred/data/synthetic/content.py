"""The clinical content of a note: evidence of active conditions, patient details that persist, severity.

Each function returns short phrases; the category templates in ``notes.py`` lay them out and the
writer's ``Style`` finishes them. What a stay's notes can show is fixed once per stay (``chart_stay``):
the coded conditions the team actually writes about (not all of them: coders read the whole chart and
the discharge summary, while ICU notes are about what is being treated), the absent conditions worked
up and treated empirically before being ruled out, and the past-history line, copied forward from note
to note. A note then shows a random subset of that, mostly through indirect evidence, names a condition
only sometimes, and rules out a few absent ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from clinpred.data.synthetic.caregivers import Style
from clinpred.data.synthetic.conditions import BY_KEY, CONDITIONS, NORMAL_LABS, NORMAL_VITALS
from clinpred.data.synthetic.patient import Admission, Patient

ALL_KEYS = tuple(c.key for c in CONDITIONS)

# How often the notes of a stay written before its discharge summary address a coded condition at all
# (generator 2.3). Calibrated, with TF-IDF alone, to notes-based phenotyping on real MIMIC-III (stated
# target: macro-AUROC 0.80-0.88 at MIMIC-III's note density; README's synthetic-cohort section): the
# acute problems an ICU stay is about are charted in nearly every stay; chronic diseases in most;
# what is coded from the problem list, a medication or a single lab value (essential hypertension,
# lipid disorders, electrolyte disorders, complications of care, conduction disorders, minor
# respiratory codes) in about half. A condition not charted leaves no evidence in those notes but two:
# the home medication list, which names the patient's drugs whether or not anyone writes about the
# disease, as real lists do, and the per-note stray evidence of any condition (``choose_shown``'s
# ``mimic``), which now and then falls on it; over MIMIC-III's ~44 notes a patient that is enough for
# TF-IDF to find part of the uncharted conditions too.
CHARTED: dict[str, float] = {
    "sepsis": 0.95,
    "shock": 0.95,
    "resp_failure": 0.95,
    "stroke": 0.95,
    "gi_bleed": 0.95,
    "ami": 0.9,
    "pneumonia": 0.85,
    "chf": 0.85,
    "cirrhosis": 0.85,
    "afib": 0.8,
    "aki": 0.75,
    "cad": 0.75,
    "copd": 0.7,
    "ckd": 0.7,
    "diabetes": 0.7,
    "diabetes_comp": 0.65,
    "pleural": 0.6,
    "hypertension": 0.4,
    "htn_comp": 0.45,
    "electrolytes": 0.4,
    "lower_resp": 0.5,
    "upper_resp": 0.5,
    "conduction": 0.35,
    "complication": 0.45,
    "lipids": 0.4,
}
# How many absent conditions a stay works up and treats empirically before ruling them out (a sepsis
# work-up with empiric antibiotics, a troponin leak, a diuretic for a borderline film): 0, 1 or 2, with
# these probabilities. Their evidence runs through the stay's notes like a real problem's.
SUSPECTED_PER_STAY = (0.5, 0.35, 0.15)
PMH_NAMED = 0.6  # chance that the past-history line names a chronic condition the stay charts


@dataclass(frozen=True)
class StayChart:
    """What one stay's notes before the discharge summary document, fixed for the stay."""

    charted: tuple[str, ...]  # coded conditions the notes address
    suspected: tuple[str, ...]  # absent conditions worked up and later ruled out
    history: tuple[str, ...]  # the past-history line's items, copied forward note to note


def chart_stay(patient: Patient, active: list[str], rng: random.Random, complete: bool = False) -> StayChart:
    """The stay's chart (``complete``: the discharge summary's, which addresses every coded condition)."""
    from clinpred.data.synthetic.conditions import FILLERS

    charted = [k for k in active if complete or rng.random() < CHARTED[k]]
    suspected: list[str] = []
    if not complete:
        n = rng.choices(range(len(SUSPECTED_PER_STAY)), weights=SUSPECTED_PER_STAY)[0]
        absent = [k for k in ALL_KEYS if k not in patient.conditions]
        suspected = rng.sample(absent, min(n, len(absent)))
    chronic = [k for k in patient.conditions if BY_KEY[k].chronic and (complete or k in charted)]
    history = [rng.choice(BY_KEY[k].names) for k in chronic if complete or rng.random() < PMH_NAMED]
    history += [p for p in patient.pmh_extra if rng.random() < 0.8]
    history += [f.name for f in FILLERS if f.code in patient.fillers and rng.random() < 0.6]
    rng.shuffle(history)
    return StayChart(tuple(charted), tuple(suspected), tuple(history))


@dataclass
class NoteCtx:
    """Everything a template needs to write one note."""

    patient: Patient
    adm: Admission | None  # None for outpatient notes
    time: datetime
    severity: float  # now, 0..1
    style: Style
    rng: random.Random
    early: bool  # within 48 h of the admission
    day: int  # hospital day, 1-based
    show: list[str]  # the conditions this note gives evidence of (charted or suspected)
    chart: StayChart  # what the stay's notes can document

    @property
    def active(self) -> list[str]:
        return self.adm.active if self.adm is not None else self.patient.admissions[-1].active

    @property
    def age(self) -> int:
        first = self.patient.admissions[0].admit
        return int(self.patient.age + (self.time - first).days / 365.25)

    def pick(self, seq, k: int):
        k = max(0, min(k, len(seq)))
        return self.rng.sample(list(seq), k) if k else []

    @property
    def problems(self) -> tuple[str, ...]:
        """The conditions a problem-oriented note can be organised by: charted, else suspected."""
        return self.chart.charted or self.chart.suspected or ALL_KEYS


def choose_shown(chart: StayChart, rng: random.Random, share: float, mimic: float) -> list[str]:
    """The conditions one note gives evidence of: a random subset of the stay's charted and suspected
    ones, and sometimes any condition at all whose evidence appears anyway (a borderline lab, a PRN
    dose), as in real notes: evidence is suggestive, not proof."""
    candidates = chart.charted + chart.suspected
    shown = [k for k in candidates if rng.random() < share]
    if not shown and candidates and rng.random() < 0.7:
        shown = [rng.choice(candidates)]
    if rng.random() < mimic:
        shown.append(rng.choice(ALL_KEYS))
    return list(dict.fromkeys(shown))


# ---- placeholders ------------------------------------------------------------------------------


def date_ph(t: datetime) -> str:
    return f"[**{t.year}-{t.month}-{t.day}**]"


def name_ph(rng: random.Random) -> str:
    kind = rng.choice(
        ("Known lastname", "Last Name (NamePattern1)", "First Name8 (NamePattern2)", "Name (NI)")
    )
    return f"[**{kind} {rng.randrange(1, 9999)}**]"


def hospital_ph(rng: random.Random) -> str:
    return f"[**Hospital{rng.choice(('', '1', '3'))} {rng.choice((18, 1, 2, 3, 882, 1474))}**]"


def number_ph(rng: random.Random) -> str:
    return f"[**Telephone/Fax ({rng.randint(1, 3)}) {rng.randrange(100, 9999)}**]"


def location_ph(rng: random.Random) -> str:
    return f"[**Location (un) {rng.randrange(1, 3000)}**]"


# ---- values --------------------------------------------------------------------------------------


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}" if decimals else str(round(value))


def lab_value(ctx: NoteCtx, name: str) -> str:
    """A lab value: normal unless an active, shown condition shifts it (the most extreme shift wins)."""
    low, high, dec, _unit = NORMAL_LABS[name]
    rng = ctx.rng
    value = rng.uniform(low, high)
    best = 0.0
    for key in ctx.show:
        shift = BY_KEY[key].labs.get(name)
        if shift is None:
            continue
        v0, v1 = shift
        v = v0 + (v1 - v0) * ctx.severity + rng.gauss(0, abs(v1 - v0) * 0.1)
        mid = (low + high) / 2
        if abs(v - mid) > best:
            best, value = abs(v - mid), v
    return _fmt(max(value, 0.0), dec)


def vital(ctx: NoteCtx, name: str) -> float:
    low, high = NORMAL_VITALS[name]
    value = ctx.rng.uniform(low, high)
    for key in ctx.show:
        value += BY_KEY[key].vitals.get(name, 0.0) * (0.4 + 0.6 * ctx.severity)
    return value


def vitals_line(ctx: NoteCtx) -> str:
    sbp, dbp = vital(ctx, "SBP"), vital(ctx, "DBP")
    spo2 = min(100, vital(ctx, "SpO2"))
    o2 = "RA" if spo2 > 94 else ctx.rng.choice(("2L NC", "4L NC", "40% face tent", "NRB", "vent"))
    return (
        f"T {vital(ctx, 'T'):.1f} HR {vital(ctx, 'HR'):.0f} BP {sbp:.0f}/{dbp:.0f} "
        f"RR {vital(ctx, 'RR'):.0f} SpO2 {spo2:.0f}% on {o2}"
    )


def lab_panel(ctx: NoteCtx, names: tuple[str, ...], sep: str = " ") -> str:
    return sep.join(f"{n} {lab_value(ctx, n)}" for n in names)


# ---- evidence ------------------------------------------------------------------------------------


def evidence(ctx: NoteCtx, kind: str, k: int = 2) -> list[str]:
    """Up to k phrases of one kind (exam, imaging, ecg, echo, procedures, symptoms) from shown conditions."""
    pool: list[str] = []
    for key in ctx.show:
        items = getattr(BY_KEY[key], kind)
        if items:
            pool.append(ctx.rng.choice(items))
    return ctx.pick(pool, k)


def named(ctx: NoteCtx, p: float = 0.2) -> list[str]:
    """Condition names written outright, each with probability p."""
    active = ctx.active
    return [ctx.rng.choice(BY_KEY[k].names) for k in ctx.show if k in active and ctx.rng.random() < p]


def negated(ctx: NoteCtx, k: int = 1) -> list[str]:
    """How a note rules out absent conditions (negations and differentials)."""
    absent = [key for key in ALL_KEYS if key not in ctx.patient.conditions]
    out = []
    for key in ctx.pick(absent, k):
        cond = BY_KEY[key]
        if ctx.rng.random() < 0.7:
            out.append(ctx.rng.choice(cond.negations))
        else:
            out.append(f"ddx includes {ctx.rng.choice(cond.names)}, felt less likely")
    return out


def inpatient_meds(ctx: NoteCtx, k: int = 3) -> list[str]:
    pool = []
    for key in ctx.show:
        cond = BY_KEY[key]
        if cond.meds and (not cond.chronic or ctx.rng.random() < 0.5):
            med = ctx.rng.choice(cond.meds)
            pool.append(med.line(ctx.rng.choice(med.doses)))
    return ctx.pick(pool, k)


def home_meds(ctx: NoteCtx, share: float = 0.7) -> list[str]:
    """The patient's own list, with their doses: the same from note to note within a stay."""
    adm = ctx.adm or ctx.patient.admissions[-1]
    return [m.line(d) for m, d in adm.home_meds if ctx.rng.random() < share]


def allergies(ctx: NoteCtx) -> str:
    a = ctx.patient.allergies
    if not a:
        return ctx.rng.choice(("NKDA", "No Known Drug Allergies", "NKA"))
    return "; ".join(f"{drug} ({reaction})" for drug, reaction in a)


def devices(ctx: NoteCtx) -> list[str]:
    adm = ctx.adm or ctx.patient.admissions[-1]
    return [d for d in adm.devices if ctx.rng.random() < 0.8]


def quirks(ctx: NoteCtx, share: float = 0.6) -> list[str]:
    return [q for q in ctx.patient.quirks if ctx.rng.random() < share]


def social(ctx: NoteCtx) -> str:
    s = ctx.patient.social
    parts = [s["living"], s["occupation"], s["tobacco"], s["etoh"]]
    return ", ".join(p for p in parts if ctx.rng.random() < 0.75) or s["living"]


def pmh(ctx: NoteCtx) -> list[str]:
    """Past history: the stay's line (chronic conditions by name, the patient's other history), copied
    forward from note to note as real notes do."""
    return list(ctx.chart.history)


def severity_cues(ctx: NoteCtx) -> list[str]:
    """What a sick patient's note says: strongest in the first 48 h, and for patients who will die."""
    s = ctx.severity
    rng = ctx.rng
    cues = []
    if s > 0.75:
        cues += [
            rng.choice(("critically ill", "remains critically ill", "very tenuous overnight")),
            rng.choice(
                ("on 2 pressors", "escalating pressor requirement", "MAPs in the 50s despite levophed")
            ),
            f"lactate {rng.uniform(4.0, 9.0):.1f}",
            rng.choice(
                ("family meeting re: goals of care", "poor prognosis discussed with family", "CMO discussed")
            ),
        ]
    elif s > 0.55:
        cues += [
            rng.choice(("guarded", "tenuous", "remains in the ICU for close monitoring")),
            f"lactate {rng.uniform(2.2, 4.2):.1f}",
            rng.choice(
                ("low dose levophed", "intermittent hypotension, fluid responsive", "on BiPAP overnight")
            ),
        ]
    elif s > 0.3:
        cues += [
            rng.choice(("hemodynamically stable", "improving", "stable overnight")),
            f"GCS {rng.randint(13, 15)}",
        ]
    else:
        cues += [rng.choice(("stable, ready for the floor", "doing well", "no acute events overnight"))]
    if ctx.early and s > 0.5:
        cues.append(f"GCS {rng.randint(6, 12)}" if s > 0.75 else f"GCS {rng.randint(11, 14)}")
    return ctx.pick(cues, max(1, round(len(cues) * (0.6 + 0.4 * s))))
