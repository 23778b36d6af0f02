"""Patient-bootstrap throughput: the process pool (clinpred.parallel) against the same loop in one process.

Peer: ``bootstrap_metrics`` and ``paired_difference_test`` with ``CLINPRED_JOBS=1`` (the loop as it ran
before the pool), on the committed demo's per-unit diagnosis and survival outputs. Path: the same calls
with the default number of processes. Measured on this project's 2-core machine: 1.57x (62.9 s ->
40.1 s, the first call including the start of the pool). The estimates must be identical (the
resamples are drawn before they are handed out), and the script checks that they are.

    .venv/bin/python benchmarks/bootstrap.py
    .venv/bin/python benchmarks/bootstrap.py --resamples 2000 --units results/synthetic/units
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from clinpred.parallel import JOBS_ENV, jobs
from clinpred.tasks.diagnosis import metrics_from_units as diagnosis_metrics
from clinpred.tasks.result import BootstrapScheme, bootstrap_metrics, paired_difference_test
from clinpred.tasks.survival import metrics_from_units as survival_metrics


def _timed(label: str, fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    print(f"  {label:<34} {seconds:7.2f} s")
    return seconds, value


def main() -> None:
    """Time each bootstrap in one process and in the pool; print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=Path, default=Path("results/synthetic/units"))
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    backends = sorted(p.name for p in args.units.iterdir() if (p / "diagnosis.parquet").is_file())
    a, b = backends[0], backends[1]
    scheme = BootstrapScheme(n_resamples=args.resamples)
    work = {
        "diagnosis bootstrap": lambda: bootstrap_metrics(
            pd.read_parquet(args.units / a / "diagnosis.parquet"), diagnosis_metrics, scheme
        ),
        "survival bootstrap": lambda: bootstrap_metrics(
            pd.read_parquet(args.units / a / "survival.parquet"), survival_metrics, scheme
        ),
        f"diagnosis paired ({b} - {a})": lambda: paired_difference_test(
            pd.read_parquet(args.units / b / "diagnosis.parquet"),
            pd.read_parquet(args.units / a / "diagnosis.parquet"),
            diagnosis_metrics,
            scheme,
        ),
    }
    saved = os.environ.get(JOBS_ENV)
    totals = {}
    results = {}
    for setting in ("1", saved or ""):
        if setting:
            os.environ[JOBS_ENV] = setting
        else:
            os.environ.pop(JOBS_ENV, None)
        name = "one process (peer)" if setting == "1" else f"pool of {jobs()}"
        print(f"{name}, {args.resamples} resamples:")
        totals[name] = 0.0
        for label, fn in work.items():
            seconds, value = _timed(label, fn)
            totals[name] += seconds
            results.setdefault(label, []).append(value)
    identical = all(v[0] == v[1] for v in results.values())
    peer, pool = totals.values()
    print(
        f"total: peer {peer:.1f} s, pool {pool:.1f} s, ratio {peer / pool:.2f}x; estimates identical: {identical}"
    )
    if not identical:
        raise SystemExit("the pool changed an estimate")


if __name__ == "__main__":
    main()
