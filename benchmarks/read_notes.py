"""Benchmark: clinpred's NOTEEVENTS reader (first read, cached read) against plain pandas.read_csv.

    python benchmarks/read_notes.py [--notes 500000] [--mean-chars 900] [--order shuffled] [--repeats 3] [--workdir DIR]

Writes a NOTEEVENTS.csv.gz in the MIMIC-III v1.4 format (quoted fields with embedded newlines, date-only
discharge summaries, trailing-space categories), its rows in no patient order (`--order shuffled`, the
default and the reader's hardest case: real NOTEEVENTS is in ROW_ID order, not patient order) or
already in patient/time order (`--order patient`). Then it times three reads of the whole file, each in
a fresh process so that peak memory (ru_maxrss) is that read's own, `--repeats` times interleaved, and
prints every run and the medians. Each timing ends with one pass over every byte of the text read (the
same for every reader), so that a memory-mapped result is charged for the pages it maps lazily:

- peer:   pandas.read_csv(path) — the plain way to load the table;
- first:  clinpred's reader, parsing CSV, sorting and writing its cache;
- cached: clinpred's reader again, served by its (memory-mapped) cache.

Targets (issue 2): first read no slower than pandas and with lower peak memory; cached read >= 5x faster.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clinpred.data.synthetic.writer import NOTEEVENTS_COLUMNS

CATEGORIES = [
    ("Nursing/other", 0.40, 250),
    ("Radiology", 0.25, 900),
    ("Nursing", 0.11, 1200),
    ("ECG", 0.10, 120),
    ("Physician ", 0.07, 4000),
    ("Discharge summary", 0.03, 9000),
    ("Echo", 0.02, 2500),
    ("Respiratory ", 0.02, 600),
]
WORDS = (
    "pt patient resting comfortably afebrile hr bp stable lasix 40mg iv given lungs clear bilaterally "
    "no acute distress creatinine 1.2 wbc 11 lactate plan continue monitor [**Hospital 123**] echo shows "
    "ef 35% mild mr impression findings chest film cardiomegaly without edema"
).split()

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, path, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
if mode != "pandas":  # imports are outside the timing, as pandas' is
    from clinpred.data.mimic3 import NOTE_COLUMNS, _normalise_noteevents
    from clinpred.data.note_stream import NoteFilters, read_notes
t0 = time.perf_counter()
if mode == "pandas":
    frame = pd.read_csv(path)
    n, text = len(frame), frame["TEXT"]
else:
    frame, counts = read_notes(path, NOTE_COLUMNS, _normalise_noteevents, NoteFilters(), cache_dir=cache)
    n, text = len(frame) + counts["error_notes_dropped"], frame["text"]
# One pass over every byte of text, the same for every reader: a memory-mapped result pays here for
# the pages it has not yet read, and every reader's peak memory then holds all of its text.
chars = int(pc.sum(pc.utf8_length(pa.array(text.fillna("")))).as_py())
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": n, "chars": chars, "seconds": seconds, "peak_mib": peak}))
"""


def write_noteevents(path: Path, n_notes: int, mean_chars: int, shuffled: bool, seed: int = 0) -> None:
    """A NOTEEVENTS.csv.gz with MIMIC-III's columns, quoting and category mix; ROW_ID is the file order."""
    rng = np.random.default_rng(seed)
    notes = rng.permutation(n_notes) if shuffled else np.arange(n_notes)
    names = [c for c, _, _ in CATEGORIES]
    weights = np.array([w for _, w, _ in CATEGORIES])
    lengths = np.array([n for _, _, n in CATEGORIES], dtype=float)
    scale = mean_chars / float(weights @ lengths)
    cats = rng.choice(len(names), size=n_notes, p=weights / weights.sum())
    vocab = np.array(WORDS)
    with gzip.open(path, "wt", compresslevel=1, newline="") as f:
        f.write(",".join(f'"{c}"' for c in NOTEEVENTS_COLUMNS) + "\n")  # v1.4 order, quoted UPPERCASE
        writer = csv.writer(f, lineterminator="\n")
        for row, i in enumerate(notes.tolist()):
            c = cats[i]
            n_words = max(3, int(rng.exponential(lengths[c] * scale / 6)))
            words = vocab[rng.integers(0, len(vocab), n_words)]
            text = " ".join(words)
            text = text.replace(" plan ", '\nPlan: "').replace(" impression ", "\nIMPRESSION:\n")
            subject = 1 + i // 45
            day = 1 + (i % 45) // 3
            date = f"2150-{1 + day // 28:02d}-{1 + day % 28:02d}"
            dated_only = names[c] in ("Discharge summary", "ECG", "Echo")
            writer.writerow(
                [
                    row + 1,
                    subject,
                    100000 + subject,
                    date,
                    "" if dated_only else f"{date} {8 + i % 12:02d}:00:00",
                    "",
                    names[c],
                    "Report",
                    "" if dated_only else 14000 + i % 300,
                    "1" if i % 2000 == 0 else "",
                    text,
                ]
            )


def run(mode: str, path: Path, cache: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(cache)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notes", type=int, default=500_000)
    parser.add_argument("--mean-chars", type=int, default=900)
    parser.add_argument("--order", choices=["shuffled", "patient"], default="shuffled")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="clinpred-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{args.order}-{args.notes}" / "NOTEEVENTS.csv.gz"
    path.parent.mkdir(exist_ok=True)
    cache = work / "cache"
    if not path.exists():
        t0 = time.perf_counter()
        write_noteevents(path, args.notes, args.mean_chars, shuffled=args.order == "shuffled")
        print(
            f"wrote {args.notes:,} notes ({args.order}), {path.stat().st_size / 2**20:.0f} MiB gz, "
            f"in {time.perf_counter() - t0:.0f} s"
        )
    runs: dict[str, list[dict]] = {"pandas": [], "first": [], "cached": []}
    for _ in range(args.repeats):  # interleaved, so that a noisy moment hits every reader alike
        for stale in cache.glob("*.arrow"):
            stale.unlink()
        runs["pandas"].append(run("pandas", path, cache))
        runs["first"].append(run("clinpred", path, cache))
        runs["cached"].append(run("clinpred", path, cache))
    for k, rs in runs.items():
        print(f"{k:>8}: " + ", ".join(f"{r['seconds']:.2f} s / {r['peak_mib']:.0f} MiB" for r in rs))
    pandas, first, cached = (median(runs[k]) for k in ("pandas", "first", "cached"))
    print(
        f"median of {args.repeats} runs each; peak memory is each read's own (ru_maxrss of a fresh process)"
    )
    print(f"{'read':<28}{'rows':>10}{'seconds':>10}{'peak MiB':>10}")
    for name, r in (
        ("pandas.read_csv (peer)", pandas),
        ("clinpred first read", first),
        ("clinpred cached read", cached),
    ):
        print(f"{name:<28}{r['rows']:>10,}{r['seconds']:>10.2f}{r['peak_mib']:>10.0f}")
    print(
        f"first read: {pandas['seconds'] / first['seconds']:.2f}x the speed of pandas, "
        f"peak memory {first['peak_mib'] / pandas['peak_mib']:.2f}x pandas'"
    )
    print(
        f"cached read: {pandas['seconds'] / cached['seconds']:.1f}x faster than pandas, "
        f"peak memory {cached['peak_mib'] / pandas['peak_mib']:.2f}x pandas'"
    )


def median(results: list[dict]) -> dict:
    """Median seconds and median peak memory of repeated runs (rows must agree)."""
    assert len({r["rows"] for r in results}) == 1, "runs read different numbers of rows"
    return {
        "rows": results[0]["rows"],
        "seconds": float(np.median([r["seconds"] for r in results])),
        "peak_mib": float(np.median([r["peak_mib"] for r in results])),
    }


if __name__ == "__main__":
    main()
