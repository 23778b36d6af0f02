"""The `clinpred` command. Thin: parse the arguments, call the stage that does the work, print.

Errors a user can cause arrive as ``InputError`` and leave as one message on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from clinpred.errors import InputError

app = typer.Typer(
    help="How much clinical signal does a text-embedding model capture?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Read and check MIMIC-III / MIMIC-IV-Note data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console()
err = Console(stderr=True)


@data_app.command("check")
def data_check(
    path: Path = typer.Argument(..., help="A MIMIC-III directory, or a MIMIC-IV root with hosp/ and note/."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the Parquet note cache."),
) -> None:
    """Detect the layout, validate it, and print a summary of the cohort."""
    from clinpred.data.check import check_data, render_check

    report = check_data(path, use_cache=not no_cache)
    render_check(report, out)


backends_app = typer.Typer(help="Embedding backends: what can run here.", no_args_is_help=True)
app.add_typer(backends_app, name="backends")
cache_app = typer.Typer(help="The on-disk embedding cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
CACHE_DIR_HELP = "Cache root (default: $CLINPRED_CACHE or ~/.cache/clinpred/embeddings)."


@backends_app.command("list")
def backends_list() -> None:
    """Every backend (built-in and installed entry points), whether it can run here, and why not."""
    from rich.table import Table

    from clinpred.backends import list_backends

    table = Table("backend", "available", "source", "note")
    for row in list_backends():
        table.add_row(row.name, "yes" if row.available else "no", row.source, row.reason)
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
    """Fingerprints in the cache, with vector counts and bytes on disk."""
    from rich.table import Table

    from clinpred.backends import EmbeddingCache

    cache = EmbeddingCache(cache_dir)
    entries = cache.info()
    table = Table("key", "vectors", "dim", "bytes", "fingerprint", title=f"embedding cache {cache.root}")
    for e in entries:
        table.add_row(e.key[:12], str(e.vectors), str(e.dimension), f"{e.bytes:,}", e.fingerprint)
    out.print(table, soft_wrap=True)
    out.print(f"{len(entries)} fingerprint(s), {sum(e.bytes for e in entries):,} bytes", highlight=False)


@cache_app.command("clear")
def cache_clear(
    fingerprint: str | None = typer.Option(
        None, "--fingerprint", help="Only this fingerprint (as printed, or its key prefix)."
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """Delete cached vectors: all of them, or one fingerprint's."""
    from clinpred.backends import EmbeddingCache

    cache = EmbeddingCache(cache_dir)
    removed = cache.clear(fingerprint)
    if fingerprint is not None and not removed:
        raise InputError(
            f"no fingerprint matching '{fingerprint}' in {cache.root} (see `clinpred cache info`)"
        )
    out.print(f"removed {len(removed)} fingerprint(s) from {cache.root}", highlight=False)


@app.command("synth")
def synth(
    out_dir: Path = typer.Option(..., "--out", help="Directory to create (must not exist or be empty)."),
    size: str = typer.Option("tiny", "--size", help="tiny (tests), demo (clinpred demo) or mimic3 (46,520)."),
    patients: int | None = typer.Option(None, "--patients", help="Number of patients (overrides --size)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write the synthetic ICU cohort in MIMIC-III v1.4 format (read it like MIMIC-III)."""
    from clinpred.data.synthetic import generate_cohort

    path = generate_cohort(out_dir, size=size, patients=patients, seed=seed, progress=not quiet)  # type: ignore[arg-type]
    out.print(f"wrote synthetic cohort to {path}", highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    """Entry point: run the app, turning user errors into exit code 2."""
    try:
        app(standalone_mode=False)
    except InputError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors carry their own exit code
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
