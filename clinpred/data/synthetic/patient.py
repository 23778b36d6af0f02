"""One patient's trajectory: who they are, what they have, their admissions, their death or censoring.

Everything here is drawn from the patient's own random stream (seeded by the cohort seed and the
patient's index), so a patient comes out the same whichever worker generates it, and the cheap
trajectory can be simulated twice: once to count rows, once to write the notes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from clinpred.data.synthetic.caregivers import Style
from clinpred.data.synthetic.conditions import BY_KEY, CONDITIONS, FILLERS, Med, sample_conditions
from clinpred.data.synthetic.outcomes import (
    concern_probability,
    early_readmission_probability,
    in_hospital_death_probability,
    yearly_death_rate,
)

ALLERGIES = (
    ("Penicillins", "rash"),
    ("Sulfa (Sulfonamide Antibiotics)", "hives"),
    ("Codeine", "nausea/vomiting"),
    ("Iodine; Iodine Containing", "anaphylaxis"),
    ("Morphine", "itching"),
    ("Lisinopril", "angioedema"),
    ("Latex", "contact dermatitis"),
    ("Levofloxacin", "tendinitis"),
    ("Amoxicillin", "unknown"),
    ("Percocet", "hallucinations"),
    ("Shellfish", "throat swelling"),
    ("Vancomycin", "red man syndrome"),
)
PMH_EXTRA = (
    "s/p appendectomy",
    "s/p R total knee replacement",
    "s/p L hip ORIF after fall",
    "cataract surgery OU",
    "remote DVT, completed anticoagulation",
    "nephrolithiasis",
    "s/p cholecystectomy",
    "s/p inguinal hernia repair",
    "prostate cancer s/p XRT",
    "breast cancer s/p lumpectomy",
    "osteoarthritis of both knees",
    "spinal stenosis with chronic low back pain",
    "migraines",
    "s/p TURP",
    "diverticulosis",
    "s/p thyroidectomy",
    "macular degeneration",
    "peripheral neuropathy",
    "restless legs",
    "history of C. diff colitis",
    "MRSA colonization",
    "basal cell carcinoma of the nose, excised",
)
SEX_SPECIFIC = {"M": ("breast cancer s/p lumpectomy",), "F": ("prostate cancer s/p XRT", "s/p TURP")}
QUIRKS = (
    "hard of hearing, hearing aid in the left ear",
    "R BKA, uses a wheelchair",
    "chronic left foot drop",
    "stage II sacral decubitus",
    "Jehovah's Witness, declines blood products",
    "Portuguese speaking, interpreter needed",
    "Russian speaking, daughter interprets",
    "legally blind",
    "known 4.2 cm infrarenal AAA, followed by vascular",
    "L eye prosthesis",
    "chronic indwelling suprapubic catheter",
    "colostomy in the LLQ",
    "baseline dementia, oriented to self only",
    "uses a cane, walker at night",
    "R arm lymphedema, no BP or sticks in the R arm",
    "difficult IV access, US-guided PIV only",
    "wears dentures, upper plate",
    "tremor of both hands, baseline",
    "chronic pain on methadone maintenance",
    "recent fall with R wrist fracture in a cast",
    "anxious with procedures, prefers lorazepam beforehand",
    "gluten free diet",
    "kosher diet",
    "vegetarian",
)
LIVING = (
    "lives with wife",
    "lives with husband",
    "lives alone in an apartment",
    "lives with daughter",
    "lives in an assisted living facility",
    "lives with son and his family",
    "lives in a nursing home",
    "lives with partner",
)
OCCUPATIONS = (
    "retired machinist",
    "retired teacher",
    "former truck driver",
    "retired nurse",
    "works as an accountant",
    "retired mail carrier",
    "former fisherman",
    "retired electrician",
    "works in construction",
    "retired secretary",
    "retired police officer",
    "former restaurant owner",
)
SUPPORTS = ("wife", "husband", "daughter", "son", "niece", "sister", "brother", "friend", "partner")
HOME_DEVICES = ("R chest port", "permanent pacemaker", "L arm PICC", "home CPAP", "IVC filter", "G-tube")
ACUTE_DEVICES = ("foley", "R IJ CVL", "L subclavian CVL", "A-line", "PIV x2", "NGT", "rectal tube")
CODE_STATUS = ("Full code", "DNR/DNI", "DNR, OK to intubate", "Full code (presumed)")
# What nurses and physicians write about a stay that bodes badly for the weeks after discharge: the
# drivers of early readmission that notes record (drawn per stay, so they do not name the patient)
DISCHARGE_CONCERNS = (
    "reports not taking home lasix, ran out of meds",
    "poor PO intake, deconditioned",
    "lives alone, limited support at home",
    "3rd ED visit this month",
    "still requiring 2L NC, new home O2",
    "wants to leave AMA, counseled",
    "missed HD sessions prior to admission",
    "confused at night, needs supervision",
    "unable to afford copays, SW consulted",
    "PT recommends rehab, pt declines",
)
MAX_EXTRA_READMISSIONS = 3  # unplanned readmissions a patient may have beyond the planned stays
ADMISSION_TYPES = ("EMERGENCY", "EMERGENCY", "EMERGENCY", "URGENT", "ELECTIVE")
ACUTE_FILLERS = tuple(f for f in FILLERS if f.acute and f.prevalence > 0)
SECONDARY_CODE_RATE = 0.6  # each further code of an active condition's phenotype


@dataclass
class Admission:
    """One hospital stay and what is true during it."""

    index: int
    hadm_id: int
    admit: datetime
    disch: datetime
    died: bool
    active: list[str]  # condition keys active in this stay, most acute first
    severity: float  # 0..1 at admission: drives evidence intensity and death
    codes: list[str]  # ICD-9 codes in SEQ_NUM order
    admission_type: str
    n_notes: int
    team: dict[str, list[Style]] = field(default_factory=dict)
    home_meds: list[tuple[Med, str]] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    code_status: str = "Full code"
    weight: float = 80.0
    concerns: list[str] = field(default_factory=list)  # discharge concerns the stay's notes mention


@dataclass
class Patient:
    """A patient and everything that persists from note to note (with drift between admissions)."""

    index: int
    subject_id: int
    gender: str
    age: float  # at the first admission
    dob: datetime
    conditions: list[str]
    code_of: dict[str, str]  # condition key -> the code this patient is coded with
    secondary: dict[str, str | None]
    fillers: list[str]
    allergies: list[tuple[str, str]]
    pmh_extra: list[str]
    quirks: list[str]
    social: dict[str, str]
    admissions: list[Admission] = field(default_factory=list)
    outpatient: list[datetime] = field(default_factory=list)  # outpatient Radiology/ECG/Echo times
    dod: datetime | None = None
    dod_hosp: datetime | None = None
    dod_ssn: datetime | None = None


@dataclass(frozen=True)
class Density:
    """How many notes a stay gets: MIMIC-III's full density, or a compact one for tests and the demo."""

    notes_per_admission: float  # the typical number (2-40 per admission)
    outpatient_per_year: float  # Radiology/ECG/Echo notes without HADM_ID between stays


def _lognormal_int(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    return max(low, min(high, round(median * rng.lognormvariate(0.0, sigma))))


def _code_list(patient: Patient, active: list[str], rng: random.Random, dnr: bool, died: bool) -> list[str]:
    """The stay's ICD-9 codes: its conditions (with their secondary codes), the patient's own chronic
    non-phenotype codes, this stay's acute ones; about 11 in all, as in MIMIC-III."""
    codes: list[str] = []
    for key in active:
        codes.append(patient.code_of[key])
        sec = patient.secondary[key]
        if sec is not None and rng.random() < 0.6:
            codes.append(sec)
        for extra in BY_KEY[key].secondary_codes:
            if rng.random() < SECONDARY_CODE_RATE:
                codes.append(extra)
    for code in patient.fillers:
        if rng.random() < 0.85:
            codes.append(code)
    for filler in ACUTE_FILLERS:
        if rng.random() < filler.prevalence:
            codes.append(filler.code)
    anticoag = any(
        m.drug in ("warfarin", "apixaban") for m in (BY_KEY["afib"].meds if "afib" in active else ())
    )
    if anticoag and rng.random() < 0.5:
        codes.append("V5861")
    if dnr:
        codes.append("V4986")
    if died and rng.random() < 0.5:
        codes.append("V667")
    return list(dict.fromkeys(codes))


def simulate(index: int, seed: int, density: Density) -> Patient:
    """A whole patient trajectory from its own random stream."""
    rng = random.Random(f"patient:{seed}:{index}")
    age = max(18.0, min(99.0, rng.gauss(64.0, 16.5)))
    if rng.random() < 0.02:
        age = rng.uniform(89.5, 99.0)
    gender = "M" if rng.random() < 0.56 else "F"
    conditions = sample_conditions(rng, age)
    code_of = {k: rng.choice(BY_KEY[k].primary_codes) for k in conditions}
    secondary = {
        k: (
            rng.choice(BY_KEY[k].secondary_codes)
            if BY_KEY[k].secondary_codes and rng.random() < 0.5
            else None
        )
        for k in conditions
    }
    fillers = [f.code for f in FILLERS if not f.acute and f.prevalence > 0 and rng.random() < f.prevalence]
    first_admit = datetime(rng.randint(2100, 2200), 1, 1) + timedelta(
        days=rng.randrange(365), minutes=rng.randrange(24 * 60)
    )
    if age >= 89.5:  # MIMIC-III shifts the DOB of patients over 89 so that they appear 300 years old
        dob = first_admit - timedelta(days=round(300 * 365.25) + rng.randrange(200))
    else:
        dob = first_admit - timedelta(days=round(age * 365.25))
    dob = dob.replace(hour=0, minute=0, second=0)
    patient = Patient(
        index=index,
        subject_id=index + 1,
        gender=gender,
        age=age,
        dob=dob,
        conditions=conditions,
        code_of=code_of,
        secondary=secondary,
        fillers=fillers,
        allergies=rng.sample(ALLERGIES, rng.choice((0, 0, 1, 1, 1, 2, 3))),
        pmh_extra=rng.sample([h for h in PMH_EXTRA if h not in SEX_SPECIFIC[gender]], rng.randint(1, 4)),
        quirks=rng.sample(QUIRKS, rng.randint(1, 3)),
        social={
            "living": rng.choice(LIVING),
            "occupation": rng.choice(OCCUPATIONS),
            "tobacco": rng.choice(
                (
                    "never smoker",
                    "former smoker, quit 10 yrs ago",
                    "30 pack-years, still smoking",
                    "quit smoking 2 yrs ago",
                    "1/2 ppd",
                )
            ),
            "etoh": rng.choice(
                (
                    "no EtOH",
                    "social EtOH",
                    "2-3 beers daily",
                    "remote heavy EtOH, sober 5 yrs",
                    "occasional wine",
                )
            ),
            "support": rng.choice(SUPPORTS),
        },
    )
    chronic = [k for k in conditions if BY_KEY[k].chronic]
    acute = [k for k in conditions if not BY_KEY[k].chronic]
    n_adm = rng.choices((1, 2, 3, 4), weights=(0.72, 0.17, 0.07, 0.04))[0]
    # acute conditions: each in a random non-empty set of stays, most often the first
    acute_in = {k: {0} if rng.random() < 0.65 else {rng.randrange(n_adm)} for k in acute}
    for k in acute:
        for j in range(n_adm):
            if rng.random() < 0.15:
                acute_in[k].add(j)
    onset = {k: 0 if rng.random() < 0.8 else rng.randrange(n_adm) for k in chronic}
    home_meds = _initial_home_meds(rng, patient)
    devices = rng.sample(HOME_DEVICES, rng.choice((0, 0, 1, 1, 2)))
    weight = round(rng.gauss(82 if gender == "M" else 70, 15), 1)
    base_sev = rng.betavariate(2.0, 3.2)
    code_status = CODE_STATUS[0] if age < 80 or rng.random() < 0.5 else CODE_STATUS[1]
    when = first_admit
    unplanned = False  # the stay being written follows the last one within 30 days, unplanned
    for j in range(n_adm + MAX_EXTRA_READMISSIONS):
        if j >= n_adm:
            break
        active = [k for k in acute if j in acute_in[k]] + [k for k in chronic if onset[k] <= j]
        if not active:
            active = [rng.choice(conditions)]
        active.sort(key=lambda k: -BY_KEY[k].acuity)
        severity = max(0.0, min(1.0, base_sev + 0.08 * j + rng.gauss(0.0, 0.12)))
        age_now = age + (when - first_admit).days / 365.25
        n_notes = _lognormal_int(rng, density.notes_per_admission * (0.7 + 0.6 * severity), 0.45, 2, 40)
        los_days = max(
            1.0, min(60.0, n_notes / max(1.5, density.notes_per_admission / 6.0) * rng.uniform(0.6, 1.4))
        )
        died = rng.random() < in_hospital_death_probability(age_now, active, severity)
        fragility = rng.gauss(0.0, 1.0)
        concerns = [x for x in DISCHARGE_CONCERNS if rng.random() < concern_probability(fragility)]
        if severity > 0.7 and rng.random() < 0.5:
            code_status = "DNR/DNI"
        admit = when
        disch = admit + timedelta(hours=round(los_days * 24), minutes=rng.randrange(60))
        if j > 0:  # drift: doses change, a med is stopped or started, a device comes or goes
            _drift(rng, home_meds, devices)
        adm = Admission(
            index=j,
            hadm_id=100000 + index * 8 + j,  # room for 4 planned stays and MAX_EXTRA_READMISSIONS
            admit=admit,
            disch=disch,
            died=died,
            active=active,
            severity=severity,
            codes=_code_list(patient, active, rng, code_status.startswith("DNR"), died),
            # an early readmission is unplanned (the readmission task does not count elective ones)
            admission_type=rng.choice(ADMISSION_TYPES[:-1] if unplanned else ADMISSION_TYPES),
            n_notes=n_notes,
            home_meds=list(home_meds),
            devices=list(devices) + rng.sample(ACUTE_DEVICES, rng.randint(1, 3)),
            code_status=code_status,
            weight=round(weight + rng.gauss(0, 1.5), 1),
            concerns=concerns,
        )
        patient.admissions.append(adm)
        if died:
            patient.dod = patient.dod_hosp = disch
            break
        # after discharge: the next stay, or death before it, or the end of follow-up
        # an unplanned readmission within 30 days, as likely as the stay's burden, severity and fragility
        # (what the discharge concerns say) make it; after what was to be the last stay, it adds one
        unplanned = rng.random() < early_readmission_probability(
            [k for k in chronic if onset[k] <= j], severity, fragility
        )
        if unplanned:
            gap_days = rng.uniform(2, 30)
            n_adm = max(n_adm, j + 2)
        else:
            gap_days = rng.uniform(30, 900) if j + 1 < n_adm else rng.uniform(365, 365 * 6)
        rate = yearly_death_rate(age_now, chronic, severity)
        death_in = rng.expovariate(rate) * 365.25 if rate > 0 else float("inf")
        horizon = disch + timedelta(days=gap_days)
        if death_in < gap_days:
            patient.dod = patient.dod_ssn = (disch + timedelta(days=max(1.0, death_in))).replace(
                hour=0, minute=0, second=0
            )
            horizon = patient.dod
        out_rate = density.outpatient_per_year
        t = disch + timedelta(days=rng.expovariate(out_rate / 365.25) if out_rate > 0 else 1e9)
        while t < horizon - timedelta(days=2):
            patient.outpatient.append(t.replace(second=0, microsecond=0))
            t += timedelta(days=rng.expovariate(out_rate / 365.25))
        if patient.dod is not None:
            break
        when = horizon.replace(second=0, microsecond=0)
        weight = round(weight + rng.gauss(-1.0, 3.0), 1)
    if patient.dod_hosp is not None:  # DOD is a date in MIMIC-III
        patient.dod = patient.dod_hosp.replace(hour=0, minute=0, second=0)
    return patient


def _initial_home_meds(rng: random.Random, patient: Patient) -> list[tuple[Med, str]]:
    meds: list[tuple[Med, str]] = []
    for key in patient.conditions:
        cond = BY_KEY[key]
        if not cond.chronic or not cond.meds:
            continue
        for med in rng.sample(cond.meds, min(len(cond.meds), rng.randint(1, 2))):
            meds.append((med, rng.choice(med.doses)))
    for filler in FILLERS:
        if filler.code in patient.fillers and filler.med is not None:
            meds.append((filler.med, rng.choice(filler.med.doses)))
    return meds


def _drift(rng: random.Random, meds: list[tuple[Med, str]], devices: list[str]) -> None:
    for i, (med, _dose) in enumerate(meds):
        if rng.random() < 0.2:
            meds[i] = (med, rng.choice(med.doses))
    if meds and rng.random() < 0.2:
        meds.pop(rng.randrange(len(meds)))
    if rng.random() < 0.3:
        cond = rng.choice(CONDITIONS)
        if cond.chronic and cond.meds:
            med = rng.choice(cond.meds)
            meds.append((med, rng.choice(med.doses)))
    if devices and rng.random() < 0.25:
        devices.pop(rng.randrange(len(devices)))
    if rng.random() < 0.15:
        devices.append(rng.choice(HOME_DEVICES))
