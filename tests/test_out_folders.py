"""--out never deletes what clinpred did not write (DESIGN.md rule 9), for every command that writes a folder.

A folder is clinpred's to replace or add to only when clinpred marked it (``.clinpred-run``, or what an
earlier version left: a results.json that reads back as RunResults, ...) and it holds nothing else.
Everything runs through the installed console script, on the tiny synthetic cohort with TF-IDF; the
demo (20 minutes) and a whole fine-tune are not run: their guard runs before any work, so refusals are
checked through the CLI and the demo's carried models through the folder writer itself.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLINPRED, REPO, run_cli

from clinpred.run_folder import MARKER, check_output_folder, read_mark, replace_run_folder

RUN = ("run", "--synthetic", "tiny", "-b", "tfidf", "-t", "recall", "--quiet")


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry below ``folder``: its bytes, a link's target, or 'dir'."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[key] = "dir"
        else:
            out[key] = path.read_bytes()
    return out


def no_temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return {"CLINPRED_CACHE": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """A synthetic cohort on disk (a data folder): --data for run and finetune."""
    path = tmp_path_factory.mktemp("data") / "synth"
    done = run_cli("synth", "--size", "tiny", "--out", str(path), "--quiet")
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def a_run(tmp_path_factory, env) -> Path:
    """A run folder clinpred wrote (read by `report`, never written into by it)."""
    out = tmp_path_factory.mktemp("runs") / "a"
    done = run_cli(*RUN, "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    return out


def users_folder(root: Path, layout: str) -> Path:
    """A folder of someone's files, named as a run's own entries are."""
    folder = root / "mine"
    if layout == "models/ft":  # the README's own fine-tune layout
        (folder / "models" / "ft").mkdir(parents=True)
        (folder / "models" / "ft" / "model.safetensors").write_bytes(b"\x00weights\x01")
        (folder / "models" / "ft" / "config.json").write_text('{"hidden": 8}')
    elif layout == "units":
        (folder / "units" / "x").mkdir(parents=True)
        (folder / "units" / "x" / "recall.parquet").write_bytes(b"PAR1 not really")
    elif layout == "report.html":
        folder.mkdir()
        (folder / "report.html").write_text("<p>my report</p>")
        (folder / "RESULTS.md").write_text("# my results")
    elif layout == "results.json":  # a results.json, but not one clinpred wrote
        folder.mkdir()
        (folder / "results.json").write_text('{"accuracy": 0.9}')
        (folder / "units").mkdir()
    return folder


def refused(done: subprocess.CompletedProcess, *fragments: str) -> None:
    shown = done.stdout + done.stderr
    assert done.returncode == 2, shown[-2000:]
    assert "Traceback" not in shown, shown[-2000:]
    for fragment in fragments:
        assert fragment in shown, shown[-2000:]


LAYOUTS = ["models/ft", "units", "report.html", "results.json"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_run_refuses_a_users_folder_and_leaves_it_byte_identical(tmp_path, env, layout):
    folder = users_folder(tmp_path, layout)
    before = snapshot(folder)
    done = run_cli(*RUN, "--out", str(folder), env=env)
    refused(done, "did not write", str(folder))
    assert snapshot(folder) == before
    assert no_temporaries(tmp_path) == []


def test_run_replaces_a_folder_clinpred_wrote_and_marks_it(tmp_path, env):
    out = tmp_path / "run"
    first = run_cli(*RUN[:4], "tfidf:label=alpha", *RUN[5:], "--out", str(out), env=env)
    assert first.returncode == 0, first.stderr
    mark = read_mark(out)
    assert mark is not None and mark.kind == "run" and mark.command == "run"
    second = run_cli(*RUN, "--out", str(out), env=env)
    assert second.returncode == 0, second.stderr
    assert not (out / "units" / "alpha").exists() and (out / "units" / "tfidf").is_dir()
    # written by an earlier version: no mark, but a results.json that reads back as RunResults
    (out / MARKER).unlink()
    third = run_cli(*RUN, "--out", str(out), env=env)
    assert third.returncode == 0, third.stderr
    assert read_mark(out) is not None
    assert no_temporaries(tmp_path) == []


def test_a_run_folder_holding_someones_file_is_not_replaced(tmp_path, env, a_run):
    out = tmp_path / "run"
    assert run_cli(*RUN, "--out", str(out), env=env).returncode == 0
    (out / "thesis.docx").write_bytes(b"precious")
    (out / "models" / "ft").mkdir(parents=True)  # a `run` folder does not hold models: someone put them
    before = snapshot(out)
    refused(run_cli(*RUN, "--out", str(out), env=env), "did not write", "thesis.docx", "models")
    assert snapshot(out) == before


def test_out_dot_is_refused_cleanly_where_the_folder_is_replaced_whole(tmp_path, env, a_run):
    here = tmp_path / "here"
    here.mkdir()
    refused(run_cli(*RUN, "--out", ".", env=env, cwd=here), "current directory")
    refused(run_cli("synth", "--size", "tiny", "--out", ".", "--quiet", cwd=here), "current directory")
    assert list(here.iterdir()) == [] and no_temporaries(tmp_path) == []
    (here / "notes.txt").write_text("mine")
    refused(run_cli(*RUN, "--out", ".", env=env, cwd=here), "did not write", "notes.txt")
    assert [p.name for p in here.iterdir()] == ["notes.txt"]


def test_report_writes_a_report_folder_of_its_own_and_dot_works_when_empty(tmp_path, a_run):
    here = tmp_path / "here"
    here.mkdir()
    done = run_cli("report", str(a_run), cwd=here)  # the default --out is .
    assert done.returncode == 0, done.stderr
    assert {"report.html", "comparison.json", MARKER} <= {p.name for p in here.iterdir()}
    assert read_mark(here).kind == "report"
    again = run_cli("report", str(a_run), "--out", str(here))  # an earlier report is rewritten
    assert again.returncode == 0, again.stderr
    assert no_temporaries(here) == [] and no_temporaries(tmp_path) == []


def test_report_refuses_a_run_folder_a_data_folder_and_someones_folder(tmp_path, env, a_run, cohort):
    other = tmp_path / "b"
    assert run_cli(*RUN, "--out", str(other), env=env).returncode == 0
    for out, fragments in [
        (other, ("did not write", "a run", str(other))),  # another run's folder: comparisons would mix in
        (a_run, ("the run folder", str(a_run))),  # the run it reads
        (a_run / "compare", ("lies inside the run folder",)),
        (cohort, ("synthetic cohort", "did not write")),
        (users_folder(tmp_path, "report.html"), ("did not write",)),
    ]:
        before = snapshot(out) if out.exists() else None
        refused(run_cli("report", str(a_run), "--out", str(out)), *fragments)
        assert (snapshot(out) if out.exists() else None) == before, out
    mimic = tmp_path / "mimic"
    mimic.mkdir()
    (mimic / "NOTEEVENTS.csv.gz").write_bytes(b"not read")
    refused(run_cli("report", str(a_run), "--out", str(mimic)), "data folder", "NOTEEVENTS.csv.gz")
    assert [p.name for p in mimic.iterdir()] == ["NOTEEVENTS.csv.gz"]


def test_run_and_finetune_never_write_into_the_data(tmp_path, env, cohort):
    before = snapshot(cohort)
    refused(
        run_cli("run", "--data", str(cohort), "-b", "tfidf", "--out", str(cohort / "run"), env=env),
        "lies inside --data",
    )
    refused(run_cli("run", "--data", str(cohort), "-b", "tfidf", "--out", str(cohort), env=env), "is --data")
    refused(run_cli("finetune", "--data", str(cohort), "--out", str(cohort / "model"), env=env), "--data")
    assert snapshot(cohort) == before


def test_a_symlinked_out_replaces_the_folder_it_points_to(tmp_path, env):
    target = tmp_path / "target"
    assert run_cli(*RUN[:4], "tfidf:label=alpha", *RUN[5:], "--out", str(target), env=env).returncode == 0
    link = tmp_path / "latest"
    link.symlink_to(target)
    done = run_cli(*RUN, "--out", str(link), env=env)
    assert done.returncode == 0, done.stderr
    assert (
        link.is_symlink()
        and (target / "units" / "tfidf").is_dir()
        and not (target / "units" / "alpha").exists()
    )
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    refused(run_cli(*RUN, "--out", str(dangling), env=env), "symbolic link", "does not exist")
    assert not (tmp_path / "nowhere").exists() and no_temporaries(tmp_path) == []


@pytest.mark.parametrize("layout", ["models/ft", "units"])
def test_demo_ablate_and_finetune_refuse_a_users_folder(tmp_path, env, minilm_path, layout):
    folder = users_folder(tmp_path, layout)
    before = snapshot(folder)
    refused(run_cli("demo", "--size", "tiny", "--out", str(folder), "--quiet", env=env), "did not write")
    ablation = tmp_path / "ablation.toml"
    ablation.write_text('[data]\nsynthetic = "tiny"\n\n[recipes.a]\npreset = "seed"\n')
    refused(
        run_cli("ablate", "--config", str(ablation), "--out", str(folder), "--quiet", env=env),
        "did not write",
    )
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive\na,b\n")
    for resume in ([], ["--resume"]):  # --resume continues only a fine-tune clinpred started there
        done = run_cli(
            "finetune",
            "--pairs",
            str(pairs),
            "--base",
            str(minilm_path),
            "--out",
            str(folder),
            *resume,
            env=env,
        )
        refused(done, "did not write", "--resume")
    assert snapshot(folder) == before


def test_finetune_resume_and_ablate_refuse_a_run_folder(tmp_path, env, minilm_path, a_run):
    before = snapshot(a_run)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive\na,b\n")
    done = run_cli(
        "finetune", "--pairs", str(pairs), "--base", str(minilm_path), "--out", str(a_run), "--resume"
    )
    refused(done, "a run", "did not write")
    ablation = tmp_path / "ablation.toml"
    ablation.write_text('[data]\nsynthetic = "tiny"\n\n[recipes.a]\npreset = "seed"\n')
    refused(
        run_cli("ablate", "--config", str(ablation), "--out", str(a_run), "--quiet", env=env), "did not write"
    )
    assert snapshot(a_run) == before


def test_the_demo_takes_its_own_folder_and_carries_its_models(tmp_path):
    """The demo's guard and writer, called directly: the whole demo takes 20 minutes."""
    out = tmp_path / "demo"
    (out / "models" / "seed").mkdir(parents=True)
    (out / "models" / "seed" / "model.safetensors").write_bytes(b"tuned")
    with pytest.raises(Exception, match="did not write"):  # unmarked: someone's models
        check_output_folder(out, "demo")
    from clinpred.run_folder import write_mark

    write_mark(out, "demo")
    (out / "results.json").write_text("{}")
    check_output_folder(out, "demo")  # marked: the demo's own folder
    with replace_run_folder(out, "demo", keep=("models",)) as tmp:
        (tmp / "results.json").write_text('{"new": 1}')
    assert (out / "models" / "seed" / "model.safetensors").read_bytes() == b"tuned"
    assert json.loads((out / "results.json").read_text()) == {"new": 1} and read_mark(out).kind == "demo"
    (out / "thesis.docx").write_text("mine")  # arrived while a demo ran: the swap is refused, nothing lost
    with pytest.raises(Exception, match="did not write"), replace_run_folder(out, "demo", keep=("models",)):
        pass
    assert (out / "thesis.docx").read_text() == "mine" and (out / "models" / "seed").is_dir()
    assert no_temporaries(tmp_path) == []


def test_synth_refuses_a_users_folder_and_two_at_once_do_not_interleave(tmp_path):
    folder = users_folder(tmp_path, "units")
    before = snapshot(folder)
    refused(run_cli("synth", "--size", "tiny", "--out", str(folder), "--quiet"), "not empty", "did not write")
    assert snapshot(folder) == before

    def together(out: Path, seeds: tuple[int, int]) -> list[subprocess.CompletedProcess]:
        procs = [
            subprocess.Popen(
                [str(CLINPRED), "synth", "--size", "tiny", "--seed", str(s), "--out", str(out), "--quiet"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for s in seeds
        ]
        done = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=120)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
        return done

    same = tmp_path / "same"
    for done in together(same, (0, 0)):  # the same settings: both succeed, with the same files
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
    alone = tmp_path / "alone"
    assert run_cli("synth", "--size", "tiny", "--out", str(alone), "--quiet").returncode == 0
    assert snapshot(same) == snapshot(alone)
    mixed = tmp_path / "mixed"
    results = together(mixed, (1, 2))
    assert sorted(d.returncode for d in results) in ([0, 0], [0, 2]), [d.stderr for d in results]
    for done in results:
        assert "Traceback" not in done.stderr
        if done.returncode == 2:
            assert str(mixed) in done.stderr and (
                "another process" in done.stderr or "not empty" in done.stderr
            )
    seed = json.loads((mixed / "CLINPRED_SYNTHETIC.json").read_text())["seed"]
    reference = tmp_path / f"seed{seed}"
    assert (
        run_cli("synth", "--size", "tiny", "--seed", str(seed), "--out", str(reference), "--quiet").returncode
        == 0
    )
    assert snapshot(mixed) == snapshot(reference)  # one cohort whole, never a mix of two
    assert no_temporaries(tmp_path) == []


def test_cache_clear_deletes_only_cache_folders(tmp_path):
    root = tmp_path / "cache"
    (root / "my-project").mkdir(parents=True)
    (root / "my-project" / "notes.txt").write_text("mine")
    done = run_cli("cache", "clear", "--embeddings", "--cache-dir", str(root))
    assert done.returncode == 0, done.stderr
    assert (root / "my-project" / "notes.txt").read_text() == "mine"


def test_report_modules_never_import_the_pipeline():
    """Data flows one way: pipeline -> run_folder <- report, never report -> pipeline."""
    found = []
    for path in sorted((REPO / "clinpred" / "report").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [f"{path.name}:{node.lineno}" for n in names if n.startswith("clinpred.pipeline")]
    assert found == []
    code = (
        "import sys, clinpred.report.compare, clinpred.report.html; print('clinpred.pipeline' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert loaded.stdout.strip() == "False", loaded.stderr
