"""Issue 27: secrets redacted by value, config values bounded, and the last tracebacks turned into messages.

Everything runs through the installed `clinpred` script; the OpenAI backend talks to a real HTTP server
on 127.0.0.1 (tests/openai_server.py) through the real `openai` client.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import CLINPRED, REPO, run_cli
from mimic_files import M4_DIAGNOSES, write_mimic4
from openai_server import EmbeddingServer, Fault

KEY_IN_URL = "sk-proj-InUrl0123456789abcdefXYZ"
KEY_IN_QUERY = "qs9f8e7d6c5b4a3210zz"
KEY_ENV = "sk-clinpred-Env-0123456789abcdef"
FOO_VALUE = "plainlooking0value42"  # nothing in it says "key": only the variable's name does


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "tiny"
    proc = run_cli("synth", "--out", str(out), "--size", "tiny", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


def _texts(*folders: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for f in folders for p in f.rglob("*") if p.is_file()
    )


def test_keys_in_a_url_a_query_string_and_the_environment_are_written_and_printed_nowhere(tmp_path, cohort):
    out, cache = tmp_path / "run", tmp_path / "cache"
    with EmbeddingServer() as server:
        host = server.root.removeprefix("http://")
        proc = run_cli(
            "run", "--data", str(cohort), "-b", "tfidf",
            "-b", f"openai:base_url=http://clinpred:{KEY_IN_URL}@{host}/v1,label=viaurl",
            "-b", f"openai:base_url=http://{host}/v1?api_key={KEY_IN_QUERY},label=viaquery,max_retries=0",
            "--allow-external-api", "--task", "recall", "--out", str(out),
            env={"CLINPRED_CACHE": str(cache), "OPENAI_API_KEY": KEY_ENV, "FOO_API_KEY": FOO_VALUE},
        )  # fmt: skip
        assert server.requests, "the OpenAI backend never reached the server"
    assert proc.returncode == 0, proc.stderr
    runs = {b["label"]: b for b in json.loads((out / "results.json").read_text())["backends"]}
    assert runs["viaurl"]["status"] == runs["viaquery"]["status"] == "ok", runs
    written = _texts(out, cache) + proc.stdout + proc.stderr
    for secret in (KEY_IN_URL, KEY_IN_QUERY, KEY_ENV):
        assert secret not in written
    settings = [b["settings"] for b in json.loads((out / "config.json").read_text())["backends"]]
    # what the user needs to read the run is kept: scheme, host, port, path
    assert settings[1]["base_url"] == f"http://<redacted>@{host}/v1"
    assert settings[2]["base_url"] == f"http://{host}/v1?api_key=<redacted>"


def test_the_value_of_a_secret_environment_variable_is_redacted_wherever_it_appears():
    proc = run_cli(
        "config", "show", "-b", f"openai:base_url=http://127.0.0.1:9/v1,model={FOO_VALUE}",
        env={"FOO_API_KEY": FOO_VALUE},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert FOO_VALUE not in proc.stdout and 'model = "<redacted>"' in proc.stdout
    plain = run_cli("config", "show", "-b", f"openai:model={FOO_VALUE}", env={"FOO_API_KEY": ""})
    assert FOO_VALUE in plain.stdout  # the same text, when no secret holds it, is left alone


def test_a_key_the_server_quotes_back_in_its_refusal_is_redacted():
    key = "sk-clinpred-Refused-0123456789abcdef"
    with EmbeddingServer() as server:
        server.script(Fault("401"))
        proc = run_cli(
            "backends", "check", "openai", "-s", f"base_url={server.url}", "-s", f"api_key={key}",
            "-s", "max_retries=0", env={"OPENAI_API_KEY": ""},
        )  # fmt: skip
        assert server.requests[0].headers["authorization"] == f"Bearer {key}"  # the server had it to quote
    assert proc.returncode == 2
    assert "HTTP 401" in proc.stderr and "Incorrect API key provided" in proc.stderr
    assert key not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("table", "setting", "named", "says"),
    [
        ("survival", "window_hours = inf", "tasks.survival.window_hours", "finite number"),
        ("diagnosis", "early_hours = 1e308", "tasks.diagnosis.early_hours", "less than or equal to 87600"),
        ("recall.bootstrap", "n_resamples = 100000000", "tasks.recall.bootstrap.n_resamples", "100000"),
        ("geometry", "half_life_days = nan", "tasks.geometry.half_life_days", "finite number"),
        ("mortality", "window_hours = -1.0", "tasks.mortality.window_hours", "greater than 0"),
        ("diagnosis", "top_k = 1000000000", "tasks.diagnosis.top_k", "less than or equal"),
        ("diagnosis", "c_grid = [0.1, inf]", "tasks.diagnosis.c_grid.1", "finite number"),
        ("survival", "seed = -1", "tasks.survival.seed", "greater than or equal to 0"),
        ("recall", "pool_block = 100000000000", "tasks.recall.pool_block", "less than or equal"),
        ("readmission", "days = 1e300", "tasks.readmission.days", "less than or equal"),
    ],
)
def test_config_values_outside_sane_bounds_are_refused_naming_the_key(tmp_path, table, setting, named, says):
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\nsynthetic = "tiny"\n[[backends]]\nname = "tfidf"\n[tasks.{table}]\n{setting}\n'
    )
    out = tmp_path / "run"
    proc = run_cli("run", "--config", str(config), "--out", str(out), "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and says in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "value", "named"), [("--epochs", "inf", "epochs"), ("--batch-size", "100000000", "batch_size")]
)
def test_finetune_settings_outside_sane_bounds_are_refused(tmp_path, flag, value, named):
    proc = run_cli("finetune", "--synthetic", "tiny", "--out", str(tmp_path / "m"), flag, value, "--quiet")
    assert proc.returncode == 2 and named in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


def _run_limited(args: list[str], env: dict[str, str], max_bytes: int) -> subprocess.CompletedProcess:
    """`clinpred ARGS` under a file-size limit (what `ulimit -f` sets), as a user's shell would run it."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    full = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [str(CLINPRED), *args], capture_output=True, text=True, env=full, preexec_fn=limit, timeout=900
    )


def _leftovers(*folders: Path) -> list[str]:
    return [p.name for f in folders if f.exists() for p in f.rglob("*") if ".tmp" in p.name]


@pytest.mark.parametrize("max_kb", [4, 16, 24])  # config.json, results.json, report.html
def test_a_file_size_limit_ends_in_one_message_naming_the_file_and_nothing_half_written(
    tmp_path, cohort, max_kb
):
    cache, out = tmp_path / "cache", tmp_path / "runs" / "run"
    args = ["run", "--data", str(cohort), "-b", "tfidf", "-t", "recall", "-t", "geometry", "--quiet"]
    first = run_cli(*args, "--out", str(tmp_path / "first"), env={"CLINPRED_CACHE": str(cache)})
    assert first.returncode == 0, (
        first.stderr
    )  # the note and embedding caches are filled: the run's files fail
    proc = _run_limited([*args, "--out", str(out)], {"CLINPRED_CACHE": str(cache)}, max_kb * 1024)
    assert proc.returncode == 2, proc.stderr
    assert "could not write" in proc.stderr and "file-size limit" in proc.stderr
    assert str(out) in proc.stderr  # the file is named where it was going, not by its temporary
    assert "Traceback" not in proc.stderr and "leaked" not in proc.stderr  # loky's pool stopped cleanly
    assert not out.exists() and _leftovers(cache, out.parent) == []


def test_a_file_size_limit_while_the_note_cache_is_written_is_not_called_a_corrupt_gzip(tmp_path, cohort):
    cache = tmp_path / "cache"
    proc = _run_limited(
        [
            "run",
            "--data",
            str(cohort),
            "-b",
            "tfidf",
            "-t",
            "recall",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
        ],
        {"CLINPRED_CACHE": str(cache)},
        100 * 1024,
    )
    assert proc.returncode == 2, proc.stderr
    assert "file-size limit" in proc.stderr and "gzip" not in proc.stderr and "corrupt" not in proc.stderr
    assert "Traceback" not in proc.stderr and _leftovers(cache) == []


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_a_cache_root_that_is_a_file_is_one_message(tmp_path, cohort, kind):
    blocker = tmp_path / "cachefile"
    blocker.write_text("not a folder")
    root = blocker if kind == "file" else blocker / "sub"
    for args in (
        [
            "run",
            "--data",
            str(cohort),
            "-b",
            "tfidf",
            "-t",
            "recall",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
        ],
        ["cache", "info"],
    ):
        proc = run_cli(*args, env={"CLINPRED_CACHE": str(root)})
        assert proc.returncode == 2, proc.stderr
        assert f"CLINPRED_CACHE={root}" in proc.stderr and "file" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert blocker.read_text() == "not a folder"


def test_lowercase_dotted_icd_codes_are_read_as_the_codes_they_are(tmp_path, cli):
    canonical = write_mimic4(tmp_path / "canonical")
    dotted = [M4_DIAGNOSES[0]] + [
        [*row[:3], {"I5023": "i50.23", "N179": "n17.9", "4280": "428.0"}[row[3]], row[4]]
        for row in M4_DIAGNOSES[1:]
    ]
    written = write_mimic4(tmp_path / "dotted", **{"hosp/diagnoses_icd": dotted})
    want = cli("data", "check", str(canonical), "--no-cache")
    got = cli("data", "check", str(written), "--no-cache")
    assert want.returncode == got.returncode == 0, got.stderr
    assert got.stdout.replace(str(written), "X") == want.stdout.replace(str(canonical), "X")


def test_codes_that_map_to_nothing_are_named_as_the_cause(tmp_path, cohort, cli):
    data = tmp_path / "m3"
    shutil.copytree(cohort, data)
    dx = pd.read_csv(data / "DIAGNOSES_ICD.csv.gz", dtype=str, keep_default_na=False)
    dx["ICD9_CODE"] = "ZZ" + dx["ICD9_CODE"]  # codes of no ICD version
    dx.to_csv(data / "DIAGNOSES_ICD.csv.gz", index=False)
    out = tmp_path / "run"
    proc = cli(
        "run", "--data", str(data), "-b", "tfidf", "-t", "diagnosis", "-t", "recall", "--out", str(out),
        "--quiet", env={"CLINPRED_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    reason = json.loads((out / "results.json").read_text())["backends"][0]["tasks_not_run"]["diagnosis"]
    assert "no diagnosis code maps to a ccs_benchmark category" in reason
    assert "ICD-9" in reason and f"'{dx['ICD9_CODE'].iloc[0]}'" in reason and "feature notes" not in reason
