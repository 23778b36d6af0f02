"""Tasks by name: each declared once with its metadata, built-ins plus the ``clinpred.tasks`` entry points.

A task is a ``TaskSpec`` (in the spirit of MTEB's ``TaskMetadata``): its name, a one-line description,
the unit it scores (query, patient, admission), its main metric and the direction of its metrics, the
pydantic model of its settings, and the function that runs it on a ``Cohort`` and an embedding matrix
(aligned with ``cohort.notes``) and returns a ``TaskResult``. Config (``[tasks.NAME]``), the pipeline,
RESULTS.md, report.html and ``clinpred report`` learn tasks from here.

Built-ins name their callables by ``module:attribute`` strings, imported only when used. A team adds a
task by installing a package that declares::

    [project.entry-points."clinpred.tasks"]
    length-of-stay = "my_package.los:TASK"

where ``TASK`` is a ``TaskSpec`` whose ``name`` is the entry point's name. Its settings are read from
``[tasks.length-of-stay]`` and validated by its config model; ``clinpred run --task length-of-stay`` runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel

from clinpred.errors import InputError

ENTRY_POINT_GROUP = "clinpred.tasks"
BUILT_IN = "built-in"
Unit = Literal["query", "patient", "admission", "label"]  # label: a subject at a prediction time (aces)
Direction = Literal["higher", "lower"]


_MISSING = object()


def _resolve(value: Any, default: Any = _MISSING) -> Any:
    """A ``module:attribute`` string imported (``default`` where the module lacks it); anything else as is."""
    if isinstance(value, str) and ":" in value:
        module_name, _, attribute = value.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if default is _MISSING else getattr(module, attribute, default)
    return value


@dataclass(frozen=True)
class TaskSpec:
    """One task, declared once. Callables and the config model may be given as ``module:attribute``.

    ``evaluate(cohort, embeddings, config=...)`` returns a ``TaskResult`` whose ``task`` is ``name``;
    ``metrics_from_units(units)`` (optional) recomputes the metrics from the per-unit rows, which is
    what paired differences in ``clinpred report`` need (and the bootstrap: a metric function may carry
    ``on_resampled_rows(units, row_sets)``, all resamples at once, as diagnosis's does, where calling it on
    each resample's rows is slow); ``descriptive_metrics`` are counts and chance
    levels that are never paired. ``default``: run when the config does not say which tasks to run.
    """

    name: str
    title: str
    description: str
    unit: Unit
    main_metric: str
    config: type[BaseModel] | str
    evaluate: Callable[..., Any] | str
    directions: Mapping[str, Direction] = field(default_factory=dict)
    metrics_from_units: Callable[..., dict[str, float]] | str | None = None
    descriptive_metrics: tuple[str, ...] | str = ()
    default: bool = False

    def config_model(self) -> type[BaseModel]:
        return _resolve(self.config)

    def metric_fn(self) -> Callable[..., dict[str, float]] | None:
        return _resolve(self.metrics_from_units)

    def descriptive(self) -> tuple[str, ...]:
        return tuple(_resolve(self.descriptive_metrics, ()))

    def direction(self, metric: str) -> Direction | None:
        return self.directions.get(metric)

    def run(self, cohort: Any, embeddings: Any, config: BaseModel | None = None) -> Any:
        """The task on one backend's embeddings of ``cohort.notes``; ``config`` defaults to the model's defaults."""
        return _resolve(self.evaluate)(cohort, embeddings, config=config or self.config_model()())


_AUC_UP = {"auroc": "higher", "auprc": "higher"}

BUILT_INS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="recall",
            title="Next-note recall",
            description="Retrieve a patient's next note among the evaluation notes (top-k, MRR, patient@k).",
            unit="query",
            main_metric="top5",
            config="clinpred.tasks.recall:RecallConfig",
            evaluate="clinpred.tasks.recall:evaluate_recall",
            directions={"top1": "higher", "top5": "higher", "top10": "higher", "mrr": "higher"},
            metrics_from_units="clinpred.tasks.recall:metrics_from_units",
            descriptive_metrics="clinpred.tasks.recall:DESCRIPTIVE_METRICS",
            default=True,
        ),
        TaskSpec(
            name="diagnosis",
            title="Diagnosis prediction",
            description="Predict a patient's diagnosis groups (CCS) from aggregated note embeddings.",
            unit="patient",
            main_metric="macro_auroc",
            config="clinpred.tasks.diagnosis:DiagnosisConfig",
            evaluate="clinpred.tasks.diagnosis:evaluate_diagnosis",
            directions={
                "macro_auroc": "higher",
                "micro_auroc": "higher",
                "macro_auprc": "higher",
                "macro_brier": "lower",
            },
            metrics_from_units="clinpred.tasks.diagnosis:metrics_from_units",
            descriptive_metrics="clinpred.tasks.diagnosis:DESCRIPTIVE_METRICS",
            default=True,
        ),
        TaskSpec(
            name="survival",
            title="Survival analysis",
            description="Rank patients by risk of death after a landmark from their early notes (C-index, IBS).",
            unit="patient",
            main_metric="harrell_c",
            config="clinpred.tasks.survival:SurvivalConfig",
            evaluate="clinpred.tasks.survival:evaluate_survival",
            directions={"harrell_c": "higher", "uno_c": "higher", "ibs": "lower"},
            metrics_from_units="clinpred.tasks.survival:metrics_from_units",
            descriptive_metrics="clinpred.tasks.survival:DESCRIPTIVE_METRICS",
            default=True,
        ),
        TaskSpec(
            name="geometry",
            title="Embedding geometry",
            description="Do patients with the same primary phenotype cluster (silhouette, kNN agreement, UMAP)?",
            unit="patient",
            main_metric="silhouette",
            config="clinpred.tasks.geometry:GeometryConfig",
            evaluate="clinpred.tasks.geometry:evaluate_geometry",
            directions={"silhouette": "higher", "knn_agreement": "higher"},
            metrics_from_units="clinpred.tasks.geometry:metrics_from_units",
            descriptive_metrics="clinpred.tasks.geometry:DESCRIPTIVE_METRICS",
            default=True,
        ),
        TaskSpec(
            name="mortality",
            title="In-hospital mortality",
            description="Death during the admission, from notes of its first 48 h (admissions ending sooner excluded).",
            unit="admission",
            main_metric="auroc",
            config="clinpred.tasks.mortality:MortalityConfig",
            evaluate="clinpred.tasks.mortality:evaluate_mortality",
            directions={**_AUC_UP, "brier": "lower"},
            metrics_from_units="clinpred.tasks.binary_outcome:metrics_from_units",
            descriptive_metrics="clinpred.tasks.binary_outcome:DESCRIPTIVE_METRICS",
        ),
        TaskSpec(
            name="readmission",
            title="30-day readmission",
            description="Another admission within 30 days of a discharge alive, from that admission's notes.",
            unit="admission",
            main_metric="auroc",
            config="clinpred.tasks.readmission:ReadmissionConfig",
            evaluate="clinpred.tasks.readmission:evaluate_readmission",
            directions={**_AUC_UP, "brier": "lower"},
            metrics_from_units="clinpred.tasks.binary_outcome:metrics_from_units",
            descriptive_metrics="clinpred.tasks.binary_outcome:DESCRIPTIVE_METRICS",
        ),
    )
}


class TaskInfo(BaseModel):
    """One row of ``clinpred tasks list``."""

    name: str
    title: str
    description: str
    unit: str
    main_metric: str
    default: bool
    source: str  # "built-in" or the distribution that declares the entry point
    available: bool = True
    reason: str = ""


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _source(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "entry point"


def _load(ep: metadata.EntryPoint) -> TaskSpec:
    """The TaskSpec an entry point names; ValueError when it names something else."""
    spec = ep.load()
    if callable(spec) and not isinstance(spec, TaskSpec):
        spec = spec()
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"{ep.value} is a {type(spec).__name__}, not a clinpred.tasks.registry.TaskSpec")
    if spec.name != ep.name:
        raise ValueError(f"{ep.value} declares the task name {spec.name!r}, the entry point {ep.name!r}")
    return spec


def _label_tasks_row() -> TaskInfo:
    """The ACES-config and label-folder tasks: named by the files a run is given, so one row says how."""
    from clinpred.tasks.aces_configs import packaged_configs

    shipped = sorted(packaged_configs())
    return TaskInfo(
        name="aces.<stem>, labels.<folder>",
        title="ACES and label-folder tasks",
        description=(
            f"Binary labels per subject and prediction time, named by the files given: run with "
            f"--aces FILE|{'|'.join(shipped)} (an ACES task YAML, on a MEDS --data) or --labels DIR "
            f"(MEDS label parquet files); settings [tasks.aces]. Shipped configs: {', '.join(shipped)}."
        ),
        unit="label",
        main_metric="auroc",
        default=False,
        source=BUILT_IN,
    )


def list_tasks() -> list[TaskInfo]:
    """Every task clinpred knows, built-in first, then installed ones (with why one cannot be used)."""
    rows = [
        TaskInfo(
            name=s.name,
            title=s.title,
            description=s.description,
            unit=s.unit,
            main_metric=s.main_metric,
            default=s.default,
            source=BUILT_IN,
        )
        for s in BUILT_INS.values()
    ]
    rows.append(_label_tasks_row())
    for ep in _entry_points():
        source = _source(ep)
        base = {"name": ep.name, "title": ep.name, "unit": "", "main_metric": "", "default": False}
        if ep.name in BUILT_INS:
            reason = f"ignored: the name is taken by a built-in task ({ep.value})"
            rows.append(TaskInfo(**base, description="", source=source, available=False, reason=reason))
            continue
        try:
            s = _load(ep)
        except Exception as exc:  # a third-party package can fail in any way; report it, never crash the list
            reason = f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
            rows.append(TaskInfo(**base, description="", source=source, available=False, reason=reason))
            continue
        rows.append(
            TaskInfo(
                name=s.name,
                title=s.title,
                description=s.description,
                unit=s.unit,
                main_metric=s.main_metric,
                default=False,  # an installed task runs when asked for, never by default
                source=source,
            )
        )
    return rows


def _known_names() -> list[str]:
    return sorted(set(BUILT_INS) | {ep.name for ep in _entry_points()})


def get_task(name: str) -> TaskSpec:
    """The named task; a user error naming the known tasks when there is none, or it cannot be loaded."""
    spec = BUILT_INS.get(name)
    if spec is not None:
        return spec
    if name == "aces" or name.startswith(("aces.", "labels.")):  # ACES configs and label folders
        from clinpred.tasks.aces import task_spec

        return task_spec(name)
    for ep in _entry_points():
        if ep.name == name:
            try:
                return _load(ep)
            except Exception as exc:
                raise InputError(
                    f"task '{name}' from package '{_source(ep)}' cannot be loaded ({ep.value}): "
                    f"{type(exc).__name__}: {exc}. Reinstall that package or pick another task."
                ) from None
    raise InputError(
        f"unknown task '{name}'. Known tasks: {', '.join(_known_names())} "
        "(`clinpred tasks list` describes them)."
    )


def settings_name(task: str) -> str:
    """The ``[tasks.NAME]`` table that holds a task's settings: its own, or ``aces`` for every ACES-config
    and label-folder task (``aces.X``, ``labels.X``)."""
    return "aces" if task.startswith(("aces.", "labels.")) else task


def default_task_names() -> list[str]:
    """What runs when the config does not say: the built-ins marked ``default``."""
    return [name for name, spec in BUILT_INS.items() if spec.default]


def task_order(names: Iterable[str]) -> list[str]:
    """Tasks in report order: built-ins in their declared order, then the others as first seen."""
    seen = list(dict.fromkeys(names))
    return [n for n in BUILT_INS if n in seen] + [n for n in seen if n not in BUILT_INS]


def task_title(name: str) -> str:
    """A task's title for tables; its name where the task is not installed here (or fails to load)."""
    spec = BUILT_INS.get(name)
    if spec is not None:
        return spec.title
    try:
        return get_task(name).title
    except InputError:
        return name


def find_task(name: str) -> TaskSpec | None:
    """The task if it can be loaded here, else None (a run read back where its plug-in is missing)."""
    try:
        return get_task(name)
    except InputError:
        return None
