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
