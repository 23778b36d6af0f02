"""Benchmark: reading a cohort from MEDS (meds_read.py) against reading it from its MIMIC-III CSVs.

    python benchmarks/read_meds.py                       # 2,000 patients (a few minutes on 2 cores)
    python benchmarks/read_meds.py --patients 46520      # the full mimic3 size (~2M notes; run rarely)

Writes the synthetic cohort in MIMIC-III format (`clinpred synth --size mimic3 --patients N`), exports
it to MEDS (`clinpred export meds`, ``--subjects-per-shard`` subjects a shard), then times each read
in a fresh process, so that peak memory (ru_maxrss) is that read's own, ``--repeats`` times
interleaved, and prints every run and the medians:

- peer: the MIMIC-III CSV reader (read_mimic3, no note cache: parsing, sorting, repairs);
- meds: the MEDS reader (read_meds) on the export, shard by shard.

Each read ends with one pass over every byte of note text (the same for both), so that a lazily
mapped result is charged for its pages. Both read the same patients, notes, stays and codes (checked).
Targets (issue 23): MEDS no slower than the CSV reader; its peak memory bounded by a shard plus the
cohort's own tables, not by the dataset's events.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, path = sys.argv[1], Path(sys.argv[2])
from clinpred.data.meds_read import read_meds
from clinpred.data.mimic3 import read_mimic3
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
cohort = read_meds(path) if mode == "meds" else read_mimic3(path, use_cache=False)
text_bytes = int(cohort.notes["text"].str.len().sum())  # one pass over the text
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "imports_mb": before, "notes": len(cohort.notes),
                  "patients": len(cohort.patients), "admissions": len(cohort.admissions),
                  "diagnoses": len(cohort.diagnoses), "text_bytes": text_bytes}))
"""


def _clinpred(*args: str) -> None:
    exe = Path(sys.executable).parent / "clinpred"
    subprocess.run([str(exe), *args], check=True, capture_output=True, text=True)


def _read(mode: str, path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--subjects-per-shard", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--workdir", type=Path, default=None, help="Keep the files here (default: a temporary folder)."
    )
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="read-meds-bench-"))
    csv_dir, meds_dir = work / "mimic3", work / "meds"
    if not csv_dir.is_dir():
        _clinpred(
            "synth", "--size", "mimic3", "--patients", str(args.patients), "--out", str(csv_dir), "--quiet"
        )
    if not meds_dir.is_dir():
        shards = str(args.subjects_per_shard)
        _clinpred(
            "export",
            "meds",
            "--data",
            str(csv_dir),
            "--out",
            str(meds_dir),
            "--subjects-per-shard",
            shards,
            "-q",
        )
    shard_count = len(list((meds_dir / "data").glob("*.parquet")))
    print(
        f"cohort: {args.patients:,} patients; MIMIC-III CSVs {_size_mb(csv_dir):.0f} MB, "
        f"MEDS {_size_mb(meds_dir):.0f} MB in {shard_count} shard(s)"
    )
    runs: dict[str, list[dict]] = {"peer": [], "meds": []}
    for i in range(args.repeats):
        for mode, path in (("peer", csv_dir), ("meds", meds_dir)):
            r = _read(mode, path)
            runs[mode].append(r)
            print(
                f"  run {i + 1} {mode:<4}: {r['seconds']:.2f} s, peak RSS {r['peak_mb']:.0f} MB "
                f"(after imports {r['imports_mb']:.0f} MB); {r['notes']:,} notes, {r['patients']:,} patients, "
                f"{r['admissions']:,} stays, {r['diagnoses']:,} diagnoses"
            )
    same = ("notes", "patients", "admissions", "diagnoses", "text_bytes")
    if any(runs["peer"][0][k] != runs["meds"][0][k] for k in same):
        raise SystemExit("the two readers did not read the same cohort")
    med = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
    peak = {m: statistics.median(r["peak_mb"] for r in rs) for m, rs in runs.items()}
    print(
        f"median: CSV (peer) {med['peer']:.2f} s, {peak['peer']:.0f} MB; MEDS {med['meds']:.2f} s, {peak['meds']:.0f} MB"
    )
    print(
        f"ratio (MEDS / CSV): time {med['meds'] / med['peer']:.2f}, peak memory {peak['meds'] / peak['peer']:.2f}"
    )
    if args.workdir is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
