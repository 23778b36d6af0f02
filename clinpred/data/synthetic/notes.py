"""Note text by category: each category has its own structure and length, each writer their own style.

Nursing notes are short and choppy, organised by body system in the writer's order (Nursing/other,
the older free-text charting) or by problem with Assessment/Action/Response/Plan (Nursing).
Physician progress notes are long and templated, heavy with lab values. Radiology has FINDINGS and
IMPRESSION. ECG reads are a few lines. Echo reports are structured. Discharge summaries run to
about a thousand words or more, and list the discharge diagnoses, as real ones do.
"""

from __future__ import annotations

from collections.abc import Callable

from clinpred.data.synthetic import content as c
from clinpred.data.synthetic.conditions import BY_KEY
from clinpred.data.synthetic.content import NoteCtx

DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "Nursing/other": ("Report",),
    "Nursing": ("Nursing Progress Note", "Nursing Transfer Note", "Nursing Note"),
    "Physician ": (
        "Physician Resident Progress Note",
        "Intensivist Note",
        "Physician Attending Progress Note",
        "ICU Admission Note",
    ),
    "Radiology": (
        "CHEST (PORTABLE AP)",
        "CHEST (PA & LAT)",
        "CT HEAD W/O CONTRAST",
        "CT ABDOMEN W/CONTRAST",
        "RENAL U.S.",
    ),
    "ECG": ("Report",),
    "Echo": ("Report",),
    "Discharge summary": ("Report",),
    "Respiratory ": ("Respiratory Care Shift Note",),
    "Nutrition": ("Nutrition Initial Assessment", "Nutrition Follow-up"),
    "General": ("Generic Note", "Family Meeting Note"),
    "Rehab Services": ("Physical Therapy Evaluation", "Occupational Therapy Note"),
    "Social Work": ("Social Work Progress Note",),
    "Case Management ": ("Case Management Discharge Planning Note",),
    "Pharmacy": ("Pharmacy Consult Note",),
    "Consult": ("Consult Note",),
}

SYSTEM_NORMAL: dict[str, tuple[str, ...]] = {
    "Neuro": (
        "A&Ox3, MAE, follows commands",
        "alert, oriented x2, pleasant",
        "sedated, opens eyes to voice",
        "PERRL, moves all extremities",
    ),
    "CV": ("NSR 70-80s, no ectopy", "SR 80s, BP stable", "ST 100s, K repleted", "peripheral pulses palpable"),
    "Resp": (
        "LS clear b/l upper, diminished bases",
        "on 2L NC sats 95-98%",
        "weaned to RA",
        "strong cough, thick white secretions",
    ),
    "GI": (
        "abd soft, nontender, +BS",
        "tolerating clears",
        "NPO after midnight",
        "no BM this shift, colace given",
    ),
    "GU": ("foley draining clear yellow urine 40-80cc/hr", "voiding qs", "UOP adequate"),
    "ID": ("afebrile", "Tmax 37.8", "on abx as ordered"),
    "Skin": ("intact", "coccyx reddened, blanchable, allevyn applied", "bruising on both arms"),
    "Endo": ("FS 110-140, no coverage needed", "RISS per protocol"),
    "Social": ("family visited this evening", "no calls from family", "HCP updated by phone"),
    "Access": ("PIV x2 patent", "R radial A-line dampened, re-zeroed"),
}
SYSTEM_OF: dict[str, str] = {
    "hypertension": "CV",
    "diabetes": "Endo",
    "lipids": "CV",
    "cad": "CV",
    "ami": "CV",
    "chf": "CV",
    "afib": "CV",
    "ckd": "GU",
    "copd": "Resp",
    "pneumonia": "Resp",
    "sepsis": "ID",
    "aki": "GU",
    "resp_failure": "Resp",
    "shock": "CV",
    "cirrhosis": "GI",
    "gi_bleed": "GI",
    "stroke": "Neuro",
    "electrolytes": "GU",
    "pleural": "Resp",
    "complication": "Skin",
    "conduction": "CV",
    "diabetes_comp": "Endo",
    "htn_comp": "GU",
    "lower_resp": "Resp",
    "upper_resp": "Resp",
}


# How often a note of a stay with discharge concerns writes them down (a "Dispo" or "Barriers" line):
# nurses chart discharge planning in most shift notes, physicians in most progress notes. Case
# management always writes them. These concerns are what the readmission task can find.
DISPO_WRITTEN = {"nursing": 0.9, "physician": 0.8}


def _sex(ctx: NoteCtx, short: bool = True) -> str:
    if short:
        return ctx.patient.gender
    return "man" if ctx.patient.gender == "M" else "woman"


def _intro(ctx: NoteCtx) -> str:
    return f"{ctx.age} yo {_sex(ctx)}"


def _finish(ctx: NoteCtx, lines: list[str]) -> str:
    style = ctx.style
    n_boiler = max(0, round(len(style.boilerplate) * style.verbosity))
    lines = [*lines, *style.boilerplate[:n_boiler]]
    sign = style.signoff.format(name=f"[**First Name8 (NamePattern2) {style.name_id}**]")
    if sign:
        lines.append(sign)
    return style.apply("\n".join(lines), ctx.rng)


def _bullets(ctx: NoteCtx, items: list[str]) -> list[str]:
    return [f"{ctx.style.bullet}{i}" for i in items]


# ---- nursing -------------------------------------------------------------------------------------


def _system_findings(ctx: NoteCtx, system: str) -> list[str]:
    rng = ctx.rng
    out = [rng.choice(SYSTEM_NORMAL[system])]
    for key in ctx.show:
        if SYSTEM_OF[key] != system:
            continue
        cond = BY_KEY[key]
        pool = cond.exam + cond.procedures + cond.symptoms
        if pool:
            out.append(rng.choice(pool))
        if cond.meds and rng.random() < 0.6:
            med = rng.choice(cond.meds)
            out.append(med.line(rng.choice(med.doses)))
    if system == "CV":
        out.insert(0, f"HR {c.vital(ctx, 'HR'):.0f} BP {c.vital(ctx, 'SBP'):.0f}/{c.vital(ctx, 'DBP'):.0f}")
    elif system == "Resp":
        out.insert(0, f"RR {c.vital(ctx, 'RR'):.0f} SpO2 {min(100, c.vital(ctx, 'SpO2')):.0f}%")
    elif system == "ID":
        out.insert(0, f"Tmax {c.vital(ctx, 'T'):.1f}, WBC {c.lab_value(ctx, 'WBC')}")
    elif system == "Access":
        out = c.devices(ctx) or out
    elif system == "Social":
        out.append(
            f"{ctx.patient.social['support']} {c.name_ph(rng)} is HCP, {ctx.adm.code_status if ctx.adm else 'Full code'}"
        )
    elif system == "Skin":
        out += [q for q in c.quirks(ctx, 0.5) if "decub" in q or "ostomy" in q or "catheter" in q]
    return out


def nursing_other(ctx: NoteCtx) -> str:
    style, rng = ctx.style, ctx.rng
    shift = rng.choice(("7a-7p", "7p-7a", "days", "nights", "0700-1900", "1900-0700"))
    lines = [
        style.opener.format(
            role_note=rng.choice(("NPN", "Nursing Progress Note", "NSG NOTE", "MICU NPN", "CCU Nursing")),
            shift=shift,
        )
    ]
    if rng.random() < 0.5:
        lines.append(f"{_intro(ctx)} " + ", ".join(c.quirks(ctx)[:2]))
    if rng.random() < 0.4:
        lines.append(f"Allergies{style.label_sep}{c.allergies(ctx)}")
    n_sys = max(3, min(len(style.section_order), round(6 * style.verbosity)))
    systems = [s for s in style.section_order[:n_sys]]
    for key in ctx.show:  # the systems with something to report are always written
        if SYSTEM_OF[key] not in systems:
            systems.append(SYSTEM_OF[key])
    for system in systems:
        found = _system_findings(ctx, system)
        lines.append(f"{style.bullet}{style.label(system)}{style.label_sep}{style.joiner.join(found)}")
    lines += [f"{style.bullet}{x}" for x in c.negated(ctx, 1) if rng.random() < 0.5]
    if ctx.early or rng.random() < 0.5:  # the first 48 h always say how sick the patient is
        lines.append(f"Plan{style.label_sep}" + style.joiner.join(c.severity_cues(ctx)))
    if ctx.adm is not None and ctx.adm.concerns and rng.random() < DISPO_WRITTEN["nursing"]:
        lines.append(f"Dispo{style.label_sep}" + style.joiner.join(ctx.pick(ctx.adm.concerns, 3)))
    return _finish(ctx, lines)


def nursing(ctx: NoteCtx) -> str:
    style, rng = ctx.style, ctx.rng
    lines = []
    problems = list(ctx.show) or [rng.choice(ctx.problems)]
    for key in problems:
        cond = BY_KEY[key]
        title = (
            rng.choice(cond.names)
            if rng.random() < 0.35
            else rng.choice(
                (
                    "Alteration in comfort",
                    "Impaired gas exchange",
                    "Hemodynamic instability",
                    "Knowledge deficit",
                    "Altered mental status",
                    "Risk for infection",
                    "Fluid balance",
                )
            )
        )
        lines.append(f"{title.upper() if style.template_variant == 0 else title}")
        lines.append(f"Assessment{style.label_sep}{style.joiner.join(_system_findings(ctx, SYSTEM_OF[key]))}")
        action = c.inpatient_meds(ctx, 2) + c.evidence(ctx, "procedures", 1)
        lines.append(f"Action{style.label_sep}{style.joiner.join(action) or 'monitored'}")
        lines.append(
            f"Response{style.label_sep}{rng.choice(('tolerated well', 'no change', 'improving', 'unchanged, team aware', 'VSS'))}"
        )
        lines.append(
            f"Plan{style.label_sep}{rng.choice(('continue current plan', 'monitor, notify team of changes', 'f/u AM labs', 'wean as tolerated'))}"
        )
    if ctx.early or rng.random() < 0.3:
        lines.append(f"Status{style.label_sep}" + style.joiner.join(c.severity_cues(ctx)))
    if rng.random() < 0.6:
        lines.append(f"Lines{style.label_sep}" + ", ".join(c.devices(ctx)))
    if ctx.adm is not None and ctx.adm.concerns and rng.random() < DISPO_WRITTEN["nursing"]:
        lines.append(f"Dispo{style.label_sep}" + style.joiner.join(ctx.pick(ctx.adm.concerns, 3)))
    if rng.random() < 0.5:
        lines.append(
            f"Social{style.label_sep}{ctx.patient.social['living']}, {ctx.patient.social['support']} at bedside"
        )
    if rng.random() < 0.5:
        lines.append(", ".join(c.quirks(ctx)))
    header = f"{_intro(ctx)} admitted with " + (
        ", ".join(c.named(ctx, 0.4)) or rng.choice(c.evidence(ctx, "symptoms", 1) or ["weakness"])
    )
    return _finish(ctx, [header, *lines])


# ---- physician -----------------------------------------------------------------------------------


def physician(ctx: NoteCtx) -> str:
    style, rng = ctx.style, ctx.rng
    sep = style.label_sep
    lines = [
        f"Chief Complaint{sep}{', '.join(c.evidence(ctx, 'symptoms', 1)) or 'dyspnea'}",
        "24 Hour Events:",
        *_bullets(ctx, c.evidence(ctx, "procedures", 2) or ["none"]),
        f"Allergies{sep}{c.allergies(ctx)}",
        f"Last dose of Antibiotics{sep}{rng.choice(('vancomycin', 'cefepime', 'none', 'piperacillin'))} - {c.date_ph(ctx.time)} {rng.randint(0, 23):02d}:00",
        f"Infusions{sep}"
        + (", ".join(m for m in c.inpatient_meds(ctx, 3) if "gtt" in m or "continuous" in m) or "none"),
        f"Other ICU medications{sep}" + ", ".join(c.home_meds(ctx, 0.5)),
        "Changes to medical and family history: none",
        "Review of systems is unchanged from admission except as noted below",
        f"Flowsheet Data as of {c.date_ph(ctx.time)} {ctx.time.hour:02d}:{ctx.time.minute:02d}",
        f"Vital signs{sep}{c.vitals_line(ctx)}",
        f"Hemodynamic monitoring{sep}CVP {rng.randint(4, 18)} mmHg",
        f"Fluid balance{sep}In {rng.randint(800, 3900)} mL, Out {rng.randint(400, 3500)} mL",
        "Physical Examination",
        f"General Appearance{sep}"
        + rng.choice(
            ("Well nourished, No acute distress", "Overweight / Obese", "Thin, anxious", "intubated, sedated")
        ),
        f"Cardiovascular{sep}" + ", ".join(["(S1: Normal), (S2: Normal)", *c.evidence(ctx, "exam", 2)]),
        f"Peripheral Vascular{sep}(Right radial pulse: Present), (Left radial pulse: Present)",
        f"Skin{sep}" + (", ".join(c.quirks(ctx, 0.3)) or "Warm"),
        f"Neurologic{sep}Attentive, Follows simple commands, Responds to: Verbal stimuli",
        "Labs / Radiology",
        c.lab_panel(ctx, ("WBC", "Hgb", "Plt", "Cr", "BUN", "Na", "K", "HCO3", "Glucose"), "   "),
        c.lab_panel(ctx, ("TropT", "INR", "Lactate", "Tbili", "Albumin", "proBNP"), "   "),
        f"Imaging{sep}" + ("; ".join(c.evidence(ctx, "imaging", 2)) or "CXR without acute change"),
        "Assessment and Plan",
        f"{_intro(ctx)} with "
        + (", ".join(c.pmh(ctx)[:4]) or "no significant past history")
        + " admitted with "
        + (", ".join(c.named(ctx, 0.45)) or ", ".join(c.evidence(ctx, "symptoms", 2)) or "weakness"),
    ]
    for key in ctx.show:
        cond = BY_KEY[key]
        title = (
            rng.choice(cond.names)
            if rng.random() < 0.55
            else rng.choice(
                (
                    "hypotension",
                    "hypoxemia",
                    "leukocytosis",
                    "elevated creatinine",
                    "anemia",
                    "altered mental status",
                    "tachycardia",
                )
            )
        )
        plan = [m for m in c.inpatient_meds(ctx, 1)] + [rng.choice(cond.procedures or ("monitor",))]
        lines.append(f"# {title}{sep}" + style.joiner.join(plan))
    lines += [f"# r/o: {x}" for x in c.negated(ctx, 1)]
    lines += [
        f"ICU Care{sep}Nutrition: {rng.choice(('NPO', 'tube feeds at goal', 'cardiac diet', 'regular'))}",
        f"Glycemic Control{sep}{rng.choice(('RISS', 'insulin gtt', 'not needed'))}",
        f"Lines{sep}" + ", ".join(c.devices(ctx)),
        f"Prophylaxis{sep}DVT: {rng.choice(('SQ UF heparin', 'boots', 'on anticoagulation'))}, Stress ulcer: {rng.choice(('PPI', 'none'))}",
        f"Code status{sep}{ctx.adm.code_status if ctx.adm else 'Full code'}",
        f"Disposition{sep}" + "; ".join(c.severity_cues(ctx)),
    ]
    if ctx.adm is not None and ctx.adm.concerns and rng.random() < DISPO_WRITTEN["physician"]:
        lines.append(f"Barriers to discharge{sep}" + "; ".join(ctx.pick(ctx.adm.concerns, 3)))
    return _finish(ctx, lines)


# ---- radiology, ECG, echo --------------------------------------------------------------------------


def radiology(ctx: NoteCtx, description: str) -> str:
    rng = ctx.rng
    header = [
        f"{c.date_ph(ctx.time)} {ctx.time.hour % 12 or 12}:{ctx.time.minute:02d} {'AM' if ctx.time.hour < 12 else 'PM'}",
        f"     {description}                                             Clip # [**Clip Number (Radiology) {rng.randrange(10000, 99999)}**]",
        f"     Reason: {', '.join(c.evidence(ctx, 'symptoms', 1)) or 'eval for acute process'}",
        "     Admitting Diagnosis: "
        + (
            rng.choice(BY_KEY[ctx.chart.charted[0]].names).upper()
            if ctx.chart.charted and rng.random() < 0.5
            else rng.choice(("SHORTNESS OF BREATH", "FEVER", "CHEST PAIN", "HYPOTENSION"))
        ),
        " ______________________________________________________________________________",
        " [**Hospital 2**] MEDICAL CONDITION:",
        f"  {_intro(ctx)} with "
        + (", ".join(c.named(ctx, 0.3) + c.evidence(ctx, "symptoms", 1)) or "new hypoxia"),
        " REASON FOR THIS EXAMINATION:",
        "  "
        + rng.choice(
            (
                "eval for infiltrate",
                "line placement",
                "interval change",
                "eval for effusion",
                "eval for acute process",
            )
        ),
        " ______________________________________________________________________________",
        "                                 FINAL REPORT",
    ]
    findings = c.evidence(ctx, "imaging", 3)
    devs = [
        d
        for d in c.devices(ctx)
        if any(x in d for x in ("CVL", "ETT", "NGT", "OGT", "PICC", "port", "pacemaker", "tube"))
    ]
    body = [
        f"INDICATION: {_intro(ctx)} " + (", ".join(c.quirks(ctx, 0.2)) or "as above"),
        f"COMPARISON: {c.date_ph(ctx.time)}" if rng.random() < 0.6 else "COMPARISON: None.",
        "TECHNIQUE: "
        + rng.choice(
            (
                "Single portable AP upright view of the chest was obtained at the bedside.",
                "PA and lateral views of the chest were obtained.",
                "Multidetector CT images were acquired and reformatted in axial, coronal and sagittal planes.",
                "Grayscale and color Doppler ultrasound images were obtained.",
            )
        ),
        "FINDINGS: "
        + " ".join(
            [f"{d} in standard position." for d in devs]
            + [f.capitalize() + "." for f in findings]
            + [x.capitalize() + "." for x in c.negated(ctx, 2)]
            + [
                *rng.sample(
                    (
                        "Heart size is normal.",
                        "The cardiomediastinal silhouette is stable.",
                        "Osseous structures are unremarkable.",
                        "No pneumothorax.",
                        "The hila are normal in size and contour.",
                        "There is no free air beneath the diaphragm.",
                        "Mild degenerative changes of the thoracic spine are noted.",
                        "The visualized upper abdomen is unremarkable.",
                        "The aorta is tortuous with atherosclerotic calcification.",
                        "Soft tissues are unremarkable.",
                    ),
                    rng.randint(2, 5),
                )
            ]
        ),
        "IMPRESSION: "
        + (
            " ".join(f"{i + 1}. {f.capitalize()}." for i, f in enumerate(findings[:2]))
            or "No acute cardiopulmonary process."
        ),
    ]
    return _finish_no_sign(ctx, header + body)


def _finish_no_sign(ctx: NoteCtx, lines: list[str]) -> str:
    return ctx.style.apply("\n".join(lines), ctx.rng)


def ecg(ctx: NoteCtx) -> str:
    rng = ctx.rng
    rhythm = c.evidence(ctx, "ecg", 2)
    lines = rhythm or [
        rng.choice(("Sinus rhythm.", "Sinus tachycardia.", "Sinus bradycardia.", "Normal sinus rhythm."))
    ]
    lines = [x if x.endswith(".") else x.capitalize() + "." for x in lines]
    lines += rng.sample(
        (
            "Left axis deviation.",
            "Nonspecific ST-T wave changes.",
            "Low QRS voltages in the limb leads.",
            "Poor R wave progression.",
            "Right bundle-branch block.",
            "Prolonged QTc interval.",
        ),
        rng.randint(0, 2),
    )
    lines.append(
        rng.choice(
            (
                f"Compared to the previous tracing of {c.date_ph(ctx.time)} there is no significant change.",
                "No previous tracing available for comparison.",
                "Since the previous tracing the rate is faster.",
            )
        )
    )
    return _finish_no_sign(ctx, lines)


def echo(ctx: NoteCtx) -> str:
    rng = ctx.rng
    adm = ctx.adm or ctx.patient.admissions[-1]
    found = c.evidence(ctx, "echo", 3)
    lines = [
        "PATIENT/TEST INFORMATION:",
        f"Indication: {', '.join(c.named(ctx, 0.3)) or 'Left ventricular function.'}",
        f"Height: (in) {rng.randint(60, 74)}",
        f"Weight (lb): {round(adm.weight * 2.2)}",
        f"BP (mm Hg): {c.vital(ctx, 'SBP'):.0f}/{c.vital(ctx, 'DBP'):.0f}",
        f"HR (bpm): {c.vital(ctx, 'HR'):.0f}",
        f"Status: {'Inpatient' if ctx.adm else 'Outpatient'}",
        f"Date/Time: {c.date_ph(ctx.time)} at {ctx.time.hour:02d}:{ctx.time.minute:02d}",
        "Test: TTE (Complete)",
        "Doppler: Full Doppler and color Doppler",
        "INTERPRETATION:",
        "Findings:",
        "LEFT ATRIUM: " + rng.choice(("Normal LA size.", "Mild LA enlargement.")),
        "LEFT VENTRICLE: " + rng.choice(("Normal LV wall thickness and cavity size.", "Mild symmetric LVH.")),
        "AORTIC VALVE: " + rng.choice(("Mildly thickened aortic valve leaflets.", "Normal aortic valve.")),
        "MITRAL VALVE: " + rng.choice(("Mild (1+) MR.", "Trivial MR.")),
        "RIGHT ATRIUM/INTERATRIAL SEPTUM: "
        + rng.choice(("Normal RA size. No ASD by 2D or color Doppler.", "Mildly dilated RA.")),
        "RIGHT VENTRICLE: "
        + rng.choice(("Normal RV chamber size and free wall motion.", "Mildly dilated RV cavity.")),
        "AORTA: "
        + rng.choice(("Normal aortic diameter at the sinus level.", "Mildly dilated ascending aorta.")),
        "TRICUSPID VALVE: "
        + rng.choice(
            (
                "Normal tricuspid valve leaflets with trivial TR.",
                "Mild [1+] TR. Borderline PA systolic hypertension.",
            )
        ),
        "PULMONIC VALVE/PULMONARY ARTERY: Pulmonic valve not well seen.",
        "PERICARDIUM: "
        + rng.choice(("No pericardial effusion.", "Trivial/physiologic pericardial effusion.")),
        "GENERAL COMMENTS: "
        + rng.choice(
            (
                "Suboptimal image quality - poor echo windows. Definity was given to improve visualization.",
                "Technically adequate study. Echocardiographic results were reviewed by telephone with the houseofficer caring for the patient.",
            )
        ),
        "Conclusions:",
        *[f.capitalize() + "." for f in found],
        rng.choice(
            (
                "Overall left ventricular systolic function is normal (LVEF>55%).",
                "Right ventricular chamber size and free wall motion are normal.",
            )
        )
        if not found
        else "",
        rng.choice(
            (
                "Compared with the prior study (images reviewed) of " + c.date_ph(ctx.time) + ", no change.",
                "No prior study for comparison.",
            )
        ),
    ]
    return _finish_no_sign(ctx, [x for x in lines if x])


# ---- other categories ------------------------------------------------------------------------------


def respiratory(ctx: NoteCtx) -> str:
    rng, sep = ctx.rng, ctx.style.label_sep
    vent = "resp_failure" in ctx.show or rng.random() < 0.3
    lines = [
        f"Respiratory Care{sep}{_intro(ctx)}",
        f"Ventilation Assist{sep}"
        + ("Invasive ventilation" if vent else rng.choice(("Nasal cannula", "BiPAP", "Aerosol mask"))),
        f"Ventilator mode{sep}CMV/ASSIST/AutoFlow, Vt (Set): {rng.choice((400, 450, 500))} mL, RR (Set): {rng.randint(12, 22)}, PEEP: {rng.choice((5, 8, 10))} cmH2O, FiO2: {rng.choice((40, 50, 60))}%"
        if vent
        else f"O2 flow{sep}{rng.randint(2, 6)} L/min",
        f"Breath sounds{sep}" + ", ".join(c.evidence(ctx, "exam", 2) or ["clear"]),
        f"ABG{sep}7.{rng.randint(22, 45)}/{c.lab_value(ctx, 'pCO2')}/{c.lab_value(ctx, 'pO2')}",
        f"Meds{sep}"
        + ", ".join(m for m in c.home_meds(ctx, 0.8) if any(x in m for x in ("NEB", "INH", "CPAP")))
        or f"Meds{sep}albuterol MDI prn",
        f"Plan{sep}"
        + rng.choice(("RSBI in AM", "wean PEEP as tolerated", "continue nebs", "SBT when criteria met")),
    ]
    return _finish(ctx, lines)


def nutrition(ctx: NoteCtx) -> str:
    rng, sep = ctx.rng, ctx.style.label_sep
    adm = ctx.adm or ctx.patient.admissions[-1]
    lines = [
        f"Subjective{sep}{rng.choice(('intubated, unable to obtain', 'reports poor appetite x 1 week', 'tolerating diet'))}",
        "Objective",
        f"Height: {rng.randint(150, 190)} cm, Admit weight: {adm.weight} kg",
        f"Diet order{sep}{rng.choice(('NPO', 'cardiac/diabetic', 'renal', 'regular'))}; "
        + ", ".join(q for q in ctx.patient.quirks if "diet" in q),
        f"Pertinent labs{sep}" + c.lab_panel(ctx, ("Glucose", "BUN", "Cr", "K", "Albumin")),
        f"Pertinent medications{sep}" + ", ".join(c.home_meds(ctx, 0.4)),
        "Assessment of Nutritional Status",
        f"Estimated Nutritional Needs{sep}Calories: {round(adm.weight * 25)}-{round(adm.weight * 30)} (25-30 kcal/kg), Protein: {round(adm.weight * 1.2)} g",
        f"Recommendations{sep}"
        + rng.choice(
            (
                "start TF Replete w/ fiber at 10 mL/hr, advance to goal 55 mL/hr",
                "encourage PO, add supplements TID",
                "check Mg/Phos, monitor for refeeding",
            )
        ),
    ]
    return _finish(ctx, lines)


def general(ctx: NoteCtx, category: str) -> str:
    rng, sep = ctx.rng, ctx.style.label_sep
    lines = [f"{category.strip()} note{sep}{_intro(ctx)}"]
    if category == "Social Work":
        lines += [
            f"Social history{sep}{c.social(ctx)}",
            f"{ctx.patient.social['support']} {c.name_ph(rng)} reached at {c.number_ph(rng)}",
            "Assessment: coping appropriately, support offered",
        ]
    elif category == "Case Management ":
        lines += [
            f"Living situation{sep}{ctx.patient.social['living']} in {c.location_ph(rng)}",
            "Dispo plan: " + rng.choice(("home with services", "rehab screening", "SNF referral sent")),
            ", ".join(c.quirks(ctx)),
        ]
        if ctx.adm is not None and ctx.adm.concerns:  # what case management is there to find
            lines.append(f"Barriers{sep}" + "; ".join(ctx.pick(ctx.adm.concerns, 3)))
    elif category == "Rehab Services":
        lines += [
            "Evaluation: " + (", ".join(c.quirks(ctx)) or "ambulating with assist"),
            f"Strength{sep}{rng.randint(3, 5)}/5 b/l LE",
            "Recommend: " + rng.choice(("PT 3-5x/week", "home with PT", "rehab")),
        ]
    elif category == "Pharmacy":
        lines += [
            f"Allergies{sep}{c.allergies(ctx)}",
            "Medications reviewed: " + "; ".join(c.home_meds(ctx, 1.0)),
            "Recommend renal dosing: " + ", ".join(c.inpatient_meds(ctx, 2)),
        ]
    else:  # General, Consult
        lines += [
            "; ".join(c.evidence(ctx, "symptoms", 2) + c.named(ctx, 0.3)),
            f"Code status{sep}{ctx.adm.code_status if ctx.adm else 'Full code'}",
            "; ".join(c.severity_cues(ctx)),
        ]
    return _finish(ctx, lines)


# ---- discharge summary -----------------------------------------------------------------------------

# the patient-facing instructions real summaries carry, the same for everyone (style, not content)
DISCHARGE_BOILERPLATE = (
    "It was a pleasure taking care of you during your hospitalization. During your stay you were seen "
    "by several teams, and the results of your tests were reviewed with you before you left. Some of "
    "your medications were changed; please review the list below carefully, bring it to every "
    "appointment, and do not take any medication that is not on this list without speaking with your "
    "doctor first. If you were given new prescriptions, fill them today. Avoid alcohol and do not drive "
    "while taking medications that make you sleepy. Resume your usual diet unless you were told "
    "otherwise, drink fluids as directed, and increase your activity slowly. You should see your primary "
    "care doctor within one to two weeks; the appointments that were made for you are listed below. If "
    "an appointment does not suit you, call the number given to change it. Some tests were still pending "
    "when you left the hospital; your doctors will contact you with the results. Please return to the "
    "emergency department or call 911 for fainting, trouble breathing, chest pain, confusion, bleeding "
    "that does not stop, a fever above 101.5 F, or any new symptom that worries you. "
)


def discharge_summary(ctx: NoteCtx) -> str:
    rng = ctx.rng
    adm = ctx.adm
    assert adm is not None
    p = ctx.patient
    sep = ctx.style.label_sep
    ctx.show = list(adm.active)
    ctx.chart = c.chart_stay(p, adm.active, rng, complete=True)  # coders' source: every coded condition
    dx_names = [rng.choice(BY_KEY[k].names) for k in adm.active]
    secondary = [
        f.name
        for f in __import__("clinpred.data.synthetic.conditions", fromlist=["FILLERS"]).FILLERS
        if f.code in adm.codes
    ]
    course = []
    for key in adm.active:
        cond = BY_KEY[key]
        bits = [
            *c.evidence(ctx, "symptoms", 1),
            rng.choice(cond.exam or cond.imaging or cond.procedures or cond.names),
        ]
        meds = [m.line(rng.choice(m.doses)) for m in rng.sample(cond.meds, min(2, len(cond.meds)))]
        course.append(
            f"# {rng.choice(cond.names)}: "
            + ". ".join(bits)
            + ". "
            + (f"Treated with {', '.join(meds)}. " if meds else "")
            + rng.choice(
                (
                    "Improved over the course of the admission.",
                    "Will follow up as an outpatient.",
                    "Remained stable.",
                    "Plan discussed with the patient.",
                )
            )
            + " "
            + rng.choice(cond.procedures or ("",))
        )
    labs_days = []
    for _day in range(min(12, 5 + round(ctx.style.verbosity * 5))):
        labs_days.append(
            f"{c.date_ph(adm.admit)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}AM BLOOD WBC-{c.lab_value(ctx, 'WBC')} Hgb-{c.lab_value(ctx, 'Hgb')} Plt Ct-{c.lab_value(ctx, 'Plt')}"
        )
        labs_days.append(
            f"{c.date_ph(adm.admit)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}AM BLOOD Glucose-{c.lab_value(ctx, 'Glucose')} UreaN-{c.lab_value(ctx, 'BUN')} Creat-{c.lab_value(ctx, 'Cr')} Na-{c.lab_value(ctx, 'Na')} K-{c.lab_value(ctx, 'K')} HCO3-{c.lab_value(ctx, 'HCO3')}"
        )
        labs_days.append(
            f"{c.date_ph(adm.admit)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}AM BLOOD PT-{rng.uniform(11, 16):.1f} INR(PT)-{c.lab_value(ctx, 'INR')} ALT-{c.lab_value(ctx, 'ALT')} TotBili-{c.lab_value(ctx, 'Tbili')} Albumin-{c.lab_value(ctx, 'Albumin')} Lactate-{c.lab_value(ctx, 'Lactate')}"
        )
    # full reads of this stay's studies, pasted in as real discharge summaries do
    studies = [radiology(ctx, rng.choice(DESCRIPTIONS["Radiology"])) for _ in range(rng.randint(3, 5))]
    if rng.random() < 0.6:
        studies.append(echo(ctx))
    if rng.random() < 0.7:
        studies.append(ecg(ctx))
    died = adm.died
    lines = [
        f"Admission Date{sep}{c.date_ph(adm.admit)}              Discharge Date{sep}  {c.date_ph(adm.disch)}",
        "",
        f"Date of Birth{sep} {c.date_ph(p.dob)}             Sex{sep}  {p.gender}",
        "",
        f"Service{sep} {rng.choice(('MEDICINE', 'MICU', 'CCU', 'SURGERY', 'NEUROLOGY'))}",
        "",
        f"Allergies{sep}",
        c.allergies(ctx),
        "",
        f"Attending{sep}{c.name_ph(rng)}",
        "",
        f"Chief Complaint{sep}",
        ", ".join(c.evidence(ctx, "symptoms", 2)) or "weakness",
        "",
        f"Major Surgical or Invasive Procedure{sep}",
        "\n".join(c.evidence(ctx, "procedures", 3)) or "None",
        "",
        f"History of Present Illness{sep}",
        f"{ctx.age} year old {_sex(ctx, False)} with a history of {', '.join(c.pmh(ctx)) or 'no significant medical problems'} who presents "
        f"from {rng.choice(('home', 'rehab', 'an outside hospital', hospital := c.hospital_ph(rng)))} with "
        + ", ".join(c.evidence(ctx, "symptoms", 3))
        + f". In the ED, initial vitals were {c.vitals_line(ctx)}. "
        + "Labs were notable for "
        + c.lab_panel(ctx, ("WBC", "Hgb", "Cr", "Na", "K", "Lactate", "TropT"), ", ")
        + ". "
        + "".join(f"Imaging showed {x}. " for x in c.evidence(ctx, "imaging", 1))
        + f"{p.social['support'].capitalize()} reports {', '.join(c.quirks(ctx, 0.8)) or 'no recent changes'}.",
        "",
        f"Past Medical History{sep}",
        *[f"- {x}" for x in c.pmh(ctx)],
        "",
        f"Social History{sep}",
        c.social(ctx)
        + f". {p.social['support'].capitalize()} {c.name_ph(rng)} ({c.number_ph(rng)}) is the health care proxy.",
        "",
        f"Family History{sep}",
        rng.choice(
            (
                "Father with MI at 60s. Mother with DM.",
                "Noncontributory.",
                "Sister with breast cancer. No family history of sudden death.",
            )
        ),
        "",
        f"Physical Exam{sep}",
        f"Vitals: {c.vitals_line(ctx)}",
        "General: " + rng.choice(("NAD, comfortable", "ill appearing", "intubated, sedated")),
        "HEENT: " + rng.choice(("Sclera anicteric, MMM, oropharynx clear", "dry mucous membranes")),
        "Lungs: " + ", ".join(c.evidence(ctx, "exam", 2) or ["clear to auscultation bilaterally"]),
        "CV: "
        + rng.choice(
            ("regular rate and rhythm, normal S1 + S2, no murmurs", "irregularly irregular, no murmurs")
        ),
        "Abdomen: soft, non-tender, non-distended, bowel sounds present",
        "Ext: " + rng.choice(("warm, well perfused, 2+ pulses, no edema", "trace edema b/l")),
        "",
        f"Pertinent Results{sep}",
        *labs_days,
        *[
            f"{rng.choice(('CXR', 'CT', 'US', 'TTE'))}: {x}"
            for x in c.evidence(ctx, "imaging", 3) + c.evidence(ctx, "echo", 1)
        ],
        "",
        "STUDIES:",
        *studies,
        "",
        f"Brief Hospital Course{sep}",
        f"{ctx.age} yo {_sex(ctx)} admitted with " + ", ".join(dx_names[:2]) + ".",
        *course,
        *[f"# {x}" for x in c.negated(ctx, 2)],
        "",
        f"Chronic issues{sep}",
        *[f"# {x}: continued home regimen, no changes this admission." for x in c.pmh(ctx)],
        "",
        f"Transitional issues{sep}",
        *[
            f"- {x}"
            for x in (
                "Please check chem-7 and CBC at follow-up within one week",
                "Code status this admission: " + adm.code_status,
                f"Contact: {p.social['support']} {c.name_ph(rng)} {c.number_ph(rng)}",
                *[f"follow up {x}" for x in c.evidence(ctx, "procedures", 2)],
                *[f"medication change: {x}" for x in c.inpatient_meds(ctx, 3)],
            )
        ],
        "",
        f"Medications on Admission{sep}",
        *[f"{i + 1}. {m}" for i, m in enumerate(c.home_meds(ctx, 1.0))],
        "",
    ]
    if died:
        lines += [
            "The patient's condition continued to deteriorate despite maximal therapy. After a family meeting, "
            "the patient was made comfort measures only and expired with family at the bedside.",
            "",
            f"Discharge Disposition{sep}",
            "Expired",
            "",
            f"Discharge Diagnosis{sep}",
            *dx_names,
            "",
            f"Discharge Condition{sep}",
            "Expired",
        ]
    else:
        lines += [
            f"Discharge Medications{sep}",
            *[f"{i + 1}. {m}" for i, m in enumerate(c.home_meds(ctx, 1.0) + c.inpatient_meds(ctx, 2))],
            "",
            f"Discharge Disposition{sep}",
            rng.choice(("Home", "Home With Service", "Extended Care")),
            "",
            f"Facility{sep}",
            f"{c.location_ph(rng)} {hospital}" if rng.random() < 0.4 else "",
            "",
            f"Discharge Diagnosis{sep}",
            "Primary: " + "; ".join(dx_names[:2]),
            "Secondary: " + "; ".join(dx_names[2:] + secondary),
            "",
            f"Discharge Condition{sep}",
            rng.choice(
                (
                    "Mental Status: Clear and coherent. Level of Consciousness: Alert and interactive. Activity Status: Ambulatory - Independent.",
                    "stable, ambulating with a walker",
                )
            ),
            "",
            f"Discharge Instructions{sep}",
            f"You were admitted to {c.hospital_ph(rng)} with "
            + ", ".join(c.evidence(ctx, "symptoms", 2) or ["an illness"])
            + ". Please take all of your medications as prescribed and keep your follow up appointments. "
            "Please call your doctor or return to the emergency department if you develop chest pain, shortness of breath, "
            "fever greater than 101, lightheadedness, or any other concerning symptoms. "
            + (
                "Weigh yourself every morning, and call your doctor if your weight goes up more than 3 lbs. "
                if "chf" in adm.active
                else ""
            )
            + ("Check your blood sugars before meals and at bedtime. " if "diabetes" in adm.active else "")
            + DISCHARGE_BOILERPLATE,
            "",
            f"Followup Instructions{sep}",
            f"Provider: {c.name_ph(rng)}, MD Phone:{c.number_ph(rng)} Date/Time:{c.date_ph(adm.disch)} 10:00",
            f"Provider: {c.name_ph(rng)} Phone:{c.number_ph(rng)} Date/Time:{c.date_ph(adm.disch)} 2:30",
        ]
    lines += [
        "",
        "",
        f"                             {c.name_ph(rng)} MD {rng.randrange(1000, 9999)}",
        "",
        f"Completed by:{c.date_ph(adm.disch)}",
    ]
    return _finish_no_sign(ctx, lines)


def write_note(category: str, description: str, ctx: NoteCtx) -> str:
    """The text of one note of a category, in its writer's style."""
    builder: Callable[[NoteCtx], str] | None = {
        "Nursing/other": nursing_other,
        "Nursing": nursing,
        "Physician ": physician,
        "ECG": ecg,
        "Echo": echo,
        "Discharge summary": discharge_summary,
        "Respiratory ": respiratory,
        "Nutrition": nutrition,
    }.get(category)
    if builder is not None:
        return builder(ctx)
    if category == "Radiology":
        return radiology(ctx, description)
    return general(ctx, category)
