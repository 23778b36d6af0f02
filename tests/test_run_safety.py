"""Runs through the installed `clinpred` script: secrets, protected text, interrupts, reuse, concurrency.

Every test here drives real processes: the console script, real signals, two runs at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLINPRED, run_cli

from clinpred.data.synthetic_seal import MARKER
from clinpred.run_folder import MARKER as RUN_MARKER
from clinpred.run_folder import write_mark

KEY = "sk-clinpredtest-SECRET-0123456789"
NO_SERVER = "http://127.0.0.1:9/v1"  # nothing listens: the OpenAI backend fails fast, locally


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """The tiny synthetic cohort in MIMIC-III files (a MIMIC folder as far as a run can tell)."""
    out = tmp_path_factory.mktemp("cohort") / "tiny"
    proc = run_cli("synth", "--out", str(out), "--size", "tiny", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


def test_an_api_key_given_as_a_setting_is_never_written_or_printed(tmp_path, cohort):
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        "--data",
        str(cohort),
        "-b",
        "tfidf",
        "-b",
        f"openai:api_key={KEY},base_url={NO_SERVER},max_retries=0",
        "--allow-external-api",
        "--task",
        "recall",
        "--out",
        str(out),
        "--quiet",
        env={"CLINPRED_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    assert KEY not in _files_text(out)
    config = json.loads((out / "config.json").read_text())
    assert config["backends"][1]["settings"]["api_key"].startswith("<redacted")
    shown = run_cli("config", "show", "-b", f"openai:api_key={KEY}")
    assert shown.returncode == 0 and KEY not in shown.stdout


def test_a_synthetic_marker_dropped_into_mimic_files_does_not_let_text_out(tmp_path, cohort):
    data = tmp_path / "m3"
    shutil.copytree(cohort, data)
    (data / MARKER).write_text("{}")  # forged: no seal, no file list
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        "--data",
        str(data),
        "-b",
        "tfidf",
        "-b",
        f"openai:base_url={NO_SERVER},max_retries=0",
        "--task",
        "recall",
        "--out",
        str(out),
        "--quiet",
        env={"CLINPRED_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": KEY},
    )
    assert proc.returncode == 0, proc.stderr
    openai = json.loads((out / "results.json").read_text())["backends"][1]
    assert openai["status"] == "not run" and "--allow-external-api" in openai["reason"]
    assert json.loads((out / "results.json").read_text())["cohort"]["synthetic"] is False


def test_a_reused_out_keeps_no_file_of_the_earlier_run(tmp_path, cohort):
    data = cohort
    env = {"CLINPRED_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    first = run_cli(
        "run",
        "--data",
        str(data),
        "-b",
        "tfidf:label=alpha",
        "-t",
        "recall",
        "--out",
        str(out),
        "-q",
        env=env,
    )
    assert first.returncode == 0, first.stderr
    assert (out / "units" / "alpha").is_dir()
    second = run_cli(
        "run", "--data", str(data), "-b", "tfidf", "-t", "recall", "--out", str(out), "-q", env=env
    )
    assert second.returncode == 0, second.stderr
    assert not (out / "units" / "alpha").exists() and (out / "units" / "tfidf").is_dir()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def _start_and_signal(tmp_path: Path, signum: int, out: Path) -> subprocess.CompletedProcess:
    """Start a run on the demo cohort; signal it once its temporary run folder exists (work under way)."""
    proc = subprocess.Popen(
        [str(CLINPRED), "run", "--synthetic", "demo", "-b", "tfidf", "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLINPRED_CACHE": str(tmp_path / "cache")},
        # a suite started as a background job (`pytest &`) ignores SIGINT and its children inherit that
        # (POSIX), so Ctrl-C would be ignored by design; the run under test gets the usual disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(f".{out.name}.*.tmp-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize(
    ("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_an_interrupted_run_says_so_and_leaves_the_earlier_run_as_it_was(tmp_path, signum, code, word):
    out = _earlier_run(tmp_path)
    proc = _start_and_signal(tmp_path, signum, out)
    assert proc.returncode == code, proc.stderr
    assert word in proc.stderr and "Traceback" not in proc.stderr
    _assert_left_as_it_was(out, tmp_path)


def _earlier_run(tmp_path: Path) -> Path:
    """runs/a holding an earlier run that clinpred wrote (someone's folder would be refused at once)."""
    out = tmp_path / "runs" / "a"
    out.mkdir(parents=True)
    (out / "RESULTS.md").write_text("the earlier run\n")
    write_mark(out, "run")
    return out


def _run_over_an_earlier_run(
    tmp_path: Path, cohort: Path, sitecustomize: str, env: dict[str, str]
) -> tuple[Path, subprocess.CompletedProcess]:
    """`clinpred run` (TF-IDF, recall) into an earlier run's folder, with tests/SITECUSTOMIZE/ on the path
    (where it interrupts the run); an empty value in ``env`` is given the run folder's path."""
    out = _earlier_run(tmp_path)
    run = ["run", "--data", str(cohort), "-b", "tfidf", "-t", "recall", "--out", str(out), "--quiet"]
    env = {key: value or str(out) for key, value in env.items()}
    env |= {
        "PYTHONPATH": str(Path(__file__).parent / sitecustomize),
        "CLINPRED_CACHE": str(tmp_path / "cache"),
    }
    return out, run_cli(*run, env=env)


def _assert_left_as_it_was(out: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == [RUN_MARKER, "RESULTS.md"]
    assert (out / "RESULTS.md").read_text() == "the earlier run\n"
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers


def test_an_interrupt_python_could_not_raise_still_stops_the_run(tmp_path, cohort):
    """Ctrl-C landing in code whose exceptions Python only reports (here a garbage-collector callback;
    on a busy CI machine, logging's fork hook) used to be lost: the run finished and replaced the
    earlier one with exit 0. The handler records the signal, and the run stops before it publishes."""
    out, proc = _run_over_an_earlier_run(tmp_path, cohort, "lost_interrupt", {"LOST_INTERRUPT_OUT": ""})
    assert Path(f"{out}.raised").is_file(), "the interrupt did not land inside the collector"
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr and "ignored" not in proc.stderr
    _assert_left_as_it_was(out, tmp_path)


def test_sigterm_while_the_pool_starts_its_thread_still_exits_as_terminated(tmp_path, cohort):
    """SIGTERM landing as loky starts its pool's manager thread (a CI failure): stopping the pool then
    joins a thread that never started, and the RuntimeError that raises replaced the interrupt (exit 1,
    a traceback). An error raised while an interrupt unwinds the run is the interrupt's."""
    out, proc = _run_over_an_earlier_run(
        tmp_path,
        cohort,
        "interrupted_thread_start",
        {"INTERRUPTED_THREAD_START": "", "CLINPRED_JOBS": "2"},  # two jobs: the bootstrap starts loky's pool
    )
    assert Path(f"{out}.raised").is_file(), "SIGTERM did not land as the pool's thread started"
    assert proc.returncode == 143, proc.stderr
    assert "terminated" in proc.stderr and "Traceback" not in proc.stderr and "ignored" not in proc.stderr
    Path(f"{out}.raised").unlink()
    _assert_left_as_it_was(out, tmp_path)


def _children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid`` (Linux /proc): pid -> command line."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found[int(stat.parent.name)] = cmdline
        except (OSError, IndexError, ValueError):  # the process ended while being read
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from Linux /proc")
@pytest.mark.parametrize(
    ("pool", "is_worker"),
    [
        ("the synthetic generator's", lambda cmd: "clinpred" in cmd),
        ("the bootstrap's loky", lambda cmd: "loky" in cmd),
    ],
)
def test_an_interrupted_run_stops_its_worker_processes(tmp_path, pool, is_worker):
    """Ctrl-C while a pool of worker processes is busy: the run exits at once and no worker outlives it.
    An orphaned worker keeps the run's stdout and stderr open, so whatever reads them (a pipe, `tee`,
    this test) waits on: once, a generator worker interrupted as its pool started was left for good.
    That race is not forced here; what is checked is the outcome, in both pools."""
    proc = subprocess.Popen(
        [
            str(CLINPRED),
            "run",
            "--synthetic",
            "demo",
            "-b",
            "tfidf",
            "-t",
            "recall",
            "--out",
            str(tmp_path / "o"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLINPRED_CACHE": str(tmp_path / "cache"), "CLINPRED_JOBS": "2"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    workers: dict[int, str] = {}
    deadline = time.monotonic() + 240
    while not workers and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        workers = {p: c for p, c in _children(proc.pid).items() if is_worker(c)}
        time.sleep(0.02)
    assert workers, f"no worker of {pool} pool was seen"
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        left = {p: c[:80] for p, c in workers.items() if _alive(p)}
        for p in left:
            os.kill(p, signal.SIGKILL)
        pytest.fail(f"the run's output stayed open after the interrupt; workers alive: {left}")
    assert proc.returncode == 130 and "interrupted" in stderr, stderr[-2000:]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "a worker outlived the interrupted run"
    assert not (tmp_path / "o").exists()


def test_two_runs_at_once_on_an_empty_cache_both_finish_alike_and_embed_once(tmp_path):
    env = {**os.environ, "CLINPRED_CACHE": str(tmp_path / "cache")}
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [
        subprocess.Popen(
            [
                str(CLINPRED),
                "run",
                "--synthetic",
                "tiny",
                "-b",
                "tfidf",
                "-t",
                "recall",
                "--out",
                str(o),
                "-q",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for o in outs
    ]
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr
    a, b = (json.loads((o / "results.json").read_text())["backends"][0] for o in outs)
    assert a["results"]["recall"]["metrics"] == b["results"]["recall"]["metrics"]
    assert a["fingerprint"] == b["fingerprint"]
    # one of them embedded the texts; the other waited and found them in the cache
    newly = sorted([a["notes_newly_embedded"], b["notes_newly_embedded"]])
    assert newly[0] == 0 and 0 < newly[1] <= a["notes_embedded"]  # distinct texts: duplicates once
