"""Ctrl-C and SIGTERM: the work in progress unwinds through its clean-up code, then exits.

A terminated process must not leave a run directory or cache file that looks complete. Every writer
cleans up in ``finally`` / ``except BaseException`` blocks; raising an exception from the signal handler
lets those blocks run, as Python already does for SIGINT (KeyboardInterrupt).

An exception raised by a signal handler is lost when the signal lands while Python runs code whose
exceptions it can only report, not raise: a fork hook (logging's, when a worker pool starts), a
garbage-collector callback, a ``__del__``. Python prints "Exception ignored in ..." and carries on, and
the interrupted run would finish and replace the earlier one as if nothing had happened. So the handlers
also record the signal, and every place that makes a result visible (``atomic_path``'s rename, a run
folder's swap) calls ``raise_if_interrupted`` first: an interrupt is delivered there if not before.
"""

from __future__ import annotations

import signal
import sys

_received: int | None = None  # the signal a handler raised for (whether or not the exception got through)


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM (not an Exception: nothing swallows it)."""


def _exception_for(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def _raise_for_signal(signum, frame) -> None:
    global _received
    _received = signum
    raise _exception_for(signum)


def raise_if_interrupted() -> None:
    """Raise the interrupt a signal handler raised into code that could not pass it on (see above)."""
    if _received is not None:
        raise _exception_for(_received)


def _quiet_lost_interrupt(unraisable, report=sys.unraisablehook) -> None:
    """The "Exception ignored" report of an interrupt that ``raise_if_interrupted`` will deliver: not
    printed (a traceback for Ctrl-C reads as a crash); any other unraisable error is reported as usual."""
    if _received is not None and isinstance(unraisable.exc_value, KeyboardInterrupt | Terminated):
        return
    report(unraisable)


def install_interrupt_handlers() -> None:
    """Install the handlers (main thread only; the CLI calls it once at start). SIGINT keeps what the
    process was given when it is ignored (a job started in the background: POSIX, and Python, keep it so)."""
    signal.signal(signal.SIGTERM, _raise_for_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_for_signal)
    sys.unraisablehook = _quiet_lost_interrupt


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
