"""The `clinpred` command. Thin: parse the arguments, call the stage that does the work, print.

Errors a user can cause arrive as ``InputError`` and leave as one message on stderr and exit code 2.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import typer
from rich.console import Console

from clinpred import usage
from clinpred.backends.load_report import hide_benign_load_reports
from clinpred.errors import InputError, cannot_write_message, path_error_message
from clinpred.interrupts import (
    Terminated,
    exit_at_once_on_interrupt,
    install_interrupt_handlers,
    raise_if_interrupted,
)
from clinpred.parallel import jobs, stop_workers

app = typer.Typer(
    help="How much clinical signal does a text-embedding model capture?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Read and check MIMIC-III, MIMIC-IV, MEDS or OMOP data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# Markup off: paths and values such as "[v1.4]" or "[/x]" are printed as written, never parsed as style.
out = Console(markup=False, highlight=False)
err = Console(stderr=True, markup=False, highlight=False)


@data_app.command("check")
def data_check(
    path: Path = typer.Argument(
        ..., help="A MIMIC-III directory, a MIMIC-IV root (hosp/, note/), a MEDS root or an OMOP CDM folder."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the note cache."),
) -> None:
    """Detect the layout, validate it, and print a summary of the cohort."""
    from clinpred.data.check import check_data, render_check
    from clinpred.privacy.modes import modes_line, protect_source

    protected = protect_source(path)  # before the note cache is written
    report = check_data(path, use_cache=not no_cache)
    render_check(report, out)
    out.print(modes_line(protected), highlight=False, markup=False)


DATA_HELP = "A MIMIC-III directory, a MIMIC-IV root, a MEDS root or an OMOP CDM folder."
TASK_HELP = (
    "A task to run (repeatable), e.g. recall, diagnosis, survival, geometry (the default), mortality, "
    "readmission, or an installed one: `clinpred tasks list`."
)
BACKEND_HELP = (
    "A backend to evaluate (repeatable): NAME or NAME:key=value,... e.g. gemma-base:truncate_dim=256."
)
ALL_METRICS_HELP = "Print every metric at the end, not only each task's main metric."
ACES_HELP = (
    "An ACES task config (YAML, repeatable): es-aces extracts its labels from the MEDS dataset given "
    "by --data; scored as task aces.<file stem>. Shipped: inhospital_mortality, readmission_30d. "
    "Without --task, only these tasks run."
)
LABELS_HELP = (
    "A folder of MEDS label parquet files (subject_id, prediction_time, boolean_value; repeatable); "
    "scored as task labels.<folder name>. Without --task, only these tasks run."
)


@app.command("run")
def run(
    backend: list[str] = typer.Option([], "--backend", "-b", help=BACKEND_HELP),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    synthetic: str | None = typer.Option(
        None, "--synthetic", help="Use the synthetic cohort: tiny, demo, mimic3."
    ),
    config: Path | None = typer.Option(None, "--config", help="A TOML experiment config; flags override it."),
    task: list[str] = typer.Option([], "--task", "-t", help=TASK_HELP),
    aces: list[Path] = typer.Option([], "--aces", help=ACES_HELP),
    labels: list[Path] = typer.Option([], "--labels", help=LABELS_HELP),
    out_dir: Path = typer.Option(..., "--out", help="The run directory to write."),
    allow_external_api: bool = typer.Option(
        False,
        "--allow-external-api",
        help="Let API backends receive MIMIC text (read the PhysioNet DUA first).",
    ),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Seed of the patient split."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    all_metrics: bool = typer.Option(False, "--all-metrics", help=ALL_METRICS_HELP),
) -> None:
    """Benchmark backends on a cohort: embed the evaluation notes, run the tasks, write the results."""
    from clinpred.config import effective_config
    from clinpred.pipeline import run_experiment

    cfg = effective_config(
        config,
        data=data,
        synthetic=synthetic,
        backends=backend,
        tasks=task,
        allow_external_api=allow_external_api,
        seed=seed,
        aces=aces,
        labels=labels,
    )
    run_experiment(cfg, out_dir, progress=not quiet, log=_log(quiet))
    _print_results(out_dir, quiet, all_metrics)


@app.command("demo")
def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="The run directory to write."),
    size: str = typer.Option("demo", "--size", help="Synthetic cohort size: tiny (a quick look) or demo."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    all_metrics: bool = typer.Option(False, "--all-metrics", help=ALL_METRICS_HELP),
) -> None:
    """The main job, offline: synthetic cohort, fine-tune MiniLM, compare it with its base and TF-IDF."""
    from clinpred.demo import run_demo

    if size not in ("tiny", "demo"):
        raise InputError(f"--size {size!r}: the demo runs on the 'tiny' or 'demo' synthetic cohort.")
    run_demo(out_dir, size=size, progress=not quiet, log=_log(quiet))
    _print_results(out_dir, quiet, all_metrics)


@app.command("report")
def report(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run directories written by `clinpred run` or `clinpred demo`."
    ),
    out_dir: Path = typer.Option(
        Path("."),
        "--out",
        help="The report folder: report.html and comparison.md, .csv and .json (new, empty or a report's).",
    ),
    reference: str | None = typer.Option(
        None, "--reference", help="The backend every other is compared with."
    ),
    allow_different_definitions: bool = typer.Option(
        False,
        "--allow-different-definitions",
        help="Compare runs whose task definitions differ (the evaluation patients must still agree); "
        "the comparison records what differed.",
    ),
) -> None:
    """Combine runs into one comparison and one report.html, with paired bootstrap differences."""
    from clinpred.privacy.modes import protect_source, runs_credentialed
    from clinpred.report.compare import compare_runs, comparison_markdown, write_comparison
    from clinpred.report.html import write_report_html
    from clinpred.run_folder import check_output_folder, fill_folder_whole

    # a report folder of its own: new, empty or an earlier report; never a run, data or someone's folder
    inputs = [("the run folder", run_dir) for run_dir in run_dirs]
    check_output_folder(out_dir, "report", inputs=inputs)
    # a comparison of runs on credentialed notes is owner-only, like the runs (DESIGN.md rule 6)
    protect_source(None, credentialed=runs_credentialed(run_dirs))
    comparison = compare_runs(
        run_dirs, reference=reference, allow_different_definitions=allow_different_definitions
    )
    with fill_folder_whole(out_dir, "report", inputs=inputs) as staging:  # whole, or not at all
        files = write_comparison(comparison, staging)
        files.append(write_report_html(staging / "report.html", run_dirs, comparison))
    out.print(comparison_markdown(comparison), markup=False, highlight=False)
    out.print("wrote " + ", ".join(str(out_dir / f.name) for f in files), highlight=False)


config_app = typer.Typer(help="The experiment config.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    config: Path | None = typer.Option(None, "--config", help="A TOML experiment config to start from."),
    backend: list[str] = typer.Option([], "--backend", "-b", help=BACKEND_HELP),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    synthetic: str | None = typer.Option(None, "--synthetic", help="tiny, demo or mimic3."),
    task: list[str] = typer.Option([], "--task", "-t", help=TASK_HELP),
) -> None:
    """Print the effective config, every default included, as TOML that --config reads back."""
    from clinpred.config import effective_config, to_toml

    if config is None and data is None and synthetic is None:
        synthetic = "demo"
    if config is None and not backend:
        backend = ["tfidf"]
    cfg = effective_config(config, data=data, synthetic=synthetic, backends=backend, tasks=task)
    out.print(to_toml(cfg), markup=False, highlight=False, soft_wrap=True)


backends_app = typer.Typer(help="Embedding backends: what can run here.", no_args_is_help=True)
app.add_typer(backends_app, name="backends")
cache_app = typer.Typer(help="The on-disk embedding cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
CACHE_DIR_HELP = "Embedding cache (default: $CLINPRED_CACHE/embeddings, else ~/.cache/clinpred/embeddings)."


@backends_app.command("list")
def backends_list() -> None:
    """Every backend (built-in and installed entry points), whether it can run here, and why not."""
    from rich.table import Table

    from clinpred.backends import list_backends

    table = Table("backend", "available", "source", "note")
    for row in list_backends():
        table.add_row(row.name, "yes" if row.available else "no", row.source, row.reason)
    out.print(table)


tasks_app = typer.Typer(
    help="Tasks: built-in and installed (the clinpred.tasks entry points).", no_args_is_help=True
)
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("list")
def tasks_list() -> None:
    """Every task (built-in and installed), what it scores, its main metric, and whether it runs by default."""
    from rich.table import Table

    from clinpred.tasks.registry import list_tasks

    table = Table("task", "unit", "main metric", "default", "source", "description")
    for row in list_tasks():
        default = "yes" if row.default else "no"
        note = row.description if row.available else f"not usable: {row.reason}"
        table.add_row(row.name, row.unit, row.main_metric, default, row.source, note)
    out.print(table)


@backends_app.command("check")
def backends_check(
    name: str = typer.Argument(..., help="A backend name from `clinpred backends list`."),
    setting: list[str] = typer.Option([], "--backend-setting", "-s", help="KEY=VALUE (repeatable)."),
) -> None:
    """Load a backend and embed one fixed probe sentence: is this model usable here?"""
    from clinpred.backends import create_backend, parse_settings

    backend = create_backend(name, parse_settings(setting))
    if hasattr(backend, "fit"):
        backend.fit(
            ["clinpred probe: patient admitted with chest pain", "discharged home in stable condition"]
        )
    vectors = backend.embed(["clinpred probe: patient admitted with chest pain"])
    out.print(f"{name}: dimension {vectors.shape[1]}\nfingerprint {backend.fingerprint()}", highlight=False)


@cache_app.command("info")
def cache_info(cache_dir: Path | None = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP)) -> None:
    """What clinpred keeps on disk, by the dataset it came from: note text, embeddings per model, modes."""
    from clinpred.cache_sources import UNKNOWN, cache_listing

    listing = cache_listing(cache_dir)
    out.print(
        f"embedding cache {listing.embedding_root}; note cache {listing.notes_root} (note text)",
        soft_wrap=True,
    )
    for g in listing.groups:
        if g.path == UNKNOWN:
            head = f"{UNKNOWN} (written before clinpred recorded sources; `clinpred cache clear` removes it)"
        else:
            kind = "synthetic cohort, usual permissions" if g.synthetic else "credentialed: owner-only"
            head = f"source {g.path} ({', '.join(sorted(g.readers)) or 'reader not recorded'}; {kind})"
        out.print(f"{head}: {g.bytes:,} bytes", soft_wrap=True)
        for f in g.notes:
            state = "left by a killed reader" if f.stale_temporary else "note text"
            out.print(
                f"  {state:<11} {f.name}  {f.bytes:,} bytes  created {f.created or '-'}  mode {f.mode}",
                soft_wrap=True,
            )
        for e in g.embeddings:
            out.print(
                f"  embeddings  {e.key[:12]}  {e.vectors:,} vectors, dim {e.dimension}  {e.bytes:,} bytes  "
                f"created {e.created or '-'}  mode {e.mode}  {e.fingerprint}",
                soft_wrap=True,
            )
    if listing.exports:
        out.print(
            f"OpenVINO exports {listing.exports_root} (models converted for engine=openvino; the export of "
            "a model fine-tuned on credentialed notes derives from them):",
            soft_wrap=True,
        )
    for x in listing.exports:
        state = "left by a killed export" if x.stale_temporary else "export" if x.complete else "incomplete"
        name = x.path.name if x.stale_temporary else x.path.name[:12]
        out.print(
            f"  {state:<10} {name}  {x.model or '-'}  {x.bytes:,} bytes  exported {x.exported or '-'}  "
            f"mode {x.mode}",
            soft_wrap=True,
        )
    entries, files = listing.entries, listing.note_files
    out.print(f"{len(entries)} fingerprint(s), {sum(e.bytes for e in entries):,} bytes")
    out.print(f"{len(files)} note cache file(s), {sum(f.bytes for f in files):,} bytes")
    out.print(f"{len(listing.exports)} OpenVINO export(s), {sum(x.bytes for x in listing.exports):,} bytes")
    for x in listing.exposures:
        out.print(f"READABLE BY {x.who.upper()}: {x.path} (mode {x.mode})", soft_wrap=True)
    if listing.exposures:
        out.print(
            f"{len(listing.exposures)} path(s) derived from credentialed notes are readable beyond their "
            "owner: the next clinpred command on a credentialed source narrows them, or run chmod -R go-rwx "
            "on the cache folder.",
            soft_wrap=True,
        )


@cache_app.command("clear")
def cache_clear(
    fingerprint: str | None = typer.Option(
        None, "--fingerprint", help="Only this embedding fingerprint (as printed, or its key prefix)."
    ),
    source: Path | None = typer.Option(
        None,
        "--source",
        help="Only what was derived from this dataset (its note text and every model's embeddings of it).",
    ),
    embeddings_only: bool = typer.Option(False, "--embeddings", help="Only the embedding cache."),
    notes_only: bool = typer.Option(False, "--notes", help="Only the note cache (sorted note text)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """Delete cached vectors, cached note text and OpenVINO exports of models: all of it, one part, one
    fingerprint's vectors, or what one dataset left behind. Run folders and fine-tuned models are yours:
    never deleted here."""
    from clinpred.backends import EmbeddingCache
    from clinpred.data.note_cache import clear_note_cache
    from clinpred.data.note_stream import default_cache_dir

    if fingerprint is not None and notes_only:
        raise InputError("--fingerprint names embeddings; it cannot be combined with --notes.")
    if embeddings_only and notes_only:
        raise InputError("--embeddings and --notes exclude each other; give neither to clear both.")
    if source is not None:
        if fingerprint is not None or embeddings_only or notes_only:
            raise InputError("--source clears everything derived from a dataset; give it alone.")
        _clear_source(source, cache_dir)
        return
    if not notes_only:
        cache = EmbeddingCache(cache_dir)
        removed = cache.clear(fingerprint)
        if fingerprint is not None and not removed:
            raise InputError(
                f"no fingerprint matching '{fingerprint}' in {cache.root} (see `clinpred cache info`)"
            )
        out.print(f"removed {len(removed)} fingerprint(s) from {cache.root}")
    if not embeddings_only and fingerprint is None:
        files = clear_note_cache()
        out.print(f"removed {len(files)} note cache file(s) from {default_cache_dir()}")
    if not (embeddings_only or notes_only) and fingerprint is None:  # everything: the exports too
        from clinpred.backends.openvino_engine import export_root
        from clinpred.backends.openvino_exports import clear_exports

        exports = clear_exports()
        out.print(f"removed {len(exports)} OpenVINO export folder(s) from {export_root()}")


def _clear_source(source: Path, cache_dir: Path | None) -> None:
    from clinpred.cache_sources import purge_source

    purge = purge_source(source, cache_dir)
    out.print(
        f"removed {len(purge.notes_removed)} note cache file(s) and {len(purge.fingerprints_removed)} "
        f"embedding fingerprint(s) derived from {purge.source}",
        soft_wrap=True,
    )
    for name, others in purge.notes_kept:
        out.print(f"kept note cache file {name}: also read from {', '.join(others)}", soft_wrap=True)
    for key, others in purge.fingerprints_kept:
        out.print(
            f"kept fingerprint {key[:12]}: it also holds embeddings of {', '.join(others)}; "
            f"`clinpred cache clear --fingerprint {key[:12]}` removes it for every source",
            soft_wrap=True,
        )
    if purge.unknown:
        out.print(
            f"{purge.unknown} fingerprint(s) of unknown source (written before sources were recorded) left; "
            "`clinpred cache clear` removes them",
            soft_wrap=True,
        )
    if purge.temporaries_removed:
        out.print(f"removed {purge.temporaries_removed} temporary note file(s) left by killed readers")
    from clinpred.backends.openvino_exports import list_exports

    exports = list_exports()
    if exports:  # an export derives from a model, not from a recorded dataset
        out.print(
            f"{len(exports)} OpenVINO export(s) of models left (not recorded by dataset; "
            "`clinpred cache clear` removes them)",
            soft_wrap=True,
        )
    out.print("run folders and fine-tuned models are yours: not touched")


@app.command("finetune")
def finetune_command(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    synthetic: str | None = typer.Option(None, "--synthetic", help="Synthetic cohort: tiny, demo, mimic3."),
    pairs: Path | None = typer.Option(
        None, "--pairs", help="Your own pairs: .csv/.parquet, anchor,positive[,group]."
    ),
    base: str | None = typer.Option(
        None, "--base", help="Base model: a local folder or an id in the local HF cache."
    ),
    out_dir: Path = typer.Option(..., "--out", help="The model folder to write (must be new or empty)."),
    config: Path | None = typer.Option(
        None, "--config", help="A TOML file of FinetuneConfig fields; flags override."
    ),
    epochs: float | None = typer.Option(None, "--epochs"),
    max_steps: int | None = typer.Option(None, "--max-steps"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    learning_rate: float | None = typer.Option(None, "--learning-rate"),
    max_seq_length: int | None = typer.Option(None, "--max-seq-length"),
    loss: str | None = typer.Option(
        None,
        "--loss",
        help="mnrl, cached_mnrl, label_aware, supervised, mixed or phenotype_head (the last four read the "
        "fine-tuning patients' codes).",
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="A named recipe: clinical (the default settings) or seed (the published one)."
    ),
    seed: int | None = typer.Option(None, "--seed", min=0),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run from its last checkpoint."
    ),
    keep_checkpoints: bool = typer.Option(
        False,
        "--keep-checkpoints",
        help="Keep the trainer's checkpoints (in OUT.checkpoints, beside the model folder) after it ends.",
    ),
    max_repaired_share: float | None = typer.Option(
        None,
        "--max-repaired-share",
        min=0.0,
        max=1.0,
        help="Accept a source where a repair rule changed more than this share of a table (default 0.01).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Temporal contrastive fine-tuning: a patient's note t should retrieve the same patient's note t+1."""
    from clinpred.finetune.command import build_config, run_finetune_command, summary_lines

    overrides = {
        "base_model": base,
        "epochs": epochs,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "max_seq_length": max_seq_length,
        "loss": loss,
        "preset": preset,
        "seed": seed,
    }
    cfg = build_config(config, overrides)
    _silence_libraries(quiet)
    report = run_finetune_command(
        data=data,
        synthetic=synthetic,
        pairs=pairs,
        out=out_dir,
        config=cfg,
        resume=resume,
        progress=not quiet,
        max_repaired_share=max_repaired_share,
        keep_checkpoints=keep_checkpoints,
    )
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun the summary is rank 0's: the other processes wrote nothing
    for line in summary_lines(report):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("audit")
def audit_command(
    model: Path = typer.Option(..., "--model", help="A folder `clinpred finetune` wrote (with its record)."),
    data: Path | None = typer.Option(None, "--data", help="The MIMIC data the model was fine-tuned on."),
    synthetic: str | None = typer.Option(
        None, "--synthetic", help="Or the synthetic cohort: tiny, demo, mimic3."
    ),
    max_patients: int = typer.Option(
        100, "--max-patients", help="Members and non-members scored at most (a seeded sample of each)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Membership-inference audit of a fine-tuned model, written into its record and card."""
    from clinpred.privacy.audit import audit_line, audit_model_folder
    from clinpred.privacy.modes import protect_source

    protect_source(data, credentialed=False if synthetic else None)  # before the record, card, cache
    _silence_libraries(quiet)
    audit = audit_model_folder(
        model, data=data, synthetic=synthetic, max_patients=max_patients, progress=not quiet
    )
    out.print(audit_line(audit), highlight=False, markup=False, soft_wrap=True)
    out.print(
        f"wrote {model / 'clinpred-finetune.json'} and {model / 'README.md'}", highlight=False, markup=False
    )


@app.command("ablate")
def ablate_command(
    config: Path = typer.Option(..., "--config", help="An ablation TOML (see examples/ablation.toml)."),
    out_dir: Path = typer.Option(..., "--out", help="The ablation folder (new, or an earlier ablation's)."),
    recipe: list[str] = typer.Option(
        [], "--recipe", "-r", help="Run only this recipe of the config (repeatable); default: every one."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Fine-tune every recipe on the same patients, evaluate them and the base in one run, compare."""
    from clinpred.finetune.ablation import read_ablation_config, run_ablation

    cfg = read_ablation_config(config).only(recipe)
    _silence_libraries(quiet)
    run_ablation(cfg, out_dir, progress=not quiet, log=_log(quiet))
    out.print(f"wrote {out_dir / 'RESULTS.md'}", highlight=False, markup=False, soft_wrap=True)


@app.command("synth")
def synth(
    out_dir: Path = typer.Option(..., "--out", help="Directory to create (must not exist or be empty)."),
    size: str = typer.Option("tiny", "--size", help="tiny (tests), demo (clinpred demo) or mimic3 (46,520)."),
    patients: int | None = typer.Option(None, "--patients", help="Number of patients (overrides --size)."),
    seed: int = typer.Option(
        0, "--seed", min=0, help="Random seed: the same seed gives byte-identical files."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write the synthetic ICU cohort in MIMIC-III v1.4 format (read it like MIMIC-III)."""
    from clinpred.data.synthetic import generate_cohort

    path = generate_cohort(out_dir, size=size, patients=patients, seed=seed, progress=not quiet)  # type: ignore[arg-type]
    out.print(f"wrote synthetic cohort to {path}", highlight=False, markup=False, soft_wrap=True)


export_app = typer.Typer(help="Write a cohort in another format.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("meds")
def export_meds_command(
    out_dir: Path = typer.Option(
        ..., "--out", help="The MEDS folder to write (new, empty or an earlier export)."
    ),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    synthetic: str | None = typer.Option(
        None, "--synthetic", help="Or the synthetic cohort: tiny, demo, mimic3."
    ),
    subjects_per_shard: int = typer.Option(
        10_000, "--subjects-per-shard", min=1, help="Subjects per data shard (a subject is in one shard)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Write any source clinpred reads as a MEDS dataset, its notes as text_value events."""
    from clinpred.config import DataConfig
    from clinpred.data.meds_write import export_meds
    from clinpred.pipeline import build_cohort
    from clinpred.privacy.modes import modes_line, protect_source
    from clinpred.run_folder import check_output_folder

    try:
        source = DataConfig(path=data, synthetic=synthetic)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(f"give --data or --synthetic (one of them): {exc}") from None
    inputs = [("--data", data)]
    check_output_folder(out_dir, "export", inputs=inputs)  # before the cohort is read
    protected = protect_source(source)  # owner-only modes for what derives from credentialed notes
    cohort = build_cohort(source, progress=not quiet, relax="--max-repaired-share of `clinpred run`")
    name = f"clinpred synthetic cohort '{synthetic}'" if synthetic else Path(data or ".").resolve().name
    summary = export_meds(
        cohort, out_dir, dataset_name=name, inputs=inputs, subjects_per_shard=subjects_per_shard
    )
    kinds = ", ".join(f"{k} {v:,}" for k, v in summary.events_by_kind.items())
    out.print(
        f"wrote a MEDS dataset to {out_dir}: {summary.subjects:,} subjects, {summary.events:,} events ({kinds}) "
        f"in {summary.shards} shard(s); {summary.codes:,} codes in metadata/codes.parquet; splits "
        + ", ".join(f"{k} {v:,}" for k, v in summary.splits.items()),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if summary.deathtimes_not_written:
        out.print(
            f"{summary.deathtimes_not_written} in-hospital DEATHTIME(s) not on the day of the date of death "
            "were not written (MEDS_DEATH is at the date of death for those patients)",
            highlight=False,
            markup=False,
        )
    out.print(modes_line(protected), highlight=False, markup=False)


def _silence_libraries(quiet: bool) -> None:
    """Under --quiet, the model libraries' own progress bars go too (read when they are imported)."""
    if quiet:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


def _log(quiet: bool):
    """Progress lines on stderr (secrets redacted by value), or nothing under --quiet."""
    _silence_libraries(quiet)
    if quiet:
        return lambda _msg: None
    from clinpred.redaction import redact

    return lambda msg: err.print(redact(msg), highlight=False, markup=False)


def _print_results(out_dir: Path, quiet: bool, all_metrics: bool = False) -> None:
    """The comparison table at the end of a run, within 100 columns (numbers only, never text)."""
    from clinpred.report.compare import load_run
    from clinpred.report.terminal import results_text

    out.print(
        results_text(load_run(out_dir), all_metrics=all_metrics),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if not quiet:
        err.print(
            f"wrote {out_dir}/report.html, RESULTS.md, results.json"
            + (", umap.png" if (out_dir / "umap.png").exists() else "")
        )


def main() -> None:
    """Entry point: user errors and usage errors exit 2 with one message; interrupts exit 130 (143 on SIGTERM)."""
    install_interrupt_handlers()
    _write_limits_raise()
    hide_benign_load_reports()  # transformers' position_ids table on every MiniLM load; others show
    try:
        try:
            code = _run_app()
        except InputError as exc:
            _error(str(exc))
            _exit_now(2)
        except Terminated:
            _error("terminated (SIGTERM); nothing half-written was left behind")
            _exit_now(143)
        except KeyboardInterrupt:
            code = 130
        except OSError as exc:
            message = cannot_write_message(exc) or path_error_message(exc)
            if message is None:
                _crash()
            _error(message)
            _exit_now(2)
        except Exception as exc:
            handled = usage.exit_code(exc)
            if handled is None:
                _crash()
            sys.exit(handled)
        if code == 130:  # typer turns Ctrl-C into this exit code
            _error("interrupted; nothing half-written was left behind")
            _exit_now(130)
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's message was printed
        _exit_now(130)
    exit_at_once_on_interrupt()  # the work is done: an interrupt during shutdown leaves without a traceback
    sys.exit(code if isinstance(code, int) else 0)


def _run_app() -> int | None:
    """The command, with an interrupt delivered as one however a library handled it: swallowed (raised
    at the end), or replaced by an error from the clean-up it caused (joblib's abort joins a pool thread
    that SIGTERM kept from starting: "cannot join thread before it is started")."""
    try:
        jobs()  # a bad CLINPRED_JOBS is a user error now, not after an hour of embedding
        code = app(standalone_mode=False)
    except Exception:
        raise_if_interrupted()  # the error is the interrupt's consequence, not the run's
        raise
    raise_if_interrupted()
    return code


def _write_limits_raise() -> None:
    """A file-size limit (``ulimit -f``) makes a write fail with EFBIG instead of killing the process.

    By default SIGXFSZ kills the process (with a core dump) at the limit: no message, no clean-up, a
    half-written temporary left behind. Ignored, the write raises an OSError that the writers clean up
    after and that ends as one message naming what could not be written.
    """
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _crash() -> None:
    """A bug: its traceback, with every secret it may quote redacted, then exit 1."""
    import traceback

    from clinpred.redaction import redact

    sys.stderr.write(redact(traceback.format_exc()))
    _exit_now(1)


def _exit_now(code: int) -> None:
    """Exit after an error or interrupt without the interpreter's finalisation.

    Every writer has already cleaned up (``finally`` blocks ran while the exception unwound). What is
    left can be a read-ahead task of pyarrow's I/O pool still calling into a Python stream that a failed
    read abandoned; if the interpreter is finalising when it does, the process aborts ("terminate
    called without an active exception", exit 134) instead of exiting 2. So: flush, then leave.

    Leaving that way skips the atexit hooks that stop worker processes, so they are stopped here
    (``parallel.stop_workers``).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    stop_workers()
    os._exit(code)


def _error(message: str) -> None:
    """One line on stderr; the message is printed as written (no markup), secrets redacted by value."""
    from rich.text import Text

    from clinpred.redaction import redact

    err.print(Text.assemble(("error:", "bold red"), " ", redact(message)), soft_wrap=True)


if __name__ == "__main__":
    main()
