"""What a first demo (one that trained its models) must print and write: checked on the full demo."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROW = re.compile(r"^(?P<stage>\S.*?)\s+(?P<seconds>\d+\.\d)(?:\s+(?P<note>\S.*))?$")


def stage_table(stderr: str) -> dict[str, tuple[float, str]]:
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


def check_a_first_demo(proc: subprocess.CompletedProcess, wall: float, out: Path, machine: list[str]) -> None:
    """What a demo that trained its models says and writes: its stages and estimate first, the stage
    table at the end (summing to the wall time), model paths relative to its folder, no path of the
    machine in any file. Used on the full demo (tests/test_results_reproduce.py)."""
    err = " ".join(proc.stderr.split())  # the log wraps at the terminal's width
    first = err[: err.index("fine-tuning the bundled MiniLM")]
    assert (
        "demo stages: cohort, fine-tune seed, fine-tune clinical, embedding and tasks of minilm-base" in first
    )
    assert re.search(r"Estimate: about \d+ (min|s) \(stage times measured on a 2-core CPU machine", first)

    rows = stage_table(proc.stderr)
    labels = ("minilm-base", "minilm-seed", "minilm-clinical", "tfidf")
    expected = ["cohort", "fine-tune seed", "fine-tune clinical"]
    expected += [f"{label}: {part}" for label in labels for part in ("embedding", "tasks")]
    assert list(rows) == [*expected, "report", "other", "total"]
    total = rows.pop("total")[0]
    assert sum(seconds for seconds, _ in rows.values()) == pytest.approx(total, abs=0.1 * len(rows))
    assert 0.5 * wall < total <= wall  # the process's own start-up is outside the table
    assert rows["fine-tune seed"][0] > 1 and rows["minilm-base: tasks"][0] > 0

    config = json.loads((out / "config.json").read_text())
    models = {b["label"]: b["settings"].get("model") for b in config["backends"]}
    assert models["minilm-seed"] == "models/seed" and models["minilm-clinical"] == "models/clinical"
    results = json.loads((out / "results.json").read_text())
    seed = next(b for b in results["backends"] if b["label"] == "minilm-seed")
    assert seed["provenance"]["record"] == "models/seed/clinpred-finetune.json"
    assert seed["description"]["model"] == "models/seed"
    for name in ("config.json", "results.json", "RESULTS.md", "report.html"):
        text = (out / name).read_text()
        assert not [m for m in machine if m in text], name
