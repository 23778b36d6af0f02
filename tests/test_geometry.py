"""Embedding geometry: silhouette against scikit-learn, kNN agreement by construction, UMAP and its figure."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.metrics import silhouette_score
from test_recall import make_cohort

from clinpred.data.cohort import DISCHARGE_SUMMARY
from clinpred.errors import InputError
from clinpred.report.umap_figure import write_umap_figure
from clinpred.tasks.geometry import GeometryConfig, evaluate_geometry, knn_same_label, metrics_from_units
from clinpred.tasks.result import BootstrapScheme

FEW = BootstrapScheme(n_resamples=30)
# ICD-9 codes of four benchmark phenotypes, one of a fifth (kept rare), one with no phenotype
CODES = ["0031", "24900", "2720", "34660"]
RARE, NO_PHENOTYPE = "4280", "V700"


def clustered_cohort(seed: int = 0, spread: float = 0.8):
    """60 patients in 4 phenotypes (3 notes each, clustered by phenotype), + 2 rare, + 3 without one.

    Each patient also has a discharge summary pointing somewhere random: the default leaves it out.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 12))
    subjects, cats, rows, dx = [], [], [], []
    for s in range(1, 66):
        group = s % 4
        code = CODES[group] if s <= 60 else (RARE if s <= 62 else NO_PHENOTYPE)
        dx.append((s, code))
        for _ in range(3):
            subjects.append(s)
            cats.append("Nursing")
            rows.append(centres[group] + spread * rng.normal(size=12))
        subjects.append(s)
        cats.append(DISCHARGE_SUMMARY)
        rows.append(3.0 * rng.normal(size=12))
    return make_cohort(subjects, cats, diagnoses=dx), np.array(rows, dtype=np.float32)


def local_patient_means(cohort, emb, drop_discharge=True):
    notes = cohort.notes
    keep = notes["category"] != DISCHARGE_SUMMARY if drop_discharge else np.ones(len(notes), bool)
    ids = notes["subject_id"].to_numpy()[np.asarray(keep)]
    vecs = emb[np.asarray(keep)]
    subjects = np.unique(ids)
    means = np.stack([vecs[ids == s].mean(axis=0) for s in subjects])
    return subjects, means / np.linalg.norm(means, axis=1, keepdims=True)


@pytest.mark.parametrize("include_discharge", [False, True])
def test_silhouette_matches_sklearn_and_exclusions_are_counted(include_discharge):
    cohort, emb = clustered_cohort()
    config = GeometryConfig(include_discharge_summaries=include_discharge, umap=False, bootstrap=FEW)
    result = evaluate_geometry(cohort, emb, config)
    subjects, means = local_patient_means(cohort, emb, drop_discharge=not include_discharge)
    scored = subjects <= 60
    labels = subjects[scored] % 4
    expected = silhouette_score(means[scored], labels, metric="cosine")
    assert result.metrics["silhouette"].value == pytest.approx(expected, abs=1e-5)
    assert result.main_metric == "silhouette" and result.task == "geometry"
    c = result.counts
    assert c["patients_scored"] == 60
    assert c["patients_in_rare_phenotypes"] == 2 and c["patients_without_phenotype"] == 3
    assert c["discharge_summaries_excluded"] == (0 if include_discharge else 65)
    assert set(c["phenotypes_too_small"]) == {"Congestive heart failure; nonhypertensive"}
    assert result.definition["include_discharge_summaries"] is include_discharge
    units = result.units
    assert units["scored"].sum() == 60 and units.loc[~units["scored"], "silhouette"].isna().all()
    low, high = result.metrics["silhouette"].low, result.metrics["silhouette"].high
    assert low is not None and low <= result.metrics["silhouette"].value <= high


def test_tight_clusters_score_higher_than_loose_ones():
    tight = evaluate_geometry(*clustered_cohort(spread=0.3), GeometryConfig(umap=False, bootstrap=FEW))
    loose = evaluate_geometry(*clustered_cohort(spread=3.0), GeometryConfig(umap=False, bootstrap=FEW))
    assert tight.metrics["silhouette"].value > loose.metrics["silhouette"].value
    assert tight.metrics["knn_agreement"].value == 1.0
    assert loose.metrics["knn_agreement"].value < 1.0
    # chance: four equal phenotypes of 15 among 60 scored patients
    assert tight.metrics["knn_chance"].value == pytest.approx(14 / 59)
    assert tight.metrics["knn_shuffled"].value < 0.6


def test_knn_agreement_on_a_constructed_line():
    # points along an arc, labels alternating: each inner point's 2 neighbours have the other label;
    # an end point's neighbours are the next two points: one of each label
    angles = np.arange(10) * 0.1
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    labels = np.arange(10) % 2
    same = knn_same_label(vectors, labels, 2)
    assert np.array_equal(same, [0.5] + [0.0] * 8 + [0.5])
    blocks = np.repeat([0, 1], 5)  # two blocks of five: only the two points at the border see the other
    assert np.array_equal(knn_same_label(vectors, blocks, 2), [1, 1, 1, 1, 0.5, 0.5, 1, 1, 1, 1])


def test_metrics_from_units_ignores_unscored_patients():
    cohort, emb = clustered_cohort()
    units = evaluate_geometry(cohort, emb, GeometryConfig(umap=False, bootstrap=FEW)).units
    polluted = units.copy()
    polluted.loc[~polluted["scored"], ["silhouette", "knn_same"]] = -5.0
    assert metrics_from_units(polluted) == pytest.approx(metrics_from_units(units))


def test_too_few_phenotypes_is_an_input_error():
    cohort, emb = clustered_cohort()
    with pytest.raises(InputError, match="min_patients_per_phenotype"):
        evaluate_geometry(cohort, emb, GeometryConfig(min_patients_per_phenotype=16, umap=False))


def test_umap_is_deterministic_and_the_figure_has_one_panel_per_backend(tmp_path):
    cohort, emb = clustered_cohort()
    config = GeometryConfig(bootstrap=FEW, umap_n_neighbors=10)
    first = evaluate_geometry(cohort, emb, config)
    again = evaluate_geometry(cohort, emb, config)
    other = evaluate_geometry(cohort, emb, config.model_copy(update={"seed": 1}))
    xy = first.units[["umap_x", "umap_y"]].to_numpy()
    assert np.isfinite(xy).all() and len(xy) == 65
    assert np.array_equal(xy, again.units[["umap_x", "umap_y"]].to_numpy())
    assert not np.allclose(xy, other.units[["umap_x", "umap_y"]].to_numpy())

    two = write_umap_figure({"base": first, "tuned": other}, tmp_path / "umap.png")
    three = write_umap_figure({"a": first, "b": other, "c": again}, tmp_path / "three.png")
    h2, w2 = imread(two).shape[:2]
    h3, w3 = imread(three).shape[:2]
    assert h2 == h3 and w3 / w2 == pytest.approx(1.5, rel=0.01)  # width grows by one panel per backend
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.png", "umap.png"]  # no temporary left
