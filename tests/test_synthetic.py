"""The synthetic cohort: deterministic, valid MIMIC-III, and with the properties the demo relies on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clinpred.data.labels import BENCHMARK_PHENOTYPES, icd9_table, label_matrix, primary_phenotype
from clinpred.data.mimic3 import SYNTHETIC_MARKER, read_mimic3
from clinpred.data.synthetic import SIZES, generate_cohort
from clinpred.data.synthetic.conditions import CONDITIONS, FILLERS
from clinpred.data.synthetic.writer import NOTEEVENTS_COLUMNS

TABLES = ("PATIENTS", "ADMISSIONS", "DIAGNOSES_ICD", "D_ICD_DIAGNOSES", "NOTEEVENTS")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("syn") / "tiny", size="tiny", seed=0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo size (450 patients): what `clinpred demo` runs on."""
    path = generate_cohort(tmp_path_factory.mktemp("syn") / "demo", size="demo", seed=0)
    return read_mimic3(path, use_cache=False)


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


def test_phenotype_prevalence_falls_inside_the_declared_ranges(demo):
    labels = label_matrix(demo.diagnoses, list(demo.subject_ids))
    per_patient = labels.sum(axis=1)
    assert per_patient.between(1, 5).all(), "1-5 conditions per patient"
    for cond in CONDITIONS:
        share = labels[cond.phenotype].mean()
        low, high = cond.prevalence
        assert low <= share <= high, (cond.key, share, cond.prevalence)


def test_mortality_is_realistic(demo):
    adm, pats = demo.admissions, demo.patients
    in_hospital = adm["hospital_expire_flag"].mean()
    first = adm.groupby("subject_id")["admittime"].min()
    dod = pats.set_index("subject_id")["dod"].reindex(first.index)
    one_year = ((dod - first.dt.normalize()).dt.days <= 365).mean()
    assert 0.05 <= in_hospital <= 0.16, in_hospital
    assert 0.15 <= one_year <= 0.35, one_year


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
    assert blocked.returncode == 2 and "cannot write" in blocked.stderr and "Traceback" not in blocked.stderr
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no temporary directory left behind"
