"""The demo's run folder names no folder of the machine, and the demo says its stages and their times.

The demo on the tiny cohort (two fine-tunes of a few steps, four backends) takes about 3.5 minutes on
this 2-core machine, then about a minute each to run it again into the same folder (the fine-tunes
reused, the embeddings cached), once logged and once --quiet: one slow test for all three. What
a user names on the command line is checked through `clinpred run` (seconds: TF-IDF, recall only).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from clinpred.recorded_paths import relative_inside
from tests.conftest import run_cli

ENV_KEYS = {"OPENAI_API_KEY": ""}
ROW = re.compile(r"^(?P<stage>\S.*?)\s+(?P<seconds>\d+\.\d)(?:\s+(?P<note>\S.*))?$")


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


def _table(stderr: str) -> dict[str, tuple[float, str]]:
    """The stage table the demo logs at its end: stage -> (seconds, note)."""
    lines = stderr.splitlines()
    start = lines.index("demo stages, wall seconds:")
    assert re.fullmatch(r"stage\s+seconds", lines[start + 1])
    rows = {}
    for line in lines[start + 2 :]:
        match = ROW.match(line)
        if match is None:
            break
        rows[match["stage"]] = (float(match["seconds"]), match["note"] or "")
    return rows


@pytest.mark.slow(minutes=3)  # idle, alone: 190 s (three tiny demos)
def test_the_demo_prints_its_stages_and_names_its_models_relative_to_its_folder(tmp_path):
    env = {"CLINPRED_CACHE": str(tmp_path / "cache"), **ENV_KEYS}
    t0 = time.monotonic()
    proc = run_cli("demo", "--size", "tiny", "--out", "out", cwd=tmp_path, env=env, timeout=1500)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())  # the log wraps at the terminal's width
    first = err[: err.index("fine-tuning the bundled MiniLM")]
    assert (
        "demo stages: cohort, fine-tune seed, fine-tune clinical, embedding and tasks of minilm-base" in first
    )
    assert re.search(r"Estimate: about \d+ (min|s) \(stage times measured on a 2-core CPU machine", first)

    rows = _table(proc.stderr)
    labels = ("minilm-base", "minilm-seed", "minilm-clinical", "tfidf")
    expected = ["cohort", "fine-tune seed", "fine-tune clinical"]
    expected += [f"{label}: {part}" for label in labels for part in ("embedding", "tasks")]
    assert list(rows) == [*expected, "report", "other", "total"]
    total = rows.pop("total")[0]
    assert sum(seconds for seconds, _ in rows.values()) == pytest.approx(total, abs=0.1 * len(rows))
    assert 0.5 * wall < total <= wall  # the process's own start-up is outside the table
    assert rows["fine-tune seed"][0] > 1 and rows["minilm-base: tasks"][0] > 0

    out = tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    models = {b["label"]: b["settings"].get("model") for b in config["backends"]}
    assert models["minilm-seed"] == "models/seed" and models["minilm-clinical"] == "models/clinical"
    results = json.loads((out / "results.json").read_text())
    seed = next(b for b in results["backends"] if b["label"] == "minilm-seed")
    assert seed["provenance"]["record"] == "models/seed/clinpred-finetune.json"
    assert seed["description"]["model"] == "models/seed"
    machine = [str(tmp_path), str(tmp_path.resolve()), "site-packages"]
    for name in ("config.json", "results.json", "RESULTS.md", "report.html"):
        text = (out / name).read_text()
        assert not [m for m in machine if m in text], name
    report = run_cli("report", "out", "--out", "rep", cwd=tmp_path, env=env, timeout=600)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "report.html").is_file()

    # again into the same folder: the fine-tunes are reused, and the estimate and the table say so
    again = run_cli("demo", "--size", "tiny", "--out", "out", cwd=tmp_path, env=env, timeout=1500)
    assert again.returncode == 0, again.stderr
    err = " ".join(again.stderr.split())
    assert "demo stages: cohort, embedding and tasks of minilm-base" in err
    assert "; fine-tune seed, clinical reused. Estimate: about" in err
    rows = _table(again.stderr)
    assert rows["fine-tune seed"] == rows["fine-tune clinical"] == (0.0, "reused")
    assert json.loads((out / "config.json").read_text())["backends"] == config["backends"]

    # --quiet: neither the estimate nor the table
    quiet = run_cli("demo", "--size", "tiny", "--out", "out", "--quiet", cwd=tmp_path, env=env, timeout=1500)
    assert quiet.returncode == 0, quiet.stderr
    assert "demo stages" not in quiet.stderr + quiet.stdout and "Estimate" not in quiet.stderr
    assert (out / "models" / "seed" / "clinpred-finetune.json").is_file()
