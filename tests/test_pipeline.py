"""`clinpred run` and `clinpred report` end to end on the tiny synthetic cohort, through the real CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.mimic_files import write_mimic3


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One run of two local backends and OpenAI (no key: not run) on the tiny synthetic cohort."""
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("run")
    env = {"CLINPRED_CACHE": str(root / "cache"), "OPENAI_API_KEY": ""}
    out = root / "run"
    config = root / "tiny.toml"  # 20 evaluation patients: fewer resamples, smaller phenotype groups
    config.write_text(
        "[tasks.geometry]\nmin_patients_per_phenotype = 2\n"
        + "".join(f"[tasks.{t}.bootstrap]\nn_resamples = 200\n" for t in ("recall", "diagnosis", "survival"))
    )
    proc = run_cli(
        "run",
        "--config",
        str(config),
        "--synthetic",
        "tiny",
        "--backend",
        "tfidf",
        "--backend",
        "tfidf:n_components=16,label=tfidf-16",
        "--backend",
        "openai",
        "--out",
        str(out),
        "--quiet",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return out, proc, env


def test_run_writes_every_file_with_definitions_and_intervals(tiny_run):
    out, proc, _ = tiny_run
    results = json.loads((out / "results.json").read_text())
    assert json.loads((out / "config.json").read_text())["data"]["synthetic"] == "tiny"
    by_label = {b["label"]: b for b in results["backends"]}
    assert by_label["tfidf"]["status"] == "ok" and by_label["tfidf-16"]["status"] == "ok"
    assert by_label["openai"]["status"] == "not run" and "key" in by_label["openai"]["reason"].lower()
    for task in ("recall", "diagnosis", "survival", "geometry"):
        result = by_label["tfidf"]["results"][task]
        main = result["metrics"][result["main_metric"]]
        assert main["low"] is not None and main["low"] <= main["value"] <= main["high"]
        assert result["definition"] and result["counts"]
        assert (out / "units" / "tfidf" / f"{task}.parquet").is_file()
    recall = by_label["tfidf"]["results"]["recall"]
    assert recall["counts"]["queries"] > 0 and recall["counts"]["pool_size_max"] > 0
    assert (out / "umap.png").stat().st_size > 0
    md = (out / "RESULTS.md").read_text()
    assert "| recall | top5 |" in md and "Not run" in md and "## Task definitions" in md
    survival = by_label["tfidf"]["results"]["survival"]["counts"]
    assert (
        f"Survival: {survival['patients']:,} evaluation patients scored, "
        f"{survival['events']:,} of them died within the horizon." in md
    )
    printed = proc.stdout.splitlines()  # the main metric per task is printed at the end, in 100 columns
    assert any(line.startswith("| recall ") and "| top5 " in line for line in printed)
    assert max(map(len, printed)) <= 100 and "| top1 " not in proc.stdout
    assert "<figure>" in (out / "report.html").read_text()


def test_evaluation_patients_are_the_only_ones_scored(tiny_run):
    out, _, _ = tiny_run
    results = json.loads((out / "results.json").read_text())
    units = pd.read_parquet(out / "units" / "tfidf" / "diagnosis.parquet")
    assert units["subject_id"].nunique() <= results["split"]["evaluation_patients"]
    recall_units = pd.read_parquet(out / "units" / "tfidf" / "recall.parquet")
    assert set(recall_units["subject_id"]) <= set(units["subject_id"]) | set(recall_units["subject_id"])
    assert results["evaluation"]["patients"] == results["split"]["evaluation_patients"]


def test_report_gives_paired_differences(tiny_run, cli, tmp_path):
    out, _, env = tiny_run
    proc = cli("report", str(out), "--reference", "tfidf", "--out", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    diffs = [d for d in comparison["differences"] if d["backend"] == "tfidf-16" and d["metric"] == "top5"]
    assert len(diffs) == 1 and diffs[0]["difference"]["low"] <= diffs[0]["difference"]["high"]
    assert (tmp_path / "comparison.md").read_text().count("tfidf-16") >= 2
    assert "difference" in (tmp_path / "comparison.csv").read_text()
    assert 'id="differences"' in (tmp_path / "report.html").read_text()


def test_a_rerun_is_served_by_the_cache(tiny_run, cli, tmp_path):
    _, _, env = tiny_run
    proc = cli(
        "run",
        "--synthetic",
        "tiny",
        "--backend",
        "tfidf",
        "--task",
        "recall",
        "--out",
        str(tmp_path),
        "--quiet",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads((tmp_path / "results.json").read_text())["backends"][0]["results"]) == ["recall"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "tfidf"], "no data source"),
        (["--synthetic", "tiny"], "no backend"),
        (["--synthetic", "tiny", "--data", "/nonexistent", "--backend", "tfidf"], "exactly one data source"),
        (["--data", "/nonexistent", "--backend", "tfidf"], "no such directory"),
        (["--synthetic", "tiny", "--backend", "no-such-backend"], "no-such-backend"),
        (["--synthetic", "tiny", "--backend", "tfidf", "--task", "nope"], "tasks.run"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(cli, tmp_path, args, message):
    out = tmp_path / "run"
    proc = cli("run", *args, "--out", str(out), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "results.json").exists()


def test_protected_text_does_not_reach_an_external_api(cli, tmp_path):
    """MIMIC files (not the synthetic generator): OpenAI is refused without --allow-external-api."""
    data = tmp_path / "mimic"
    write_mimic3(data)
    env = {
        "CLINPRED_CACHE": str(tmp_path / "cache"),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    }
    proc = cli(
        "run",
        "--data",
        str(data),
        "--backend",
        "openai",
        "--task",
        "recall",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        env=env,
    )
    # the only backend was refused: nothing ran, so the run is a user error and writes nothing
    assert proc.returncode == 2, proc.stderr
    assert "--allow-external-api" in proc.stderr and "PhysioNet" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
