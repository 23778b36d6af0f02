"""A whole `clinpred run` at MIMIC-III's size, as a user runs it: wall time, each stage, peak memory.

    .venv/bin/python benchmarks/full_run.py                          # 10,000 and 46,520 patients (~40 min)
    .venv/bin/python benchmarks/full_run.py --patients 500 1000      # a quick look

Each size is the synthetic cohort at MIMIC-III's note density (``clinpred synth --size mimic3 --patients
N``, about 44 notes per patient, kept under ``--work``; 46,520 patients is MIMIC-III's count, about 2
million notes), run by the installed console script exactly as a user would: ``clinpred run --data
<cohort> -b tfidf`` with the six tasks, from empty caches (the first read of NOTEEVENTS and the TF-IDF
embedding are included). While it runs, the resident set of the clinpred process and of its whole
process tree (the bootstrap's loky workers included) is sampled every 0.5 s; the peak of each stage is
read off against the time the run printed that stage's line. Stage seconds are the run's own
(results.json: embedding, each task) and the printed lines' times (reading the cohort, fitting
TF-IDF). The named peer, in the same run: the smallest size; each stage's growth exponent between
two sizes is the slope of log seconds on log patients (1: linear). Wall times are upper bounds when
the machine is shared (the load average is recorded). The figures go to
``benchmarks/results/full-run-<machine>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from figures import write_figures
from scale import REPO, cohort_dir, machine_name

TASKS = ["recall", "diagnosis", "survival", "geometry", "mortality", "readmission"]
# the run's progress lines that start a stage (the tasks' lines are "tfidf: <task>")
STAGE_LINES = [
    ("read", re.compile(r"^cohort: ")),
    ("fit", re.compile(r"^tfidf: fitting on ")),
    ("embed", re.compile(r"^tfidf: embedding ")),
    *((task, re.compile(rf"^tfidf: {task}$")) for task in TASKS),
    ("report", re.compile(r"^\| task ")),
]


def status_mb(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of one process, in MB (empty once it has ended)."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def sample(
    pid: int, samples: list[tuple[float, float, float, float]], t0: float, stop: threading.Event
) -> None:
    """(seconds, process RSS, process anonymous RSS, tree RSS) every 0.5 s until the process ends."""
    while not stop.wait(0.5):
        own = status_mb(pid)
        if not own:
            return
        tree = own["VmRSS"] + sum(status_mb(c).get("VmRSS", 0.0) for c in children(pid))
        samples.append((time.monotonic() - t0, own["VmRSS"], own.get("RssAnon", 0.0), tree))


def one_size(patients: int, args: argparse.Namespace) -> dict[str, Any]:
    clinpred = str(Path(sys.executable).with_name("clinpred"))
    path = cohort_dir(Path(args.work), patients, args.seed)
    if not path.is_dir():
        print(f"  writing the cohort: clinpred synth --size mimic3 --patients {patients}", flush=True)
        cmd = [clinpred, "synth", "--size", "mimic3", "--patients", str(patients), "--seed", str(args.seed)]
        subprocess.run([*cmd, "--out", str(path), "--quiet"], check=True)
    with tempfile.TemporaryDirectory(dir=args.work, prefix="full-run-") as tmp:
        env = {**os.environ, "CLINPRED_CACHE": str(Path(tmp) / "cache")}  # empty caches: the first read
        out = Path(tmp) / "run"
        cmd = [clinpred, "run", "--data", str(path), "-b", "tfidf", *[a for t in TASKS for a in ("-t", t)]]
        cmd += ["--out", str(out)]
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        samples: list[tuple[float, float, float, float]] = []
        stop = threading.Event()
        watcher = threading.Thread(target=sample, args=(proc.pid, samples, t0, stop), daemon=True)
        watcher.start()
        starts: dict[str, float] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            for part in line.replace("\r", "\n").splitlines():
                for name, pattern in STAGE_LINES:
                    if name not in starts and pattern.search(part.strip()):
                        starts[name] = time.monotonic() - t0
                        print(f"  {starts[name]:7.1f} s  {name}", flush=True)
        code = proc.wait()
        wall = time.monotonic() - t0
        stop.set()
        watcher.join()
        if code != 0:
            raise SystemExit(f"clinpred run exited {code} at {patients:,} patients")
        results = json.loads((out / "results.json").read_text())
    run = results["backends"][0]
    order = sorted(starts, key=starts.get)
    stages: dict[str, dict[str, float]] = {}
    for i, name in enumerate(order):
        end = starts[order[i + 1]] if i + 1 < len(order) else wall
        inside = [s for s in samples if starts[name] <= s[0] < end] or [
            min(samples, key=lambda s: abs(s[0] - end))
        ]
        stages[name] = {
            "seconds": round(run["seconds"].get(name, end - starts[name]), 1),
            "peak_mb": round(max(s[1] for s in inside)),
            "peak_anon_mb": round(max(s[2] for s in inside)),
            "peak_tree_mb": round(max(s[3] for s in inside)),
        }
    return {
        "patients": patients,
        "notes": results["cohort"].get("notes"),
        "evaluation_notes": run.get("notes_embedded"),
        "wall_seconds": round(wall, 1),
        "peak_mb": round(max(s[1] for s in samples)),
        "peak_anon_mb": round(max(s[2] for s in samples)),
        "peak_tree_mb": round(max(s[3] for s in samples)),
        "load_average_at_start": round(load, 2),
        "stages": stages,
        "recall_method": run["results"]["recall"]["definition"].get("method"),
        "tfidf_fit_sample": run.get("description", {}).get("fit_sample"),
        "main_metrics": {t: r["metrics"][r["main_metric"]]["value"] for t, r in run["results"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000, 46_520])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clinpred-scale"))
    parser.add_argument("--out", default=None, help="default: benchmarks/results/full-run-<machine>.json")
    args = parser.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    out = Path(args.out) if args.out else REPO / "benchmarks/results" / f"full-run-{machine_name()}.json"
    for patients in sorted(args.patients, reverse=True):  # the full size first; the record after each
        print(f"{patients:,} patients", flush=True)
        runs.append(one_size(patients, args))
        r = runs[-1]
        print(
            f"  wall {r['wall_seconds'] / 60:.1f} min; peak {r['peak_mb']:,} MB (tree {r['peak_tree_mb']:,} MB)"
        )
        write_figures(out, summarise(sorted(runs, key=lambda r: r["patients"])))


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The record: every size, and each stage's growth exponent against the smallest (the peer)."""
    peer = runs[0]
    print(f"\n{'stage':<12}" + "".join(f"{r['patients']:>12,}" for r in runs) + f"{'exponent':>10}")
    growth = {}
    for name in peer["stages"]:
        secs = [r["stages"].get(name, {}).get("seconds") for r in runs]
        exp = None
        if len(runs) > 1 and all(s and s > 0 for s in secs):
            exp = math.log(secs[-1] / secs[0]) / math.log(runs[-1]["patients"] / runs[0]["patients"])
        growth[name] = None if exp is None else round(exp, 2)
        print(
            f"{name:<12}"
            + "".join(f"{s or 0:>12.1f}" for s in secs)
            + ("" if exp is None else f"{exp:>10.2f}")
        )
    print(f"{'wall (min)':<12}" + "".join(f"{r['wall_seconds'] / 60:>12.1f}" for r in runs))
    print(f"{'peak MB':<12}" + "".join(f"{r['peak_mb']:>12,}" for r in runs))
    print(f"{'tree MB':<12}" + "".join(f"{r['peak_tree_mb']:>12,}" for r in runs))
    return {
        "benchmark": "benchmarks/full_run.py",
        "machine": machine_name(),
        "cpus": os.cpu_count(),
        "command": "clinpred run --data <clinpred synth --size mimic3 --patients N> -b tfidf -t <six tasks>",
        "peer": f"the smallest size ({peer['patients']:,} patients): growth exponent of each stage's seconds",
        "runs": runs,
        "growth_exponents": growth,
    }


if __name__ == "__main__":
    main()
