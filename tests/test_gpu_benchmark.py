"""benchmarks/gpu.py --tiny on the CPU: the script a GPU session runs, checked end to end before one does.

The toy model has EmbeddingGemma's architecture at toy size; the figures mean nothing, the JSON's shape
and the measurements' plumbing (encode paths, fine-tuning peers, recall check, FLOPs, ratios) do.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_tiny_run_writes_a_complete_json(tmp_path: Path):
    out = tmp_path / "gpu-tiny.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "assumed peak" in done.stdout and f"wrote {out}" in done.stdout
    result = json.loads(out.read_text())
    assert result["kind"] == "clinpred-gpu-benchmark" and result["tiny"] is True
    assert result["device"]["kind"] in ("cpu", "cuda") and "peak_tflops" in result["device"]
    assert result["versions"]["torch"] and result["versions"]["sentence_transformers"]

    model = result["model"]
    assert model["layer_types"].count("full_attention") >= 1 and model["matmul_parameters"] > 0
    lengths = result["sizes"]["lengths"]
    for length in lengths:
        flops = model["flops_per_token"][str(length)]
        assert 0 < flops["exact"] <= flops["full_attention"]

    encode = {(e["path"], e["tokens"]): e for e in result["encode"]}
    assert set(encode) == {(p, n) for p in ("bare-float32", "bare-bfloat16", "clinpred") for n in lengths}
    for (path, _), e in encode.items():
        assert e["status"] == "ok", e
        assert math.isfinite(e["notes_per_s"]) and e["notes_per_s"] > 0 and e["tokens_per_s"] > 0
        if path == "bare-float32":
            assert e["cosine_to_float32"] is None  # it is the reference
        else:  # on the CPU clinpred's dtype=auto is float32: the same vectors; bf16 is close
            floor = 0.9999 if e["dtype"] == "float32" else 0.98
            assert floor <= e["cosine_to_float32"]["min"] <= e["cosine_to_float32"]["mean"] <= 1.0001
        if e["mfu"] is not None:
            assert 0 < e["mfu"] < 1
    clinpred = encode[("clinpred", lengths[0])]
    assert clinpred["dtype"] == ("float32" if result["device"]["kind"] == "cpu" else clinpred["dtype"])
    assert clinpred["batch_size"]["used"] >= 1 and clinpred["attention"]

    train = {(t["trainer"], t["loss"]): t for t in result["finetune"]}
    assert set(train) == {(w, loss) for w in ("plain", "clinpred") for loss in ("mnrl", "cached_mnrl")}
    for t in train.values():
        assert t["status"] == "ok", t
        assert t["pairs_per_s"] > 0 and t["end_to_end_pairs_per_s"] > 0 and t["steps_timed"] >= 1

    recall = result["recall"]
    assert recall["status"] == "ok" and recall["k"] == 10 and recall["seconds"] > 0
    assert recall["rows_identical_to_numpy"] >= 0.99 and recall["max_score_difference"] < 1e-5

    ratios = result["summary"]["ratios"]
    for length in lengths:
        for name in ("clinpred_over_bare_float32", "clinpred_over_bare_bfloat16"):
            value = ratios[f"encode_{length}"][name]
            assert math.isfinite(value) and value > 0
    for loss in ("mnrl", "cached_mnrl"):
        value = ratios[f"finetune_{loss}"]["clinpred_over_plain"]
        assert math.isfinite(value) and value > 0
    assert set(result["summary"]["targets"]) == {
        "encode_at_least_2x_bare_float32",
        "mfu_at_least_35_percent",
        "finetune_within_1.1x_of_plain",
    }
    assert result["wall_s"] < result["budget_s"]
