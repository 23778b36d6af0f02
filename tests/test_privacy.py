"""Private by default, and a purge for what a dataset left behind (issue 29, parts 1 and 2).

Run as a user runs clinpred: the installed console script in a subprocess whose umask is the usual 022.
The credentialed source is the tiny synthetic cohort's files copied without the generator's seal: MIMIC-III
format, and to clinpred no different from MIMIC itself. Every path a command wrote (its output folder and
the cache root) is walked and its mode checked.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import CLINPRED, REPO

MARKER = "ZQXPURGEMARKERQZX"


def clinpred(*args: str, cache: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`clinpred ARGS` with umask 022 (the usual one) and its own cache root."""
    full = {k: v for k, v in os.environ.items() if k != "CLINPRED_SHARE_WITH_GROUP"}
    full.update({"CLINPRED_CACHE": str(cache), "COLUMNS": "250", **(env or {})})
    full["PYTHONPATH"] = os.pathsep.join([str(REPO), full.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [str(CLINPRED), *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=1800,
        preexec_fn=lambda: os.umask(0o022),
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def modes(*roots: Path) -> dict[Path, int]:
    """Every path under the roots (the roots included) with its permission bits."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def exposed(found: dict[Path, int], mask: int) -> list[str]:
    return [f"{p} {m:04o}" for p, m in sorted(found.items()) if m & mask]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The sealed synthetic tiny cohort (clean data: the usual permissions)."""
    out = tmp_path_factory.mktemp("synthetic") / "tiny"
    ok(clinpred("synth", "--out", str(out), "--size", "tiny", "--quiet", cache=out.parent / "cache"))
    return out


def credentialed_copy(tiny: Path, where: Path, marker: str | None = None) -> Path:
    """The cohort's CSV files without the seal: a MIMIC-III source. ``marker`` is planted in every note."""
    where.mkdir(parents=True)
    for f in tiny.glob("*.csv.gz"):
        shutil.copy(f, where / f.name)
    if marker:
        notes = where / "NOTEEVENTS.csv.gz"
        rows = list(csv.reader(io.StringIO(gzip.decompress(notes.read_bytes()).decode())))
        text = rows[0].index("TEXT")
        for row in rows[1:]:
            row[text] = f"{row[text]} {marker}"
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        notes.write_bytes(gzip.compress(buffer.getvalue().encode(), mtime=0))
    return where


@pytest.fixture(scope="module")
def source(tiny, tmp_path_factory) -> Path:
    return credentialed_copy(tiny, tmp_path_factory.mktemp("mimic") / "mimic3")


def run_args(data: Path, out: Path) -> list[str]:
    return ["run", "--data", str(data), "-b", "tfidf", "-t", "recall", "--out", str(out), "--quiet"]


def test_run_report_and_data_check_on_a_credentialed_source_write_nothing_others_can_read(source, tmp_path):
    cache = tmp_path / "cache"
    check = ok(clinpred("data", "check", str(source), cache=cache))
    assert "modes: owner-only, 0700/0600 (credentialed source)" in check.stdout
    ok(clinpred(*run_args(source, tmp_path / "run"), cache=cache))
    ok(clinpred("report", str(tmp_path / "run"), "--out", str(tmp_path / "report"), cache=cache))
    found = modes(tmp_path / "run", tmp_path / "report", cache)
    assert (
        len(found) > 20
        and any(p.suffix == ".arrow" for p in found)
        and any(p.suffix == ".shard" for p in found)
    )
    assert exposed(found, 0o077) == []  # neither group nor others: read, write or enter
    assert {m for p, m in found.items() if p.is_file()} == {0o600}


def test_share_with_group_gives_the_group_read_access_and_others_nothing(source, tmp_path):
    cache = tmp_path / "cache"
    config = tmp_path / "run.toml"
    config.write_text(f'[data]\npath = "{source}"\n\n[privacy]\nshare_with_group = true\n')
    ok(clinpred("run", "--config", str(config), "-b", "tfidf", "-t", "recall", "--out", str(tmp_path / "run"),
                "-q", cache=cache))  # fmt: skip
    found = modes(tmp_path / "run", cache)
    assert exposed(found, 0o027) == []  # others nothing, the group never writes
    assert all(m & 0o040 for m in found.values())  # the team reads
    check = ok(clinpred("data", "check", str(source), cache=cache, env={"CLINPRED_SHARE_WITH_GROUP": "1"}))
    assert "modes: owner and group, 0750/0640 (credentialed source, share_with_group)" in check.stdout


def test_the_synthetic_cohort_keeps_the_usual_permissions(tiny, tmp_path):
    cache = tmp_path / "cache"
    check = ok(clinpred("data", "check", str(tiny), cache=cache))
    assert "modes: usual permissions (synthetic cohort)" in check.stdout
    ok(clinpred(*run_args(tiny, tmp_path / "run"), cache=cache))
    inside = modes(tmp_path / "run")  # the run folder too: 0755, as a mkdir under umask 022 makes it
    assert {m for p, m in inside.items() if p.is_file()} == {0o644}
    assert {m for p, m in inside.items() if p.is_dir()} == {0o755}
    notes = list((cache / "notes").glob("*.arrow"))
    assert notes and stat.S_IMODE(notes[0].stat().st_mode) == 0o644


def test_finetune_on_a_credentialed_source_writes_an_owner_only_model_folder(source, tmp_path, minilm_path):
    config = tmp_path / "ft.toml"
    config.write_text(
        "max_steps = 2\nsave_steps = 1\nbatch_size = 4\nmax_seq_length = 16\neval_max_queries = 10\n"
    )
    out = tmp_path / "model"
    ok(clinpred("finetune", "--data", str(source), "--base", str(minilm_path), "--config", str(config),
                "--out", str(out), "--keep-checkpoints", "--quiet", cache=tmp_path / "cache"))  # fmt: skip
    checkpoints = tmp_path / "model.checkpoints"  # beside the model folder, kept on request
    found = modes(out, checkpoints, tmp_path / "cache")
    assert (out / "model.safetensors") in found and (out / "clinpred-finetune.json") in found
    assert len([p for p in found if p.parent == out]) > 5  # the card, tokenizer, config files
    assert [p for p in found if p.parent.parent == checkpoints]  # a checkpoint, with its optimiser
    assert exposed(found, 0o077) == []


def test_a_cache_left_readable_is_flagged_by_cache_info_and_narrowed_by_the_next_command(source, tmp_path):
    cache = tmp_path / "cache"
    ok(clinpred("data", "check", str(source), cache=cache))
    (notes,) = (cache / "notes").glob("*.arrow")
    assert "READABLE BY" not in ok(clinpred("cache", "info", cache=cache)).stdout
    for path, mode in ((cache, 0o755), (notes.parent, 0o755), (notes, 0o644)):  # as umask 022 left it
        path.chmod(mode)
    info = ok(clinpred("cache", "info", cache=cache))
    assert f"READABLE BY OTHERS: {notes} (mode 0644)" in info.stdout
    assert "3 path(s) derived from credentialed notes are readable beyond their owner" in info.stdout
    assert f"source {source.resolve()} (mimic3; credentialed: owner-only)" in info.stdout
    for path, mode in ((cache, 0o750), (notes.parent, 0o750), (notes, 0o640)):
        path.chmod(mode)
    assert f"READABLE BY GROUP: {notes} (mode 0640)" in ok(clinpred("cache", "info", cache=cache)).stdout
    shared = ok(clinpred("cache", "info", cache=cache, env={"CLINPRED_SHARE_WITH_GROUP": "1"}))
    assert "READABLE BY" not in shared.stdout
    for path, mode in ((cache, 0o755), (notes.parent, 0o755), (notes, 0o644)):
        path.chmod(mode)
    again = ok(clinpred("data", "check", str(source), cache=cache))
    assert f"3 path(s) under {cache} were readable by others" in again.stderr
    assert stat.S_IMODE(notes.stat().st_mode) == 0o600 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert "READABLE BY" not in ok(clinpred("cache", "info", cache=cache)).stdout


def _owner(path: Path) -> str:
    """The source recorded for a note cache file or an embedding shard ("synthetic" for the cohort)."""
    record = (
        path.with_name(path.name + ".source.json")
        if path.suffix == ".arrow"
        else path.parents[1] / "sources.json"
    )
    (source,) = json.loads(record.read_text())["sources"]
    return "synthetic" if source["synthetic"] else source.get("root") or source["path"]


def _holding(root: Path, marker: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and marker in p.read_bytes()]


def test_cache_clear_source_removes_every_trace_of_one_dataset_and_keeps_the_others(tiny, tmp_path):
    cache = tmp_path / "cache"
    a = credentialed_copy(tiny, tmp_path / "a" / "mimic3", marker=MARKER)
    b = credentialed_copy(tiny, tmp_path / "b" / "mimic3", marker="other")  # not the synthetic cohort's text
    ok(clinpred(*run_args(a, tmp_path / "run-a"), cache=cache))
    ok(clinpred(*run_args(b, tmp_path / "run-b"), cache=cache))
    synthetic = [
        "run",
        "--synthetic",
        "tiny",
        "-b",
        "tfidf",
        "-t",
        "recall",
        "--out",
        str(tmp_path / "run-s"),
    ]
    ok(clinpred(*synthetic, "-q", cache=cache))  # the cache's synthetic folder is searched too
    assert _holding(cache, MARKER.encode())  # the note cache holds a's text: the check below can fail
    info = ok(clinpred("cache", "info", cache=cache)).stdout
    assert f"source {a.resolve()} (mimic3" in info and f"source {b.resolve()} (mimic3" in info
    before = {p: p.read_bytes() for p in cache.rglob("*") if p.is_file() and p.suffix in (".arrow", ".shard")}
    owners = {p: _owner(p) for p in before}
    assert set(owners.values()) == {str(a.resolve()), str(b.resolve()), "synthetic"}
    cleared = ok(clinpred("cache", "clear", "--source", str(a), cache=cache))
    assert f"removed 1 note cache file(s) and 1 embedding fingerprint(s) derived from {a.resolve()}" in (
        cleared.stdout
    )
    assert _holding(cache, MARKER.encode()) == []
    assert {p for p in before if not p.exists()} == {p for p, o in owners.items() if o == str(a.resolve())}
    assert all(p.read_bytes() == before[p] for p in before if p.exists())  # b's and the synthetic's intact
    assert (tmp_path / "run-a" / "results.json").is_file()  # run folders are the user's
    again = ok(clinpred(*run_args(b, tmp_path / "run-b2"), cache=cache))
    (run,) = json.loads((tmp_path / "run-b2" / "results.json").read_text())["backends"]
    assert run["notes_newly_embedded"] == 0, again.stderr
    nothing = clinpred("cache", "clear", "--source", str(a), cache=cache)
    assert nothing.returncode == 2 and "nothing in the cache is recorded as derived from it" in nothing.stderr


def test_cache_clear_source_keeps_and_names_what_another_source_shares(source, tmp_path):
    cache = tmp_path / "cache"
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)  # the same files elsewhere: the same note cache file, the same TF-IDF
    ok(clinpred(*run_args(source, tmp_path / "run"), cache=cache))
    ok(clinpred(*run_args(copy, tmp_path / "run-copy"), cache=cache))
    cleared = ok(clinpred("cache", "clear", "--source", str(source), cache=cache))
    assert "removed 0 note cache file(s) and 0 embedding fingerprint(s)" in cleared.stdout
    assert f"also read from {copy.resolve()}" in cleared.stdout
    assert f"it also holds embeddings of {copy.resolve()}" in cleared.stdout
    assert list((cache / "notes").glob("*.arrow")) and list((cache / "embeddings").glob("*/shards/*.shard"))
    info = ok(clinpred("cache", "info", cache=cache)).stdout
    assert f"source {copy.resolve()} (mimic3" in info and f"source {source.resolve()} (mimic3" not in info


def test_a_pairs_file_is_credentialed_whatever_it_holds(tmp_path, minilm_path):
    pairs = tmp_path / "pairs.csv"
    rows = [f"note {i} of a patient,the next note {i} of the same patient" for i in range(8)]
    pairs.write_text("anchor,positive\n" + "\n".join(rows) + "\n")
    out = tmp_path / "model"
    ok(clinpred("finetune", "--pairs", str(pairs), "--base", str(minilm_path), "--max-steps", "1",
                "--batch-size", "4", "--max-seq-length", "16", "--out", str(out), "--quiet",
                cache=tmp_path / "cache"))  # fmt: skip
    found = modes(out)
    assert (out / "model.safetensors") in found and exposed(found, 0o077) == []
