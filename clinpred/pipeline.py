"""The runner behind `clinpred run`: cohort -> patient split -> embeddings (cached) -> tasks -> run directory.

Only this module and the CLI touch a run's file layout:

    RUN_DIR/config.json              the effective ExperimentConfig
    RUN_DIR/results.json             RunResults: per backend and task, the TaskResult, versions, timings
    RUN_DIR/RESULTS.md               backends side by side, intervals in brackets, task definitions below
    RUN_DIR/umap.png                 one UMAP panel per backend (when geometry ran)
    RUN_DIR/report.html              one self-contained page: the table, figures per task, definitions
    RUN_DIR/units/LABEL/TASK.parquet per-unit out-of-fold outputs, for paired comparisons in `clinpred report`
    RUN_DIR/predictions/TASK/LABEL.parquet  binary tasks' out-of-fold predictions in meds-evaluation's schema
    RUN_DIR/.clinpred-run            the mark: clinpred wrote this folder and may replace it (run_folder.py)

A backend that cannot run (no API key, model not on disk, refused for protected data) is recorded as
not run, with the reason, and the others go on.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

import clinpred
from clinpred.atomic import atomic_path, write_text
from clinpred.config import DataConfig, ExperimentConfig, TaskName
from clinpred.data.cohort import Cohort
from clinpred.data.memory import release_mapped_pages, return_freed_memory
from clinpred.data.note_texts import NoteTexts
from clinpred.data.splits import PatientSplit, ids_sha256, split_cohort
from clinpred.errors import InputError
from clinpred.paths import cache_root
from clinpred.privacy.modes import protect_source
from clinpred.recorded_paths import relative_inside
from clinpred.redaction import redact
from clinpred.run_folder import BackendRun, Kind, RunResults, check_output_folder, replace_run_folder
from clinpred.stage_times import StageTimes
from clinpred.tasks.result import TaskResult

Log = Callable[[str], None]


@dataclass
class Prepared:
    """The cohort and the evaluation patients' notes, shared by every backend of a run."""

    cohort: Cohort  # as read: the text setting is applied to what is embedded or fitted on
    split: PatientSplit
    evaluation: Cohort  # the evaluation patients, text under the run's PHI-placeholder setting
    phi_placeholders: str = "keep"

    @cached_property
    def evaluation_texts(self) -> NoteTexts:
        """What every backend embeds: a view of the text column (no second copy of the text)."""
        return NoteTexts(self.evaluation.notes["text"])

    @property
    def finetune_texts(self) -> NoteTexts:
        """What a backend that learns from text (TF-IDF) is fitted on: the fine-tuning patients' notes,
        read from the cohort's own column under the run's PHI-placeholder setting."""
        notes = self.cohort.notes
        rows = np.flatnonzero(notes["subject_id"].isin(set(self.split.finetune)).to_numpy())
        return NoteTexts(notes["text"], rows, phi=self.phi_placeholders)  # masked a block at a time


def source_record(cohort: Cohort) -> dict[str, Any]:
    """What the embedding cache records of where texts came from (a plain value: the backend never sees
    a Cohort): the dataset's absolute path and whether it is the synthetic cohort."""
    path = str(Path(cohort.path).resolve()) if cohort.path is not None else None
    return {"path": path, "synthetic": bool(cohort.synthetic), "reader": cohort.source}


def synthetic_cohort_dir(size: str, seed: int) -> Path:
    """Where the generated synthetic cohort of a size and seed is kept between runs: one folder per
    generator version, so that a cohort written by an older generator is never read as the current one."""
    from clinpred.data.synthetic.generate import GENERATOR_VERSION

    return cache_root() / "synthetic" / f"{size}-seed{seed}-generator{GENERATOR_VERSION}"


def build_cohort(data: DataConfig, *, progress: bool = True, relax: str | None = None) -> Cohort:
    """Read MIMIC files, or generate (once) and read the synthetic cohort, through the same reader.

    A source with more damaged rows than ``data.max_repaired_share`` is refused; ``relax`` names how the
    command relaxes it (default: the run config's [data] max_repaired_share).
    """
    from clinpred.data.integrity import refuse_excess
    from clinpred.data.load import load_cohort

    if data.synthetic is not None:
        from filelock import FileLock

        from clinpred.data.synthetic import generate_cohort

        path = synthetic_cohort_dir(data.synthetic, data.synthetic_seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path.with_name(path.name + ".lock"))):  # two runs at once: one generates
            if not path.is_dir():
                generate_cohort(path, size=data.synthetic, seed=data.synthetic_seed, progress=progress)
    else:
        path = data.path
    cohort = load_cohort(
        path,
        categories=data.categories,
        use_cache=data.use_cache,
        progress=progress,
        meds_codes=data.meds,
        omop=data.omop.model_dump(),
    )
    refuse_excess(cohort, data.max_repaired_share, data.describe(), relax)  # DESIGN.md rule 9
    return cohort


def prepare(config: ExperimentConfig, *, progress: bool = True) -> Prepared:
    """Build the cohort and split its patients; evaluation notes are what every backend embeds."""
    cohort = build_cohort(config.data, progress=progress)
    release_mapped_pages()  # the text pages the reader's checks went through
    split = split_cohort(cohort, config.split)  # seeded, or the dataset's own ([split] source)
    # the text setting is applied once, to the notes that are embedded (or fitted on), not to all notes
    evaluation = cohort.subset(split.evaluation).with_phi_setting(config.data.phi_placeholders)
    return_freed_memory()  # the subset's temporaries (Arrow keeps them otherwise: ~0.3 GB per 10,000 patients)
    release_mapped_pages()  # the cohort's text pages the split read: the page cache's, not ours
    if evaluation.notes.empty:
        raise InputError(f"{config.data.describe()}: the evaluation patients have no notes to embed.")
    return Prepared(cohort, split, evaluation, phi_placeholders=config.data.phi_placeholders)


def run_task(task: TaskName, cohort: Cohort, embeddings: np.ndarray, config: ExperimentConfig) -> TaskResult:
    """One task, found in the task registry, on one backend's embeddings of the evaluation notes."""
    from clinpred.tasks.registry import get_task

    return get_task(task).run(cohort, embeddings, config.tasks.settings(task))


def _finetune_provenance(backend: Any, split: PatientSplit) -> tuple[list[str], dict[str, Any]]:
    """For a fine-tuned model: were its training patients this run's fine-tuning patients? (rule 2).

    `clinpred finetune` records hashes of its training and validation patients; when both equal this
    run's fine-tuning side, the evaluation patients were held out of training. A mismatch, or a
    ``gemma-finetuned`` model without the record (trained elsewhere, on patients nobody can check), is a
    warning in the run and in RESULTS.md. Returns the warnings and what results.json records.
    """
    resolved = getattr(backend, "resolved", None)
    record = Path(resolved.path) / "clinpred-finetune.json" if resolved is not None else None
    if record is None or not record.is_file():
        if getattr(backend, "name", None) != "gemma-finetuned":
            return [], {}  # a base model: nothing to check
        return [
            f"no clinpred-finetune.json in {resolved.path if resolved is not None else 'the model folder'}: "
            "which patients this model was trained on is unknown, so evaluation patients may have been seen "
            "in training (DESIGN.md rule 2); fine-tune it with `clinpred finetune` on this data and split"
        ], {"record": None, "train_patients_sha256": None, "matches_this_run": None}
    written = json.loads(record.read_text())
    from clinpred.finetune.output import supervision_of

    data = written.get("data", {})
    train, validation = data.get("train_subject_ids_sha256"), data.get("validation_subject_ids_sha256")
    matches = train == ids_sha256(split.finetune) and validation == ids_sha256(split.validation)
    provenance = {
        "record": str(record),
        "train_patients_sha256": train,
        "validation_patients_sha256": validation,
        "matches_this_run": matches,
        "membership_audit": _audit_summary(written.get("audit")),
        "supervision": supervision_of(written),  # DESIGN.md rule 10
    }
    if matches:
        return [], provenance
    return [
        "fine-tuned on patients other than this run's fine-tuning patients: evaluation patients may have "
        "been seen in training (DESIGN.md rule 2); fine-tune and evaluate with the same data and split"
    ], provenance


def _record_as_given(backend: Any, record: Path) -> str:
    """A model's record as results.json names it: under the model setting as the user gave it, or the
    hub id and commit; never the resolved absolute path of this machine (results.json travels)."""
    resolved = getattr(backend, "resolved", None)
    if getattr(resolved, "from_hub_cache", False):
        return f"{resolved.model_id}@{resolved.revision}/{record.name}"
    given = getattr(getattr(backend, "settings", None), "model", None)
    return str(Path(given) / record.name) if given else str(record)


def _audit_summary(audit: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model's membership-inference audit (clinpred.privacy.audit) as its record states it, in short."""
    if not audit:
        return None
    if audit.get("status") != "done":
        return {"status": audit.get("status", "not run"), "reason": audit.get("reason")}
    keys = ("status", "auroc", "tpr_at_1pct_fpr", "members", "non_members")
    return {k: audit.get(k) for k in keys}


def _text_setting_warning(provenance: dict[str, Any], phi_placeholders: str) -> list[str]:
    """A model fine-tuned on text with placeholders kept, evaluated on masked text (or the reverse)."""
    record = provenance.get("record")
    if not record:
        return []
    trained = json.loads(Path(record).read_text()).get("config", {}).get("phi_placeholders", "keep")
    if trained == phi_placeholders:
        return []
    return [
        f"fine-tuned with phi_placeholders = {trained!r} but evaluated with {phi_placeholders!r}: the text it "
        "sees here is not the text it learnt from; set data.phi_placeholders to match, or fine-tune again"
    ]


def create_backends(config: ExperimentConfig) -> list[Any | BackendRun]:
    """Every backend of the run built from its settings, before any data is read.

    A bad setting, a model that is not on disk or a missing API key shows in seconds, not after the
    whole cohort has been read. A backend that cannot be built becomes a 'not run' record with the reason.
    """
    from clinpred.backends import create_backend

    built: list[Any | BackendRun] = []
    for spec in config.backends:
        try:
            backend = create_backend(spec.name, spec.settings)
            ready = getattr(backend, "check_ready", None)
            if callable(ready):
                ready()
            built.append(backend)
        except InputError as exc:
            built.append(BackendRun(label=spec.display, name=spec.name, status="not run", reason=str(exc)))
    return built


def evaluate_backend(
    prepared: Prepared,
    spec_index: int,
    config: ExperimentConfig,
    *,
    progress: bool,
    log: Log,
    backend: Any | None = None,
):
    """Embed the evaluation notes with one backend and run every task; 'not run' with a reason on user errors."""
    from clinpred.backends import CachedBackend, EmbeddingCache, create_backend, default_cache_root
    from clinpred.backends.external import require_external_permission

    spec = config.backends[spec_index]
    run = BackendRun(label=spec.display, name=spec.name, status="ok")
    try:
        if backend is None:
            backend = create_backend(spec.name, spec.settings)
        require_external_permission(
            backend, protected=prepared.cohort.protected, allow_external_api=config.allow_external_api
        )
        if hasattr(backend, "fit"):
            finetune_texts = prepared.finetune_texts
            log(f"{run.label}: fitting on {len(finetune_texts):,} notes of fine-tuning patients")
            backend.fit(finetune_texts)
            fitted = getattr(backend, "n_fit_texts", len(finetune_texts))
            if fitted < len(finetune_texts):
                log(f"{run.label}: fitted on a seeded sample of {fitted:,} of them (setting fit_max_notes)")
            del finetune_texts
            return_freed_memory()  # the fit's temporaries (a Python int per term and note)
            release_mapped_pages()
        cache = EmbeddingCache(config.cache_dir or default_cache_root())
        cached = CachedBackend(backend, cache, progress=progress, source=source_record(prepared.cohort))
        run.fingerprint = backend.fingerprint()
        run.description = backend.describe() if hasattr(backend, "describe") else {}
        provenance_warnings, run.provenance = _finetune_provenance(backend, prepared.split)
        provenance_warnings += _text_setting_warning(run.provenance, config.data.phi_placeholders)
        if run.provenance.get("record"):  # recorded as the model was given, not as resolved here
            run.provenance["record"] = _record_as_given(backend, Path(run.provenance["record"]))
        run.warnings += provenance_warnings
        for warning in provenance_warnings:
            log(f"{run.label}: warning: {warning}")
        texts = prepared.evaluation_texts
        log(f"{run.label}: embedding {len(texts):,} evaluation notes")
        t0 = time.perf_counter()
        embeddings = cached.embed(texts, role="document")
        run.seconds["embed"] = round(time.perf_counter() - t0, 2)
        return_freed_memory()  # the cache's lookup of a key and a vector per note
        release_mapped_pages()
        run.notes_embedded = len(texts)
        run.notes_newly_embedded = cached.last_embedded
        if hasattr(backend, "describe"):  # again: what embedding used (batch size, requests) is known now
            run.description = backend.describe()
    except InputError as exc:
        return run.model_copy(update={"status": "not run", "reason": str(exc)}), None
    for task in config.tasks.run:
        log(f"{run.label}: {task}")
        t0 = time.perf_counter()
        try:
            run.results[task] = run_task(task, prepared.evaluation, embeddings, config)
        except InputError as exc:  # e.g. too few patients for a task's settings: the other tasks go on
            run.tasks_not_run[task] = str(exc)
            log(f"{run.label}: {task} not run ({exc})")
        run.seconds[task] = round(time.perf_counter() - t0, 2)
    return run, embeddings


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "clinpred": clinpred.__version__}
    for pkg in (
        "numpy",
        "pandas",
        "scikit-learn",
        "scikit-survival",
        "torch",
        "sentence-transformers",
        "transformers",
        "openai",
        "lightgbm",
        "umap-learn",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def check_backend_names(config: ExperimentConfig) -> None:
    """Fail before any work on a backend name the registry does not know (a typo, a missing plug-in)."""
    from clinpred.backends import list_backends

    known = [b.name for b in list_backends()]
    unknown = [b.name for b in config.backends if b.name not in known]
    if unknown:
        raise InputError(f"unknown backend {', '.join(unknown)}; available: {', '.join(known)}.")


def run_experiment(
    config: ExperimentConfig,
    out_dir: Path,
    *,
    progress: bool = True,
    log: Log = lambda _: None,
    keep: tuple[str, ...] = (),
    kind: Kind = "run",
    command: str | None = None,
    stages: StageTimes | None = None,
) -> RunResults:
    """The whole `clinpred run`, written into a temporary folder that replaces ``out_dir`` at the end.

    A failed or interrupted run leaves ``out_dir`` as it was; a finished one leaves no file of an
    earlier run there (except the entries named in ``keep``). ``out_dir`` must be new, empty or a run
    folder clinpred marked (clinpred.run_folder); it is marked as a ``kind`` folder written by
    ``command``. Exits with a user error when no backend could run at all. ``stages`` (the demo's)
    receives the seconds of the cohort, each backend's embedding and tasks, and the report.
    """
    out_dir = Path(out_dir)
    stages = stages if stages is not None else StageTimes()
    # before the first write: owner-only modes for what derives from credentialed notes (DESIGN.md rule 6)
    protect_source(config.data, share=config.privacy.share_with_group)
    inputs = [("--data", config.data.path)]
    check_output_folder(out_dir, kind, inputs=inputs)
    check_backend_names(config)
    from clinpred.tasks.aces import check_label_tasks

    check_label_tasks(config)  # ACES configs and label folders read (and labels extracted) before any work
    built = create_backends(config)
    if all(isinstance(b, BackendRun) for b in built):
        raise InputError(_nothing_ran(built))
    for b in built:
        if isinstance(b, BackendRun):
            log(f"{b.label}: not run ({b.reason})")
    recorded = _recorded_config(config, out_dir, keep)  # the demo's models/: relative to the run folder
    with replace_run_folder(out_dir, kind, command=command, keep=keep, inputs=inputs) as tmp:
        write_text(tmp / "config.json", redact(recorded.model_dump_json(indent=2)))  # secrets by value
        log(f"cohort: {config.data.describe()}")
        with stages.stage("cohort"):
            prepared = prepare(config, progress=progress)
        ev = prepared.evaluation
        if prepared.split.left_out:
            said = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in prepared.split.left_out.items())
            log(f"split from the dataset's subject_splits.parquet; left out of every score: {said}")
        log(
            f"{len(prepared.split.evaluation):,} evaluation patients with {len(ev.notes):,} notes; "
            f"{len(prepared.split.finetune_all):,} fine-tuning patients kept out of every score"
        )
        runs: list[BackendRun] = []
        for i, backend in enumerate(built):
            if isinstance(backend, BackendRun):
                runs.append(backend)
                continue
            t0 = time.perf_counter()
            run, _ = evaluate_backend(prepared, i, config, progress=progress, log=log, backend=backend)
            _time_backend(stages, run, time.perf_counter() - t0)
            if run.status != "ok":
                log(f"{run.label}: not run ({run.reason})")
            runs.append(run)
        if not any(r.status == "ok" for r in runs):
            raise InputError(_nothing_ran(runs))
        results = RunResults(
            clinpred_version=clinpred.__version__,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            data=config.data.describe(),
            cohort=prepared.cohort.summary(),
            split={
                "finetune_patients": len(prepared.split.finetune),
                "validation_patients": len(prepared.split.validation),
                "evaluation_patients": len(prepared.split.evaluation),
                "evaluation_patients_sha256": ids_sha256(prepared.split.evaluation),
                **prepared.split.config.model_dump(),
                **({"left_out": prepared.split.left_out} if prepared.split.left_out else {}),
            },
            evaluation=ev.summary(),
            allow_external_api=config.allow_external_api,
            versions=versions(),
            config=recorded.model_dump(mode="json"),
            backends=[_recorded_run(run, out_dir, keep) for run in runs],
        )
        with stages.stage("report"):
            write_run(results, tmp)
    return results


def _time_backend(stages: StageTimes, run: BackendRun, seconds: float) -> None:
    """A backend's wall time as two stages: its tasks (their own timings), and the rest (loading or
    fitting the model, embedding)."""
    tasks = sum(v for k, v in run.seconds.items() if k != "embed")
    stages.add(f"{run.label}: embedding", seconds - tasks)
    if run.results or run.tasks_not_run:
        stages.add(f"{run.label}: tasks", tasks)


def _recorded_config(config: ExperimentConfig, out_dir: Path, keep: tuple[str, ...]) -> ExperimentConfig:
    """The config as config.json and results.json record it: a backend setting's path into what the run
    folder keeps (the demo's fine-tuned models) relative to it, every other path as given."""
    backends = [
        b.model_copy(update={"settings": relative_inside(b.settings, out_dir, keep)}) for b in config.backends
    ]
    return config.model_copy(update={"backends": backends})


def _recorded_run(run: BackendRun, out_dir: Path, keep: tuple[str, ...]) -> BackendRun:
    """A backend's run as results.json records it: paths into what the run folder keeps relative to it."""
    fields = ("reason", "description", "provenance", "warnings", "tasks_not_run")
    return run.model_copy(update={f: relative_inside(getattr(run, f), out_dir, keep) for f in fields})


def _nothing_ran(runs: list[Any]) -> str:
    reasons = "; ".join(f"{r.label}: {r.reason}" for r in runs if isinstance(r, BackendRun))
    return f"no backend could run, so nothing was written. {reasons}"


def write_run(results: RunResults, out_dir: Path) -> None:
    """results.json, per-unit outputs, meds-evaluation predictions, RESULTS.md, the UMAP figure, report.html."""
    import pyarrow.parquet as pq

    from clinpred.report.html import write_report_html
    from clinpred.report.markdown import results_markdown
    from clinpred.report.predictions import prediction_table

    for run in results.backends:
        for task, result in run.results.items():
            if result.units is not None:
                with atomic_path(out_dir / "units" / run.label / f"{task}.parquet") as tmp:
                    result.units.to_parquet(tmp, index=False)
                predictions = prediction_table(result.units)  # binary tasks: what meds-evaluation scores
                if predictions is not None:
                    with atomic_path(out_dir / "predictions" / task / f"{run.label}.parquet") as tmp:
                        pq.write_table(predictions, tmp)
    # secrets redacted by value (a key in base_url, in a reason an endpoint sent back); report.html and
    # `clinpred report` read this file back, so they see what it holds
    write_text(out_dir / "results.json", redact(results.model_dump_json(indent=2)))
    panels = {r.label: r.results["geometry"] for r in results.backends if "geometry" in r.results}
    if panels:
        from clinpred.report.umap_figure import write_umap_figure

        write_umap_figure(panels, out_dir / "umap.png")
    comparison = None
    if sum(r.status == "ok" and bool(r.results) for r in results.backends) > 1:
        from clinpred.report.compare import compare_runs

        comparison = compare_runs([out_dir])  # paired differences against the first backend, Holm marked
    write_text(out_dir / "RESULTS.md", redact(results_markdown(results, comparison)))
    # read back from the files just written; the paired bootstrap is drawn once, for both pages
    write_report_html(out_dir / "report.html", [out_dir], comparison, compare=comparison is not None)
