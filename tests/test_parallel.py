"""The bootstrap's process pool: the same numbers whatever the number of processes, and a bad setting
is one message with exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from clinpred.parallel import JOBS_ENV, MIN_WORK, map_chunks
from clinpred.tasks.diagnosis import metrics_from_units
from clinpred.tasks.result import BootstrapScheme, bootstrap_metrics, paired_difference_test


def _units(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.random((n, 3)) < 0.3
    p = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.2, size=y.shape), 0.01, 0.99)
    frame = pd.DataFrame({"subject_id": np.repeat(np.arange(n // 2), 2), "fold": np.arange(n) % 5})
    for j in range(3):
        frame[f"p::L{j}"] = p[:, j]
        frame[f"y::L{j}"] = y[:, j]
    return frame


def _halves(chunk: list[int]) -> list[float]:
    return [i / 2 for i in chunk]


def test_chunks_come_back_in_order(monkeypatch):
    monkeypatch.setenv(JOBS_ENV, "2")
    assert map_chunks(_halves, list(range(101)), cost_each=MIN_WORK) == [i / 2 for i in range(101)]


def test_bootstrap_is_the_same_in_one_process_and_in_two(monkeypatch):
    units, other = _units(0), _units(1)
    scheme = BootstrapScheme(n_resamples=800, seed=3)
    assert scheme.n_resamples * len(units) >= MIN_WORK  # large enough for the pool to start
    results = {}
    for n in ("1", "2"):
        monkeypatch.setenv(JOBS_ENV, n)
        results[n] = (
            bootstrap_metrics(units, metrics_from_units, scheme),
            paired_difference_test(units, other, metrics_from_units, scheme),
        )
    assert results["1"] == results["2"]
    assert results["1"][0]["macro_auroc"].low < results["1"][0]["macro_auroc"].high


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_process_count_is_one_message_and_exit_2(value, tmp_path):
    proc = run_cli("run", "--synthetic", "tiny", "--out", str(tmp_path / "run"), env={JOBS_ENV: value})
    assert proc.returncode == 2
    assert JOBS_ENV in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


# A worker that loky has started but not yet sent its start-up data: it waits on a pipe, like loky's
# popen_loky_posix, and no pool lists it. Without stop_workers it reads an empty pipe when we exit and
# prints "EOFError: Ran out of input" with a traceback (seen under Ctrl-C in the hostile suite).
_UNLISTED_WORKER = """
import os, subprocess, sys
data_r, data_w = os.pipe()
ready_r, ready_w = os.pipe()
worker = subprocess.Popen(
    [sys.executable, "-c",
     "import os, pickle, sys; os.write(int(sys.argv[2]), b'.'); pickle.load(os.fdopen(int(sys.argv[1]), 'rb'))",
     str(data_r), str(ready_w)],
    pass_fds=(data_r, ready_w),
)
os.read(ready_r, 1)  # the worker is waiting for its data
print(worker.pid, flush=True)
from clinpred.cli import _exit_now
_exit_now(130)
"""


def test_an_interrupt_leaves_no_worker_behind_and_no_traceback_from_one(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _UNLISTED_WORKER], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr and "EOFError" not in proc.stdout + proc.stderr
    worker = int(proc.stdout.split()[0])
    assert not Path(f"/proc/{worker}").exists() or Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z"
