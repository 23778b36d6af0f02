"""Run one hostile case through the installed `clinpred` and check everything a new user is owed.

For every case: the exit code; the message fragments; no traceback; no note text (``MARK``) and no key
in stdout, stderr or any file the command wrote outside the cache (the case's folder is the cwd, the
run folder's parent and TMPDIR, so one walk sees all three); nothing half-written (no ``.tmp``
temporary anywhere, TMPDIR left empty, no run folder after a refusal, no note cache file after a
refused note read); the user's own files byte-identical where the case protects them; and for the
"repaired and counted" cases, the count, read from `clinpred data check` or results.json's ``cohort``.

Each outcome is recorded, so the session can print the share of cases handled cleanly.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import CLINPRED, REPO, run_cli

from hostile.inputs import MARK, snapshot

Expected = int | tuple[int, ...]
Proc = subprocess.CompletedProcess


@dataclass
class Workspace:
    """One case's own folder (cwd, --out's parent, TMPDIR, the cache) and what it must keep."""

    dir: Path
    shared: Any  # the session's shared inputs (tests/test_hostile_inputs.Shared)
    env: dict[str, str]
    protected: list[Path] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # found by a driver or a set-up step

    @property
    def out(self) -> Path:
        return self.dir / "out"

    @property
    def cache(self) -> Path:
        return self.dir / "cache"

    @property
    def tmpdir(self) -> Path:
        return self.dir / "systmp"

    def protect(self, *paths: Path) -> None:
        """These files (or folders) are the user's: they must be byte-identical afterwards."""
        self.protected.extend(paths)

    def secret(self, *values: str) -> None:
        """These strings are keys: they must appear nowhere outside the cache."""
        self.secrets.extend(values)

    def cli(self, *args: str, **env: str) -> Proc:
        """Run clinpred as part of a case's set-up, with the case's environment."""
        return run_cli(*args, cwd=self.dir, env={**self.env, **env}, timeout=600)


@dataclass(frozen=True)
class Case:
    """One hostile input and what handling it cleanly means."""

    name: str
    family: str
    build: Callable[[Workspace], list[str]]  # makes the input, returns the arguments after `clinpred`
    code: Expected = 2
    expect: tuple[str, ...] = ()  # every one of these fragments is in the output (case-insensitive)
    any_of: tuple[str, ...] = ()  # at least one of these is
    counts: Mapping[str, Expected] = field(default_factory=dict)  # key, or "~regex" on the key
    counts_from: str = "check"  # "check": the command's output; "results": out/results.json cohort
    notes_refused: bool = False  # the note read is refused: no note cache file may remain
    check: Callable[[Workspace, Proc], list[str]] | None = None  # further problems, as text
    env: Mapping[str, str] = field(default_factory=dict)
    driver: Callable[[Workspace, list[str], dict[str, str], float], Proc] | None = None
    timeout: float = 240


@dataclass
class Outcome:
    name: str
    family: str
    problems: list[str]
    seconds: float  # wall clock, set-up included


OUTCOMES: list[Outcome] = []


def codes(expected: Expected) -> tuple[int, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def cli_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment run_cli gives the console script (for drivers that start it themselves)."""
    full = {**os.environ, **env}
    full["PYTHONPATH"] = os.pathsep.join([str(REPO), full.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return full


# Started through a small Python that sets the limit, gives SIGINT its default disposition (a suite
# started in the background ignores SIGINT, and children inherit that) and then becomes `clinpred`:
# a preexec_fn would do the same, but it is not safe while other threads (the other cases) run.
_EXEC = (
    "import os, resource, signal, sys\n"
    "limit = int(sys.argv[1])\n"
    "if limit: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def start_cli(
    args: list[str], ws: Workspace, env: Mapping[str, str], *, file_limit: int = 0
) -> subprocess.Popen:
    """`clinpred ARGS` started in the background (run_cli's environment), optionally under `ulimit -f`."""
    return subprocess.Popen(
        [sys.executable, "-c", _EXEC, str(file_limit), str(CLINPRED), *args],
        cwd=ws.dir,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def plain(ws: Workspace, args: list[str], env: dict[str, str], timeout: float) -> Proc:
    return run_cli(*args, cwd=ws.dir, env=env, timeout=timeout)


def file_size_limit(limit: int) -> Callable[..., Proc]:
    """A driver: the command runs under `ulimit -f` (RLIMIT_FSIZE) of ``limit`` bytes."""

    def drive(ws: Workspace, args: list[str], env: dict[str, str], timeout: float) -> Proc:
        proc = start_cli(args, ws, env, file_limit=limit)
        stdout, stderr = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    return drive


def has_workers(ws: Workspace, pid: int) -> bool:
    """The command has started worker processes (loky's pool, its resource tracker)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            return True
    return False


def interrupted(
    signum: int, *, when: Callable[[Workspace, int], bool] = has_workers, latest: float = 60
) -> Callable[..., Proc]:
    """A driver: ``signum`` is sent once ``when(ws, pid)`` holds (or after ``latest`` seconds)."""

    def drive(ws: Workspace, args: list[str], env: dict[str, str], timeout: float) -> Proc:
        proc = start_cli(args, ws, env)
        start = time.monotonic()
        while proc.poll() is None and not when(ws, proc.pid) and time.monotonic() - start < latest:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signum)
        else:
            ws.problems.append(f"finished (exit {proc.returncode}) before the signal could be sent")
        stdout, stderr = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    return drive


def alongside(other: Callable[[Workspace], list[str]]) -> Callable[..., Proc]:
    """A driver: another clinpred command (``other(ws)``) starts just before this one; both must end
    cleanly (exit 0, or 2 with a message) and print no traceback."""

    def drive(ws: Workspace, args: list[str], env: dict[str, str], timeout: float) -> Proc:
        first = start_cli(other(ws), ws, env)
        second = plain(ws, args, env, timeout)
        stdout, stderr = first.communicate(timeout=timeout)
        shown = stdout + stderr
        if first.returncode not in (0, 2):
            ws.problems.append(f"the other command exited {first.returncode}: {tail(shown)}")
        if "Traceback" in shown:
            ws.problems.append(f"the other command printed a traceback: {tail(shown)}")
        # both may exit 0 (each writes whole and renames): the case's own checks judge what is left
        return second

    drive.shares_out = True  # type: ignore[attr-defined]  # the other command may write --out itself
    return drive


def tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-400:]


# -- counts --------------------------------------------------------------------------------------------

_SPLIT = re.compile(r"[│┃|]|\s{2,}|:\s+")
_INT = re.compile(r"^-?\d[\d,]*$")
_LEADING_INT = re.compile(r"^(-?\d[\d,]*)(?:\s|$)")  # "3 notes rows (rule ...)" -> 3


def shown_counts(text: str) -> dict[str, int]:
    """Every "name ... number" pair the output shows (tables or lines), the name as a key: "a_b_c"."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in _SPLIT.split(line) if c and c.strip()]
        for i, c in enumerate(cells):
            if _INT.match(c):
                continue
            value = next((m.group(1) for v in cells[i + 1 :] if (m := _LEADING_INT.match(v))), None)
            if value is not None:
                found.setdefault("_".join(c.lower().split()), int(value.replace(",", "")))
    return found


def find_count(found: Mapping[str, Any], key: str) -> tuple[str, int] | None:
    """The shown count for ``key`` (exact, else a shown name starting with or containing it);
    ``~regex``: the first name the pattern matches."""
    if key.startswith("~"):
        pattern = re.compile(key[1:])
        hits = [(k, v) for k, v in found.items() if pattern.search(k) and isinstance(v, int)]
        return hits[0] if hits else None
    if isinstance(found.get(key), int):
        return key, int(found[key])
    for test in (str.startswith, str.__contains__):
        hits = [(k, v) for k, v in found.items() if test(k, key) and isinstance(v, int)]
        if hits:
            return hits[0]
    return None


def results_cohort(ws: Workspace) -> dict[str, Any]:
    path = ws.out / "results.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("cohort", {})


def check_counts(case: Case, ws: Workspace, proc: Proc) -> list[str]:
    found = shown_counts(proc.stdout) if case.counts_from == "check" else results_cohort(ws)
    where = "in the output" if case.counts_from == "check" else "in results.json cohort"
    problems = []
    for key, expected in case.counts.items():
        hit = find_count(found, key)
        if hit is None:
            if 0 not in codes(expected):
                problems.append(f"count {key} not shown {where} (expected {expected})")
        elif hit[1] not in codes(expected):
            problems.append(f"count {hit[0]} = {hit[1]} {where} (expected {expected})")
    return problems


# -- what was written ----------------------------------------------------------------------------------


def _texts(path: Path, data: bytes) -> list[bytes]:
    """The bytes of a written file, and what they hold once decompressed or decoded."""
    texts = [data]
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            texts.append(gzip.decompress(data))
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            texts.append(str(pq.read_table(io.BytesIO(data)).to_pylist()).encode())
        except Exception:  # a broken file: the byte scan above still looked at it
            pass
    return texts


def leaks(ws: Workspace, before: Mapping[str, bytes], proc: Proc) -> list[str]:
    """Note text or a key in the output or in any file written or changed outside the cache."""
    problems = []
    shown = proc.stdout + proc.stderr
    if MARK in shown:
        problems.append("note text printed")
    for secret in ws.secrets:
        if secret in shown:
            problems.append(f"key printed ({secret[:6]}...)")
    after = snapshot(ws.dir, skip=(ws.cache,))
    for path, data in after.items():
        if before.get(path) == data:
            continue
        for text in _texts(Path(path), data):
            if MARK.encode() in text:
                problems.append(f"note text written to {Path(path).relative_to(ws.dir)}")
                break
        for secret in ws.secrets:
            if any(secret.encode() in text for text in _texts(Path(path), data)):
                problems.append(f"key ({secret[:6]}...) written to {Path(path).relative_to(ws.dir)}")
    return problems


def leftovers(ws: Workspace) -> list[str]:
    """Temporaries anywhere in the case's folder (the cache included) and anything left in TMPDIR."""
    found = [str(p.relative_to(ws.dir)) for p in ws.dir.rglob("*") if ".tmp" in p.name]
    if ws.tmpdir.is_dir():  # torch's compile cache is a library's cache, kept on purpose (and leak-scanned)
        found += [
            str(p.relative_to(ws.dir)) for p in ws.tmpdir.iterdir() if not p.name.startswith("torchinductor")
        ]
    return [f"left behind: {', '.join(sorted(found)[:5])}"] if found else []


def changed(ws: Workspace, kept: Mapping[Path, dict[str, bytes]]) -> list[str]:
    """The user's protected files: each still there with the same bytes, and no file of theirs gone."""
    problems = []
    for root, files in kept.items():
        now = snapshot(root) if root.exists() else {}
        gone = [p for p in files if p not in now]
        differ = [p for p in files if p in now and now[p] != files[p]]
        if gone:
            problems.append(f"user's files deleted: {', '.join(Path(p).name for p in gone[:5])}")
        if differ:
            problems.append(f"user's files changed: {', '.join(Path(p).name for p in differ[:5])}")
    return problems


# -- one case ------------------------------------------------------------------------------------------


def run_case(case: Case, shared: Any, tmp: Path) -> list[str]:
    """Build the input, run the command, return every problem found (empty: handled cleanly)."""
    started = time.monotonic()
    env = {
        "CLINPRED_CACHE": str(tmp / "cache"),
        "TMPDIR": str(tmp / "systmp"),
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "AZURE_OPENAI_API_KEY": "",
        "CLINPRED_JOBS": "1",
    }
    ws = Workspace(dir=tmp, shared=shared, env=env)
    ws.tmpdir.mkdir()
    problems: list[str] = []
    try:
        args = case.build(ws)
        env.update(case.env)
        before = snapshot(tmp, skip=(ws.cache,))
        kept = {p: snapshot(p) for p in ws.protected}
        out_existed = ws.out.exists() or ws.out.is_symlink()
        try:
            proc = (case.driver or plain)(ws, args, env, case.timeout)
        except subprocess.TimeoutExpired:
            problems.append(f"did not finish in {case.timeout:g} s")
            return problems
        shown = proc.stdout + proc.stderr
        problems += ws.problems
        if proc.returncode not in codes(case.code):
            problems.append(f"exit {proc.returncode}, expected {case.code}: {tail(shown)}")
        if "Traceback" in shown:
            raised = [
                x for x in shown.splitlines() if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", x)
            ]
            problems.append(f"traceback: {raised[-1] if raised else tail(shown, 1)}")
        low = shown.lower()
        missing = [f for f in case.expect if f.lower() not in low]
        if missing and proc.returncode != 0:
            problems.append(f"message lacks {missing}: {tail(proc.stderr or proc.stdout, 2)}")
        elif missing:
            problems.append(f"output lacks {missing}")
        if case.any_of and not any(f.lower() in low for f in case.any_of):
            problems.append(f"message has none of {list(case.any_of)}: {tail(shown, 2)}")
        problems += leaks(ws, before, proc)
        problems += leftovers(ws)
        out_now = ws.out.exists() or ws.out.is_symlink()
        others_out = getattr(case.driver, "shares_out", False)  # refused because the other wrote it first
        if proc.returncode != 0 and not out_existed and out_now and not others_out:
            problems.append("a refused command left its --out folder")
        if case.notes_refused and (ws.cache / "notes").is_dir() and any((ws.cache / "notes").iterdir()):
            problems.append("a refused note read left a note cache file")
        problems += changed(ws, kept)
        if case.counts:
            problems += check_counts(case, ws, proc)
        if case.check is not None:
            problems += case.check(ws, proc)
        return problems
    except Exception as exc:  # a set-up step or a check that broke: the case did not pass
        problems.append(f"the case could not be run: {type(exc).__name__}: {str(exc)[-300:]}")
        return problems
    finally:
        OUTCOMES.append(Outcome(case.name, case.family, problems, time.monotonic() - started))


def children_cpu() -> float:
    """CPU seconds of every finished process this one started (the machine's load does not change it)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Session:
    """How the whole table ran: wall clock and CPU of the pool, and how many cases at once."""

    jobs: int = 1
    wall: float = 0.0
    cpu: float = 0.0  # the clinpred processes
    own_cpu: float = 0.0  # this process: building inputs, snapshots, scans


SESSION = Session()


def run_all(cases: list[Case], shared: Any, folders: list[Path], jobs: int) -> dict[str, list[str]]:
    """Every case, ``jobs`` at a time (each in its own folder, with its own cache): the clinpred
    processes are single-threaded enough that two at once take about half the time on two cores."""
    from concurrent.futures import ThreadPoolExecutor

    started, cpu, own = time.monotonic(), children_cpu(), time.process_time()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        found = list(
            pool.map(lambda pair: run_case(pair[0], shared, pair[1]), zip(cases, folders, strict=True))
        )
    SESSION.jobs = jobs
    SESSION.wall += time.monotonic() - started
    SESSION.cpu += children_cpu() - cpu
    SESSION.own_cpu += time.process_time() - own
    return {case.name: problems for case, problems in zip(cases, found, strict=True)}


def _short(problem: str, width: int = 240) -> str:
    """A problem as one readable line: long runs of one character (a 300-character name) shortened."""
    problem = re.sub(r"(.)\1{20,}", lambda m: m.group(1) * 3 + "...", problem)
    return problem if len(problem) <= width else problem[: width - 3] + "..."


def summary() -> list[str]:
    """The closing lines: the share handled cleanly, then each failing case and why."""
    if not OUTCOMES:
        return []
    clean = [o for o in OUTCOMES if not o.problems]
    share = 100 * len(clean) / len(OUTCOMES)
    lines = [
        f"hostile inputs: {len(clean)} of {len(OUTCOMES)} handled cleanly ({share:.1f}%)",
        f"  time: {SESSION.wall:.0f} s wall ({SESSION.jobs} at once); CPU {SESSION.cpu:.0f} s in clinpred, "
        f"{SESSION.own_cpu:.0f} s in the suite; load average {os.getloadavg()[0]:.1f}",
    ]
    families: dict[str, list[int]] = {}
    for o in OUTCOMES:
        tally = families.setdefault(o.family, [0, 0])
        tally[0] += not o.problems
        tally[1] += 1
    lines.append("  by family: " + ", ".join(f"{f} {c}/{n}" for f, (c, n) in families.items()))
    slowest = sorted(OUTCOMES, key=lambda o: -o.seconds)[:5]
    lines.append("  slowest: " + ", ".join(f"{o.name} {o.seconds:.0f} s" for o in slowest))
    for o in OUTCOMES:
        if o.problems:
            lines.append(f"  FAILED {o.name}: {'; '.join(_short(p) for p in o.problems)}")
    return lines
