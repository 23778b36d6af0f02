"""How much signal TF-IDF finds in the synthetic cohort: what the generator's calibration is judged by.

Generates the synthetic cohort at a size and note density (``clinpred synth``), runs TF-IDF on
diagnosis, survival, mortality and readmission (``clinpred run``: the task code users run), and writes
the main metrics and diagnosis's per-label AUROCs as JSON. Calibration to real data is judged by TF-IDF
alone, a model nobody tunes, never by a method the cohort is meant to test (issue 24, step 0; the
targets and the figures of each generator are in results/README.md). ``--summarise`` reads runs already
made instead of making them.

    .venv/bin/python scripts/cohort_signal.py --cohort mimic3:10000 --cohort demo:2000 \
        --out results/cohort-signal/generator-2.3.json            # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TASKS = ("diagnosis", "survival", "mortality", "readmission")
CLINPRED = str(Path(sys.executable).with_name("clinpred"))


def summarise(results_json: Path) -> dict:
    """The cohort's generator version (from its seal), the main metric (value and interval) per task,
    and diagnosis's per-label AUROC, lowest first."""
    run = json.loads(results_json.read_text())
    seal = json.loads((Path(run["data"]) / "CLINPRED_SYNTHETIC.json").read_text())
    backend = run["backends"][0]
    out: dict = {"generator": seal["version"], "size": seal["size"], "patients": seal["patients"]}
    out.update(backend=backend["label"], notes=run["cohort"]["notes"], tasks={})
    for task, result in backend["results"].items():
        metric = result["main_metric"]
        out["tasks"][task] = {"metric": metric, **result["metrics"][metric]}
        if task == "diagnosis":
            per_label = {k: round(v["auroc"]["value"], 3) for k, v in result["per_label"].items()}
            out["tasks"][task]["per_label_auroc"] = dict(sorted(per_label.items(), key=lambda kv: kv[1]))
            out["tasks"][task]["patients"] = result["counts"]["patients"]
    return out


def measure(size: str, patients: int, seed: int, work: Path) -> dict:
    data, run = work / f"{size}-{patients}" / "data", work / f"{size}-{patients}" / "run"
    synth = [CLINPRED, "synth", "--size", size, "--patients", str(patients), "--seed", str(seed)]
    subprocess.run([*synth, "--out", str(data), "--quiet"], check=True)
    tasks = [arg for task in TASKS for arg in ("-t", task)]
    env = {**os.environ, "CLINPRED_CACHE": str(work / "cache")}
    subprocess.run(
        [CLINPRED, "run", "--data", str(data), "-b", "tfidf", *tasks, "--out", str(run), "-q"],
        check=True,
        env=env,
    )
    return summarise(run / "results.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cohort", action="append", default=[], help="SIZE:PATIENTS, e.g. mimic3:10000 (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--summarise", action="append", default=[], type=Path, help="LABEL=RESULTS_JSON of a run already made"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    figures: dict = {"cohorts": {}}
    with tempfile.TemporaryDirectory(prefix="clinpred-signal-") as tmp:
        for spec in args.cohort:
            size, patients = spec.split(":")
            figures["cohorts"][spec] = measure(size, int(patients), args.seed, Path(tmp))
    for spec in args.summarise:
        label, path = str(spec).split("=", 1)
        figures["cohorts"][label] = summarise(Path(path))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1) + "\n")
    for label, cohort in figures["cohorts"].items():
        line = ", ".join(
            f"{t} {r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}]" for t, r in cohort["tasks"].items()
        )
        print(f"{label}: {line}")


if __name__ == "__main__":
    main()
