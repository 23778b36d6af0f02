"""Diagnosis prediction: how well do a patient's aggregated note embeddings predict their diagnoses?

One classifier per label on the aggregated embeddings, out-of-fold predictions from a 5-fold
cross-validation grouped by patient, metrics (macro AUROC the headline) on the pooled out-of-fold
predictions with patient-bootstrap intervals. Leakage-safe by default: discharge summaries, which list
the diagnoses the codes are taken from, are left out of the features (DESIGN.md rule 3).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from clinpred.bounds import (
    MAX_C,
    MAX_COUNT,
    MAX_DAYS,
    MAX_FOLDS,
    MAX_HOURS,
    MAX_ITERATIONS,
    MAX_LEARNING_RATE,
    MAX_LEAVES,
    MAX_SEED,
)
from clinpred.data.categories import is_discharge_summary
from clinpred.data.cohort import Cohort
from clinpred.data.labels import LabelScheme, label_matrix, unmapped_units
from clinpred.data.splits import patient_folds
from clinpred.errors import InputError
from clinpred.parallel import map_chunks
from clinpred.tasks.aggregate import AggregationMethod, aggregate
from clinpred.tasks.diagnosis_metrics import (
    CountedAuroc,
    auroc_columns,
    average_precision_columns,
    calibration_columns,
    counted_auroc_of_cells,
)
from clinpred.tasks.result import BootstrapScheme, Estimate, TaskResult, bootstrap_metrics, without_intervals
from clinpred.tasks.subgroups import SubgroupConfig, subgroup_metrics

HEADLINE = ("macro_auroc", "micro_auroc", "macro_auprc")
CALIBRATION = ("brier", "calibration_intercept", "calibration_slope")
# summarised over labels by the median: a label whose predictions barely vary (a heavily penalised fit)
# has a finite but enormous slope, and one such label would swamp a mean
MEDIAN_SUMMARY = ("calibration_slope",)
# what a model must beat, beside each headline: reference levels, shown without interval and never paired
BASELINES = ("prevalence_only_micro_auroc", "chance_macro_auprc")
DESCRIPTIVE_METRICS = BASELINES
_CCS = (
    "ICD-9-CM: AHRQ single-level CCS 2015 (phenotypes: mimic3-benchmarks' code lists); ICD-10-CM: AHRQ "
    "single-level CCS for ICD-10-CM v2019.1 into the same categories (newer codes: the category of their "
    "longest unambiguous prefix)"
)
LABEL_MAPPING = {
    "ccs_benchmark": _CCS,
    "ccs_single_topk": _CCS,
    "icd_topk": "raw ICD codes; ICD-9 and ICD-10 codes kept apart",
}


class DiagnosisConfig(BaseModel):
    """Every setting of the diagnosis task; the result records all of them."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    unit: Literal["patient", "admission"] = "patient"
    # phenotyping: notes of the whole stay (retrospective coding); early: only notes charted in the first
    # early_hours of their admission, so that the task is prediction
    variant: Literal["phenotyping", "early"] = "phenotyping"
    early_hours: float = Field(48.0, gt=0, le=MAX_HOURS)
    label_scheme: LabelScheme = "ccs_benchmark"
    top_k: int = Field(25, ge=1, le=MAX_COUNT)  # labels kept by the top-k schemes
    aggregation: AggregationMethod = "mean"
    last_k: int = Field(5, ge=1, le=MAX_COUNT)  # notes in last_k_mean
    half_life_days: float = Field(30.0, gt=0, le=MAX_DAYS)  # of decay_mean
    include_discharge_summaries: bool = False  # True relaxes the leakage guard
    model: Literal["logistic", "lightgbm"] = "logistic"
    c_grid: list[Annotated[float, Field(gt=0, le=MAX_C)]] = Field(
        default_factory=lambda: [0.001, 0.01, 0.1, 1.0], min_length=1, max_length=100
    )
    inner_folds: int = Field(3, ge=2, le=MAX_FOLDS)  # grouped inner CV that picks C, per label and outer fold
    max_iter: int = Field(300, ge=10, le=MAX_ITERATIONS)
    lgbm_n_estimators: int = Field(100, ge=1, le=MAX_ITERATIONS)
    lgbm_learning_rate: float = Field(0.05, gt=0, le=MAX_LEARNING_RATE)
    lgbm_num_leaves: int = Field(15, ge=2, le=MAX_LEAVES)
    n_folds: int = Field(5, ge=2, le=MAX_FOLDS)
    # a label needs this many positive and negative units overall
    min_positives: int = Field(5, ge=1, le=MAX_COUNT)
    min_train_positives: int = Field(
        2, ge=1, le=MAX_COUNT
    )  # ... and this many positives and negatives in each training fold
    bootstrap: BootstrapScheme = Field(default_factory=BootstrapScheme)
    subgroups: SubgroupConfig = Field(default_factory=SubgroupConfig)
    seed: int = Field(0, ge=0, le=MAX_SEED)


def _labels(units: pd.DataFrame) -> list[str]:
    return [c[3:] for c in units.columns if c.startswith("p::")]


def _label_arrays(units: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Predicted probabilities and true labels, one column per label (``p::L`` / ``y::L``)."""
    labels = _labels(units)
    # reindex: the cheapest way to a block of columns
    p = units.reindex(columns=[f"p::{c}" for c in labels]).to_numpy(dtype=float).reshape(len(units), -1)
    y = units.reindex(columns=[f"y::{c}" for c in labels]).to_numpy(dtype=bool).reshape(len(units), -1)
    return p, y


def _folds(units: pd.DataFrame) -> np.ndarray | None:
    return units["fold"].to_numpy() if "fold" in units else None


def metrics_from_units(units: pd.DataFrame) -> dict[str, float]:
    """Macro/micro AUROC, macro AUPRC and per-label ``auroc::L`` / ``auprc::L`` from out-of-fold rows."""
    p, y = _label_arrays(units)
    return _metrics_of_arrays(_labels(units), p, y, _folds(units))


def _on_resampled_rows(units: pd.DataFrame, row_sets: list[np.ndarray]) -> list[dict[str, float]]:
    """``metrics_from_units`` of ``units.iloc[rows]`` for each of ``row_sets`` (the bootstrap's resamples),
    to the last bit. The label blocks are taken out of the DataFrame once; each resample selects rows of
    them in the DataFrame path's column-major layout (the layout decides the order of the sums), and its
    AUROCs come from how often it drew each row, the rows ranked once (``CountedAuroc``)."""
    labels, (p, y), fold = _labels(units), _label_arrays(units), _folds(units)
    n, m = p.shape
    p_t, y_t = np.ascontiguousarray(p.T), np.ascontiguousarray(y.T)  # label x unit: rows of p are columns
    per_label = CountedAuroc(y, p)
    pooled = CountedAuroc(y.reshape(-1, 1), p.reshape(-1, 1))  # row-major: unit i's labels at i*m ... i*m+m-1
    out = []
    for r in row_sets:
        counts = np.bincount(r, minlength=n)
        aurocs = (
            per_label(counts),
            pooled(np.repeat(counts, m))[0],
            _prevalence_micro_auroc(counts, y, fold),
        )
        y_r = y_t.take(r, axis=1).T
        out.append(
            _metrics_of_arrays(labels, p_t.take(r, axis=1).T, y_r, None if fold is None else fold[r], aurocs)
        )
    return out


metrics_from_units.on_resampled_rows = _on_resampled_rows  # type: ignore[attr-defined]


def _metrics_of_arrays(
    labels: list[str],
    p: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray | None,
    aurocs: tuple[np.ndarray, float, float] | None = None,
) -> dict[str, float]:
    """The metrics of these rows; ``aurocs``: their per-label, micro and prevalence-only micro AUROC,
    where the caller has them already."""
    n = len(p)
    if aurocs is not None:
        auroc, micro, prevalence_micro = aurocs
    else:
        auroc = auroc_columns(y, p) if n else np.full(len(labels), np.nan)
        micro = auroc_columns(y.reshape(-1, 1), p.reshape(-1, 1))[0] if y.size else np.nan
        prevalence_micro = None
    auprc = average_precision_columns(y, p) if n else np.full(len(labels), np.nan)
    out = {
        "macro_auroc": _nanmean(auroc),
        "micro_auroc": float(micro),
        "macro_auprc": _nanmean(auprc),
        **_baselines(fold, y, prevalence_micro),
    }
    calibration = calibration_columns(y, p) if n else {k: np.full(len(labels), np.nan) for k in CALIBRATION}
    for name in CALIBRATION:
        out[_summary_key(name)] = (
            _nanmedian(calibration[name]) if name in MEDIAN_SUMMARY else _nanmean(calibration[name])
        )
    for j, label in enumerate(labels):
        out[f"auroc::{label}"] = float(auroc[j])
        out[f"auprc::{label}"] = float(auprc[j])
        for name in CALIBRATION:
            out[f"{name}::{label}"] = float(calibration[name][j])
    return out


def _prevalence_micro_auroc(counts: np.ndarray, y: np.ndarray, fold: np.ndarray | None) -> float:
    """``_baselines``' prevalence-only micro-AUROC of the rows drawn ``counts`` times: its scores take one
    value per (fold, label) cell, so the AUROC is over cells (``counted_auroc_of_cells``), each cell's
    prevalence computed from the same whole counts as on the drawn rows, so the same values."""
    if not counts.any() or not y.size:
        return float("nan")
    w = counts.astype(float)
    positives = y.astype(float)
    if fold is None:
        total = w.sum()
        pos = w @ positives
        return counted_auroc_of_cells(pos, total - pos, pos / total)
    folds = np.unique(fold)
    rows_in = np.array([w[fold == f].sum() for f in folds])
    pos = np.vstack([w[fold == f] @ positives[fold == f] for f in folds])
    present = rows_in > 0
    rows_in, pos = rows_in[present], pos[present]
    prior = (pos.sum(axis=0) - pos) / np.maximum(rows_in.sum() - rows_in, 1)[:, None]
    return counted_auroc_of_cells(pos, rows_in[:, None] - pos, prior)


def _baselines(fold: np.ndarray | None, y: np.ndarray, micro: float | None = None) -> dict[str, float]:
    """A prevalence-only scorer's micro-AUROC and the chance macro-AUPRC (mean prevalence).

    The prevalence-only scorer gives every unit, for each label, the label's prevalence in the unit's
    training folds (``fold``: each unit's outer fold; None: the overall prevalence): it knows which
    labels are common and nothing about the patient. Its micro-AUROC is well above 0.5 whenever
    prevalences differ between labels, which is what micro-AUROC rewards.
    """
    if not y.size:
        return dict.fromkeys(BASELINES, float("nan"))
    chance = float(y.mean(axis=0).mean())
    if micro is not None:  # computed by the caller (the bootstrap: ``_prevalence_micro_auroc``)
        return {"prevalence_only_micro_auroc": float(micro), "chance_macro_auprc": chance}
    if fold is not None:
        folds = np.unique(fold)
        totals, n = y.sum(axis=0), len(y)
        prior = np.empty(y.shape)
        for f in folds:
            inside = fold == f
            prior[inside] = (totals - y[inside].sum(axis=0)) / max(n - int(inside.sum()), 1)
    else:
        prior = np.broadcast_to(y.mean(axis=0), y.shape)
    micro = auroc_columns(y.reshape(-1, 1), np.asarray(prior).reshape(-1, 1))[0]
    return {"prevalence_only_micro_auroc": float(micro), "chance_macro_auprc": chance}


def _summary_key(name: str) -> str:
    return f"{'median' if name in MEDIAN_SUMMARY else 'macro'}_{name}"


def _nanmedian(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else float("nan")


def macro_auroc_from_units(units: pd.DataFrame) -> dict[str, float]:
    """The headline alone (what subgroups bootstrap): macro AUROC over the labels."""
    p, y = _label_arrays(units)
    auroc = auroc_columns(y, p) if len(units) else np.full(p.shape[1], np.nan)
    return {"macro_auroc": _nanmean(auroc)}


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _units_and_labels(
    cohort: Cohort, config: DiagnosisConfig
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], list[str]]:
    """The candidate units (patients or admissions with any diagnosis) and their label matrix.

    Units whose codes all map to nothing under the label scheme (e.g. ICD-10 codes newer than the CCS
    table) have no labels, not negative ones: they are left out, counted and warned about.
    """
    dx = cohort.diagnoses[cohort.diagnoses["subject_id"].isin(set(cohort.subject_ids.tolist()))]
    with_dx = np.sort(dx["subject_id"].unique())
    counts = {"patients_in_cohort": len(cohort.subject_ids)}
    counts["patients_without_diagnoses"] = int(len(cohort.subject_ids) - len(with_dx))
    labels = label_matrix(dx, list(with_dx), scheme=config.label_scheme, k=config.top_k, unit=config.unit)
    unmapped = unmapped_units(dx, config.label_scheme, config.unit)
    counts[f"{config.unit}s_with_unmapped_codes_only"] = len(unmapped)
    for version in (9, 10):
        counts[f"diagnosis_rows_icd{version}"] = int((dx["icd_version"] == version).sum())
    warnings = []
    if len(unmapped):
        labels = labels[~labels.index.isin(unmapped)]
        warnings.append(
            f"{len(unmapped)} {config.unit}(s) excluded: none of their diagnosis codes maps to a "
            f"{config.label_scheme} category, so they have no labels (not negative ones)"
        )
    if len(with_dx) and labels.empty:  # the real cause, not "0 patients have feature notes" later
        raise InputError(_nothing_mapped(dx, config.label_scheme))
    keys = labels.index.to_frame(index=False)
    if config.unit == "patient":
        keys.columns = ["subject_id"]
    return keys, labels.reset_index(drop=True), counts, warnings


def _nothing_mapped(dx: pd.DataFrame, scheme: str) -> str:
    """No diagnosis code maps to the scheme's categories: which versions were read, and a code to look at."""
    versions = ", ".join(
        f"{int((dx['icd_version'] == v).sum()):,} ICD-{v}" for v in sorted(dx["icd_version"].unique())
    )
    example = dx.iloc[0]
    return (
        f"diagnosis: no diagnosis code maps to a {scheme} category ({versions} diagnosis rows; e.g. "
        f"{example['icd_code']!r}, ICD-{example['icd_version']}), so no patient has a label. Codes must be "
        "ICD-9-CM or ICD-10-CM as MIMIC writes them (4280, I509) with the right icd_version; "
        "label_scheme = 'icd_topk' uses the codes as they are."
    )


def early_notes(notes: pd.DataFrame, admissions: pd.DataFrame, hours: float) -> np.ndarray:
    """Mask of notes charted within ``hours`` of their admission's ADMITTIME (before it too, e.g. in the
    ED). A date-only note counts only if its whole day lies inside; notes without an admission never."""
    admit = notes["hadm_id"].map(admissions.set_index("hadm_id")["admittime"])
    end = admit + pd.Timedelta(hours=hours)
    date_only = notes["time_is_date"].to_numpy(bool)
    timed_ok = (notes["time"] < end).to_numpy(bool)
    day_ok = (notes["time"].dt.normalize() + pd.Timedelta(days=1) <= end).to_numpy(bool)
    return np.where(date_only, day_ok, timed_ok) & end.notna().to_numpy()


def _strata(y: np.ndarray, n_folds: int) -> np.ndarray:
    """Per unit, its rarest positive label (labels with fewer than n_folds positives merged into 'rare').

    Spreads every label's positives over the folds as evenly as a single stratum allows.
    """
    pos = y.sum(axis=0)
    rank = np.argsort(np.argsort(pos, kind="stable"), kind="stable").astype(float)
    rank[pos < n_folds] = np.inf
    masked = np.where(y, rank[None, :], np.inf)
    strata = np.where(np.isfinite(masked.min(axis=1)), masked.argmin(axis=1), -1).astype(np.int64)
    values, sizes = np.unique(strata, return_counts=True)
    small = values[sizes < n_folds]
    strata[np.isin(strata, small)] = -2
    if 0 < (strata == -2).sum() < n_folds:
        strata[strata == -2] = values[np.argmax(sizes)]
    return strata


def _inner_splits(y: np.ndarray, groups: np.ndarray, config: DiagnosisConfig) -> list:
    """The inner CV's folds, grouped by patient and stratified by the label.

    With one unit per patient (the default) every group is a single unit, and StratifiedKFold gives
    the same guarantee as StratifiedGroupKFold at a fraction of its cost (the grouped splitter's greedy
    assignment runs in Python, per label and outer fold: half of the task's run time on the demo).
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if len(np.unique(groups)) == len(groups):
        inner = StratifiedKFold(n_splits=config.inner_folds, shuffle=True, random_state=config.seed)
        return list(inner.split(np.zeros(len(y)), y))
    inner = StratifiedGroupKFold(n_splits=config.inner_folds, shuffle=True, random_state=config.seed)
    return list(inner.split(np.zeros(len(y)), y, groups))


def _fit_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    groups_train: np.ndarray,
    x_test: np.ndarray,
    config: DiagnosisConfig,
) -> tuple[np.ndarray, float | None]:
    """Out-of-fold probabilities for one label; also the C chosen by the inner grouped CV."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    if config.model == "lightgbm":
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(
            n_estimators=config.lgbm_n_estimators,
            learning_rate=config.lgbm_learning_rate,
            num_leaves=config.lgbm_num_leaves,
            random_state=config.seed,
            n_jobs=1,
            verbose=-1,
        )
        model.fit(x_train, y_train)
        return model.predict_proba(x_test)[:, 1], None
    splits = []
    if min(y_train.sum(), (~y_train).sum()) >= config.inner_folds and len(config.c_grid) > 1:
        splits = _inner_splits(y_train, groups_train, config)
    if splits and all(0 < y_train[test].sum() < len(test) for _, test in splits):
        search = LogisticRegressionCV(
            Cs=config.c_grid,
            l1_ratios=(0.0,),
            cv=splits,
            scoring="roc_auc",
            solver="lbfgs",
            max_iter=config.max_iter,
            use_legacy_attributes=False,
        )
        search.fit(x_train, y_train)
        chosen = float(np.ravel(search.C_)[0])
        return search.predict_proba(x_test)[:, 1], chosen
    # too few positives for an inner split with both classes: the middle of the grid, stated in c_chosen
    chosen = float(sorted(config.c_grid)[len(config.c_grid) // 2])
    model = LogisticRegression(C=chosen, solver="lbfgs", max_iter=config.max_iter)
    model.fit(x_train, y_train)
    return model.predict_proba(x_test)[:, 1], chosen


def _fit_fold_labels(
    fits: list[tuple[int, int]],
    features: np.ndarray,
    y: np.ndarray,
    fold_of: np.ndarray,
    subj: np.ndarray,
    config: DiagnosisConfig,
) -> list[tuple[np.ndarray, float | None]]:
    """Out-of-fold probabilities and chosen C for each (outer fold, label) pair, in order."""
    from sklearn.preprocessing import StandardScaler

    out = []
    scaled: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    # many small fits: multi-threaded BLAS only adds contention (30x slower on a busy 2-core machine)
    with threadpool_limits(limits=1, user_api="blas"):
        for i, j in fits:
            train, test = fold_of != i, fold_of == i
            if i not in scaled:
                scaler = StandardScaler().fit(features[train])  # fitted on the training fold only
                scaled = {i: (scaler.transform(features[train]), scaler.transform(features[test]))}
            x_train, x_test = scaled[i]
            out.append(_fit_predict(x_train, y[train, j], subj[train], x_test, config))
    return out


def evaluate_diagnosis(
    cohort: Cohort, embeddings: np.ndarray, *, config: DiagnosisConfig | None = None
) -> TaskResult:
    """Cross-validated diagnosis prediction from aggregated note embeddings (aligned with cohort.notes)."""
    config = config or DiagnosisConfig()
    if len(embeddings) != len(cohort.notes):
        raise ValueError(f"{len(embeddings)} embedding rows for {len(cohort.notes)} notes")
    keys, labels, counts, warnings = _units_and_labels(cohort, config)

    # filtered below, the text never (it would be copied) and the embeddings never (aggregate reads the
    # selected rows in place: `rows`)
    notes, rows = cohort.notes.drop(columns="text"), np.arange(len(embeddings))
    is_ds = is_discharge_summary(notes["category"])  # by key: a recased one is excluded too
    if not config.include_discharge_summaries:
        notes, rows = notes[~is_ds], rows[~is_ds]
    if config.variant == "early":
        early = early_notes(notes, cohort.admissions, config.early_hours)
        counts["notes_after_early_window_unused"] = int((~early).sum())
        notes, rows = notes[early], rows[early]
    key = "subject_id" if config.unit == "patient" else "hadm_id"
    features, has_notes = aggregate(
        notes,
        embeddings,
        keys[key].to_numpy(),
        method=config.aggregation,
        k=config.last_k,
        half_life_days=config.half_life_days,
        key=key,
        rows_of=rows,
    )
    counts[f"{config.unit}s_without_feature_notes"] = int((~has_notes).sum())
    keys, labels, features = keys[has_notes].reset_index(drop=True), labels[has_notes], features[has_notes]
    labels = labels.reset_index(drop=True)
    used = notes[notes[key].isin(set(keys[key].tolist()))]
    counts.update(
        {
            f"{config.unit}s": len(keys),
            "patients": int(keys["subject_id"].nunique()),
            "notes_used": len(used),
            "discharge_summaries_in_cohort": int(is_ds.sum()),
            "discharge_summaries_used": int(is_discharge_summary(used["category"]).sum()),
        }
    )
    y_all = labels.to_numpy(dtype=bool)
    counts["positives"] = {str(c): int(n) for c, n in zip(labels.columns, y_all.sum(axis=0), strict=True)}

    patients = np.sort(keys["subject_id"].unique())
    if len(patients) < config.n_folds:
        raise InputError(
            f"diagnosis: {len(patients)} patients have feature notes, too few for n_folds={config.n_folds}"
        )
    # stratify patient folds by each patient's rarest positive label (any admission)
    per_patient = pd.DataFrame(y_all).groupby(keys["subject_id"].to_numpy()).max().reindex(patients)
    folds = patient_folds(
        patients,
        config.n_folds,
        seed=config.seed,
        strata=_strata(per_patient.to_numpy(dtype=bool), config.n_folds),
    )
    fold_of = np.empty(len(keys), dtype=np.int64)
    subj = keys["subject_id"].to_numpy()
    for i, (_, test) in enumerate(folds):
        fold_of[np.isin(subj, test)] = i

    kept, dropped = _keep_labels(y_all, list(labels.columns), fold_of, config)
    for label, why in dropped.items():
        warnings.append(f"label dropped: {label} ({why})")
    counts["labels_kept"] = len(kept)
    counts["labels_dropped"] = len(dropped)
    if not kept:
        raise InputError(
            f"diagnosis: no {config.label_scheme} label has min_positives={config.min_positives} positive "
            f"{config.unit}s in every training fold; use a larger cohort or lower min_positives"
        )

    probs = np.full((len(keys), len(kept)), np.nan)
    chosen_c: dict[str, list[float | None]] = {label: [] for label in kept}
    y_kept = labels[kept].to_numpy(dtype=bool)
    fits = [(i, j) for i in range(config.n_folds) for j in range(len(kept))]
    # one process per core, each fitting its share of (fold, label) pairs (clinpred.parallel)
    fitted = map_chunks(
        _fit_fold_labels, fits, features, y_kept, fold_of, subj, config, cost_each=len(keys) * 20
    )
    for (i, j), (p, c) in zip(fits, fitted, strict=True):
        probs[fold_of == i, j] = p
        chosen_c[kept[j]].append(c)

    units = keys.copy()
    units["fold"] = fold_of
    for j, label in enumerate(kept):
        units[f"p::{label}"] = probs[:, j]
        units[f"y::{label}"] = labels[label].to_numpy(dtype=bool)
    estimates = bootstrap_metrics(units, metrics_from_units, config.bootstrap)
    per_label: dict[str, dict[str, Estimate]] = {
        label: {
            "auroc": estimates[f"auroc::{label}"],
            "auprc": estimates[f"auprc::{label}"],
            **{name: estimates[f"{name}::{label}"] for name in CALIBRATION},
        }
        for label in kept
    }
    definition = {
        **config.model_dump(),
        "task_variant": (
            "phenotyping: notes of the whole stay, so the task is retrospective coding"
            if config.variant == "phenotyping"
            else f"early prediction: only notes charted in the first {config.early_hours:g} h of their admission"
        ),
        "features": (
            f"{config.aggregation} of the {config.unit}'s note embeddings"
            + (
                ""
                if config.variant == "phenotyping"
                else f" charted in the first {config.early_hours:g} h of their admission"
            )
            + ("" if config.include_discharge_summaries else ", discharge summaries excluded")
        ),
        "relaxations": ["include_discharge_summaries"] if config.include_discharge_summaries else [],
        "labels": kept,
        "labels_dropped": sorted(dropped),
        "label_mapping": LABEL_MAPPING[config.label_scheme],
        "unmapped_units": f"{config.unit}s whose codes all map to nothing are excluded and counted",
        "model_detail": (
            "StandardScaler (training fold) + L2 logistic regression per label, C by inner grouped CV (AUROC)"
            if config.model == "logistic"
            else "LightGBM per label on the training fold"
        ),
        "c_chosen": chosen_c if config.model == "logistic" else {},
        "evaluation": "pooled out-of-fold predictions; intervals from resampling patients",
        "calibration": (
            "per label on the pooled out-of-fold probabilities: Brier score; calibration intercept "
            "(calibration-in-the-large, logit(p) as offset; 0 is calibrated); calibration slope (logistic "
            "regression of the label on logit(p); 1 is calibrated, below 1 too extreme, far above 1 predictions "
            "that barely vary); macro = mean over labels, median for the slope (one nearly constant "
            "label's slope of 1e6 would swamp a mean)"
        ),
        "baselines": (
            "prevalence_only_micro_auroc: every unit scored with each label's training-fold prevalence; "
            "chance_macro_auprc: the mean prevalence of the kept labels (a random scorer's AUPRC)"
        ),
    }
    result = TaskResult(
        task="diagnosis",
        main_metric="macro_auroc",
        definition=definition,
        counts=counts,
        folds={
            "n_splits": config.n_folds,
            "grouped_by": "subject_id",
            "stratified_by": "each patient's rarest positive label",
            "seed": config.seed,
            "patients_per_fold": [len(test) for _, test in folds],
        },
        metrics=without_intervals(
            {k: estimates[k] for k in (*HEADLINE, *BASELINES, *(_summary_key(c) for c in CALIBRATION))},
            BASELINES,
        ),
        per_label=per_label,
        bootstrap=config.bootstrap,
        warnings=warnings,
    ).with_units(units)
    result.subgroups = subgroup_metrics(
        cohort, units, macro_auroc_from_units, "macro_auroc", config.bootstrap, config.subgroups
    )
    return result


def _keep_labels(
    y: np.ndarray, names: list[str], fold_of: np.ndarray, config: DiagnosisConfig
) -> tuple[list[str], dict[str, str]]:
    """Labels that every training fold can learn; the others with the reason they were dropped."""
    kept, dropped = [], {}
    for j, name in enumerate(names):
        pos = int(y[:, j].sum())
        if min(pos, len(y) - pos) < config.min_positives:
            dropped[name] = (
                f"{pos} positives / {len(y) - pos} negatives, fewer than min_positives={config.min_positives}"
            )
            continue
        train_pos = [int(y[fold_of != i, j].sum()) for i in range(config.n_folds)]
        train_neg = [int((~y[fold_of != i, j]).sum()) for i in range(config.n_folds)]
        if min(train_pos) < config.min_train_positives or min(train_neg) < config.min_train_positives:
            dropped[name] = (
                f"a training fold has {min(train_pos)} positives / {min(train_neg)} negatives, "
                f"fewer than min_train_positives={config.min_train_positives}"
            )
            continue
        kept.append(name)
    return kept, dropped
