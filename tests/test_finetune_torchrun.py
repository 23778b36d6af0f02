"""Fine-tuning across processes for real: `torchrun --nproc_per_node 2` on CPU (gloo) over the tiny cohort.

The sampler's unit tests show that the R batches of one step are patient-disjoint as the sampler deals
them; here the real command runs under torchrun, accelerate shards the batches across two processes,
and each process records the patient ids of every batch it trains on (``CLINPRED_TRACE_BATCHES``), so
the property is checked on what was actually trained. The trace hook itself is tested in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from clinpred.finetune import FinetuneConfig, finetune_pairs
from clinpred.finetune.train import TRACE_ENV

TORCHRUN = Path(sys.executable).parent / "torchrun"


def traced(folder: Path, rank: int) -> list[dict]:
    path = folder / f"rank-{rank}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def toy_pairs(n_groups: int = 10, per_group: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"anchor": f"patient {g} note {j}", "positive": f"patient {g} note {j + 1}", "group": f"p{g}"}
            for g in range(n_groups)
            for j in range(per_group)
        ]
    )


def test_trace_hook_records_each_trained_batch_and_changes_nothing(minilm_path, tmp_path, monkeypatch):
    pairs = toy_pairs()
    config = FinetuneConfig(
        base_model=str(minilm_path), batch_size=4, max_seq_length=16, max_steps=3, save_steps=100,
        logging_steps=1, seed=0,
    )  # fmt: skip
    plain = finetune_pairs(pairs, config, tmp_path / "plain", progress=False)

    trace = tmp_path / "trace"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    report = finetune_pairs(pairs, config, tmp_path / "traced", progress=False)

    rows = traced(trace, 0)
    assert sorted(p.name for p in trace.iterdir()) == ["rank-0.jsonl"]
    assert [r["step"] for r in rows] == [1, 2, 3] and {r["rank"] for r in rows} == {0}
    for r in rows:  # group codes of finetune_pairs (0..9), at most one pair per patient in a batch
        assert 0 < len(r["groups"]) <= 4 and len(set(r["groups"])) == len(r["groups"])
        assert set(r["groups"]) <= set(range(10))
    # the extra column never reaches the model: the same losses step by step, the same record
    assert [p["loss"] for p in report.loss_curve] == pytest.approx([p["loss"] for p in plain.loss_curve])
    record = json.loads((tmp_path / "traced" / "clinpred-finetune.json").read_text())
    assert "clinpred_trace_group" not in json.dumps(record)


@pytest.mark.slow
def test_torchrun_two_processes_train_patient_disjoint_steps_and_save_once(
    minilm_path, tmp_path, monkeypatch
):
    from clinpred.config import DataConfig
    from clinpred.data.splits import split_patients
    from clinpred.pipeline import build_cohort

    config = tmp_path / "ft.toml"
    config.write_text(
        "batch_size = 4\nmax_seq_length = 64\nmax_steps = 6\nsave_steps = 100\nlogging_steps = 1\n"
        "eval_max_queries = 20\n[pairs]\nmax_pairs_per_patient = 4\n"
    )
    out, trace = tmp_path / "model", tmp_path / "trace"
    env = {
        **os.environ,
        "CLINPRED_CACHE": str(tmp_path / "cache"),  # the tiny cohort, generated once (a file lock)
        TRACE_ENV: str(trace),
        "OMP_NUM_THREADS": "1",  # two processes on two cores
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    command = [
        str(TORCHRUN), "--standalone", "--nproc_per_node", "2",
        "-m", "clinpred.cli", "finetune", "--synthetic", "tiny", "--base", str(minilm_path),
        "--config", str(config), "--out", str(out), "--quiet",
    ]  # fmt: skip
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert result.stdout.count(f"wrote {out}") == 1, result.stdout  # rank 0 alone prints the summary

    # saved once: one record (world_size 2) and one model folder, no staging left behind
    records = list(out.rglob("clinpred-finetune.json"))
    assert records == [out / "clinpred-finetune.json"]
    record = json.loads(records[0].read_text())
    assert record["world_size"] == 2 and record["steps"] == 6
    models = [p.parent for p in out.rglob("modules.json") if "checkpoints" not in p.parts]
    assert models == [out]
    assert not [p for p in out.iterdir() if p.name.startswith(".final-")]

    # what each process trained, step by step: two batches per step, no patient in both
    assert sorted(p.name for p in trace.iterdir()) == ["rank-0.jsonl", "rank-1.jsonl"]
    by_rank = [traced(trace, r) for r in (0, 1)]
    for r, rows in enumerate(by_rank):
        assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
        assert {row["rank"] for row in rows} == {r}
    seen: Counter[int] = Counter()
    for row0, row1 in zip(*by_rank, strict=True):
        g0, g1 = row0["groups"], row1["groups"]
        assert len(g0) == len(g1) == 4  # batch_size per process
        assert len(set(g0) | set(g1)) == 8, (row0, row1)  # patient-disjoint across the two ranks
        seen.update(g0 + g1)
    assert max(seen.values()) > 1  # patients come back at later steps: disjointness was not by chance

    # and they are fine-tuning patients of the same split, never evaluation or validation ones
    monkeypatch.setenv("CLINPRED_CACHE", str(tmp_path / "cache"))  # the tiny cohort the run generated
    cohort = build_cohort(DataConfig(synthetic="tiny"), progress=False)
    split = split_patients(cohort.subject_ids, FinetuneConfig.from_toml(config).split)
    assert set(seen) <= set(np.asarray(split.finetune).tolist())
    assert record["data"]["train_patients"] == len(split.finetune)
