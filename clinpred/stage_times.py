"""Wall-clock seconds per stage of a long command, and the small table printed at its end.

`clinpred demo` takes minutes; a newcomer waits more patiently for a command that says where the time
went (issue 26). The stages are timed where they run (the demo's fine-tunes, the pipeline's cohort,
each backend's embedding and tasks, the report); what no stage covers (checks, model loads, moving the
run folder into place) is shown as ``other``, so that the rows add up to the total.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class StageTimes:
    """Seconds per named stage, in the order first timed; a stage timed twice adds up."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.notes: dict[str, str] = {}  # a stage's word in the table, e.g. "reused"

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float, note: str | None = None) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + max(seconds, 0.0)
        if note:
            self.notes[name] = note

    def total(self) -> float:
        """Seconds since this record was made."""
        return time.perf_counter() - self.started

    def table(self) -> list[str]:
        """``stage  seconds`` lines: each stage, ``other`` (what no stage covers), then the total."""
        total = self.total()
        rows = [(name, secs, self.notes.get(name, "")) for name, secs in self.seconds.items()]
        rows.append(("other", max(total - sum(self.seconds.values()), 0.0), ""))
        width = max(len("stage"), *(len(name) for name, _, _ in rows))
        lines = [f"{'stage':<{width}}  {'seconds':>8}"]
        lines += [f"{name:<{width}}  {secs:8.1f}{'  ' + note if note else ''}" for name, secs, note in rows]
        lines.append(f"{'total':<{width}}  {total:8.1f}  ({format_minutes(total)})")
        return lines


def format_minutes(seconds: float) -> str:
    """``23 min 7 s``, or ``41 s`` under a minute."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
