"""ACES task definitions and MEDS label files as clinpred tasks: a label per subject and prediction time.

``clinpred run --data MEDS_ROOT --aces task.yaml`` (repeatable, or ``[tasks.aces] configs = [...]``)
runs the YAML with es-aces on the MEDS dataset (``clinpred.tasks.aces_labels``) and scores every
backend on its labels as task ``aces.<file stem>``; ``--labels DIR`` (``[tasks.aces] labels``) reads a
ready MEDS label folder as task ``labels.<folder name>``. The names are plain file names, so results,
RESULTS.md and the units and predictions files hold them as they are.

Unit: one label row (a subject at a prediction time; a subject may have several). Features: the
``aggregation`` of the embeddings of the subject's notes charted strictly before the prediction time
-- never at or after it; a date-only note only when its whole day is before it -- and, by default, no
discharge summary (``include_discharge_summary`` adds those charted before the prediction time, as a
recorded relaxation). Labels of subjects outside the evaluation patients are left out and counted, as
are label rows without a note before their time. Everything else is the binary-outcome engine's:
folds grouped by subject, AUROC / AUPRC / Brier with patient-bootstrap intervals and the prevalence
as chance AUPRC, paired differences in ``clinpred report``.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from clinpred.data.categories import is_discharge_summary
from clinpred.data.cohort import Cohort
from clinpred.errors import InputError
from clinpred.tasks.aces_configs import packaged_configs
from clinpred.tasks.aces_labels import extract
from clinpred.tasks.binary_outcome import BinaryOutcomeConfig, evaluate_binary_outcome
from clinpred.tasks.result import TaskResult

SETTINGS = "aces"  # [tasks.aces]: the settings every ACES and label-folder task shares
PREFIXES = {"aces": "configs", "labels": "labels"}  # task name prefix -> the setting that lists its files
_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_NS_PER_DAY = 86_400 * 10**9


class AcesConfig(BinaryOutcomeConfig):
    """ACES configs and label folders to score, and the settings their tasks share."""

    # ACES task YAMLs (aces.<stem>); a bare name such as inhospital_mortality is a config clinpred ships
    configs: list[Path] = Field(default_factory=list, max_length=100)
    labels: list[Path] = Field(default_factory=list, max_length=100)  # MEDS label folders: labels.<name>
    include_discharge_summary: bool = False  # True: discharge summaries charted before the time are features

    @field_validator("configs")
    @classmethod
    def _packaged(cls, configs: list[Path]) -> list[Path]:
        """A name that is no file here but names a shipped config is that config's path."""
        shipped = packaged_configs() if any(not p.exists() and p.name == str(p) for p in configs) else {}
        return [shipped.get(str(p), p) if not p.exists() else p for p in configs]


def _stem(kind: str, path: Path) -> str:
    return Path(path).stem if kind == "aces" else Path(path).name


def task_names(config: AcesConfig) -> list[str]:
    """The task each config and label folder becomes, in the order given; a user error for a name that
    cannot be a file name or that two files share."""
    names: list[str] = []
    for kind, setting in PREFIXES.items():
        for path in getattr(config, setting):
            stem = _stem(kind, path)
            if not _NAME.fullmatch(stem):
                raise InputError(
                    f"--{kind} {path}: the task is named after the {'file' if kind == 'aces' else 'folder'} "
                    f"({stem!r}), which must be letters, digits, '_' or '-' (at most 80): rename it."
                )
            name = f"{kind}.{stem}"
            if name in names:
                raise InputError(f"--{kind} {path}: two {setting} make the task {name}; rename one of them.")
            names.append(name)
    return names


def is_label_task(name: str) -> bool:
    """An ACES-config or label-folder task (``aces.X``, ``labels.X``)."""
    return name.startswith(tuple(f"{kind}." for kind in PREFIXES))


def source_of(name: str, config: AcesConfig) -> tuple[str, Path]:
    """(kind, path) of the config or folder behind task ``name``; a user error when none is named so."""
    kind, _, stem = name.partition(".")
    for path in getattr(config, PREFIXES.get(kind, "configs")) if kind in PREFIXES else []:
        if _stem(kind, path) == stem:
            return kind, Path(path)
    raise InputError(
        f"task {name}: no such {'ACES config' if kind == 'aces' else 'label folder'} in this run; "
        f"give it with --{kind} (or [tasks.aces] {PREFIXES.get(kind, 'configs')})."
    )


def task_spec(name: str):
    """The registry's TaskSpec for ``aces`` (the shared settings) or one ``aces.X`` / ``labels.X`` task."""
    from clinpred.tasks.registry import TaskSpec

    if name == SETTINGS:
        title, evaluate = "ACES tasks", _not_a_task
        description = "Settings of the ACES-config and label-folder tasks (--aces FILE, --labels DIR)."
    else:
        kind, _, stem = name.partition(".")
        title = f"ACES: {stem}" if kind == "aces" else f"Labels: {stem}"
        description = "Binary labels from an ACES task config on a MEDS dataset, or a MEDS label folder."
        evaluate = partial(evaluate_label_task, task=name)
    return TaskSpec(
        name=name,
        title=title,
        description=description,
        unit="label",
        main_metric="auroc",
        config=AcesConfig,
        evaluate=evaluate,
        directions={"auroc": "higher", "auprc": "higher", "brier": "lower"},
        metrics_from_units="clinpred.tasks.binary_outcome:metrics_from_units",
        descriptive_metrics="clinpred.tasks.binary_outcome:DESCRIPTIVE_METRICS",
    )


def _not_a_task(*_: Any, **__: Any) -> TaskResult:
    raise InputError("'aces' holds the settings of the ACES tasks; give a config with --aces FILE.")


def check_label_tasks(config: Any) -> None:
    """Before any work: each ACES config parses and runs on a MEDS dataset, each label folder reads
    (the labels are then ready for every backend). One message and exit 2 otherwise."""
    names = [t for t in config.tasks.run if is_label_task(t)]
    if not names:
        return
    settings = config.tasks.settings(SETTINGS)
    for name in names:
        kind, path = source_of(name, settings)
        extract(kind, path, config.data.path if config.data.synthetic is None else None)


def features_before(
    notes: pd.DataFrame, units: pd.DataFrame, *, include_discharge_summary: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(note rows, unit of each) pairing every unit with its subject's notes charted strictly before its
    prediction time; a date-only note only when its whole day is before. Rows are grouped by unit, in
    time order inside. ``notes`` are in (subject_id, time) order, as a Cohort keeps them."""
    subjects = notes["subject_id"].to_numpy(dtype=np.int64)
    times = notes["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    unit_subject = units["subject_id"].to_numpy(dtype=np.int64)
    cut_time = units["prediction_time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    first = np.searchsorted(subjects, unit_subject, side="left")
    last = np.searchsorted(subjects, unit_subject, side="right")
    # notes of the subject with time < prediction time: one binary search per unit in its subject's run
    cut = np.array([lo + np.searchsorted(times[lo:hi], t, side="left") for lo, hi, t in zip(first, last, cut_time, strict=True)], dtype=np.int64)  # fmt: skip
    lengths = cut - first
    unit_of = np.repeat(units["label_id"].to_numpy(dtype=np.int64), lengths)
    offsets = np.cumsum(lengths) - lengths  # where each unit's rows start in the output
    pos = np.repeat(first - offsets, lengths) + np.arange(int(lengths.sum()))
    date_only = notes["time_is_date"].to_numpy(dtype=bool)[pos]
    day_inside = times[pos] + _NS_PER_DAY <= np.repeat(cut_time, lengths)
    is_ds = np.asarray(is_discharge_summary(notes["category"]), dtype=bool)[pos]
    keep = ~date_only | day_inside
    counts = {"date_only_notes_on_the_prediction_day_unused": int((~keep).sum())}
    counts["discharge_summaries_before_prediction_time_" + ("used" if include_discharge_summary else "unused")] = (
        int((keep & is_ds).sum())
    )  # fmt: skip
    if not include_discharge_summary:
        keep &= ~is_ds
    return pos[keep], unit_of[keep], counts


def evaluate_label_task(
    cohort: Cohort, embeddings: np.ndarray, *, config: AcesConfig | None = None, task: str
) -> TaskResult:
    """Cross-validated prediction of one ACES config's (or label folder's) labels from the notes before
    each prediction time (``embeddings`` aligned with ``cohort.notes``)."""
    config = config or AcesConfig()
    if len(embeddings) != len(cohort.notes):
        raise ValueError(f"{len(embeddings)} embedding rows for {len(cohort.notes)} notes")
    kind, path = source_of(task, config)
    found = extract(kind, path, cohort.path)  # a MEDS root (an exported synthetic cohort too)
    labels = found.labels
    evaluation = labels["subject_id"].isin(set(cohort.patients["subject_id"].tolist())).to_numpy()
    counts: dict[str, Any] = {
        "labels_in_source": len(labels),
        "subjects_in_source": int(labels["subject_id"].nunique()),
        "positives_in_source": int(labels["boolean_value"].sum()),
        **found.counts,
        "excluded_not_evaluation_patients": int((~evaluation).sum()),
        "subjects_not_evaluation_patients": int(labels.loc[~evaluation, "subject_id"].nunique()),
    }
    units = labels[evaluation].reset_index(drop=True)
    units = pd.DataFrame(
        {
            "subject_id": units["subject_id"].to_numpy(dtype=np.int64),
            "label_id": np.arange(len(units), dtype=np.int64),
            "prediction_time": units["prediction_time"],
            "y": units["boolean_value"].to_numpy(dtype=bool),
        }
    )
    rows, unit_of, feature_counts = features_before(
        cohort.notes, units, include_discharge_summary=config.include_discharge_summary
    )
    counts.update(feature_counts)
    definition = {
        "task": task,
        **found.source,
        "unit": "a label row: a subject at a prediction time (a subject may have several; folds and "
        "intervals keep them together)",
        "features": (
            f"{config.aggregation} of the embeddings of the subject's notes charted strictly before the "
            "prediction time (never at or after it; a date-only note only when its whole day is before); "
            + (
                "discharge summaries included"
                if config.include_discharge_summary
                else "discharge summaries never"
            )
        ),
        "exclusions": (
            "labels of subjects who are not evaluation patients (fine-tuning or validation patients, or "
            "subjects the dataset has no notes or patient row for); label rows without a note before "
            "their prediction time; repeated identical label rows"
        ),
        "relaxations": ["include_discharge_summary"] if config.include_discharge_summary else [],
    }
    return evaluate_binary_outcome(
        task,
        cohort,
        embeddings,
        units=units,
        feature_notes=rows,
        config=config.model_copy(
            update={"configs": [], "labels": []}
        ),  # the other tasks' files: not this one's
        definition=definition,
        counts=counts,
        key="label_id",
        note_units=unit_of,
        unit_name="labels",
    )
