"""How close a cohort comes to real MIMIC-III: the figures the calibration targets are checked against.

``calibration_figures`` reads a cohort (synthetic or real) and returns plain numbers: each benchmark
phenotype's share of patients, ICD-9 codes per admission, the note mix and mean words per category,
in-hospital and one-year mortality. ``benchmarks/synth.py`` prints them beside their targets and
``tests/test_synthetic.py`` checks them within the stated tolerances.
"""

from __future__ import annotations

from typing import Any

from clinpred.data.labels import BENCHMARK_PHENOTYPES, label_matrix

# MIMIC-III v1.4: 651,047 DIAGNOSES_ICD rows for 58,976 admissions (DESIGN.md)
TARGET_CODES_PER_ADMISSION = 651_047 / 58_976
CODES_TOLERANCE = 1.5
# In-hospital mortality: mimic3-benchmarks statistics.md (commit 3f0173e2), in-hospital mortality task:
# 2,797 deaths in 21,139 ICU stays of at least 48 h (train 2,423 / 17,903, test 374 / 3,236) = 0.132.
TARGET_IN_HOSPITAL_MORTALITY = 2_797 / 21_139
IN_HOSPITAL_TOLERANCE = 0.035
# One-year mortality after the first admission: about a quarter of adult MIMIC-III ICU patients. No
# table giving this exact figure was found to cite here; it is stated as an approximate target.
TARGET_ONE_YEAR_MORTALITY = 0.25
ONE_YEAR_TOLERANCE = 0.06
# 30-day unplanned readmission: the share of discharges alive followed by a non-elective admission of the
# same patient within 30 days. Adult MIMIC-III admissions are in the mid single digits by the definition
# of ClinicalBERT (Huang et al. 2019); no table giving the exact share was found to cite here, so the
# target is approximate, like the one-year mortality's.
TARGET_READMISSION_30D = 0.06
READMISSION_TOLERANCE = 0.03
# Mean words per note, by category: what the generator declares (MIMIC-III: discharge summaries run to
# thousands of words, ECG reads are a few lines, nursing notes short). (low, high) bounds.
WORDS_PER_NOTE: dict[str, tuple[float, float]] = {
    "Discharge summary": (1500, 4000),
    "ECG": (10, 60),
    "Nursing/other": (60, 400),
    "Nursing": (80, 500),
    "Radiology": (100, 500),
    "Physician": (250, 1500),
    "Echo": (100, 500),
}


def calibration_figures(cohort: Any) -> dict[str, Any]:
    """Prevalence per phenotype, codes per admission, notes per category (counts, shares of the notes
    that are not discharge summaries, mean words), discharge summaries per admission, mortality."""
    pats, adm, dx, notes = cohort.patients, cohort.admissions, cohort.diagnoses, cohort.notes
    labels = label_matrix(dx, list(pats["subject_id"]))
    prevalence = {ph: float(labels[ph].mean()) for ph in BENCHMARK_PHENOTYPES}
    codes = dx.groupby("hadm_id").size().reindex(adm["hadm_id"], fill_value=0)
    category = notes["category"].str.strip()  # MIMIC-III writes "Physician ", readers may strip it
    counts = category.value_counts()
    other = counts.drop("Discharge summary", errors="ignore")
    words = notes["text"].str.split().str.len().groupby(category).mean()
    first = adm.groupby("subject_id")["admittime"].min()
    dod = pats.set_index("subject_id")["dod"].reindex(first.index)
    one_year = ((dod - first.dt.normalize()).dt.days <= 365).mean()
    return {
        "patients": len(pats),
        "admissions": len(adm),
        "notes": len(notes),
        "notes_per_patient": len(notes) / max(1, len(pats)),
        "prevalence": prevalence,
        "phenotypes_per_patient": float(labels.sum(axis=1).mean()),
        "codes_per_admission": float(codes.mean()),
        "note_counts": {str(k): int(v) for k, v in counts.items()},
        "note_mix": {str(k): float(v / other.sum()) for k, v in other.items()},
        "discharge_summaries_per_admission": float(counts.get("Discharge summary", 0) / max(1, len(adm))),
        "words_per_note": {str(k): float(v) for k, v in words.items()},
        "in_hospital_mortality": float(adm["hospital_expire_flag"].mean()),
        "one_year_mortality": float(one_year),
        "readmission_30d": _readmission_share(cohort),
    }


def _readmission_share(cohort: Any) -> float:
    """The readmission task's own label (clinpred.tasks.readmission): discharges alive followed within 30
    days by a non-elective admission."""
    from clinpred.tasks.readmission import discharge_outcomes

    units, _ = discharge_outcomes(cohort, 30.0)
    return float(units["y"].mean()) if len(units) else float("nan")


def format_figures(figures: dict[str, Any]) -> str:
    """The figures beside their targets, one per line."""
    from clinpred.data.synthetic.conditions import TARGET_PREVALENCE, prevalence_tolerance
    from clinpred.data.synthetic.generate import TARGET_NOTE_MIX

    f = figures
    out = [
        f"{f['patients']} patients, {f['admissions']} admissions, {f['notes']} notes "
        f"({f['notes_per_patient']:.1f} per patient)",
        f"codes per admission {f['codes_per_admission']:.2f} (target {TARGET_CODES_PER_ADMISSION:.2f} "
        f"+/- {CODES_TOLERANCE}); phenotypes per patient {f['phenotypes_per_patient']:.2f}",
        f"in-hospital mortality {f['in_hospital_mortality']:.3f} (target {TARGET_IN_HOSPITAL_MORTALITY:.3f} "
        f"+/- {IN_HOSPITAL_TOLERANCE}); one-year mortality after the first admission "
        f"{f['one_year_mortality']:.3f} (target {TARGET_ONE_YEAR_MORTALITY:.2f} +/- {ONE_YEAR_TOLERANCE}); "
        f"30-day unplanned readmission {f['readmission_30d']:.3f} (target {TARGET_READMISSION_30D:.2f} "
        f"+/- {READMISSION_TOLERANCE})",
        "phenotype prevalence (patients) vs mimic3-benchmarks statistics.md:",
    ]
    for ph, target in TARGET_PREVALENCE.items():
        got = f["prevalence"][ph]
        flag = "" if abs(got - target) <= prevalence_tolerance(target) else "  OUTSIDE"
        out.append(f"  {got:6.3f}  target {target:.3f} +/- {prevalence_tolerance(target):.3f}  {ph}{flag}")
    out.append(
        f"notes by category (share of non-discharge notes vs MIMIC-III; mean words); "
        f"discharge summaries per admission {f['discharge_summaries_per_admission']:.2f} (MIMIC-III 1.01)"
    )
    for cat, target in TARGET_NOTE_MIX.items():
        cat = cat.strip()
        out.append(
            f"  {f['note_counts'].get(cat, 0):7d}  {f['note_mix'].get(cat, 0.0):.4f}  target {target:.4f}  "
            f"{f['words_per_note'].get(cat, float('nan')):7.0f} words  {cat.strip()}"
        )
    ds = f["words_per_note"].get("Discharge summary", float("nan"))
    out.append(
        f"  {f['note_counts'].get('Discharge summary', 0):7d}  (one per admission)        {ds:7.0f} words  Discharge summary"
    )
    return "\n".join(out)
