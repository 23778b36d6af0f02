"""Patient-level splits: patients, never notes, are the unit (DESIGN.md, rule 1).

``split_patients`` separates fine-tuning patients from evaluation patients once, by seed; the tasks
cross-validate within the evaluation patients with ``patient_folds``. Both work on SUBJECT_IDs only,
so no note of a patient can fall on both sides. ``[split] source = "dataset"`` takes the split a MEDS
dataset ships instead (``metadata/subject_splits.parquet``: train, tuning, held_out), so that numbers
are comparable with other work on the same dataset (``split_cohort``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from clinpred.data.cohort import Cohort

# MEDS split names (meds.train_split, tuning_split, held_out_split) -> clinpred's sides
DATASET_SIDES = {"train": "finetune", "tuning": "validation", "held_out": "evaluation"}


class SplitConfig(BaseModel):
    """How patients are divided between fine-tuning and evaluation."""

    model_config = ConfigDict(extra="forbid")

    evaluation_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)  # of the fine-tuning patients
    seed: int = Field(0, ge=0)
    # "seeded": the fractions and seed above; "dataset": the dataset's own split (a MEDS dataset's
    # metadata/subject_splits.parquet: train -> fine-tuning, tuning -> validation, held_out -> evaluation)
    source: Literal["seeded", "dataset"] = "seeded"


class PatientSplit(BaseModel):
    """Disjoint sets of SUBJECT_IDs. ``validation`` is a slice of the fine-tuning patients."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    finetune: list[int]
    validation: list[int]
    evaluation: list[int]
    config: SplitConfig
    # source = "dataset": patients of the cohort the dataset's split file leaves out (absent, or under
    # another split name), and the file's patients the cohort does not have; all counted, none used
    left_out: dict[str, int] = {}

    @model_validator(mode="after")
    def _disjoint(self) -> PatientSplit:
        train, val, ev = set(self.finetune), set(self.validation), set(self.evaluation)
        if train & val or train & ev or val & ev:
            raise ValueError("patient split is not disjoint")
        return self

    @property
    def finetune_all(self) -> list[int]:
        """Every patient fine-tuning may see: its training and its validation patients."""
        return sorted(self.finetune + self.validation)


def ids_sha256(subject_ids: Iterable[int]) -> str:
    """sha256 of the sorted, unique ids, one per line: names a patient set (a split side), reveals nothing."""
    text = "\n".join(str(i) for i in sorted({int(s) for s in subject_ids}))
    return hashlib.sha256(text.encode()).hexdigest()


def split_patients(subject_ids: np.ndarray | list[int], config: SplitConfig | None = None) -> PatientSplit:
    """Shuffle the unique SUBJECT_IDs with the seed and cut them into fine-tuning and evaluation."""
    config = config or SplitConfig()
    ids = np.unique(np.asarray(subject_ids, dtype=np.int64))
    order = np.random.default_rng(config.seed).permutation(ids)
    n_eval = round(len(ids) * config.evaluation_fraction)
    evaluation, rest = order[:n_eval], order[n_eval:]
    n_val = round(len(rest) * config.validation_fraction)
    validation, finetune = rest[:n_val], rest[n_val:]
    return PatientSplit(
        finetune=sorted(int(s) for s in finetune),
        validation=sorted(int(s) for s in validation),
        evaluation=sorted(int(s) for s in evaluation),
        config=config,
    )


def split_from_assignments(
    subject_ids: np.ndarray | list[int], assignments: Mapping[int, str], config: SplitConfig
) -> PatientSplit:
    """The cohort's patients put on the sides a dataset's split file names (``DATASET_SIDES``)."""
    ids = {int(s) for s in np.unique(np.asarray(subject_ids, dtype=np.int64))}
    sides: dict[str, list[int]] = {"finetune": [], "validation": [], "evaluation": []}
    other = 0
    for subject in sorted(ids & set(assignments)):
        side = DATASET_SIDES.get(assignments[subject])
        if side is None:
            other += 1
        else:
            sides[side].append(subject)
    left_out = {
        "patients_not_in_split_file": len(ids - set(assignments)),
        "patients_in_other_splits": other,
        "split_file_patients_not_in_cohort": len(set(assignments) - ids),
    }
    return PatientSplit(**sides, config=config, left_out={k: v for k, v in left_out.items() if v})


def split_cohort(cohort: Cohort, config: SplitConfig | None = None) -> PatientSplit:
    """The run's split of a cohort: seeded (``split_patients``), or the dataset's own."""
    config = config or SplitConfig()
    if config.source == "seeded":
        return split_patients(cohort.subject_ids, config)
    from clinpred.data.meds_read import read_subject_splits

    return split_from_assignments(cohort.subject_ids, read_subject_splits(cohort.path), config)


def patient_folds(
    subject_ids: np.ndarray | list[int],
    n_splits: int = 5,
    *,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds over unique patients, as (train SUBJECT_IDs, test SUBJECT_IDs).

    ``strata`` (one value per patient, aligned with ``subject_ids``) stratifies the folds, e.g. by
    the most common label or the event indicator; strata too small for ``n_splits`` fall back to an
    unstratified split rather than failing.
    """
    # imported here: scikit-learn (and the scipy.stats it loads) is 1.6 s of every command's start-up,
    # and the settings module that every command reads imports this one
    from sklearn.model_selection import KFold, StratifiedKFold

    ids = np.asarray(subject_ids, dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("patient_folds takes one entry per patient")
    if n_splits < 2 or n_splits > len(ids):
        raise ValueError(f"cannot make {n_splits} folds from {len(ids)} patients")
    if strata is not None:
        _, counts = np.unique(np.asarray(strata), return_counts=True)
        if counts.min() >= n_splits:
            splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            return [(ids[a], ids[b]) for a, b in splitter.split(ids, strata)]
    splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(ids[a], ids[b]) for a, b in splitter.split(ids)]
