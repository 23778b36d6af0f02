"""Benchmark: how fast the synthetic cohort is written, and with how much memory.

    python benchmarks/synth.py --size mimic3          # the full 46,520 patients (minutes; run rarely)
    python benchmarks/synth.py --patients 5000

Prints notes per second and peak memory (this process and its workers) for the requested run, and
for a named peer in the same run: the same generator with one worker on a smaller cohort, so the
ratio shows what the second worker process buys. Then the cohort's calibration figures against real
MIMIC-III (phenotype prevalence, codes per admission, note mix and words per category, mortality):
``--calibration-only`` prints just those (the demo size: about 20 s).
"""

from __future__ import annotations

import argparse
import gzip
import resource
import shutil
import tempfile
import time
from pathlib import Path

from clinpred.data.synthetic.generate import SynthConfig, write_cohort


def _count_notes(path: Path) -> int:
    import csv

    with gzip.open(path / "NOTEEVENTS.csv.gz", "rt", newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def _print_calibration(path: Path) -> None:
    from clinpred.data.mimic3 import read_mimic3
    from clinpred.data.synthetic.calibration import calibration_figures, format_figures

    print(format_figures(calibration_figures(read_mimic3(path, use_cache=False))))


def _run(config: SynthConfig, where: Path) -> tuple[float, int, float]:
    start = time.perf_counter()
    out = write_cohort(where, config)
    seconds = time.perf_counter() - start
    notes = _count_notes(out)
    size_mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    return seconds, notes, size_mb


def _peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="demo", choices=["tiny", "demo", "mimic3"])
    ap.add_argument("--patients", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--peer-patients", type=int, default=2000)
    ap.add_argument("--calibration-only", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    if args.calibration_only:
        try:
            write_cohort(tmp / "main", SynthConfig.build(args.size, args.patients, 0, workers=args.workers))
            _print_calibration(tmp / "main")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        peer_cfg = SynthConfig.build(args.size, args.peer_patients, 0, workers=1)
        p_sec, p_notes, _ = _run(peer_cfg, tmp / "peer")
        shutil.rmtree(tmp / "peer")
        cfg = SynthConfig.build(args.size, args.patients, 0, workers=args.workers)
        sec, notes, mb = _run(cfg, tmp / "main")
        own, children = _peak_mb()
        _print_calibration(tmp / "main")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate, p_rate = notes / sec, p_notes / p_sec
    print(f"cohort: {cfg.patients} patients, {notes} notes, {mb:.0f} MB on disk, {args.workers} workers")
    print(f"  wall {sec:.1f} s, {rate:,.0f} notes/s")
    print(f"  peak RSS: main {own:.0f} MB, largest worker {children:.0f} MB")
    print(
        f"peer (same generator, 1 worker, {peer_cfg.patients} patients): {p_notes} notes, {p_rate:,.0f} notes/s"
    )
    print(f"ratio (notes/s, this run / peer): {rate / p_rate:.2f}")


if __name__ == "__main__":
    main()
