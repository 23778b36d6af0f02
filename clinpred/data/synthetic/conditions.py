"""The clinical model: conditions with real ICD-9 codes and the indirect evidence each leaves in notes.

Each condition's codes fall into exactly one CCS benchmark phenotype (checked by the tests against
``clinpred.data.labels.icd9_table()``), so a patient's phenotype labels are exactly the conditions
the generator gave them. Prevalence and co-occurrence follow a small log-odds model: a base rate, an
age effect, and boosts from conditions sampled earlier (heart failure with atrial fibrillation and
chronic kidney disease; sepsis with acute kidney injury and respiratory failure; cirrhosis with GI
bleeding; diabetes with hypertension and lipid disorders). The evidence (medications with doses,
lab shifts, vital-sign shifts, exam, imaging, ECG and echo findings, procedures, symptoms) is what
notes show; the condition's name appears only sometimes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# name -> (low, high, decimals, unit): the normal range a lab value is drawn from when nothing shifts it
NORMAL_LABS: dict[str, tuple[float, float, int, str]] = {
    "Na": (136, 143, 0, "mEq/L"),
    "K": (3.7, 4.7, 1, "mEq/L"),
    "Cl": (99, 106, 0, "mEq/L"),
    "HCO3": (23, 28, 0, "mEq/L"),
    "BUN": (9, 19, 0, "mg/dL"),
    "Cr": (0.7, 1.1, 1, "mg/dL"),
    "Glucose": (82, 128, 0, "mg/dL"),
    "WBC": (5.1, 9.6, 1, "K/uL"),
    "Hgb": (11.8, 14.6, 1, "g/dL"),
    "Plt": (170, 340, 0, "K/uL"),
    "INR": (1.0, 1.2, 1, ""),
    "Lactate": (0.8, 1.6, 1, "mmol/L"),
    "TropT": (0.01, 0.01, 2, "ng/mL"),
    "Tbili": (0.3, 1.0, 1, "mg/dL"),
    "Albumin": (3.5, 4.4, 1, "g/dL"),
    "proBNP": (60, 340, 0, "pg/mL"),
    "ALT": (12, 38, 0, "IU/L"),
    "HbA1c": (5.1, 5.7, 1, "%"),
    "LDL": (70, 125, 0, "mg/dL"),
    "pCO2": (36, 44, 0, "mmHg"),
    "pO2": (82, 104, 0, "mmHg"),
}
# name -> (low, high) of the normal range of each vital sign
NORMAL_VITALS: dict[str, tuple[float, float]] = {
    "T": (36.6, 37.4),
    "HR": (66, 92),
    "SBP": (112, 138),
    "DBP": (58, 80),
    "RR": (13, 19),
    "SpO2": (95, 99),
}


@dataclass(frozen=True)
class Med:
    """A medication as notes write it: drug, dose choices (one fixed per patient), route, frequency."""

    drug: str
    doses: tuple[str, ...]
    route: str
    freq: str

    def line(self, dose: str) -> str:
        return f"{self.drug} {dose} {self.route} {self.freq}".replace("  ", " ")


@dataclass(frozen=True)
class Condition:
    """One condition: its codes, its place in the co-occurrence model and its evidence in notes."""

    key: str
    phenotype: str
    primary_codes: tuple[str, ...]  # one is fixed per patient: the code it is coded as
    secondary_codes: tuple[str, ...]  # sometimes coded alongside, same phenotype
    chronic: bool  # chronic: present from onset on; acute: active in some admissions only
    base_logit: float
    age_slope: float  # log-odds per decade above 65
    boosts: dict[str, float]  # key of an earlier condition -> log-odds added when present
    acuity: int  # coding order within an admission: higher comes first
    hazard: float  # added to the log death hazard when active (scaled by severity)
    names: tuple[str, ...]  # outright mentions
    meds: tuple[Med, ...]
    labs: dict[str, tuple[float, float]] = field(default_factory=dict)  # lab -> value at severity 0, 1
    vitals: dict[str, float] = field(default_factory=dict)  # vital -> shift at severity 1
    exam: tuple[str, ...] = ()
    imaging: tuple[str, ...] = ()
    ecg: tuple[str, ...] = ()
    echo: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()
    symptoms: tuple[str, ...] = ()
    negations: tuple[str, ...] = ()  # how a note rules it out when it is absent
    devices: tuple[str, ...] = ()  # devices this condition tends to bring


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        key="hypertension",
        phenotype="Essential hypertension",
        primary_codes=("4019",),
        secondary_codes=(),
        chronic=True,
        base_logit=-0.037,
        age_slope=0.35,
        boosts={},
        acuity=1,
        hazard=0.0,
        names=("HTN", "hypertension", "essential hypertension"),
        meds=(
            Med("amlodipine", ("5 mg", "10 mg", "2.5 mg"), "PO", "daily"),
            Med("lisinopril", ("10 mg", "20 mg", "40 mg", "5 mg"), "PO", "daily"),
            Med("hydrochlorothiazide", ("12.5 mg", "25 mg"), "PO", "daily"),
        ),
        vitals={"SBP": 38, "DBP": 16},
        exam=("hypertensive on arrival, BP improved with home meds",),
        symptoms=("headache", "no chest pain"),
        negations=("BP well controlled off antihypertensives",),
    ),
    Condition(
        key="diabetes",
        phenotype="Diabetes mellitus without complication",
        primary_codes=("25000",),
        secondary_codes=(),
        chronic=True,
        base_logit=-1.479,
        age_slope=0.1,
        boosts={"hypertension": 0.9},
        acuity=1,
        hazard=0.1,
        names=("DM2", "type 2 diabetes", "diabetes mellitus"),
        meds=(
            Med("metformin", ("500 mg", "1000 mg", "850 mg"), "PO", "BID"),
            Med("insulin glargine", ("18 units", "24 units", "32 units", "12 units"), "SC", "qHS"),
            Med("insulin lispro sliding scale", ("",), "SC", "QACHS"),
        ),
        labs={"Glucose": (168, 342), "HbA1c": (7.4, 10.8)},
        exam=("decreased monofilament sensation bilateral feet",),
        procedures=("fingersticks QACHS, covered per insulin sliding scale",),
        symptoms=("polyuria", "blurry vision"),
        negations=("no known history of diabetes, FS glucose within normal limits",),
    ),
    Condition(
        key="lipids",
        phenotype="Disorders of lipid metabolism",
        primary_codes=("2724", "2720", "2722"),
        secondary_codes=(),
        chronic=True,
        base_logit=-1.09,
        age_slope=0.15,
        boosts={"diabetes": 0.9, "hypertension": 0.7},
        acuity=0,
        hazard=0.0,
        names=("hyperlipidemia", "HLD", "hypercholesterolemia"),
        meds=(
            Med("atorvastatin", ("40 mg", "80 mg", "20 mg"), "PO", "daily"),
            Med("simvastatin", ("20 mg", "40 mg"), "PO", "qHS"),
        ),
        labs={"LDL": (152, 214)},
        exam=("xanthelasma noted bilateral eyelids",),
        negations=("lipid panel unremarkable",),
    ),
    Condition(
        key="cad",
        phenotype="Coronary atherosclerosis and other heart disease",
        primary_codes=("41401", "41400"),
        secondary_codes=("412", "V4581"),
        chronic=True,
        base_logit=-1.1,
        age_slope=0.4,
        boosts={"lipids": 0.9, "diabetes": 0.5, "hypertension": 0.5},
        acuity=2,
        hazard=0.2,
        names=("CAD", "coronary artery disease"),
        meds=(
            Med("aspirin", ("81 mg", "325 mg"), "PO", "daily"),
            Med("clopidogrel", ("75 mg",), "PO", "daily"),
            Med("metoprolol succinate", ("25 mg", "50 mg", "100 mg"), "PO", "daily"),
            Med("nitroglycerin", ("0.4 mg",), "SL", "q5min PRN chest pain"),
        ),
        exam=("well healed midline sternotomy scar",),
        imaging=("coronary artery calcifications", "sternotomy wires intact"),
        ecg=("Q waves in the inferior leads consistent with prior infarct",),
        echo=("regional wall motion abnormality: hypokinesis of the inferior wall",),
        procedures=("s/p CABG x3 (LIMA-LAD, SVG-OM, SVG-RCA)", "s/p DES to LAD"),
        symptoms=("exertional chest pressure relieved by rest",),
        negations=("no known coronary disease, denies exertional chest pain",),
    ),
    Condition(
        key="ami",
        phenotype="Acute myocardial infarction",
        primary_codes=("41071", "41041"),
        secondary_codes=(),
        chronic=False,
        base_logit=-2.447,
        age_slope=0.2,
        boosts={"cad": 1.3, "diabetes": 0.3},
        acuity=8,
        hazard=0.7,
        names=("NSTEMI", "acute MI", "STEMI"),
        meds=(
            Med("heparin drip", ("per ACS nomogram",), "IV", "continuous"),
            Med("atorvastatin", ("80 mg",), "PO", "daily"),
            Med("ticagrelor", ("90 mg",), "PO", "BID"),
        ),
        labs={"TropT": (0.35, 4.6)},
        vitals={"HR": 18},
        ecg=("ST depressions in V4-V6", "ST elevations in II, III, aVF with reciprocal changes in I, aVL"),
        echo=("new anterior wall hypokinesis, LVEF 35-40%",),
        procedures=("cardiac cath: 95% mid LAD lesion, DES placed", "taken emergently to the cath lab"),
        symptoms=("substernal chest pressure radiating to the left arm", "diaphoresis"),
        negations=("troponins negative x3, ACS ruled out",),
    ),
    Condition(
        key="chf",
        phenotype="Congestive heart failure; nonhypertensive",
        primary_codes=("4280", "42823", "42833"),
        secondary_codes=("42822", "42843"),
        chronic=True,
        base_logit=-1.427,
        age_slope=0.35,
        boosts={"cad": 1.0, "hypertension": 0.5, "ami": 0.8},
        acuity=5,
        hazard=0.45,
        names=("CHF", "congestive heart failure", "acute on chronic systolic heart failure"),
        meds=(
            Med("furosemide", ("40 mg", "80 mg", "20 mg"), "IV", "BID"),
            Med("carvedilol", ("3.125 mg", "6.25 mg", "12.5 mg", "25 mg"), "PO", "BID"),
            Med("spironolactone", ("25 mg", "12.5 mg"), "PO", "daily"),
        ),
        labs={"proBNP": (2400, 18500), "Na": (134, 126)},
        vitals={"RR": 7, "SpO2": -5},
        exam=(
            "JVP elevated to the angle of the jaw",
            "bibasilar crackles",
            "2+ pitting edema to the knees bilaterally",
            "S3 gallop",
        ),
        imaging=(
            "cardiomegaly with pulmonary vascular congestion",
            "interstitial edema and small bilateral effusions",
            "cephalization of the pulmonary vasculature",
        ),
        echo=("severely depressed LV systolic function, LVEF 20-25%", "dilated LV, global hypokinesis"),
        procedures=("diuresed with lasix gtt, net negative 1.8 L", "strict I/Os, daily weights"),
        symptoms=("orthopnea, sleeps on 3 pillows", "dyspnea on exertion", "weight gain of 4 kg"),
        negations=("no evidence of pulmonary edema", "no JVD, no peripheral edema"),
    ),
    Condition(
        key="afib",
        phenotype="Cardiac dysrhythmias",
        primary_codes=("42731", "42732"),
        secondary_codes=("42789",),
        chronic=True,
        base_logit=-0.966,
        age_slope=0.45,
        boosts={"chf": 1.2, "hypertension": 0.3},
        acuity=3,
        hazard=0.15,
        names=("AFib", "atrial fibrillation", "afib with RVR"),
        meds=(
            Med("warfarin", ("5 mg", "2.5 mg", "3 mg", "7.5 mg"), "PO", "daily"),
            Med("diltiazem", ("30 mg", "60 mg"), "PO", "QID"),
            Med("apixaban", ("5 mg", "2.5 mg"), "PO", "BID"),
        ),
        labs={"INR": (2.1, 3.6)},
        vitals={"HR": 38},
        exam=("irregularly irregular rhythm",),
        ecg=("atrial fibrillation with rapid ventricular response", "atrial fibrillation, controlled rate"),
        echo=("moderately dilated left atrium",),
        procedures=("rate controlled with IV diltiazem boluses then gtt",),
        symptoms=("palpitations",),
        negations=("sinus rhythm throughout, no ectopy on tele",),
    ),
    Condition(
        key="ckd",
        phenotype="Chronic kidney disease",
        primary_codes=("5859", "5853", "5854"),
        secondary_codes=(),
        chronic=True,
        base_logit=-2.441,
        age_slope=0.25,
        boosts={"diabetes": 0.9, "hypertension": 0.7, "chf": 0.9},
        acuity=2,
        hazard=0.25,
        names=("CKD", "chronic kidney disease"),
        meds=(
            Med("sevelamer", ("800 mg", "1600 mg"), "PO", "TID with meals"),
            Med("calcitriol", ("0.25 mcg",), "PO", "daily"),
            Med("epoetin alfa", ("4000 units", "10000 units"), "SC", "weekly"),
        ),
        labs={"Cr": (1.9, 3.9), "BUN": (34, 72), "Hgb": (10.4, 8.6), "K": (4.8, 5.5)},
        exam=("L forearm AV fistula with good thrill and bruit",),
        procedures=("renal following, baseline Cr 2.1",),
        negations=("renal function at baseline, no history of kidney disease",),
    ),
    Condition(
        key="copd",
        phenotype="Chronic obstructive pulmonary disease and bronchiectasis",
        primary_codes=("496", "49121"),
        secondary_codes=("4918",),
        chronic=True,
        base_logit=-1.557,
        age_slope=0.2,
        boosts={},
        acuity=3,
        hazard=0.3,
        names=("COPD", "COPD exacerbation", "emphysema"),
        meds=(
            Med("tiotropium", ("18 mcg",), "INH", "daily"),
            Med("albuterol-ipratropium nebs", ("3 mL",), "NEB", "q6h"),
            Med("prednisone", ("40 mg", "60 mg"), "PO", "daily"),
            Med("fluticasone-salmeterol", ("250/50 mcg", "500/50 mcg"), "INH", "BID"),
        ),
        labs={"pCO2": (52, 74), "HCO3": (31, 36)},
        vitals={"SpO2": -6, "RR": 6},
        exam=("diffuse expiratory wheezes, prolonged expiratory phase", "barrel chest, poor air movement"),
        imaging=("hyperinflated lungs with flattened hemidiaphragms", "emphysematous changes"),
        procedures=("on home O2 2L NC", "PFTs: FEV1 38% predicted"),
        symptoms=("productive cough with increased sputum", "worsening dyspnea over 3 days"),
        negations=("lungs clear bilaterally, no wheezes",),
    ),
    Condition(
        key="pneumonia",
        phenotype="Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
        primary_codes=("486", "4829", "481"),
        secondary_codes=("48241",),
        chronic=False,
        base_logit=-1.68,
        age_slope=0.15,
        boosts={"copd": 1.0},
        acuity=6,
        hazard=0.4,
        names=("PNA", "pneumonia", "HCAP", "RLL pneumonia"),
        meds=(
            Med("vancomycin", ("1 g", "1250 mg", "1.5 g"), "IV", "q12h"),
            Med("piperacillin-tazobactam", ("4.5 g",), "IV", "q8h"),
            Med("ceftriaxone", ("1 g",), "IV", "q24h"),
            Med("azithromycin", ("500 mg",), "IV", "q24h"),
        ),
        labs={"WBC": (13.6, 22.4)},
        vitals={"T": 1.6, "RR": 8, "SpO2": -6},
        exam=(
            "rhonchi over the right lower lobe",
            "egophony at the right base",
            "coarse breath sounds L base",
        ),
        imaging=(
            "right lower lobe consolidation",
            "new left retrocardiac opacity concerning for pneumonia",
            "multifocal airspace opacities",
        ),
        procedures=("sputum cx sent: GPCs in clusters", "induced sputum sent"),
        symptoms=("fever and productive cough with rusty sputum", "pleuritic chest pain"),
        negations=("no focal consolidation to suggest pneumonia", "no infiltrate on CXR"),
    ),
    Condition(
        key="sepsis",
        phenotype="Septicemia (except in labor)",
        primary_codes=("0389", "99591", "03811"),
        secondary_codes=("99592",),
        chronic=False,
        base_logit=-1.795,
        age_slope=0.1,
        boosts={"pneumonia": 1.4, "diabetes": 0.3},
        acuity=9,
        hazard=0.8,
        names=("sepsis", "urosepsis", "severe sepsis", "septic"),
        meds=(
            Med("meropenem", ("1 g", "500 mg"), "IV", "q8h"),
            Med("vancomycin", ("1 g", "1250 mg"), "IV", "q12h"),
            Med("cefepime", ("2 g",), "IV", "q12h"),
        ),
        labs={"WBC": (15.8, 29.5), "Lactate": (2.6, 7.4)},
        vitals={"T": 1.9, "HR": 30, "SBP": -30, "DBP": -14},
        exam=("warm, flushed extremities", "rigors on arrival"),
        procedures=("blood cultures x2 drawn prior to abx", "30 cc/kg IVF bolus given in ED"),
        symptoms=("fevers, chills and confusion", "rigors at home"),
        negations=("afebrile, cultures no growth to date, low suspicion for infection",),
    ),
    Condition(
        key="aki",
        phenotype="Acute and unspecified renal failure",
        primary_codes=("5849", "5845"),
        secondary_codes=(),
        chronic=False,
        base_logit=-1.701,
        age_slope=0.15,
        boosts={"sepsis": 1.7, "ckd": 1.0, "chf": 0.6},
        acuity=6,
        hazard=0.45,
        names=("AKI", "acute renal failure", "ARF", "ATN"),
        meds=(Med("sodium bicarbonate", ("650 mg", "1300 mg"), "PO", "TID"),),
        labs={"Cr": (2.2, 5.6), "BUN": (42, 96), "K": (5.1, 6.4), "HCO3": (19, 14)},
        exam=("dry mucous membranes",),
        imaging=("renal US: no hydronephrosis",),
        procedures=("UOP < 20 cc/hr overnight, foley flushed", "renal consulted re: CVVH"),
        symptoms=("decreased urine output",),
        negations=("creatinine stable at baseline", "good UOP, no renal issues"),
        devices=("R femoral HD line",),
    ),
    Condition(
        key="resp_failure",
        phenotype="Respiratory failure; insufficiency; arrest (adult)",
        primary_codes=("51881", "51884"),
        secondary_codes=("51851",),
        chronic=False,
        base_logit=-1.904,
        age_slope=0.1,
        boosts={"pneumonia": 1.5, "sepsis": 1.0, "copd": 1.0, "chf": 0.6},
        acuity=7,
        hazard=0.7,
        names=(
            "hypoxemic respiratory failure",
            "acute respiratory failure",
            "hypercarbic respiratory failure",
        ),
        meds=(
            Med("propofol", ("20 mcg/kg/min", "40 mcg/kg/min"), "IV", "gtt"),
            Med("fentanyl", ("50 mcg/hr", "100 mcg/hr"), "IV", "gtt"),
        ),
        labs={"pO2": (64, 52), "pCO2": (49, 68)},
        vitals={"SpO2": -9, "RR": 10},
        exam=("intubated, sedated, breathing over the vent", "accessory muscle use"),
        imaging=("ETT 4 cm above the carina", "ET tube in appropriate position, NGT below the diaphragm"),
        procedures=("intubated for hypoxemia", "on AC 450 x 18, PEEP 10, FiO2 60%", "SBT failed this AM"),
        symptoms=("severe respiratory distress",),
        negations=("protecting airway, on room air", "no respiratory distress"),
        devices=("ETT", "OGT"),
    ),
    Condition(
        key="shock",
        phenotype="Shock",
        primary_codes=("78552", "78551", "78559"),
        secondary_codes=(),
        chronic=False,
        base_logit=-2.929,
        age_slope=0.05,
        boosts={"sepsis": 2.0, "ami": 1.4, "gi_bleed": 0.8},
        acuity=10,
        hazard=1.0,
        names=("septic shock", "shock", "cardiogenic shock"),
        meds=(
            Med("norepinephrine", ("0.08 mcg/kg/min", "0.15 mcg/kg/min", "0.25 mcg/kg/min"), "IV", "gtt"),
            Med("vasopressin", ("0.04 units/min",), "IV", "gtt"),
            Med("hydrocortisone", ("50 mg",), "IV", "q6h"),
        ),
        labs={"Lactate": (3.8, 9.6)},
        vitals={"SBP": -40, "DBP": -20, "HR": 28},
        exam=("cool mottled extremities", "cap refill > 3 sec"),
        procedures=("R IJ CVL and L radial A-line placed", "MAP goal > 65 on levophed"),
        symptoms=("hypotension to the 70s",),
        negations=("hemodynamically stable off pressors",),
        devices=("R IJ CVL", "L radial arterial line"),
    ),
    Condition(
        key="cirrhosis",
        phenotype="Other liver diseases",
        primary_codes=("5715",),
        secondary_codes=("5723", "5722"),
        chronic=True,
        base_logit=-1.98,
        age_slope=-0.2,
        boosts={},
        acuity=4,
        hazard=0.6,
        names=("cirrhosis", "ESLD", "decompensated cirrhosis"),
        meds=(
            Med("lactulose", ("30 mL",), "PO", "TID titrate to 3-4 BMs"),
            Med("rifaximin", ("550 mg",), "PO", "BID"),
            Med("nadolol", ("20 mg", "40 mg"), "PO", "daily"),
        ),
        labs={"Tbili": (2.4, 9.8), "INR": (1.5, 2.6), "Albumin": (2.7, 1.9), "Plt": (88, 46)},
        exam=("scleral icterus", "distended abdomen with shifting dullness", "asterixis", "spider angiomata"),
        imaging=("nodular liver contour with splenomegaly and moderate ascites",),
        procedures=("diagnostic paracentesis: 3 L removed, no SBP", "MELD 24"),
        symptoms=("increasing abdominal girth", "confusion, sleep-wake reversal"),
        negations=("LFTs within normal limits", "no stigmata of chronic liver disease"),
    ),
    Condition(
        key="gi_bleed",
        phenotype="Gastrointestinal hemorrhage",
        primary_codes=("5789", "5780", "4560"),
        secondary_codes=("5781",),
        chronic=False,
        base_logit=-2.771,
        age_slope=0.1,
        boosts={"cirrhosis": 2.3, "afib": 0.5},
        acuity=8,
        hazard=0.5,
        names=("GI bleed", "UGIB", "variceal bleed"),
        meds=(
            Med("pantoprazole", ("40 mg",), "IV", "BID"),
            Med("octreotide", ("50 mcg/hr",), "IV", "gtt"),
        ),
        labs={"Hgb": (8.4, 5.9), "BUN": (38, 64)},
        vitals={"HR": 24, "SBP": -22},
        exam=("guaiac positive maroon stool on rectal", "pale conjunctivae"),
        procedures=(
            "EGD: 2 columns of grade II varices, banded x3",
            "transfused 2u PRBC",
            "2 large bore PIVs",
        ),
        symptoms=("coffee ground emesis", "melena x 2 days"),
        negations=("stool guaiac negative, Hct stable", "no hematemesis or melena"),
    ),
    Condition(
        key="stroke",
        phenotype="Acute cerebrovascular disease",
        primary_codes=("43491", "431", "43411"),
        secondary_codes=(),
        chronic=False,
        base_logit=-2.901,
        age_slope=0.35,
        boosts={"afib": 1.0, "hypertension": 0.4},
        acuity=9,
        hazard=0.7,
        names=("CVA", "acute ischemic stroke", "ICH"),
        meds=(
            Med("aspirin", ("325 mg",), "PR", "daily"),
            Med("nicardipine", ("2.5 mg/hr", "5 mg/hr"), "IV", "gtt titrate SBP < 160"),
        ),
        vitals={"SBP": 30},
        exam=("R facial droop, R arm drift, expressive aphasia", "L hemiparesis 2/5, L neglect"),
        imaging=("CT head: L MCA territory hypodensity", "acute infarct in the left MCA territory on DWI"),
        procedures=("neuro checks q1h", "bedside swallow eval failed, NPO"),
        symptoms=("acute onset word finding difficulty", "sudden L-sided weakness"),
        negations=("no focal neuro deficits, moving all extremities", "CT head negative for acute process"),
    ),
    Condition(
        key="electrolytes",
        phenotype="Fluid and electrolyte disorders",
        primary_codes=("2761", "2767", "2762", "2768"),
        secondary_codes=("2760",),
        chronic=False,
        base_logit=-1.236,
        age_slope=0.1,
        boosts={"aki": 1.0, "chf": 0.5, "cirrhosis": 0.8, "sepsis": 0.6},
        acuity=3,
        hazard=0.15,
        names=("hyponatremia", "hyperkalemia", "metabolic acidosis"),
        meds=(
            Med("potassium chloride", ("40 mEq", "20 mEq"), "PO", "x1"),
            Med("magnesium sulfate", ("2 g",), "IV", "x1"),
            Med("fluid restriction", ("1.5 L",), "", "daily"),
        ),
        labs={"Na": (129, 119), "K": (3.1, 2.6), "HCO3": (19, 13)},
        procedures=("lytes repleted per sliding scale", "Na checks q6h"),
        symptoms=("generalized weakness and muscle cramps",),
        negations=("lytes WNL, no repletion needed",),
    ),
    Condition(
        key="pleural",
        phenotype="Pleurisy; pneumothorax; pulmonary collapse",
        primary_codes=("5119", "5180"),
        secondary_codes=("51189",),
        chronic=False,
        base_logit=-2.674,
        age_slope=0.1,
        boosts={"chf": 1.0, "pneumonia": 1.1, "cirrhosis": 0.6},
        acuity=2,
        hazard=0.1,
        names=("pleural effusion", "atelectasis"),
        meds=(),
        vitals={"SpO2": -3},
        exam=("decreased breath sounds at the R base, dull to percussion",),
        imaging=("moderate right pleural effusion with adjacent atelectasis", "left lower lobe collapse"),
        procedures=("thoracentesis: 1.2 L straw colored fluid, transudative by Light's",),
        symptoms=("dyspnea worse lying flat on the right",),
        negations=("no pleural effusion or pneumothorax", "no effusion"),
        devices=("R pigtail chest tube",),
    ),
    Condition(
        key="complication",
        phenotype="Complications of surgical procedures or medical care",
        primary_codes=("99859", "99811", "9971", "99731", "99889"),
        secondary_codes=("9982", "99812"),
        chronic=False,
        base_logit=-1.31,
        age_slope=0.05,
        boosts={"sepsis": 0.4, "resp_failure": 0.6, "cad": 0.4},
        acuity=5,
        hazard=0.35,
        names=("post-op complication", "procedural complication", "VAP", "post-procedure bleed"),
        meds=(
            Med("cefazolin", ("2 g",), "IV", "q8h"),
            Med("vancomycin", ("1 g",), "IV", "q12h"),
        ),
        labs={"WBC": (12.8, 19.6), "Hgb": (9.1, 7.2)},
        vitals={"T": 1.1, "HR": 14},
        exam=("surgical incision erythematous with purulent drainage", "hematoma at the groin access site"),
        imaging=("fluid collection at the operative site, concerning for abscess",),
        procedures=(
            "wound opened and packed at bedside",
            "surgery consulted re: washout",
            "transfused 1u PRBC for post-op bleed",
        ),
        symptoms=("increasing pain at the incision", "oozing from the access site"),
        negations=("incision clean, dry and intact", "access site without hematoma"),
        devices=("JP drain",),
    ),
    Condition(
        key="conduction",
        phenotype="Conduction disorders",
        primary_codes=("4264", "42611", "4260", "4263"),
        secondary_codes=("42613",),
        chronic=True,
        base_logit=-2.963,
        age_slope=0.35,
        boosts={"cad": 0.6, "afib": 0.5, "ami": 0.5},
        acuity=2,
        hazard=0.1,
        names=("RBBB", "first degree AV block", "complete heart block", "LBBB"),
        meds=(Med("atropine", ("0.5 mg",), "IV", "PRN bradycardia"),),
        vitals={"HR": -22},
        exam=("bradycardic, cannon A waves",),
        ecg=(
            "right bundle-branch block",
            "first degree A-V block, PR 260 ms",
            "complete heart block with junctional escape",
            "left bundle-branch block",
        ),
        procedures=("transcutaneous pacing pads on", "EP consulted re: permanent pacemaker"),
        symptoms=("lightheadedness", "near syncope"),
        negations=("PR and QRS intervals normal",),
    ),
    Condition(
        key="diabetes_comp",
        phenotype="Diabetes mellitus with complications",
        primary_codes=("25060", "25040", "25013", "25050", "25080"),
        secondary_codes=(),
        chronic=True,
        base_logit=-2.635,
        age_slope=0.0,
        boosts={"hypertension": 0.6, "ckd": 1.2, "cad": 0.5},
        acuity=3,
        hazard=0.25,
        names=("DKA", "diabetic nephropathy", "diabetic neuropathy", "diabetic foot ulcer"),
        meds=(
            Med("insulin drip", ("per DKA protocol",), "IV", "continuous"),
            Med("insulin glargine", ("20 units", "30 units"), "SC", "qHS"),
            Med("gabapentin", ("300 mg",), "PO", "TID"),
        ),
        labs={"Glucose": (286, 612), "HbA1c": (9.2, 13.1), "HCO3": (17, 9)},
        exam=("chronic ulcer on the plantar R foot", "absent sensation to the ankles bilaterally"),
        procedures=("anion gap closed, transitioned to SC insulin", "podiatry consulted for foot ulcer"),
        symptoms=("polydipsia and vomiting", "burning pain in both feet"),
        negations=("no end-organ complications of diabetes",),
    ),
    Condition(
        key="htn_comp",
        phenotype="Hypertension with complications and secondary hypertension",
        primary_codes=("40391", "40390", "40491", "40301"),
        secondary_codes=(),
        chronic=True,
        base_logit=-2.554,
        age_slope=0.15,
        boosts={"ckd": 2.6, "chf": 0.8, "diabetes_comp": 0.6},
        acuity=2,
        hazard=0.3,
        names=("hypertensive nephropathy", "ESRD on HD", "hypertensive heart and kidney disease"),
        meds=(
            Med("hydralazine", ("25 mg", "50 mg"), "PO", "TID"),
            Med("labetalol", ("200 mg", "400 mg"), "PO", "BID"),
            Med("nifedipine ER", ("60 mg", "90 mg"), "PO", "daily"),
        ),
        labs={"Cr": (3.1, 7.8), "K": (5.0, 6.0)},
        vitals={"SBP": 42, "DBP": 18},
        exam=("R upper arm AV graft, +thrill",),
        procedures=("HD via L arm AVF, 2.5 L UF", "renal following for HD MWF"),
        symptoms=("missed HD session",),
        negations=("no history of renal disease or secondary hypertension",),
        devices=("tunneled HD catheter",),
    ),
    Condition(
        key="lower_resp",
        phenotype="Other lower respiratory disease",
        primary_codes=("51889", "78605", "515", "5198"),
        secondary_codes=(),
        chronic=False,
        base_logit=-2.85,
        age_slope=0.1,
        boosts={"copd": 0.8, "chf": 0.4},
        acuity=2,
        hazard=0.2,
        names=("pulmonary fibrosis", "lung nodule", "ILD"),
        meds=(Med("prednisone", ("20 mg", "40 mg"), "PO", "daily"),),
        vitals={"SpO2": -4, "RR": 4},
        exam=("dry velcro crackles at both bases",),
        imaging=(
            "bibasilar reticular opacities with honeycombing",
            "8 mm RUL pulmonary nodule, follow-up CT advised",
        ),
        procedures=("pulmonary consulted", "CT chest with high-resolution cuts"),
        symptoms=("dry cough", "shortness of breath at rest"),
        negations=("no interstitial lung disease on CT",),
    ),
    Condition(
        key="upper_resp",
        phenotype="Other upper respiratory disease",
        primary_codes=("51919", "4786", "47874", "4785"),
        secondary_codes=(),
        chronic=False,
        base_logit=-3.042,
        age_slope=0.0,
        boosts={"resp_failure": 0.9},
        acuity=2,
        hazard=0.15,
        names=("laryngeal edema", "tracheal stenosis", "vocal cord dysfunction"),
        meds=(
            Med("dexamethasone", ("10 mg", "4 mg"), "IV", "q6h"),
            Med("racemic epinephrine", ("0.5 mL",), "NEB", "q4h PRN stridor"),
        ),
        vitals={"RR": 5},
        exam=("inspiratory stridor", "hoarse voice"),
        imaging=("narrowing of the subglottic trachea",),
        procedures=(
            "ENT scoped at bedside: edematous arytenoids",
            "cuff leak test negative, extubation deferred",
        ),
        symptoms=("hoarseness", "noisy breathing"),
        negations=("no stridor, voice normal",),
    ),
)

BY_KEY: dict[str, Condition] = {c.key: c for c in CONDITIONS}

# The calibration targets: each benchmark phenotype's prevalence in MIMIC-III, from mimic3-benchmarks'
# statistics.md (YerevaNN/mimic3-benchmarks, commit 3f0173e2, "Phenotype classification", train
# prevalence per ICU stay; Harutyunyan et al. 2019). The generator's base log-odds are fitted so that
# the share of patients carrying each label (any admission) matches these; tests/test_synthetic.py
# checks them within PREVALENCE_TOLERANCE.
TARGET_PREVALENCE: dict[str, float] = {
    "Acute and unspecified renal failure": 0.214,
    "Acute cerebrovascular disease": 0.075,
    "Acute myocardial infarction": 0.103,
    "Cardiac dysrhythmias": 0.321,
    "Chronic kidney disease": 0.134,
    "Chronic obstructive pulmonary disease and bronchiectasis": 0.131,
    "Complications of surgical procedures or medical care": 0.207,
    "Conduction disorders": 0.072,
    "Congestive heart failure; nonhypertensive": 0.268,
    "Coronary atherosclerosis and other heart disease": 0.322,
    "Diabetes mellitus with complications": 0.095,
    "Diabetes mellitus without complication": 0.193,
    "Disorders of lipid metabolism": 0.291,
    "Essential hypertension": 0.419,
    "Fluid and electrolyte disorders": 0.269,
    "Gastrointestinal hemorrhage": 0.072,
    "Hypertension with complications and secondary hypertension": 0.133,
    "Other liver diseases": 0.089,
    "Other lower respiratory disease": 0.051,
    "Other upper respiratory disease": 0.040,
    "Pleurisy; pneumothorax; pulmonary collapse": 0.087,
    "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)": 0.139,
    "Respiratory failure; insufficiency; arrest (adult)": 0.181,
    "Septicemia (except in labor)": 0.143,
    "Shock": 0.078,
}


# absolute tolerance: the larger of 0.03 and a quarter of the target (sampling error at 2,000 patients
# is about 0.011 at p = 0.4)
def prevalence_tolerance(target: float) -> float:
    return max(0.03, 0.25 * target)


@dataclass(frozen=True)
class Filler:
    """A code without a benchmark phenotype (MIMIC admissions carry about 11 codes), with its evidence.

    A chronic filler belongs to the patient (``prevalence`` per patient) and is coded in most of their
    stays; an acute one is drawn per admission (``prevalence`` per admission).
    """

    code: str
    name: str
    prevalence: float
    med: Med | None
    acute: bool = False


FILLERS: tuple[Filler, ...] = (
    # chronic: the patient's own history, coded again at most admissions
    Filler("3051", "tobacco use", 0.21, Med("nicotine patch", ("21 mg", "14 mg"), "TD", "daily")),
    Filler("V1582", "history of tobacco use", 0.24, None),
    Filler("311", "depression", 0.21, Med("sertraline", ("50 mg", "100 mg"), "PO", "daily")),
    Filler("30000", "anxiety", 0.12, Med("lorazepam", ("0.5 mg",), "PO", "q8h PRN anxiety")),
    Filler("53081", "GERD", 0.30, Med("omeprazole", ("20 mg", "40 mg"), "PO", "daily")),
    Filler(
        "2449", "hypothyroidism", 0.21, Med("levothyroxine", ("50 mcg", "75 mcg", "88 mcg"), "PO", "daily")
    ),
    Filler("27800", "obesity", 0.15, None),
    Filler("32723", "OSA", 0.12, Med("CPAP", ("10 cm H2O",), "", "qHS")),
    Filler("2749", "gout", 0.09, Med("allopurinol", ("100 mg", "300 mg"), "PO", "daily")),
    Filler("60000", "BPH", 0.11, Med("tamsulosin", ("0.4 mg",), "PO", "qHS")),
    Filler("73300", "osteoporosis", 0.09, Med("alendronate", ("70 mg",), "PO", "weekly")),
    Filler("4240", "mitral regurgitation", 0.15, None),
    Filler("4241", "aortic stenosis", 0.09, None),
    Filler("4439", "peripheral vascular disease", 0.11, None),
    Filler("V5866", "long-term aspirin use", 0.18, None),
    Filler("V1251", "history of DVT", 0.09, None),
    Filler("V1254", "history of TIA", 0.08, None),
    Filler("71590", "osteoarthritis", 0.14, None),
    Filler("2809", "iron deficiency anemia", 0.11, Med("ferrous sulfate", ("325 mg",), "PO", "daily")),
    Filler("V103", "history of breast cancer", 0.04, None),
    Filler("V1046", "history of prostate cancer", 0.04, None),
    Filler("2948", "dementia", 0.08, Med("donepezil", ("5 mg", "10 mg"), "PO", "qHS")),
    Filler("3320", "Parkinson disease", 0.03, Med("carbidopa-levodopa", ("25/100 mg",), "PO", "TID")),
    Filler("2689", "vitamin D deficiency", 0.08, Med("vitamin D3", ("1000 units",), "PO", "daily")),
    # acute: what happened during this stay
    Filler("2859", "anemia", 0.33, None, acute=True),
    Filler("2851", "acute blood loss anemia", 0.18, None, acute=True),
    Filler("5990", "UTI", 0.18, Med("nitrofurantoin", ("100 mg",), "PO", "BID"), acute=True),
    Filler("2875", "thrombocytopenia", 0.14, None, acute=True),
    Filler("4589", "hypotension", 0.12, None, acute=True),
    Filler(
        "2930",
        "delirium",
        0.09,
        Med("haloperidol", ("0.5 mg", "1 mg"), "IV", "q6h PRN agitation"),
        acute=True,
    ),
    Filler("2639", "malnutrition", 0.08, None, acute=True),
    Filler("2869", "coagulopathy", 0.08, None, acute=True),
    Filler("5070", "aspiration pneumonitis", 0.08, None, acute=True),
    Filler("2752", "hypomagnesemia", 0.09, None, acute=True),
    Filler("00845", "C. diff colitis", 0.04, Med("vancomycin PO", ("125 mg",), "PO", "QID"), acute=True),
    Filler("45341", "DVT", 0.04, None, acute=True),
    Filler("7802", "syncope", 0.06, None, acute=True),
    Filler("E8798", "abnormal reaction to a procedure", 0.11, None, acute=True),
    Filler("E8782", "complication of a graft", 0.08, None, acute=True),
    Filler("E9342", "adverse effect of anticoagulants", 0.06, None, acute=True),
    Filler("E8888", "fall", 0.06, None, acute=True),
    Filler("E8497", "accident in a residential institution", 0.06, None, acute=True),
    Filler("V667", "palliative care", 0.0, None, acute=True),  # added with a comfort-care stay
    Filler("V5861", "long-term anticoagulation", 0.0, None),  # added with warfarin/apixaban
    Filler("V4986", "DNR status", 0.0, None),  # added with a DNR code status
)


BASE_SHIFT = -0.4  # one knob for the overall burden: about 3 conditions per patient


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def sample_conditions(rng: random.Random, age: float) -> list[str]:
    """A patient's conditions (keys, in model order): at least one, with the declared co-occurrence."""
    decades = (age - 65.0) / 10.0
    for _ in range(50):
        have: list[str] = []
        for cond in CONDITIONS:
            logit = (
                BASE_SHIFT
                + cond.base_logit
                + cond.age_slope * decades
                + sum(cond.boosts.get(k, 0.0) for k in have)
            )
            if rng.random() < _sigmoid(logit):
                have.append(cond.key)
        if have:
            break
    else:  # pragma: no cover - the chance of fifty empty draws is negligible
        have = ["hypertension"]
    return have
