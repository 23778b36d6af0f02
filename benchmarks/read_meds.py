"""Benchmark: reading a cohort from MEDS (meds_read.py) against reading it from its MIMIC-III CSVs.

    python benchmarks/read_meds.py                       # 2,000 patients (a minute or two on 2 cores)
    python benchmarks/read_meds.py --patients 10000      # several minutes: synthesis and export
    python benchmarks/read_meds.py --patients 46520      # the full mimic3 size (~2M notes; run rarely)

Writes the synthetic cohort in MIMIC-III format (`clinpred synth --size mimic3 --patients N`), exports
it to MEDS (`clinpred export meds`, ``--subjects-per-shard`` subjects a shard), then times each read
in a fresh process, so that peak memory (ru_maxrss) is that read's own, ``--repeats`` times
interleaved, and prints every run, the medians and the ratios to the CSV reader:

- peer: the MIMIC-III CSV reader (read_mimic3, no note cache: parsing, sorting, repairs);
- meds: the MEDS reader (read_meds) without the note cache: each row group's note text spilled to
  disk, the notes sorted and written to an unnamed temporary Arrow file that the result maps;
- meds-cold: the same with the note cache, a first read (the shards hashed, the cache written);
- meds-warm: a read the note cache serves (the shards hashed, the notes mapped; other events read).

Each read ends with one pass over every byte of note text (the same for all), so that a mapped result
is charged for its pages: the peak of every reader includes the whole text, as page-cache pages the
kernel may drop. Both read the same patients, notes, stays and codes (checked). The medians go to
``benchmarks/results/read-meds-<machine>.json`` under the cohort size (``--out`` elsewhere).

Targets (issue 23): MEDS no slower than the CSV reader; its peak memory no more than the CSV reader's,
bounded by a row group plus the cohort's own tables, not by the dataset's events. Measured on 2 shared
cores (2 CPUs, AMD EPYC; load 2-7), one run each, one shard of 65,536-event row groups (time, peak
RSS; MEDS / CSV ratios):

    patients  notes     CSV             MEDS, no cache            MEDS, first read   MEDS, cached
    2,000     88,881    1.28 s  284 MB  1.04 s  312 MB (0.81x, 1.10x)  0.92 s  311 MB     0.42 s  311 MB
    10,000    441,482   6.80 s  802 MB  4.19 s  857 MB (0.62x, 1.07x)  3.84 s  847 MB     1.62 s  823 MB

(before the note text was streamed, 2,000 patients: 2.20 s / 470 MB against 3.39 s / 287 MB.) The
peak memory target is missed by 3-10%: the excess over the CSV reader, 20-55 MB at both sizes, is
outside the note text (the text is the same mapped bytes for both): the reader's event tables and
allocator arenas.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, path, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
from clinpred.data.meds_read import read_meds
from clinpred.data.mimic3 import read_mimic3
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
if mode == "peer":
    cohort = read_mimic3(path, use_cache=False)
else:
    cohort = read_meds(path, use_cache=mode != "meds", cache_dir=cache)
text_bytes = int(cohort.notes["text"].str.len().sum())  # one pass over the text
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "imports_mb": before, "notes": len(cohort.notes),
                  "patients": len(cohort.patients), "admissions": len(cohort.admissions),
                  "diagnoses": len(cohort.diagnoses), "text_bytes": text_bytes}))
"""


MODES = ("peer", "meds", "meds-cold", "meds-warm")


def _clinpred(*args: str) -> None:
    exe = Path(sys.executable).parent / "clinpred"
    subprocess.run([str(exe), *args], check=True, capture_output=True, text=True)


def _read(mode: str, path: Path, cache: Path) -> dict:
    if mode == "meds-cold":  # a first read: no note cache yet
        shutil.rmtree(cache, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(cache)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _record(args: argparse.Namespace, runs: dict, med: dict, peak: dict, shards: int) -> None:
    """The medians under this cohort size in the machine's results file (other sizes kept)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from scale import machine_name  # the results files' machine name

    out = args.out or Path(__file__).parent / "results" / f"read-meds-{machine_name()}.json"
    record = json.loads(out.read_text()) if out.is_file() else {"benchmark": "benchmarks/read_meds.py"}
    record.setdefault("runs", {})[str(args.patients)] = {
        "patients": args.patients,
        "notes": runs["peer"][0]["notes"],
        "text_bytes": runs["peer"][0]["text_bytes"],
        "shards": shards,
        "repeats": args.repeats,
        "load_average": list(os.getloadavg()),
        "seconds": med,
        "peak_rss_mb": peak,
        "ratio_to_csv": {
            m: {"time": med[m] / med["peer"], "peak_rss": peak[m] / peak["peer"]} for m in MODES
        },
    }
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--subjects-per-shard", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--out", type=Path, default=None, help="default: benchmarks/results/read-meds-<machine>.json"
    )
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
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    cache = work / "note-cache"
    for i in range(args.repeats):
        for mode in MODES:
            r = _read(mode, csv_dir if mode == "peer" else meds_dir, cache)
            runs[mode].append(r)
            print(
                f"  run {i + 1} {mode:<9}: {r['seconds']:.2f} s, peak RSS {r['peak_mb']:.0f} MB "
                f"(after imports {r['imports_mb']:.0f} MB); {r['notes']:,} notes, {r['patients']:,} patients, "
                f"{r['admissions']:,} stays, {r['diagnoses']:,} diagnoses"
            )
    same = ("notes", "patients", "admissions", "diagnoses", "text_bytes")
    if any(runs["peer"][0][k] != runs[m][0][k] for m in MODES for k in same):
        raise SystemExit("the readers did not read the same cohort")
    med = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
    peak = {m: statistics.median(r["peak_mb"] for r in rs) for m, rs in runs.items()}
    print(
        f"median (MEDS / CSV ratio in brackets), {args.patients:,} patients, {runs['peer'][0]['notes']:,} notes:"
    )
    for m in MODES:
        print(
            f"  {m:<9} {med[m]:6.2f} s ({med[m] / med['peer']:.2f}x)   peak RSS {peak[m]:5.0f} MB "
            f"({peak[m] / peak['peer']:.2f}x)"
        )
    _record(args, runs, med, peak, shard_count)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
