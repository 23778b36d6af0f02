"""Writers and their styles: what an off-the-shelf embedding picks up instead of the clinical content.

Every caregiver (CGID) writes in a personal style fixed by the cohort's seed: the order of the
sections, how much they abbreviate, how verbose they are, their own boilerplate sentences, their
capitalisation, their bullet and label punctuation, their sign-off. The style is independent of the
patient: the same nurse writes the same way about everyone, and a patient's next note is often by a
different writer. Radiology, ECG, Echo and discharge summaries have readers/authors with styles too,
but no CGID, as in MIMIC-III.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

# role -> the note categories that role writes (CATEGORY values as MIMIC-III writes them)
ROLES: dict[str, tuple[str, ...]] = {
    "nurse": ("Nursing/other", "Nursing"),
    "physician": ("Physician ",),
    "radiologist": ("Radiology",),
    "cardiologist": ("ECG", "Echo"),
    "attending": ("Discharge summary",),
    "rt": ("Respiratory ",),
    "dietitian": ("Nutrition",),
    "rehab": ("Rehab Services",),
    "social": ("Social Work",),
    "case_manager": ("Case Management ",),
    "pharmacist": ("Pharmacy",),
    "consultant": ("Consult",),
    "general": ("General",),
}
# roles whose notes carry a CGID in MIMIC-III (charted in CareVue/Metavision)
HAS_CGID = frozenset(
    {
        "nurse",
        "physician",
        "rt",
        "dietitian",
        "rehab",
        "social",
        "case_manager",
        "pharmacist",
        "consultant",
        "general",
    }
)
# caregivers per 1,000 patients of each role (MIMIC-III has about 7,500 caregivers for 46,520 patients)
POOL_PER_1000: dict[str, float] = {
    "nurse": 70,
    "physician": 30,
    "radiologist": 6,
    "cardiologist": 3,
    "attending": 10,
    "rt": 8,
    "dietitian": 2,
    "rehab": 2,
    "social": 2,
    "case_manager": 1,
    "pharmacist": 1,
    "consultant": 1,
    "general": 2,
}
MIN_POOL: dict[str, int] = {"nurse": 10, "physician": 6, "attending": 4, "radiologist": 3, "rt": 3}

# long form -> short form; an abbreviating writer uses the short one
ABBREVIATIONS: dict[str, str] = {
    "patient": "pt",
    "Patient": "Pt",
    "with": "w/",
    "without": "w/o",
    "history of": "h/o",
    "shortness of breath": "SOB",
    "bilateral": "b/l",
    "bilaterally": "b/l",
    "continue": "cont",
    "Continue": "Cont",
    "secondary to": "2/2",
    "increased": "incr",
    "decreased": "decr",
    "respiratory": "resp",
    "medications": "meds",
    "hours": "hrs",
    "minutes": "min",
    "every": "q",
    "at bedside": "@ bedside",
    "and": "&",
    "no acute distress": "NAD",
    "within normal limits": "WNL",
    "times": "x",
    "negative": "neg",
    "positive": "pos",
    "family": "fam",
    "as needed": "prn",
    "temperature": "temp",
    "approximately": "approx",
    "following": "f/u",
    "physical therapy": "PT",
}
_ABBREV_RE = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, ABBREVIATIONS), key=len, reverse=True)) + r")\b"
)

SYSTEMS = ("Neuro", "CV", "Resp", "GI", "GU", "ID", "Skin", "Endo", "Social", "Access")
SYSTEM_ALIASES: dict[str, tuple[str, ...]] = {
    "Neuro": ("Neuro", "NEURO", "Neurologic", "CNS", "Neuro status"),
    "CV": ("CV", "Cardiac", "C/V", "Cardiovascular", "HEME/CV"),
    "Resp": ("Resp", "Respiratory", "Pulm", "RESP", "Lungs"),
    "GI": ("GI", "Abd", "GI/Nutrition", "Gastro"),
    "GU": ("GU", "Renal", "GU/Renal", "Urine"),
    "ID": ("ID", "Infectious disease", "Temp/ID"),
    "Skin": ("Skin", "Integ", "Skin integrity", "Wound"),
    "Endo": ("Endo", "Endocrine", "FS/Insulin"),
    "Social": ("Social", "Psychosocial", "Family", "Dispo"),
    "Access": ("Access", "Lines", "IV access", "Lines/Tubes/Drains"),
}
BOILERPLATE = (
    "Will continue to monitor closely and update the team with any changes.",
    "Patient and family updated at bedside regarding the plan of care.",
    "Safety measures maintained, bed in lowest position, call light within reach.",
    "All questions answered, patient verbalized understanding.",
    "Please see flowsheet for further objective data.",
    "Plan of care reviewed with the covering team this shift.",
    "Fall precautions in place, bed alarm on.",
    "Reposition every 2 hours, skin care per protocol.",
    "Oral care per VAP bundle, head of bed at 30 degrees.",
    "Medicated as needed for comfort with good effect.",
    "Discussed with the attending, who agrees with the above.",
    "Time spent on critical care: 35 minutes, excluding procedures.",
    "I saw and examined the patient with the resident and agree with the note above.",
    "Emotional support given to patient and family.",
    "Report given to the oncoming nurse, see careplan for details.",
    "Ongoing assessment as per ICU protocol, alarms audible.",
    "Hand hygiene and isolation precautions maintained.",
    "Will reassess following the next set of labs.",
    "Patient resting comfortably at this time, no acute distress.",
    "Labs and imaging reviewed personally.",
    "Agree with the plan as outlined by the primary team.",
    "Case discussed at multidisciplinary rounds this morning.",
    "Communication: with patient and family at the bedside.",
    "Code status and goals of care confirmed this morning.",
)
OPENERS = (
    "{role_note} {shift}",
    "{role_note}",
    "{shift} {role_note}:",
    "{role_note} ({shift})",
    "{role_note} - {shift}",
    "Addendum to {role_note}",
    "{shift} update",
)
SHIFTS = ("7a-7p", "7p-7a", "0700-1900", "1900-0700", "days", "nights", "1500-2300", "this shift")
SIGNOFFS = (
    "",
    "-RN",
    "/rn",
    "-- {name}",
    "{name}, RN",
    "Signed: {name}",
    "{name} MD",
    "Electronically signed by {name}",
)


@dataclass(frozen=True)
class Style:
    """One writer's habits. All fields are fixed per writer by the cohort seed."""

    writer: int  # index within the role's pool
    cgid: int | None  # the CGID written to NOTEEVENTS (None for roles without one)
    role: str
    section_order: tuple[str, ...]  # a permutation of SYSTEMS (nurses) or of a category's sections
    section_labels: tuple[int, ...]  # per system, which alias this writer uses
    abbreviate: float  # 0..1: share of abbreviable phrases written short
    verbosity: float  # 0.5..2: multiplies how much is written
    boilerplate: tuple[str, ...]  # this writer's habitual sentences
    case: str  # "normal", "upper", "lower"
    bullet: str  # "", "- ", "* ", "# ", "o "
    label_sep: str  # ": ", " - ", ":  ", "= "
    joiner: str  # how findings are joined: ", ", "; ", ". "
    opener: str
    signoff: str
    name_id: int  # the number inside the writer's own [** **] name placeholder
    template_variant: int  # picks among a category's template families

    def label(self, system: str) -> str:
        aliases = SYSTEM_ALIASES[system]
        return aliases[self.section_labels[SYSTEMS.index(system)] % len(aliases)]

    def apply(self, text: str, rng: random.Random) -> str:
        """The writer's finishing touches: abbreviation and capitalisation."""
        if self.abbreviate > 0.05:
            p = self.abbreviate

            def swap(m: re.Match[str]) -> str:
                return ABBREVIATIONS[m.group(0)] if rng.random() < p else m.group(0)

            text = _ABBREV_RE.sub(swap, text)
        if self.case == "upper":
            return text.upper()
        if self.case == "lower":
            return text.lower()
        return text


def _make_style(rng: random.Random, role: str, writer: int, cgid: int | None) -> Style:
    order = list(SYSTEMS)
    rng.shuffle(order)
    case = rng.choices(("normal", "upper", "lower"), weights=(0.7, 0.15, 0.15))[0]
    if role in ("attending", "radiologist", "cardiologist"):
        case = "normal" if rng.random() < 0.8 else "upper"
    return Style(
        writer=writer,
        cgid=cgid,
        role=role,
        section_order=tuple(order),
        section_labels=tuple(rng.randrange(5) for _ in SYSTEMS),
        abbreviate=rng.choice((0.0, 0.0, 0.3, 0.6, 0.9, 1.0)),
        verbosity=rng.choice((0.6, 0.8, 1.0, 1.0, 1.3, 1.7)),
        boilerplate=tuple(rng.sample(BOILERPLATE, rng.randint(1, 4))),
        case=case,
        bullet=rng.choice(("", "", "- ", "* ", "# ", "o ")),
        label_sep=rng.choice((": ", " - ", ":  ", "= ", ": ")),
        joiner=rng.choice((", ", "; ", ". ", ", ")),
        opener=rng.choice(OPENERS),
        signoff=rng.choice(SIGNOFFS),
        name_id=rng.randrange(1, 9999),
        template_variant=rng.randrange(3),
    )


def make_caregivers(seed: int, patients: int) -> dict[str, tuple[Style, ...]]:
    """Every role's pool of writers, sized to the cohort, from the seed alone (same in every worker)."""
    rng = random.Random(f"caregivers:{seed}")
    pools: dict[str, tuple[Style, ...]] = {}
    next_cgid = 14001
    for role, per_1000 in POOL_PER_1000.items():
        size = max(MIN_POOL.get(role, 2), round(patients * per_1000 / 1000))
        styles = []
        for i in range(size):
            cgid = None
            if role in HAS_CGID:
                cgid = next_cgid
                next_cgid += rng.randint(1, 7)
            styles.append(_make_style(rng, role, i, cgid))
        pools[role] = tuple(styles)
    return pools


def role_of(category: str) -> str:
    """The role that writes a category."""
    for role, cats in ROLES.items():
        if category in cats:
            return role
    raise KeyError(category)
