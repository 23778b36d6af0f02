"""The hostile-input suite (issue 27): every damaged input of tests/hostile/cases.py through the real CLI.

Each case builds its input in its own folder, runs the installed `clinpred` there and checks what a
new user is owed (tests/hostile/harness.py). At the end of the session the share handled cleanly is
printed, with each failing case and why:

    hostile inputs: N of M handled cleanly (P%)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import test_cli_errors
from hostile.cases import CASES
from hostile.harness import Case, run_all, summary
from hostile.shared import Shared

FAMILIES = (
    "data loss",
    "duplicated rows",
    "names",
    "dates and numbers",
    "secrets",
    "config bounds",
    "resources",
    "older",
)


class _Summary:
    """Prints the closing share after pytest's own summary, even when only some cases ran (-k)."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        lines = summary()
        if lines:
            terminalreporter.write_sep("-", "hostile inputs")
            for line in lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def shared(tmp_path_factory, request) -> Shared:
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("hostile-summary"):
        plugins.register(_Summary(), "hostile-summary")
    inputs = Shared(tmp_path_factory.mktemp("hostile-shared"))
    yield inputs
    inputs.close()


def jobs() -> int:
    """Cases run at once: $HOSTILE_JOBS, else one per core up to four."""
    value = os.environ.get("HOSTILE_JOBS", "")
    return int(value) if value.isdigit() and int(value) > 0 else min(4, os.cpu_count() or 1)


def _folder(tmp_path_factory, case: Case) -> Path:
    return tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9]+", "-", case.name)[:40])


class _OneAtATime(dict):
    """Each case run when its test asks for it, for a pytest-xdist worker: every worker collects every
    case but runs only those it is sent, so running all selected cases up front would run the table
    once per worker."""

    def __init__(self, shared: Shared, tmp_path_factory) -> None:
        super().__init__()
        self.shared, self.tmp_path_factory = shared, tmp_path_factory

    def __missing__(self, name: str) -> list[str]:
        case = next(c for c in CASES if c.name == name)
        self[name] = run_all([case], self.shared, [_folder(self.tmp_path_factory, case)], 1)[name]
        return self[name]


@pytest.fixture(scope="session")
def outcomes(shared: Shared, request, tmp_path_factory) -> dict[str, list[str]]:
    """Every selected case, run once (several at a time) when the first of them is reported; under
    pytest-xdist, each case when its test runs, on the worker it was sent to."""
    if hasattr(request.config, "workerinput"):  # a pytest-xdist worker (-n N)
        return _OneAtATime(shared, tmp_path_factory)
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_hostile_input"
    ]
    folders = [_folder(tmp_path_factory, c) for c in selected]
    return run_all(selected, shared, folders, jobs())


@pytest.mark.slow  # minutes: the whole table through the real CLI (CI runs it)
@pytest.mark.parametrize("case", CASES, ids=[f"{c.family.replace(' ', '_')}/{c.name}" for c in CASES])
def test_hostile_input(case: Case, outcomes: dict[str, list[str]]) -> None:
    problems = outcomes[case.name]
    assert not problems, f"{case.name}: " + "; ".join(problems)


def test_the_table_is_the_issue_s_suite() -> None:
    """At least 150 inputs over every family the issue names, each named once, none repeating
    tests/test_cli_errors.py (whose table runs there)."""
    names = [c.name for c in CASES]
    assert len(CASES) >= 150
    assert len(set(names)) == len(names)
    assert {c.family for c in CASES} == set(FAMILIES)
    assert not set(names) & {c.name for c in test_cli_errors.CASES}


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """The harness itself: a leaked note, a printed key, a temporary, a changed user file and a count
    are each found (so a case that passes has been looked at, not skipped)."""
    import subprocess

    from hostile.harness import Workspace, changed, find_count, leaks, leftovers, shown_counts
    from hostile.inputs import MARK, snapshot

    ws = Workspace(dir=tmp_path, shared=None, env={})
    ws.tmpdir.mkdir()
    ws.secret("sk-proj-TESTKEY123456")
    mine = tmp_path / "mine.txt"
    mine.write_text("precious")
    before = snapshot(tmp_path, skip=(ws.cache,))
    kept = {mine: snapshot(mine)}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text(f'{{"base_url": "x", "t": "{MARK}"}}')
    (tmp_path / "out" / ".report.html.123.tmp").write_text("half")
    mine.write_text("changed")
    proc = subprocess.CompletedProcess([], 0, "key sk-proj-TESTKEY123456\n notes   7\n", "")
    found = leaks(ws, before, proc)
    assert any("note text written to out/results.json" in p for p in found)
    assert any("key printed" in p for p in found)
    assert leftovers(ws) and changed(ws, kept)
    assert find_count(shown_counts(proc.stdout), "notes") == ("notes", 7)
