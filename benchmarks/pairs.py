"""Fine-tuning data at full size: seconds and peak memory of mining the pairs ``finetune`` trains on.

    .venv/bin/python benchmarks/pairs.py                       # the 46,520-patient cohort (MIMIC-III size)
    .venv/bin/python benchmarks/pairs.py --patients 2000       # a small one, generated under --work

The cohort is the synthetic one at MIMIC-III's note density (``--data``: a folder ``clinpred synth
--size mimic3`` wrote; default ``<work>/mimic3-46520-seed0``; or ``--patients N``: generated there
once). It is read as a run reads it (``clinpred.pipeline.build_cohort``, the note cache under
``CLINPRED_CACHE`` when set, else a fresh folder under ``--work`` removed afterwards) and split with
the default patient split. Each recipe then runs ``clinpred.finetune.pairs.training_data``, what
``clinpred finetune`` calls before training: the fine-tuning patients' cohort (subset, text under the
recipe's PHI setting) and the pairs mined from the training patients, at most ``--max-pairs`` per
patient (the issue's 20; the recipes leave it unset). The recipes: ``seed`` (text as written),
``clinical`` (the default: placeholders masked) and ``clinical-style`` (clinical with style-matched
negatives, the heaviest mining: a drawn note per pair).

Memory is the process's resident set (``VmRSS``) and its two parts, anonymous (``RssAnon``: what the
process made) and file-backed (``RssFile``: the note cache's mapped pages, which the kernel can drop),
sampled from ``/proc/self/status`` every 10 ms; per stage the peak of each and what the stage added
above its start. The named peer, in the same run: reading every fine-tuning note's text once through
``NoteTexts`` with the PHI mask applied a block at a time, as the TF-IDF fit reads it. Mining has to
read each of those notes at least once (the empty-text check, the mask), so the ratio says how far it
is from a single pass over the text it draws pairs from. The load average at the start is recorded:
on a shared machine wall times are upper bounds. The figures go to ``benchmarks/results/pairs-<machine>.json``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from figures import write_figures
from scale import REPO, cohort_dir, machine_name

FIELDS = ("VmRSS", "RssAnon", "RssFile")
RECIPES: dict[str, dict[str, Any]] = {
    "seed": {"preset": "seed"},
    "clinical": {"preset": "clinical"},
    "clinical-style": {"preset": "clinical", "pairs": {"negatives": "style_matched"}},
}


def memory_mb() -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of this process now, in MB (Linux /proc)."""
    out = dict.fromkeys(FIELDS, 0.0)
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in out:
            out[name] = int(value.split()[0]) / 1024  # kB
    return out


class Measured:
    """Times a block and samples VmRSS / RssAnon / RssFile every 10 ms while it runs."""

    def __init__(self, record: dict[str, dict[str, float]], name: str) -> None:
        self.record, self.name = record, name
        self._stop = threading.Event()

    def _take(self) -> None:
        for k, v in memory_mb().items():
            self.peak[k] = max(self.peak[k], v)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._take()

    def __enter__(self) -> Measured:
        self.start = memory_mb()
        self.peak = dict(self.start)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        self._take()
        entry: dict[str, float] = {"seconds": round(seconds, 2)}
        for k in FIELDS:
            entry[f"peak_{k}_mb"] = round(self.peak[k], 1)
            entry[f"added_{k}_mb"] = round(self.peak[k] - self.start[k], 1)
        self.record[self.name] = entry
        print(
            f"  {self.name:<30}{seconds:>8.1f} s  peak RSS {self.peak['VmRSS']:>7.0f} MB "
            f"(anon {self.peak['RssAnon']:.0f}, file {self.peak['RssFile']:.0f}), "
            f"added {entry['added_VmRSS_mb']:.0f} MB (anon {entry['added_RssAnon_mb']:.0f})",
            flush=True,
        )


def code_version() -> str:
    """The commit measured, ``+changes`` when clinpred/ differs from it (what the figures are figures of)."""

    def run(*cmd: str) -> str:
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout

    try:
        dirty = run("git", "status", "--porcelain", "--", "clinpred").strip()
        return run("git", "rev-parse", "--short", "HEAD").strip() + (" +changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clinpred-scale"))
    parser.add_argument("--data", default=None, help="a synthetic mimic3 cohort folder")
    parser.add_argument("--patients", type=int, default=None, help="generate (once) a cohort of N patients")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-pairs", type=int, default=20, help="pairs per patient at most")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--out", default=None, help="default: benchmarks/results/pairs-<machine>.json")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.patients is not None:
        path = cohort_dir(work, args.patients, args.seed)
        if not path.is_dir():
            cmd = [str(Path(sys.executable).with_name("clinpred")), "synth", "--size", "mimic3", "--quiet"]
            cmd += ["--patients", str(args.patients), "--seed", str(args.seed), "--out", str(path)]
            subprocess.run(cmd, check=True)
    else:
        path = Path(args.data) if args.data else cohort_dir(work, 46_520, args.seed)
    own_cache = "CLINPRED_CACHE" not in os.environ
    if own_cache:
        os.environ["CLINPRED_CACHE"] = tempfile.mkdtemp(dir=work, prefix="cache-")
    try:
        record = measure(path, args)
    finally:
        if own_cache:
            shutil.rmtree(os.environ["CLINPRED_CACHE"], ignore_errors=True)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"pairs-{machine_name()}.json"
    write_figures(out, record)


def measure(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Load, the peer, then each recipe's ``training_data``, in this process."""
    import numpy as np

    from clinpred.config import DataConfig
    from clinpred.data.memory import release_mapped_pages, return_freed_memory
    from clinpred.data.note_texts import NoteTexts
    from clinpred.data.splits import split_cohort
    from clinpred.finetune.config import FinetuneConfig
    from clinpred.finetune.pairs import training_data
    from clinpred.pipeline import build_cohort

    load = os.getloadavg()
    stages: dict[str, dict[str, float]] = {}
    print(f"machine {machine_name()}, load average {load[0]:.2f}: {path}", flush=True)
    with Measured(stages, "load"):
        cohort = build_cohort(DataConfig(path=path), progress=False)
        split = split_cohort(cohort, FinetuneConfig().split)
    release_mapped_pages()
    finetune_rows = np.flatnonzero(cohort.notes["subject_id"].isin(split.finetune_all).to_numpy())
    print(
        f"  {len(cohort.subject_ids):,} patients, {len(cohort.notes):,} notes; fine-tuning: "
        f"{len(split.finetune_all):,} patients ({len(split.finetune):,} training), {len(finetune_rows):,} notes",
        flush=True,
    )

    with Measured(stages, "peer: read fine-tuning text"):
        chars = sum(len(t) for t in NoteTexts(cohort.notes["text"], rows=finetune_rows, phi="mask"))
    release_mapped_pages()
    recipes: dict[str, dict[str, Any]] = {}
    for name in args.recipes:
        settings = {**RECIPES[name]}
        settings["pairs"] = {**settings.get("pairs", {}), "max_pairs_per_patient": args.max_pairs}
        config = FinetuneConfig.model_validate(settings)
        with Measured(stages, f"training_data: {name}"):
            _sub, pairs, counts = training_data(cohort, split, config)
        recipes[name] = {
            "settings": settings,
            "pairs": len(pairs),
            "patients_with_pairs": counts["patients_with_pairs"],
            "training_patients": counts["patients"],
            "counts": counts,
            "seconds_over_peer": round(
                stages[f"training_data: {name}"]["seconds"]
                / stages["peer: read fine-tuning text"]["seconds"],
                2,
            ),
        }
        print(
            f"    {len(pairs):,} pairs from {counts['patients_with_pairs']:,} of {counts['patients']:,} "
            f"training patients; {recipes[name]['seconds_over_peer']}x the peer",
            flush=True,
        )
        del _sub, pairs
        gc.collect()
        return_freed_memory()
        release_mapped_pages()
    return {
        "benchmark": "pairs",
        "code": code_version(),
        "machine": machine_name(),
        "load_average_at_start": [round(x, 2) for x in load],
        "data": str(path),
        "patients": len(cohort.subject_ids),
        "notes": len(cohort.notes),
        "finetune_patients": len(split.finetune_all),
        "training_patients": len(split.finetune),
        "finetune_notes": len(finetune_rows),
        "finetune_text_chars": int(chars),
        "max_pairs_per_patient": args.max_pairs,
        "peer": "reading every fine-tuning note's text once through NoteTexts, PHI mask per block",
        "stages": stages,
        "recipes": recipes,
        "peak_VmRSS_mb": max(s["peak_VmRSS_mb"] for s in stages.values()),
    }


if __name__ == "__main__":
    main()
