"""Sampled recall against exact recall on the same vectors: every metric, its interval, and the time.

    .venv/bin/python benchmarks/recall_sampling.py                    # 3,000 patients, 20,000 queries
    .venv/bin/python benchmarks/recall_sampling.py --patients 10000   # the issue's figure (exact: ~1 h)

The cohort is the synthetic one at MIMIC-III's note density (``clinpred synth --size mimic3 --patients
N``, kept under ``--work``), the vectors TF-IDF's (fitted on the fine-tuning patients' notes, as in a
run). Recall runs twice with default settings but the method: exact (``query_sample = null``: every
query against the full pool) and sampled (``--query-sample`` queries, patient-stratified, against the
full pool, forced with ``exact_up_to = 1``). The peer is the exact method in the same run: the ratio
of seconds (each end to end: the top-k passes, the within-patient ranks, the bootstrap and the
subgroups). For each measured metric it prints both estimates with their 95% patient-bootstrap
intervals and two checks: the sampled estimate inside the exact interval (what the issue asks; not
guaranteed, since the exact interval does not hold the sampling error), and the exact value inside
the sampled interval (what the sampled interval promises, at 95%). The figures go to
``benchmarks/results/recall-sampling-<machine>.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import write_figures
from scale import REPO, cohort_dir, machine_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--query-sample", type=int, default=20_000)
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clinpred-scale"))
    parser.add_argument(
        "--out", default=None, help="default: benchmarks/results/recall-sampling-<machine>.json"
    )
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["CLINPRED_CACHE"] = tempfile.mkdtemp(dir=work, prefix="cache-")

    from clinpred.backends.tfidf import TfidfBackend
    from clinpred.config import BackendConfig, DataConfig, ExperimentConfig
    from clinpred.pipeline import prepare
    from clinpred.tasks.recall import DESCRIPTIVE_METRICS, RecallConfig, evaluate_recall
    from clinpred.tasks.result import BootstrapScheme

    path = cohort_dir(work, args.patients, args.seed)
    if not path.is_dir():
        cmd = [str(Path(sys.executable).with_name("clinpred")), "synth", "--size", "mimic3", "--quiet"]
        cmd += ["--patients", str(args.patients), "--seed", str(args.seed), "--out", str(path)]
        subprocess.run(cmd, check=True)
    config = ExperimentConfig(data=DataConfig(path=path), backends=[BackendConfig(name="tfidf")])
    prepared = prepare(config, progress=False)
    backend = TfidfBackend()
    backend.fit(prepared.finetune_texts)
    vectors = backend.embed(prepared.evaluation_texts)
    scheme = BootstrapScheme(n_resamples=args.n_resamples)
    load = os.getloadavg()
    print(
        f"machine {machine_name()}, load average {load[0]:.2f}: {args.patients:,} patients, "
        f"{len(prepared.evaluation.notes):,} evaluation notes, TF-IDF {vectors.shape[1]}-d",
        flush=True,
    )

    runs = {}
    for name, recall_config in [
        ("exact", RecallConfig(query_sample=None, bootstrap=scheme)),
        ("sampled", RecallConfig(query_sample=args.query_sample, exact_up_to=1, bootstrap=scheme)),
    ]:
        t0 = time.perf_counter()
        result = evaluate_recall(prepared.evaluation, vectors, recall_config)
        seconds = time.perf_counter() - t0
        runs[name] = {"seconds": round(seconds, 2), "result": result}
        print(f"{name}: {result.definition['method']}, {result.counts['queries']:,} queries, {seconds:.1f} s")

    exact, sampled = runs["exact"]["result"], runs["sampled"]["result"]
    print(f"\n{'metric':<15}{'exact [95% interval]':>28}{'sampled [95% interval]':>28}  s in e   e in s")
    rows = {}
    for metric, e in exact.metrics.items():
        if metric in DESCRIPTIVE_METRICS:
            continue
        s = sampled.metrics[metric]
        s_in_e = bool(e.low <= s.value <= e.high)
        e_in_s = bool(s.low <= e.value <= s.high)
        rows[metric] = {
            "exact": e.model_dump(),
            "sampled": s.model_dump(),
            "sampled_in_exact_interval": s_in_e,
            "exact_in_sampled_interval": e_in_s,
        }
        print(
            f"{metric:<15}{e!s:>28}{s!s:>28}  {'yes' if s_in_e else 'NO':>6} {'yes' if e_in_s else 'NO':>6}"
        )
    ratio = runs["exact"]["seconds"] / runs["sampled"]["seconds"]
    print(
        f"seconds: exact {runs['exact']['seconds']:.1f}, sampled {runs['sampled']['seconds']:.1f}: "
        f"exact / sampled = {ratio:.2f}x (the sample is {sampled.counts['queries'] / exact.counts['queries']:.0%} "
        "of the queries; the pool is the full pool in both)"
    )

    import clinpred

    out = Path(args.out or REPO / "benchmarks" / "results" / f"recall-sampling-{machine_name()}.json")
    record = {
        "benchmark": "benchmarks/recall_sampling.py",
        "machine": machine_name(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load],
        "clinpred_version": clinpred.__version__,
        "cohort": f"clinpred synth --size mimic3 --patients {args.patients} --seed {args.seed}",
        "backend": f"tfidf ({vectors.shape[1]}-d)",
        "evaluation_notes": len(prepared.evaluation.notes),
        "queries_exact": exact.counts["queries"],
        "queries_sampled": sampled.counts["queries"],
        "bootstrap_resamples": args.n_resamples,
        "seconds": {"exact": runs["exact"]["seconds"], "sampled": runs["sampled"]["seconds"]},
        "peer_exact_over_sampled_seconds": round(ratio, 2),
        "definition_sampled": {k: sampled.definition[k] for k in ("method", "method_rule", "query_sample")},
        "metrics": rows,
    }
    write_figures(out, record)


if __name__ == "__main__":
    main()
