"""Embedding geometry: the numbers behind "the fine-tuned model's disease clusters look tighter".

Patient embeddings are the aggregate of each patient's note embeddings (``tasks/aggregate.py``;
discharge summaries left out by default because they list the coded diagnoses, DESIGN.md rule 3).
Each patient's label is the primary benchmark phenotype (``primary_phenotype``); patients with none,
or with a phenotype held by fewer than ``min_patients_per_phenotype`` patients, are left out of the
scores and counted. Two scores, each with a patient-bootstrap interval:

- silhouette (cosine distance) by primary phenotype: one value per patient, computed once on all
  scored patients; the interval resamples those per-patient values (cluster memberships are not
  recomputed per resample, which keeps each resample O(n) instead of O(n^2));
- k-nearest-neighbour label agreement: the share of each patient's k nearest scored patients
  (cosine, self excluded) with the same phenotype; chance is stated two ways: the label-frequency
  expectation ((n_c - 1) / (n - 1) for a patient of phenotype c) and the same agreement with the
  labels shuffled once (seeded).

UMAP (umap-learn, seeded, cosine) gives 2-D coordinates for every patient with notes, for the report's
figure; seeding makes UMAP single-threaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from clinpred.backends.base import l2_normalise
from clinpred.bounds import MAX_COUNT, MAX_DAYS, MAX_SEED
from clinpred.data.categories import is_discharge_summary
from clinpred.data.cohort import Cohort
from clinpred.data.labels import primary_phenotype
from clinpred.errors import InputError
from clinpred.tasks.aggregate import AggregationMethod, aggregate
from clinpred.tasks.result import BootstrapScheme, TaskResult, bootstrap_metrics, without_intervals
from clinpred.tasks.topk import PoolSpec, chunked_topk

# chance levels of kNN agreement: shown without interval, never paired
DESCRIPTIVE_METRICS = ("knn_chance", "knn_shuffled")

NO_PHENOTYPE = "none"


class GeometryConfig(BaseModel):
    """Every setting of the geometry task; the result records all of them."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    include_discharge_summaries: bool = False  # True relaxes the leakage guard (recorded)
    aggregation: AggregationMethod = "mean"
    last_k: int = Field(5, ge=1, le=MAX_COUNT)  # for aggregation="last_k_mean"
    half_life_days: float = Field(30.0, gt=0.0, le=MAX_DAYS)  # for aggregation="decay_mean"
    min_patients_per_phenotype: int = Field(10, ge=2, le=MAX_COUNT)
    knn_k: int = Field(10, ge=1, le=MAX_COUNT)
    umap: bool = True
    umap_n_neighbors: int = Field(15, ge=2, le=MAX_COUNT)
    umap_min_dist: float = Field(0.1, ge=0.0, le=1.0)  # UMAP: at most its spread (1.0)
    seed: int = Field(0, ge=0, le=MAX_SEED)  # UMAP's random_state and the label shuffle
    bootstrap: BootstrapScheme = BootstrapScheme()


def metrics_from_units(units: pd.DataFrame) -> dict[str, float]:
    """Silhouette and kNN agreement (with its two chance levels) over the scored patients."""
    scored = units[units["scored"].to_numpy(dtype=bool)]
    if scored.empty:
        nan = float("nan")
        return dict.fromkeys(("silhouette", "knn_agreement", "knn_chance", "knn_shuffled", "knn_lift"), nan)
    agreement = float(scored["knn_same"].mean())
    chance = float(scored["knn_expected"].mean())
    return {
        "silhouette": float(scored["silhouette"].mean()),
        "knn_agreement": agreement,
        "knn_chance": chance,
        "knn_shuffled": float(scored["knn_same_shuffled"].mean()),
        "knn_lift": agreement - chance,
    }


def _numba_cache_dir() -> None:
    """Point numba's cache at a writable place before umap is imported (site-packages may be read-only)."""
    if not os.environ.get("NUMBA_CACHE_DIR"):
        path = Path.home() / ".cache" / "clinpred" / "numba"
        path.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(path)


def umap_coordinates(vectors: np.ndarray, config: GeometryConfig) -> np.ndarray:
    """Seeded 2-D UMAP (cosine) of the rows; n_neighbors is capped at n - 1 for small cohorts."""
    _numba_cache_dir()
    import umap

    n_neighbors = min(config.umap_n_neighbors, len(vectors) - 1)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=config.umap_min_dist,
        metric="cosine",
        random_state=config.seed,
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so avoids its warning
    )
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float32)


def knn_same_label(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per row, the share of its k nearest other rows (cosine) with the same label."""
    found = chunked_topk(vectors, vectors, k, spec=PoolSpec(exclude=np.arange(len(vectors))))
    return (labels[found.indices] == labels[:, None]).mean(axis=1)


def evaluate_geometry(
    cohort: Cohort, embeddings: np.ndarray, config: GeometryConfig | None = None
) -> TaskResult:
    """Cluster scores and UMAP coordinates of patient embeddings; embeddings align with cohort.notes."""
    from sklearn.metrics import silhouette_samples

    config = config or GeometryConfig()
    notes = cohort.notes.drop(columns="text")  # filtered below: never copy the text
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or len(embeddings) != len(notes):
        raise ValueError(f"geometry: {len(notes)} notes but embeddings of shape {embeddings.shape}")
    keep = np.ones(len(notes), dtype=bool)
    if not config.include_discharge_summaries:
        keep = ~is_discharge_summary(notes["category"])
    subject_ids = cohort.subject_ids
    features, has_notes = aggregate(
        notes[keep].reset_index(drop=True),
        embeddings,
        subject_ids,
        method=config.aggregation,
        k=config.last_k,
        half_life_days=config.half_life_days,
        rows_of=keep,  # read in place: no copy of the kept rows
    )
    subjects = subject_ids[has_notes]
    vectors = l2_normalise(features[has_notes])
    phenotype = primary_phenotype(cohort.diagnoses, list(subjects)).to_numpy(dtype=object)

    sizes = pd.Series(phenotype[phenotype != NO_PHENOTYPE]).value_counts()
    kept = sizes[sizes >= config.min_patients_per_phenotype]
    scored = np.isin(phenotype, kept.index.to_numpy())
    if len(kept) < 2:
        raise InputError(
            f"geometry: {len(kept)} primary phenotype(s) have at least "
            f"{config.min_patients_per_phenotype} patients with notes (of {len(subjects)} patients); "
            "cluster scores need two: lower tasks.geometry.min_patients_per_phenotype or use more patients"
        )
    x, labels = vectors[scored], phenotype[scored]
    n = len(labels)
    warnings = []
    k = config.knn_k
    if k > n - 1:
        k = n - 1
        warnings.append(f"knn_k={config.knn_k} exceeds the {n - 1} other scored patients; k={k} used")
    label_codes = pd.factorize(labels)[0]
    same = knn_same_label(x, label_codes, k)
    shuffled = np.random.default_rng(config.seed).permutation(label_codes)
    same_shuffled = knn_same_label(x, shuffled, k)
    class_size = pd.Series(label_codes).value_counts().reindex(label_codes).to_numpy()
    silhouette = silhouette_samples(x, label_codes, metric="cosine")

    units = pd.DataFrame(
        {
            "subject_id": subjects,
            "primary_phenotype": phenotype.astype(str),
            "scored": scored,
            "silhouette": np.nan,
            "knn_same": np.nan,
            "knn_expected": np.nan,
            "knn_same_shuffled": np.nan,
            "umap_x": np.nan,
            "umap_y": np.nan,
        }
    )
    units.loc[scored, "silhouette"] = silhouette
    units.loc[scored, "knn_same"] = same
    units.loc[scored, "knn_expected"] = (class_size - 1) / (n - 1)
    units.loc[scored, "knn_same_shuffled"] = same_shuffled
    if config.umap and len(subjects) >= 3:
        xy = umap_coordinates(vectors, config)
        units["umap_x"], units["umap_y"] = xy[:, 0], xy[:, 1]
    elif config.umap:
        warnings.append(f"UMAP skipped: {len(subjects)} patients with notes (needs 3)")

    n_none = int((phenotype == NO_PHENOTYPE).sum())
    counts = {
        "patients": len(subject_ids),
        "patients_without_notes": int((~has_notes).sum()),
        "patients_with_notes": len(subjects),
        "notes_used": int(keep.sum()),
        "discharge_summaries_excluded": int((~keep).sum()),
        "patients_scored": n,
        "patients_without_phenotype": n_none,
        "patients_in_rare_phenotypes": int(len(subjects) - n - n_none),
        "phenotypes_scored": {str(p): int(c) for p, c in kept.items()},
        "phenotypes_too_small": {str(p): int(c) for p, c in sizes[~sizes.index.isin(kept.index)].items()},
    }
    definition = {
        **config.model_dump(mode="json", exclude={"bootstrap"}),
        "knn_k_used": k,
        "patient_embedding": f"{config.aggregation} of the patient's note embeddings, L2-normalised"
        + ("" if config.include_discharge_summaries else ", discharge summaries excluded"),
        "label": "primary benchmark phenotype (lowest seq_num with a phenotype, earliest admission)",
        "silhouette": "sklearn silhouette_samples, cosine distance, over scored patients; interval over "
        "resampled per-patient values (clusters not recomputed)",
        "knn_agreement": "share of the k nearest scored patients (cosine, self excluded) with the same label",
        "knn_chance": "label-frequency expectation (n_c - 1) / (n - 1); knn_shuffled: labels permuted once",
        "umap_method": "umap-learn, metric cosine, random_state=seed (single-threaded), all patients with notes",
    }
    return TaskResult(
        task="geometry",
        main_metric="silhouette",
        definition=definition,
        counts=counts,
        metrics=without_intervals(
            bootstrap_metrics(units, metrics_from_units, config.bootstrap), DESCRIPTIVE_METRICS
        ),
        bootstrap=config.bootstrap,
        warnings=warnings,
    ).with_units(units)
