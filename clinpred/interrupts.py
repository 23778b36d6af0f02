"""SIGTERM handled like Ctrl-C: the work in progress unwinds through its clean-up code, then exits.

A terminated process must not leave a run directory or cache file that looks complete. Every writer
cleans up in ``finally`` / ``except BaseException`` blocks; raising an exception from the signal handler
lets those blocks run, as Python already does for SIGINT (KeyboardInterrupt).
"""

from __future__ import annotations

import signal


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM (not an Exception: nothing swallows it)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def exit_on_terminate() -> None:
    """Install the SIGTERM handler (main thread only; the CLI calls it once at start)."""
    signal.signal(signal.SIGTERM, _raise_terminated)
