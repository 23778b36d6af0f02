"""Every stage's growth: seconds and peak memory per pipeline stage at three cohort sizes, and the exponent.

    .venv/bin/python benchmarks/scale.py                               # 500, 1,000, 2,000 patients
    .venv/bin/python benchmarks/scale.py --patients 5000 10000 46520   # up to full MIMIC-III size (hours)

Each size is the synthetic cohort at MIMIC-III's note density (``clinpred synth --size mimic3
--patients N``, about 44 notes per patient, kept under ``--work`` between runs) and runs in a process of
its own, so one size's memory does not carry into the next. The stages are the pipeline's own calls
(``clinpred.pipeline.prepare`` and ``run_task``, which ``clinpred run`` times the same way) on
embeddings computed once per size, outside the embedding cache:

- ``synth``: the CLI writing the cohort (skipped, and not fitted, where ``--work`` already holds it);
- ``load``: reading the cohort (a fresh note cache), the patient split, the PHI setting;
- ``tfidf``: fitting TF-IDF + SVD (256-d) on the fine-tuning notes and embedding the evaluation notes;
- ``proj768``: a cheap deterministic 768-d backend standing for real models' shape: the TF-IDF vectors
  times a seeded Gaussian 256 x 768 matrix, L2-normalised (a real model's vectors cost the same to
  score, and 3x TF-IDF's memory);
- ``<backend>/<task>``: each task (the six by default) on that backend's vectors, with default
  settings: recall is exact below its threshold (50,000 queries) and sampled above it, as in a run;
- ``<backend>/recall-sampled``: recall forced to a fixed sample of ``--sample-queries`` queries
  against the full pool at every size, so its growth is the sampled method's (linear in the pool).

Peak memory is the process's resident set sampled every 10 ms during the stage (``peak_mb``), and what
the stage added above its start (``added_mb``). The exponent of each stage is the least-squares slope
of log seconds on log patients; a stage above 1.15 is flagged, except exact recall, which is quadratic
by definition and is not the default above its threshold. The named peer, in the same run: exact
recall against the sampled method on the same vectors, at each size (a ratio of seconds). The machine
is shared when the load average at the start says so (recorded): wall times are upper bounds and
small stages' exponents are noisy. The first backend's stages carry each process's first-call costs
(imports; numba compiling UMAP for geometry), the second's are warm; at small sizes fixed costs (the
bootstrap's resamples, diagnosis's grid of folds) hold exponents below 1. The figures go to ``benchmarks/results/scale-<machine>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from figures import write_figures

TASKS = ["recall", "diagnosis", "survival", "geometry", "mortality", "readmission"]
FLAG_ABOVE = 1.15
REPO = Path(__file__).resolve().parents[1]


def machine_name() -> str:
    """``<cpus>cpu-<cpu model>``, lower-cased and dashed: the results file's name."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1]
                break
    except OSError:
        pass
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return f"{os.cpu_count()}cpu-{slug}"


def rss_mb() -> float:
    """This process's resident set now (Linux /proc; elsewhere its peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stage:
    """Times a block and samples the resident set every 10 ms while it runs."""

    def __init__(self, record: dict[str, dict[str, float]], name: str) -> None:
        self.record, self.name = record, name
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> Stage:
        self.start_mb = self.peak = rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
        self.record[self.name] = {
            "seconds": round(seconds, 2),
            "peak_mb": round(self.peak, 1),
            "added_mb": round(self.peak - self.start_mb, 1),
        }
        print(f"  {self.name:<28}{seconds:>9.1f} s{self.peak:>9.0f} MB peak", flush=True)


def cohort_dir(work: Path, patients: int, seed: int) -> Path:
    return work / f"mimic3-{patients}-seed{seed}"


def projection_768(vectors: np.ndarray, seed: int) -> np.ndarray:
    """A seeded random projection to 768-d, rows L2-normalised: the shape (not the skill) of a model."""
    from clinpred.backends.base import row_norms

    basis = np.random.default_rng(seed).standard_normal((vectors.shape[1], 768), dtype=np.float32)
    projected = vectors @ basis
    norms = row_norms(projected)
    return np.divide(projected, norms, out=projected, where=norms > 0)  # in place: one 768-d array held


def one_size(patients: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every stage at one size, in this process; what ``main`` collects per size."""
    work = Path(args.work)
    # per size: a machine that got busy during one size inflates that size's times and the exponents
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    stages: dict[str, dict[str, float]] = {}
    path = cohort_dir(work, patients, args.seed)
    if not path.is_dir():
        with Stage(stages, "synth"):
            cmd = [str(Path(sys.executable).with_name("clinpred")), "synth", "--size", "mimic3"]
            cmd += ["--patients", str(patients), "--seed", str(args.seed), "--out", str(path), "--quiet"]
            subprocess.run(cmd, check=True)
        stages["synth"]["peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    cache = tempfile.mkdtemp(dir=work, prefix="cache-")  # a fresh note cache, removed when the size ends
    os.environ["CLINPRED_CACHE"] = cache
    try:
        return _stages(patients, path, stages, load_at_start, args)
    finally:
        shutil.rmtree(cache, ignore_errors=True)  # 2.6 GB of note text at full size


def _stages(
    patients: int, path: Path, stages: dict[str, dict[str, float]], load_at_start: list[float], args
) -> dict[str, Any]:
    """The stages after the cohort exists (the note cache set up by ``one_size``)."""
    from clinpred.config import BackendConfig, DataConfig, ExperimentConfig
    from clinpred.errors import InputError
    from clinpred.pipeline import prepare, run_task
    from clinpred.tasks.recall import RecallConfig, evaluate_recall

    config = ExperimentConfig(data=DataConfig(path=path), backends=[BackendConfig(name="tfidf")])
    with Stage(stages, "load"):
        prepared = prepare(config, progress=False)
    from clinpred.backends.tfidf import TfidfBackend

    with Stage(stages, "tfidf"):
        backend = TfidfBackend()
        backend.fit(prepared.finetune_texts)
        embeddings = {"tfidf": backend.embed(prepared.evaluation_texts)}
    with Stage(stages, "proj768"):
        embeddings["proj768"] = projection_768(embeddings["tfidf"], args.seed)
    if "tfidf" not in args.backends:  # a 768-d run alone: hold only the 768-d vectors, as a real one would
        del embeddings["tfidf"]
    methods: dict[str, str] = {}
    for label in args.backends:
        vectors = embeddings[label]
        for task in args.tasks:
            try:
                with Stage(stages, f"{label}/{task}"):
                    result = run_task(task, prepared.evaluation, vectors, config)
            except InputError as exc:  # too few patients for the task's settings: as a run, go on
                stages[f"{label}/{task}"]["not_run"] = str(exc)
                print(f"  {label}/{task}: not run ({exc})")
                continue
            if task == "recall":
                methods[label] = result.definition["method"]
                queries = result.counts.get("queries_before_sampling", result.counts["queries"])
        with Stage(stages, f"{label}/recall-sampled"):
            sampled = RecallConfig(query_sample=args.sample_queries, exact_up_to=1)
            evaluate_recall(prepared.evaluation, vectors, sampled)
    notes = prepared.cohort.notes
    return {
        "patients": patients,
        "notes": len(notes),
        "evaluation_patients": len(prepared.split.evaluation),
        "evaluation_notes": len(prepared.evaluation.notes),
        "recall_queries": queries if "recall" in args.tasks else None,
        "recall_method": methods,
        "stages": stages,
        "process_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": {"start": load_at_start, "end": [round(x, 2) for x in os.getloadavg()]},
    }


def exponent(sizes: list[int], seconds: list[float]) -> float | None:
    """Least-squares slope of log seconds on log size (None with fewer than two usable points)."""
    points = [(s, t) for s, t in zip(sizes, seconds, strict=True) if t > 0]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def _ran(run: dict[str, Any], name: str) -> bool:
    return name in run["stages"] and "not_run" not in run["stages"][name]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stage: the exponent of seconds and of the peak memory, and the flag."""
    sizes = [r["patients"] for r in runs]
    names = [n for n in runs[-1]["stages"] if all(_ran(r, n) for r in runs)]
    out: dict[str, Any] = {}
    for name in names:
        secs = [r["stages"][name]["seconds"] for r in runs]
        mems = [r["stages"][name]["peak_mb"] for r in runs]
        exact_recall = name.endswith("/recall") and any(
            r["recall_method"].get(name.split("/")[0]) == "exact" for r in runs
        )
        time_exp = exponent(sizes, secs)
        out[name] = {
            "seconds_exponent": None if time_exp is None else round(time_exp, 3),
            "peak_mb_exponent": None if exponent(sizes, mems) is None else round(exponent(sizes, mems), 3),
            "flagged": bool(time_exp is not None and time_exp > FLAG_ABOVE and not exact_recall),
            "note": "exact recall: quadratic by definition, not the default above the threshold"
            if exact_recall
            else "",
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--backends", nargs="+", default=["tfidf", "proj768"], choices=["tfidf", "proj768"])
    parser.add_argument("--sample-queries", type=int, default=2000, help="the forced sample's size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clinpred-scale"))
    parser.add_argument("--out", default=None, help="default: benchmarks/results/scale-<machine>.json")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one size
    parser.add_argument("--one-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.one is not None:
        Path(args.one_out).write_text(json.dumps(one_size(args.one, args)))
        return

    load = os.getloadavg()
    print(f"machine {machine_name()}: {os.cpu_count()} cpus, load average {load[0]:.2f} at the start")
    runs = []
    for patients in sorted(args.patients):
        print(f"{patients:,} patients", flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json", dir=args.work) as f:
            cmd = [sys.executable, __file__, "--one", str(patients), "--one-out", f.name]
            cmd += ["--tasks", *args.tasks, "--backends", *args.backends, "--seed", str(args.seed)]
            cmd += ["--sample-queries", str(args.sample_queries), "--work", args.work]
            subprocess.run(cmd, check=True)
            runs.append(json.loads(Path(f.name).read_text()))
    growth = summarise(runs)

    print(f"\n{'stage':<28}" + "".join(f"{r['patients']:>10,}" for r in runs) + f"{'exponent':>10}")
    for name, g in growth.items():
        cells = "".join(f"{r['stages'][name]['seconds']:>10.1f}" for r in runs)
        exp = g["seconds_exponent"]
        mark = "  FLAG" if g["flagged"] else ("  (exact)" if g["note"] else "")
        print(f"{name:<28}{cells}{'' if exp is None else f'{exp:>10.2f}'}{mark}")
    print(f"{'process peak MB':<28}" + "".join(f"{r['process_peak_mb']:>10,.0f}" for r in runs))
    peers = {}
    for label in args.backends:
        if all(_ran(r, f"{label}/recall") for r in runs):
            ratios = [
                r["stages"][f"{label}/recall"]["seconds"] / r["stages"][f"{label}/recall-sampled"]["seconds"]
                for r in runs
            ]
            peers[label] = [round(x, 2) for x in ratios]
            print(
                f"{label}: recall (default method: {', '.join(r['recall_method'][label] for r in runs)}) / "
                f"recall sampled ({args.sample_queries:,} queries) seconds = "
                + ", ".join(f"{x:.1f}x" for x in ratios)
            )
    flagged = [n for n, g in growth.items() if g["flagged"]]
    print(f"stages above {FLAG_ABOVE}: {', '.join(flagged) if flagged else 'none'}")

    import clinpred

    out = Path(args.out or REPO / "benchmarks" / "results" / f"scale-{machine_name()}.json")
    record = {
        "benchmark": "benchmarks/scale.py",
        "machine": machine_name(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "clinpred_version": clinpred.__version__,
        "cohort": "clinpred synth --size mimic3 --patients N",
        "tasks": args.tasks,
        "backends": args.backends,
        "sample_queries": args.sample_queries,
        "flag_above": FLAG_ABOVE,
        "sizes": runs,
        "growth": growth,
        "flagged": flagged,
        "peer_exact_over_sampled_recall_seconds": peers,
    }
    write_figures(out, record)


if __name__ == "__main__":
    main()
