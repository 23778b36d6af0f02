"""Usage errors of the command line (unknown option, missing argument, bad value) as one message, exit 2.

typer >= 0.25 bundles its own copy of click (``typer._click``), whose exceptions are not subclasses of
the installed ``click``'s. Both are recognised here, so a mistyped command never ends in a traceback,
whichever copy raised it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def _click_exception_modules() -> list[ModuleType]:
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


def exit_code(exc: BaseException) -> int | None:
    """Show a click usage error (either copy) and return its exit code; None for anything else."""
    for module in _click_exception_modules():
        if isinstance(exc, module.ClickException):
            exc.show()
            return 2 if exc.exit_code == 1 else exc.exit_code  # a usage error is the user's: exit 2
        exit_class = getattr(module, "Exit", None)
        if exit_class is not None and isinstance(exc, exit_class):
            return exc.exit_code
    return None
