"""One binary outcome per admission, predicted from aggregated note embeddings: the engine behind
in-hospital mortality and 30-day readmission.

The task modules decide the units (admissions), their labels and which notes are features; this module
aggregates the feature notes per admission (``aggregate``), makes folds over patients (all admissions of
a patient on one side, stratified by whether the patient has any positive admission), fits diagnosis's
classifier per fold (StandardScaler on the training fold, L2 logistic regression with C chosen by an
inner grouped CV, or LightGBM), and scores the pooled out-of-fold probabilities: AUROC, AUPRC (with its
chance level, the prevalence) and the Brier score, with patient-bootstrap intervals.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from clinpred.bounds import (
    MAX_C,
    MAX_COUNT,
    MAX_DAYS,
    MAX_FOLDS,
    MAX_ITERATIONS,
    MAX_LEARNING_RATE,
    MAX_LEAVES,
    MAX_SEED,
)
from clinpred.data.cohort import Cohort
from clinpred.data.splits import patient_folds
from clinpred.errors import InputError
from clinpred.tasks.aggregate import AggregationMethod, aggregate
from clinpred.tasks.diagnosis import _fit_predict
from clinpred.tasks.diagnosis_metrics import auroc_columns, average_precision_columns
from clinpred.tasks.registry import settings_name
from clinpred.tasks.result import BootstrapScheme, TaskResult, bootstrap_metrics, without_intervals
from clinpred.tasks.subgroups import SubgroupConfig, subgroup_metrics

METRICS = ("auroc", "auprc", "brier", "chance_auprc")
DESCRIPTIVE_METRICS = ("chance_auprc",)  # the prevalence: what a random scorer's AUPRC is


class BinaryOutcomeConfig(BaseModel):
    """Settings shared by the per-admission outcome tasks (the classifier, folds and intervals)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    aggregation: AggregationMethod = "mean"
    last_k: int = Field(5, ge=1, le=MAX_COUNT)  # notes in last_k_mean
    half_life_days: float = Field(30.0, gt=0, le=MAX_DAYS)  # of decay_mean
    model: Literal["logistic", "lightgbm"] = "logistic"
    c_grid: list[Annotated[float, Field(gt=0, le=MAX_C)]] = Field(
        default_factory=lambda: [0.001, 0.01, 0.1, 1.0], min_length=1, max_length=100
    )
    inner_folds: int = Field(3, ge=2, le=MAX_FOLDS)  # grouped inner CV that picks C, per outer fold
    max_iter: int = Field(300, ge=10, le=MAX_ITERATIONS)
    lgbm_n_estimators: int = Field(100, ge=1, le=MAX_ITERATIONS)
    lgbm_learning_rate: float = Field(0.05, gt=0, le=MAX_LEARNING_RATE)
    lgbm_num_leaves: int = Field(15, ge=2, le=MAX_LEAVES)
    n_folds: int = Field(5, ge=2, le=MAX_FOLDS)
    min_positives: int = Field(5, ge=1, le=MAX_COUNT)  # positive (and negative) admissions needed overall
    min_train_positives: int = Field(2, ge=1, le=MAX_COUNT)  # ... and in each training fold
    bootstrap: BootstrapScheme = Field(default_factory=BootstrapScheme)
    subgroups: SubgroupConfig = Field(default_factory=SubgroupConfig)
    seed: int = Field(0, ge=0, le=MAX_SEED)


def metrics_from_units(units: pd.DataFrame) -> dict[str, float]:
    """AUROC, AUPRC, Brier score and the chance AUPRC (prevalence) from out-of-fold rows (``p``, ``y``)."""
    p = units["p"].to_numpy(dtype=float).reshape(-1, 1)
    y = units["y"].to_numpy(dtype=bool).reshape(-1, 1)
    if not len(units):
        return dict.fromkeys(METRICS, float("nan"))
    return {
        "auroc": float(auroc_columns(y, p)[0]),
        "auprc": float(average_precision_columns(y, p)[0]),
        "brier": float(np.mean((p[:, 0] - y[:, 0]) ** 2)),
        "chance_auprc": float(y.mean()),
    }


def evaluate_binary_outcome(
    task: str,
    cohort: Cohort,
    embeddings: np.ndarray,
    *,
    units: pd.DataFrame,
    feature_notes: np.ndarray,
    config: BinaryOutcomeConfig,
    definition: dict[str, Any],
    counts: dict[str, Any],
    warnings: list[str] | None = None,
    key: str = "hadm_id",
    note_units: np.ndarray | None = None,
    unit_name: str = "admissions",
) -> TaskResult:
    """Cross-validated prediction of ``units.y`` (one row per unit: subject_id, ``key``, y).

    ``feature_notes`` selects rows of ``cohort.notes`` (and the aligned ``embeddings``): a boolean mask
    or row positions (a note may then appear more than once). Each unit's features are the aggregate of
    the selected notes whose ``key`` is the unit's: the notes' own ``key`` column (an admission's notes),
    or ``note_units``, the unit of each selected row (a label row's notes, ``clinpred.tasks.aces``).
    Units without any allowed note are excluded and counted (``{unit_name}_without_feature_notes``).
    A ``prediction_time`` column of ``units`` (when the features end) is kept in the per-unit outputs,
    which the run writes as meds-evaluation predictions. Too few patients or positives is a user error
    (the pipeline records the task as not run, with the reason).
    """
    from sklearn.preprocessing import StandardScaler

    warnings = list(warnings or [])
    feature_notes = np.asarray(feature_notes)
    # without the text: selecting rows of it would copy it (pandas joins its chunks first; GBs at MIMIC size)
    # and the embeddings read in place by aggregate (rows_of), never copied as a subset
    notes = cohort.notes.drop(columns="text").iloc[feature_notes]
    if note_units is not None:
        notes = notes.assign(**{key: np.asarray(note_units, dtype=np.int64)})
    unit_ids = units[key].to_numpy(dtype=np.int64)
    features, has_notes = aggregate(
        notes,
        embeddings,
        unit_ids,
        method=config.aggregation,
        k=config.last_k,
        half_life_days=config.half_life_days,
        key=key,
        rows_of=feature_notes,
    )
    counts[f"{unit_name}_without_feature_notes"] = int((~has_notes).sum())
    units = units[has_notes].reset_index(drop=True)
    features = features[has_notes]
    y = units["y"].to_numpy(dtype=bool)
    used = notes[key].isin(set(units[key].tolist())).to_numpy()
    # a note shared by several units (note_units) counts once
    notes_used = int(used.sum()) if note_units is None else len(np.unique(feature_notes[used]))
    counts.update(
        {
            unit_name: len(units),
            "patients": int(units["subject_id"].nunique()),
            "positives": int(y.sum()),
            "negatives": int((~y).sum()),
            "notes_used": notes_used,
        }
    )
    if min(int(y.sum()), int((~y).sum())) < config.min_positives:
        raise InputError(
            f"{task}: {int(y.sum())} positive and {int((~y).sum())} negative {unit_name} with feature notes, "
            f"fewer than min_positives={config.min_positives} of each; use a larger cohort or lower "
            f"tasks.{settings_name(task)}.min_positives"
        )
    patients = np.sort(units["subject_id"].unique())
    if len(patients) < config.n_folds:
        raise InputError(f"{task}: {len(patients)} patients, too few for n_folds={config.n_folds}")
    subj = units["subject_id"].to_numpy(dtype=np.int64)
    any_positive = pd.Series(y).groupby(subj).max().reindex(patients).to_numpy(dtype=int)
    folds = patient_folds(patients, config.n_folds, seed=config.seed, strata=any_positive)
    fold_of = np.empty(len(units), dtype=np.int64)
    for i, (_, test) in enumerate(folds):
        fold_of[np.isin(subj, test)] = i
    train_pos = [int(y[fold_of != i].sum()) for i in range(config.n_folds)]
    train_neg = [int((~y[fold_of != i]).sum()) for i in range(config.n_folds)]
    if min(min(train_pos), min(train_neg)) < config.min_train_positives:
        raise InputError(
            f"{task}: a training fold has {min(train_pos)} positive / {min(train_neg)} negative {unit_name}, "
            f"fewer than min_train_positives={config.min_train_positives}; use a larger cohort or fewer folds"
        )

    probs = np.full(len(units), np.nan)
    chosen: list[float | None] = []
    with threadpool_limits(limits=1, user_api="blas"):  # many small fits: see diagnosis
        for i in range(config.n_folds):
            train, test = fold_of != i, fold_of == i
            scaler = StandardScaler().fit(features[train])  # fitted on the training fold only
            p, c = _fit_predict(
                scaler.transform(features[train]),
                y[train],
                subj[train],
                scaler.transform(features[test]),
                config,
            )
            probs[test] = p
            chosen.append(c)

    out = units[["subject_id", key] + (["prediction_time"] if "prediction_time" in units else [])].copy()
    out["fold"] = fold_of
    out["p"] = probs
    out["y"] = y
    estimates = bootstrap_metrics(out, metrics_from_units, config.bootstrap)
    definition = {
        **config.model_dump(),
        **definition,
        "model_detail": (
            "StandardScaler (training fold) + L2 logistic regression, C by inner grouped CV (AUROC)"
            if config.model == "logistic"
            else "LightGBM on the training fold"
        ),
        "c_chosen": chosen if config.model == "logistic" else [],
        "evaluation": "pooled out-of-fold predictions; intervals from resampling patients",
        "baselines": "chance_auprc: the prevalence of the outcome (a random scorer's AUPRC); AUROC chance 0.5",
    }
    result = TaskResult(
        task=task,
        main_metric="auroc",
        definition=definition,
        counts=counts,
        folds={
            "n_splits": config.n_folds,
            "grouped_by": "subject_id",
            "stratified_by": f"whether the patient has a positive unit ({unit_name})"
            if unit_name != "admissions"
            else "whether the patient has a positive admission",
            "seed": config.seed,
            "patients_per_fold": [len(test) for _, test in folds],
        },
        metrics=without_intervals({k: estimates[k] for k in METRICS}, DESCRIPTIVE_METRICS),
        bootstrap=config.bootstrap,
        warnings=warnings,
    ).with_units(out)
    result.subgroups = subgroup_metrics(
        cohort, out, metrics_from_units, "auroc", config.bootstrap, config.subgroups
    )
    return result
