"""The synthetic cohort: deterministic, valid MIMIC-III, and with the properties the demo relies on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clinpred.data.labels import BENCHMARK_PHENOTYPES, icd9_table, label_matrix, primary_phenotype
from clinpred.data.mimic3 import SYNTHETIC_MARKER, read_mimic3
from clinpred.data.synthetic import SIZES, generate_cohort
from clinpred.data.synthetic.calibration import (
    CODES_TOLERANCE,
    IN_HOSPITAL_TOLERANCE,
    ONE_YEAR_TOLERANCE,
    READMISSION_TOLERANCE,
    TARGET_CODES_PER_ADMISSION,
    TARGET_IN_HOSPITAL_MORTALITY,
    TARGET_ONE_YEAR_MORTALITY,
    TARGET_READMISSION_30D,
    WORDS_PER_NOTE,
    calibration_figures,
)
from clinpred.data.synthetic.conditions import CONDITIONS, FILLERS, TARGET_PREVALENCE, prevalence_tolerance
from clinpred.data.synthetic.generate import TARGET_NOTE_MIX
from clinpred.data.synthetic.writer import NOTEEVENTS_COLUMNS

TABLES = ("PATIENTS", "ADMISSIONS", "DIAGNOSES_ICD", "D_ICD_DIAGNOSES", "NOTEEVENTS")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("syn") / "tiny", size="tiny", seed=0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's note density on 1,000 patients (half the demo size, for speed): what the calibration
    tests check. Sampling error on a prevalence is about 0.016 at 1,000 patients, well inside the
    tolerances."""
    path = generate_cohort(tmp_path_factory.mktemp("syn") / "demo", size="demo", patients=1000, seed=0)
    return read_mimic3(path, use_cache=False)


@pytest.fixture(scope="module")
def figures(demo):
    return calibration_figures(demo)


def test_same_seed_gives_byte_identical_files_and_another_seed_another_cohort(tiny, tmp_path):
    again = generate_cohort(tmp_path / "again", size="tiny", seed=0)
    other = generate_cohort(tmp_path / "other", size="tiny", seed=1)
    for name in [f"{t}.csv.gz" for t in TABLES] + [SYNTHETIC_MARKER]:
        assert (tiny / name).read_bytes() == (again / name).read_bytes(), name
    assert (tiny / "NOTEEVENTS.csv.gz").read_bytes() != (other / "NOTEEVENTS.csv.gz").read_bytes()
    assert (tiny / "PATIENTS.csv.gz").read_bytes() != (other / "PATIENTS.csv.gz").read_bytes()
    marker = json.loads((tiny / SYNTHETIC_MARKER).read_text())
    assert marker["patients"] == SIZES["tiny"] and marker["seed"] == 0 and marker["size"] == "tiny"


def test_headers_are_quoted_uppercase_v14_columns(tiny):
    import gzip

    with gzip.open(tiny / "NOTEEVENTS.csv.gz", "rt") as f:
        first = f.readline().strip()
    assert first == ",".join(f'"{c}"' for c in NOTEEVENTS_COLUMNS)


def test_reads_back_through_read_mimic3_with_every_invariant(tiny):
    co = read_mimic3(tiny, use_cache=False)
    assert co.synthetic and not co.protected
    assert len(co.patients) == SIZES["tiny"]
    pats, adm, dx, notes = co.patients, co.admissions, co.diagnoses, co.notes
    # keys join
    assert set(adm["subject_id"]) <= set(pats["subject_id"])
    assert set(notes["subject_id"]) <= set(pats["subject_id"])
    assert adm["hadm_id"].is_unique
    hadm_subject = adm.set_index("hadm_id")["subject_id"]
    assert (dx["hadm_id"].map(hadm_subject) == dx["subject_id"]).all(), "diagnoses belong to admissions"
    inpatient = notes[notes["hadm_id"].notna()]
    assert (
        inpatient["hadm_id"].astype("int64").map(hadm_subject).to_numpy() == inpatient["subject_id"]
    ).all()
    # admissions of a patient do not overlap and each lies after birth
    for _, g in adm.groupby("subject_id"):
        g = g.sort_values("admittime")
        assert (g["dischtime"] > g["admittime"]).all()
        assert (g["admittime"].iloc[1:].to_numpy() >= g["dischtime"].iloc[:-1].to_numpy()).all()
    # each inpatient note falls inside its admission (by date where only the date is known)
    a = adm.set_index("hadm_id")
    when = inpatient["time"]
    start = inpatient["hadm_id"].astype("int64").map(a["admittime"]).to_numpy()
    stop = inpatient["hadm_id"].astype("int64").map(a["dischtime"]).to_numpy()
    dated = inpatient["time_is_date"].to_numpy()
    t = when.to_numpy()
    assert ((t >= start) & (t <= stop))[~dated].all()
    day = when.dt.normalize().to_numpy()
    assert ((day >= pd.to_datetime(start).normalize()) & (day <= pd.to_datetime(stop).normalize()))[
        dated
    ].all()
    # nothing after death; death fields consistent
    dod = notes["subject_id"].map(pats.set_index("subject_id")["dod"])
    dead = dod.notna()
    assert (notes.loc[dead, "time"].dt.normalize() <= dod[dead]).all()
    died = adm[adm["hospital_expire_flag"] == 1]
    assert (died["deathtime"] == died["dischtime"]).all()
    assert adm.loc[adm["hospital_expire_flag"] == 0, "deathtime"].isna().all()
    assert (
        died["subject_id"].map(pats.set_index("subject_id")["dod"]) == died["dischtime"].dt.normalize()
    ).all()
    last_adm = adm.groupby("subject_id")["admittime"].max()
    assert (died.set_index("subject_id")["admittime"] == last_adm.reindex(died["subject_id"])).all()
    # categories and dates as in MIMIC-III
    assert notes.loc[notes["category"].isin(["Discharge summary", "ECG", "Echo"]), "time_is_date"].all()
    assert (notes["time"].dt.year.between(2100, 2270)).all()
    assert co.counts["error_notes_dropped"] >= 0
    assert notes["text"].str.contains(r"\[\*\*", regex=True).mean() > 0.3


def test_conditions_have_real_codes_each_in_its_own_benchmark_phenotype():
    table = icd9_table()
    phenotypes = set()
    assert len(CONDITIONS) >= 15
    for cond in CONDITIONS:
        for code in cond.primary_codes + cond.secondary_codes:
            assert table.at[code, "benchmark_phenotype"] == cond.phenotype, (cond.key, code)
        phenotypes.add(cond.phenotype)
    assert len(phenotypes) == len(CONDITIONS) and phenotypes <= set(BENCHMARK_PHENOTYPES)
    for filler in FILLERS:  # the extra codes never add a benchmark label
        assert table.at[filler.code, "benchmark_phenotype"] == ""


def test_all_25_phenotypes_occur_at_their_mimic3_benchmark_prevalence(figures):
    assert set(TARGET_PREVALENCE) == set(BENCHMARK_PHENOTYPES)
    outside = {
        ph: (round(figures["prevalence"][ph], 3), target)
        for ph, target in TARGET_PREVALENCE.items()
        if abs(figures["prevalence"][ph] - target) > prevalence_tolerance(target)
    }
    assert not outside, outside
    assert min(figures["prevalence"].values()) > 0.0
    assert 3.5 <= figures["phenotypes_per_patient"] <= 5.5  # the targets sum to 4.4 per stay


def test_phenotypes_co_occur_as_in_real_icus(demo):
    """Sepsis with shock and renal failure, CKD with hypertensive CKD, CHF with dysrhythmias."""
    labels = label_matrix(demo.diagnoses, list(demo.subject_ids))

    def lift(a: str, b: str) -> float:
        both = (labels[a] & labels[b]).mean()
        return float(both / (labels[a].mean() * labels[b].mean()))

    assert lift("Septicemia (except in labor)", "Shock") > 2.0
    assert lift("Septicemia (except in labor)", "Acute and unspecified renal failure") > 1.3
    assert lift("Chronic kidney disease", "Hypertension with complications and secondary hypertension") > 2.0
    assert lift("Congestive heart failure; nonhypertensive", "Cardiac dysrhythmias") > 1.2


def test_about_eleven_codes_per_admission_with_common_non_phenotype_codes(demo, figures):
    assert abs(figures["codes_per_admission"] - TARGET_CODES_PER_ADMISSION) <= CODES_TOLERANCE
    table = icd9_table()["benchmark_phenotype"]
    other = demo.diagnoses["icd_code"].map(lambda c: table.get(c, "") == "").mean()
    assert 0.35 <= other <= 0.65, other  # about half the codes carry no benchmark phenotype


def test_notes_follow_the_mimic3_category_mix_and_lengths(figures):
    for category, target in TARGET_NOTE_MIX.items():
        got = figures["note_mix"].get(category.strip(), 0.0)
        assert abs(got - target) <= max(0.01, 0.3 * target), (category, got, target)
    assert 0.95 <= figures["discharge_summaries_per_admission"] <= 1.05
    for category, (low, high) in WORDS_PER_NOTE.items():
        assert low <= figures["words_per_note"][category.strip()] <= high, (
            category,
            figures["words_per_note"],
        )


def test_mortality_is_near_mimic3(figures):
    ih, oy = figures["in_hospital_mortality"], figures["one_year_mortality"]
    assert abs(ih - TARGET_IN_HOSPITAL_MORTALITY) <= IN_HOSPITAL_TOLERANCE, ih
    assert abs(oy - TARGET_ONE_YEAR_MORTALITY) <= ONE_YEAR_TOLERANCE, oy


def test_unplanned_30_day_readmissions_occur_and_follow_the_stay_s_content(demo, figures):
    """About 6% of discharges alive are followed by an unplanned admission within 30 days, and the
    notes of the stay carry the risk: TF-IDF embeddings predict it above chance, short of perfect."""
    assert abs(figures["readmission_30d"] - TARGET_READMISSION_30D) <= READMISSION_TOLERANCE, figures[
        "readmission_30d"
    ]
    from clinpred.backends.tfidf import TfidfBackend
    from clinpred.tasks.readmission import ReadmissionConfig, evaluate_readmission
    from clinpred.tasks.result import BootstrapScheme

    text = demo.notes["text"].tolist()
    embeddings = TfidfBackend().fit(text).embed(text)
    config = ReadmissionConfig(bootstrap=BootstrapScheme(n_resamples=0, intervals=False))
    result = evaluate_readmission(demo, embeddings, config=config)
    auroc = result.metrics["auroc"].value
    print(f"readmission {figures['readmission_30d']:.3f}; TF-IDF AUROC {auroc:.3f}, {result.counts}")
    assert (
        result.counts["positives"] >= 30 and result.counts["elective_admissions_not_counted_as_readmissions"]
    )
    assert 0.58 < auroc < 0.9  # the stay's notes carry the risk (0.630 at generator 2.2), with headroom


def _named_in(texts: pd.Series, names: tuple[str, ...]) -> bool:
    low = "\n".join(texts).lower()
    return any(name.lower() in low for name in names)


def test_a_stay_s_notes_chart_the_acute_problems_and_only_some_of_what_is_coded(demo):
    """Generator 2.3: the notes a stay writes before its discharge summary name the acute problems the
    stay is about far more often than the conditions coded from the problem list or a lab value, and
    the discharge summary (what coders read) names every coded condition. Measured on 1,000 demo-density
    patients: acute 0.50, list-coded 0.21 on 2.3; 0.46 and 0.41 on 2.2, where every note could name any
    coded condition and the past-history line named the chronic ones in most notes."""
    from clinpred.data.synthetic.conditions import BY_KEY

    condition_of = {code: c.key for c in CONDITIONS for code in c.primary_codes + c.secondary_codes}
    acute = ("sepsis", "shock", "resp_failure", "stroke", "gi_bleed")
    listed = ("hypertension", "lipids", "electrolytes", "conduction", "complication")
    notes = demo.notes.assign(hadm=demo.notes["hadm_id"].astype("float"))
    by_stay = dict(tuple(notes.groupby("hadm")))
    coded = demo.diagnoses.assign(key=demo.diagnoses["icd_code"].map(condition_of)).dropna(subset=["key"])
    named = {"before": {k: [] for k in acute + listed}, "summary": []}
    for (hadm, key), _ in coded.groupby([coded["hadm_id"].astype("float"), "key"]):
        stay = by_stay.get(hadm)
        if stay is None:
            continue
        summary = stay["category"] == "Discharge summary"
        names = BY_KEY[key].names
        if key in named["before"] and (~summary).sum() >= 3:
            named["before"][key].append(_named_in(stay.loc[~summary, "text"], names))
        if summary.any():
            named["summary"].append(_named_in(stay.loc[summary, "text"], names))
    rate = {k: float(np.mean(v)) for k, v in named["before"].items()}
    acute_rate = float(np.mean([rate[k] for k in acute]))
    listed_rate = float(np.mean([rate[k] for k in listed]))
    print(f"named before the summary: acute {acute_rate:.2f}, list-coded {listed_rate:.2f}; {rate}")
    assert acute_rate > listed_rate + 0.15, rate
    assert np.mean(named["summary"]) > 0.97


def test_early_notes_carry_the_death_hazard(demo):
    """Notes of the first 48 h say more about severity (pressors, lactate, goals of care) in patients
    who die within the year than in those who live: what a text model can find before the landmark."""
    adm, pats, notes = demo.admissions, demo.patients, demo.notes
    first = adm.sort_values("admittime").groupby("subject_id").first()
    dod = pats.set_index("subject_id")["dod"].reindex(first.index)
    died = ((dod - first["admittime"].dt.normalize()).dt.days <= 365).rename("died")
    early = notes[notes["hadm_id"].astype("float").isin(first["hadm_id"].astype(float))]
    start = early["subject_id"].map(first["admittime"])
    early = early[(early["time"] - start) <= pd.Timedelta(hours=48)]
    cues = r"pressor|levophed|norepinephrine|lactate [4-9]|goals of care|critically ill|intubated|CMO"
    share = early["text"].str.contains(cues, regex=True).groupby(early["subject_id"]).mean()
    by = share.groupby(died.reindex(share.index)).mean()
    print(f"share of early notes with severity cues: died {by[True]:.3f}, lived {by[False]:.3f}")
    assert by[True] > by[False] + 0.1, by


def test_demo_size_gives_1000_evaluation_patients():
    from clinpred.data.splits import SplitConfig

    assert round(SIZES["demo"] * SplitConfig().evaluation_fraction) >= 1000


def test_tfidf_logistic_regression_finds_diagnoses_with_headroom(demo):
    """Patient-level macro-AUROC over phenotypes from non-discharge notes: above chance, not perfect."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold, cross_val_predict

    notes = demo.without_categories(["Discharge summary"]).notes
    docs = notes.groupby("subject_id")["text"].apply("\n".join)
    labels = label_matrix(demo.diagnoses, list(docs.index))
    labels = labels.loc[:, labels.sum() >= 10]
    x = TfidfVectorizer(min_df=2, max_features=20000, sublinear_tf=True).fit_transform(docs.to_numpy())
    folds = KFold(5, shuffle=True, random_state=0)
    aucs = []
    for col in labels.columns:
        y = labels[col].to_numpy()
        p = cross_val_predict(LogisticRegression(max_iter=1000), x, y, cv=folds, method="predict_proba")[:, 1]
        aucs.append(roc_auc_score(y, p))
    macro = float(np.mean(aucs))
    print(f"TF-IDF + LR macro-AUROC over {len(aucs)} phenotypes: {macro:.3f}")
    assert 0.70 <= macro <= 0.96, macro


def test_minilm_geometry_is_dominated_by_style_not_phenotype(demo, minilm_path):
    """Silhouette (cosine) of off-the-shelf note embeddings: by category > by primary phenotype."""
    from sentence_transformers import SentenceTransformer
    from sklearn.metrics import silhouette_score

    notes = demo.notes.sample(n=500, random_state=0)
    model = SentenceTransformer(str(minilm_path), device="cpu")
    emb = model.encode(notes["text"].tolist(), batch_size=32, normalize_embeddings=True)
    primary = primary_phenotype(demo.diagnoses, list(demo.subject_ids))
    by_phenotype = notes["subject_id"].map(primary).to_numpy()
    s_category = silhouette_score(emb, notes["category"].to_numpy(), metric="cosine")
    s_phenotype = silhouette_score(emb, by_phenotype, metric="cosine")
    print(f"silhouette by category {s_category:.3f}, by primary phenotype {s_phenotype:.3f}")
    assert s_category > s_phenotype + 0.05


def test_cli_writes_a_cohort_and_rejects_a_bad_out(cli, tmp_path):
    done = cli("synth", "--size", "tiny", "--seed", "1", "--out", str(tmp_path / "a"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert read_mimic3(tmp_path / "a", use_cache=False).synthetic
    few = cli("synth", "--patients", "7", "--out", str(tmp_path / "b"), "--quiet")
    assert few.returncode == 0, few.stderr
    assert len(read_mimic3(tmp_path / "b", use_cache=False).patients) == 7
    again = cli("synth", "--size", "tiny", "--out", str(tmp_path / "a"))
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
    (tmp_path / "file").write_text("x")
    blocked = cli("synth", "--out", str(tmp_path / "file" / "sub"))
    assert (
        blocked.returncode == 2 and "which is a file" in blocked.stderr and "Traceback" not in blocked.stderr
    )
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no temporary directory left behind"
