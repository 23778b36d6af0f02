"""Resampling loops spread over the machine's cores, with results identical to a single process.

The patient bootstrap recomputes a task's metrics on 1,000 resamples, for every task, backend and paired
comparison: on a 2-core machine these loops, single-threaded numpy, were half the demo's run time. The
resamples are drawn up front in the caller (so the numbers do not depend on how many processes ran
them) and handed out in contiguous chunks to joblib's process pool (loky: it reuses its workers
between calls, and pickles closures such as a fitted model's survival lookup).

``CLINPRED_JOBS`` sets the number of processes (default: the CPUs this process may use; 1 runs in this
process). Small loops stay in this process: starting the pool (a second or two: each worker imports
numpy, pandas and scikit-learn) costs more than they take.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

JOBS_ENV = "CLINPRED_JOBS"
# below this much work (items times the rows each one reads) a loop is done before a pool has started
MIN_WORK = 200_000


def jobs() -> int:
    """Processes to use: ``CLINPRED_JOBS`` if set (a positive integer), else the usable CPUs."""
    value = os.environ.get(JOBS_ENV, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            from clinpred.errors import InputError

            raise InputError(f"{JOBS_ENV}={value!r}: give a positive number of processes, e.g. 1 or 2.")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_chunks(fn: Callable[..., list[R]], items: Sequence[T], *args: Any, cost_each: int = 1) -> list[R]:
    """``fn(chunk, *args)`` over contiguous chunks of ``items``, results concatenated in order.

    ``fn`` takes a list of items and returns one result per item. ``cost_each``: how many rows each item
    reads (a resample's units); the pool starts only for at least MIN_WORK items times rows.
    """
    n_jobs = min(jobs(), len(items))
    if n_jobs <= 1 or len(items) * cost_each < MIN_WORK:
        return fn(list(items), *args)
    from joblib import Parallel, delayed

    size = -(-len(items) // n_jobs)
    chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
    parts = Parallel(n_jobs=n_jobs, backend="loky")(delayed(fn)(chunk, *args) for chunk in chunks)
    return [r for part in parts for r in part]


def stop_pools() -> None:
    """Stop loky's worker processes and release what they hold, for a process about to ``os._exit``.

    A run that ends on an error or an interrupt leaves with ``os._exit`` (cli._exit_now), which skips the
    exit hooks that normally do this; loky's resource tracker then outlives us and prints "There appear
    to be 8 leaked semlock objects" and a leaked memmapping folder. So: shut the reusable pool down
    (killing workers that are mid-resample), unlink its semaphores (multiprocessing's finalizers) and
    run joblib's clean-up of its temporary folder. Nothing happens if no pool was ever started.
    """
    import sys

    reusable = sys.modules.get("joblib.externals.loky.reusable_executor")
    if reusable is None:
        return
    import atexit
    from multiprocessing import util

    executor = getattr(reusable, "_executor", None)
    if executor is not None:
        # an interrupt that kept the pool's manager thread from starting makes the join inside raise
        # RuntimeError; the workers are then killed by stop_workers, found as our children
        with contextlib.suppress(RuntimeError):
            executor.shutdown(wait=True, kill_workers=True)
    util._run_finalizers(0)  # the pool's semaphores: unlinked and unregistered from the tracker
    atexit._run_exitfuncs()  # joblib's memmapping folder, loky's manager threads


def stop_workers() -> None:
    """Stop every process this one started, for a process about to ``os._exit`` on an error or interrupt.

    A worker left behind holds this process's stdout and stderr open, and whatever reads them
    (``clinpred run | tee log``) hangs. Three kinds: multiprocessing's children (the generator's pool),
    loky's pool (``stop_pools``), and a worker that is nobody's yet: loky starts a worker, then sends it
    its start-up data through a pipe; an interrupt between the two leaves a process that no pool lists,
    and when we exit it reads an empty pipe and prints "EOFError: Ran out of input" with a traceback.
    Those are found as our children in /proc and killed before they can read.
    """
    import signal
    import sys

    if "multiprocessing" in sys.modules:  # no worker was ever started otherwise
        import multiprocessing

        children = multiprocessing.active_children()
        for child in children:
            child.terminate()
        for child in children:  # one that was interrupted before it could take SIGTERM's default
            child.join(timeout=1)
            if child.is_alive() and child.pid:  # by pid: loky's Popen has no kill()
                _kill(child.pid, signal.SIGKILL)
    stop_pools()
    for pid in _child_pids():
        _kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # reaped by its owner meanwhile
            os.waitpid(pid, 0)


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.kill(pid, signum)


def _child_pids() -> list[int]:
    """This process's live children, from /proc (nothing on a system without it)."""
    from pathlib import Path

    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        if int(parent) == me and state != "Z":
            found.append(int(stat.parent.name))
    return found
