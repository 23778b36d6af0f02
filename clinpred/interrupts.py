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


def _leave_at_once(signum, frame) -> None:
    import contextlib
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing more to say
            stream.flush()
    os._exit(130 if signum == signal.SIGINT else 143)


def exit_at_once_on_interrupt() -> None:
    """From here on, Ctrl-C or SIGTERM ends the process at once, with no traceback.

    Called when the work is done and the interpreter is about to shut down: an interrupt that lands
    while it joins threads or runs exit hooks would otherwise print "Exception ignored in: <module
    'threading'>" and a traceback, after a run that already finished and wrote everything.
    """
    signal.signal(signal.SIGINT, _leave_at_once)
    signal.signal(signal.SIGTERM, _leave_at_once)
