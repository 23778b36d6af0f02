"""The demo's run folder names no folder of the machine, and the demo says its stages and their times.

A first demo's stage table and paths are checked on the full demo, which CI runs anyway to reproduce
results/synthetic (``tests/demo_checks.py``). The tiny demo (two fine-tunes of a few steps, four
backends: about 70 s here) checks --quiet and a second demo into the same folder (the fine-tunes
reused, the embeddings cached). What a user names on the command line is checked through
`clinpred run` (seconds: TF-IDF, recall only).
"""

from __future__ import annotations

import json

import pytest

from clinpred.recorded_paths import relative_inside
from tests.conftest import run_cli
from tests.demo_checks import stage_table

ENV_KEYS = {"OPENAI_API_KEY": ""}


def test_only_paths_into_the_kept_entries_of_the_run_folder_become_relative(tmp_path):
    run = tmp_path / "run"
    kept = str(run.resolve() / "models" / "seed")
    value = {
        "model": kept,
        "record": f"{kept}/clinpred-finetune.json",
        "warnings": [f"no clinpred-finetune.json in '{kept}': unknown", f"see {kept}."],
        "elsewhere": str(tmp_path / "models" / "seed"),  # outside the run folder: as given
        "sibling": str(tmp_path / "run2" / "models" / "seed"),  # a folder whose name begins the same
        "not kept": str(run.resolve() / "units" / "x.parquet"),
        "nested": [(kept,)],
        "count": 3,
    }
    assert relative_inside(value, run, ("models",)) == {
        "model": "models/seed",
        "record": "models/seed/clinpred-finetune.json",
        "warnings": ["no clinpred-finetune.json in 'models/seed': unknown", "see models/seed."],
        "elsewhere": str(tmp_path / "models" / "seed"),
        "sibling": str(tmp_path / "run2" / "models" / "seed"),
        "not kept": str(run.resolve() / "units" / "x.parquet"),
        "nested": [("models/seed",)],
        "count": 3,
    }
    assert relative_inside(value, run, ()) == value  # `clinpred run` keeps nothing: all as given


def test_a_model_path_the_user_gave_is_recorded_as_given(tmp_path):
    """Even a path into the run folder: `clinpred run` carries nothing over, so nothing is rewritten."""
    out = tmp_path / "out"
    inside, outside = out / "models" / "mine", tmp_path / "models" / "theirs"
    proc = run_cli(
        *("run", "--synthetic", "tiny", "-t", "recall", "--out", str(out), "--quiet", "-b", "tfidf"),
        *("-b", f"sentence-transformers:model={inside},label=inside"),
        *("-b", f"sentence-transformers:model={outside},label=outside"),
        env={"CLINPRED_CACHE": str(tmp_path / "cache"), **ENV_KEYS},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    models = {b["label"]: b["settings"]["model"] for b in config["backends"] if b["name"] != "tfidf"}
    assert models == {"inside": str(inside), "outside": str(outside)}
    results = json.loads((out / "results.json").read_text())
    reasons = {b["label"]: b["reason"] for b in results["backends"] if b["status"] == "not run"}
    assert str(inside) in reasons["inside"] and str(outside) in reasons["outside"]
    assert results["config"]["backends"] == config["backends"]


@pytest.mark.slow(minutes=2)  # idle, alone: about 2 min (two tiny demos)
def test_a_quiet_demo_says_nothing_and_a_second_one_reuses_its_fine_tunes(tmp_path):
    """The first demo's table and paths are checked on the full demo (the reproduction test); here,
    --quiet, the same paths, and the second demo into the same folder, which reuses the fine-tunes."""
    env = {"CLINPRED_CACHE": str(tmp_path / "cache"), **ENV_KEYS}
    quiet = run_cli("demo", "--size", "tiny", "--out", "out", "--quiet", cwd=tmp_path, env=env, timeout=1500)
    assert quiet.returncode == 0, quiet.stderr
    assert "demo stages" not in quiet.stderr + quiet.stdout and "Estimate" not in quiet.stderr
    out = tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    models = {b["label"]: b["settings"].get("model") for b in config["backends"]}
    assert models["minilm-seed"] == "models/seed" and models["minilm-clinical"] == "models/clinical"
    machine = [str(tmp_path), str(tmp_path.resolve()), "site-packages"]
    for name in ("config.json", "results.json", "RESULTS.md", "report.html"):
        assert not [m for m in machine if m in (out / name).read_text()], name
    report = run_cli("report", "out", "--out", "rep", cwd=tmp_path, env=env, timeout=600)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "report.html").is_file()
    trained = (out / "models" / "seed" / "model.safetensors").stat().st_mtime_ns

    # again into the same folder: the fine-tunes are reused, and the estimate and the table say so
    again = run_cli("demo", "--size", "tiny", "--out", "out", cwd=tmp_path, env=env, timeout=1500)
    assert again.returncode == 0, again.stderr
    err = " ".join(again.stderr.split())
    assert "demo stages: cohort, embedding and tasks of minilm-base" in err
    assert "; fine-tune seed, clinical reused. Estimate: about" in err
    rows = stage_table(again.stderr)
    assert rows["fine-tune seed"] == rows["fine-tune clinical"] == (0.0, "reused")
    assert (out / "models" / "seed" / "model.safetensors").stat().st_mtime_ns == trained
    assert json.loads((out / "config.json").read_text())["backends"] == config["backends"]
