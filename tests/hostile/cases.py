"""The table of hostile inputs (issue 27), by family, each with what handling it cleanly means.

Families: data loss (what --out may replace), duplicated and inconsistent rows, names matched as the
source means them, dates and numbers, secrets, config bounds, resource failures, and the older families
of tests/test_cli_errors.py (new cases only: its own table runs there). Where another helper's exact
message is not fixed, a case asserts the class of outcome: exit 2 naming the file or column, or exit 0
with the count.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from hostile.harness import Case, Proc, Workspace, alongside, file_size_limit, interrupted, shown_counts
from hostile.inputs import (
    MARK,
    PAST_INT64,
    PAST_UINT64,
    cell,
    column,
    edit_bytes,
    edit_table,
    free_port,
    header_only,
    m3,
    m3_table,
    m4,
    m4_table,
    repeat_rows,
    twice,
)
from hostile.shared import RELAXED, copy_into

Build = Callable[[Workspace], list[str]]
SOURCE = ("--synthetic", "tiny", "-b", "tfidf")  # `config show --config` needs a source and a backend

# keys a user's environment or settings may hold; each is checked for everywhere after its case
SK = "sk-proj-HOSTILEa1b2c3d4e5f6g7h8i9j0KEY"
PASSWORD = "hunter2HOSTILEpw"
TOKEN = "tokHOSTILE9f8e7d6c5b4a"
ENV_VALUE = "Zq7Kx9LmWp3Rt5VbHOSTILE"  # not shaped like a key: only its variable's name says so
HF = "hf_HOSTILEabcdefghijklmnopqrstuvwxyz"


# -- small builders --------------------------------------------------------------------------------


def check(path: Path) -> list[str]:
    return ["data", "check", str(path)]


def check_m3(**tables) -> Build:
    return lambda ws: check(m3(ws.dir / "m3", **tables))


def check_m4(**tables) -> Build:
    return lambda ws: check(m4(ws.dir / "m4", **tables))


def notes3(change: Callable[[list[list[str]]], list[list[str]]]) -> Build:
    return check_m3(NOTEEVENTS=change(m3_table("NOTEEVENTS")))


def run_on(ws: Workspace, data: Path, *extra: str, out: Path | str | None = None) -> list[str]:
    """TF-IDF next-note recall: seconds on the hand-built files."""
    target = str(ws.out if out is None else out)
    return ["run", "--data", str(data), "-b", "tfidf:min_df=1", "-t", "recall", "--out", target, "-q", *extra]


def relaxed(ws: Workspace) -> list[str]:
    path = ws.dir / "relaxed.toml"
    path.write_text(RELAXED)
    return ["--config", str(path)]


def user_folder(path: Path, files: dict[str, str | bytes]) -> Path:
    """A folder of the user's own files (what clinpred must never delete)."""
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


MODEL_FILES = {
    "models/ft/model.safetensors": b"\x00weights of a week of training",
    "models/ft/config.json": "{}",
}


def refuses_out(files: dict[str, str | bytes]) -> Build:
    """`run --out` into a folder holding only the given files of the user's."""

    def build(ws: Workspace) -> list[str]:
        ws.protect(user_folder(ws.out, files))
        return run_on(ws, m3(ws.dir / "m3"))

    return build


def cohort_of(ws: Workspace, proc: Proc) -> dict:
    path = ws.out / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def task_result(results: dict, task: str) -> dict:
    ok = [b for b in results.get("backends", []) if b.get("status") == "ok"]
    return ok[0]["results"][task] if ok and task in ok[0].get("results", {}) else {}


def same_as_baseline(task: str, keys: tuple[str, ...] = ()) -> Callable[[Workspace, Proc], list[str]]:
    """The repaired input gives exactly the clean cohort's numbers (and these counts of the task)."""

    def verify(ws: Workspace, proc: Proc) -> list[str]:
        got = task_result(cohort_of(ws, proc), task)
        want = task_result(ws.shared.baseline(task), task)
        if not got:
            return [f"no {task} result written"]
        problems = []
        if got.get("metrics") != want.get("metrics"):
            main = want.get("main_metric", "")
            problems.append(
                f"{task} differs from the clean cohort's: {main} {got['metrics'].get(main)} "
                f"against {want['metrics'].get(main)}"
            )
        for key in keys:
            if got.get("counts", {}).get(key) != want.get("counts", {}).get(key):
                problems.append(
                    f"{task} count {key} = {got.get('counts', {}).get(key)} against the clean cohort's "
                    f"{want.get('counts', {}).get(key)}"
                )
        return problems

    return verify


def shows(*fragments: str, absent: tuple[str, ...] = ()) -> Callable[[Workspace, Proc], list[str]]:
    def verify(ws: Workspace, proc: Proc) -> list[str]:
        text = proc.stdout + proc.stderr
        return [f"output lacks {f!r}" for f in fragments if f not in text] + [
            f"output has {f!r}" for f in absent if f in text
        ]

    return verify


def valid_cohort(path_of: Callable[[Workspace], Path]) -> Callable[[Workspace, Proc], list[str]]:
    """Afterwards the folder is a whole cohort that `clinpred data check` reads."""

    def verify(ws: Workspace, proc: Proc) -> list[str]:
        after = ws.cli("data", "check", str(path_of(ws)))
        return (
            [] if after.returncode == 0 else [f"the folder is no whole cohort: {after.stderr.strip()[-200:]}"]
        )

    return verify


# -- data loss: --out never deletes what clinpred did not write ----------------------------------------


def _out_dot_user_folder(ws: Workspace) -> list[str]:
    data = m3(ws.dir / "m3")
    ws.protect(user_folder(ws.dir / "mine", {"thesis.docx": "precious"}))
    (ws.dir / "mine" / "m3").symlink_to(data)
    return ["run", "--data", str(data), "-b", "tfidf:min_df=1", "-t", "recall", "--out", ".", "-q"]


def in_folder(name: str):
    def drive(ws: Workspace, args: list[str], env: dict[str, str], timeout: float) -> Proc:
        from conftest import run_cli

        (ws.dir / name).mkdir(exist_ok=True)
        return run_cli(*args, cwd=ws.dir / name, env=env, timeout=timeout)

    return drive


def _out_dot_empty(ws: Workspace) -> list[str]:
    return [
        "run",
        "--data",
        str(m3(ws.dir / "m3")),
        "-b",
        "tfidf:min_df=1",
        "-t",
        "recall",
        "--out",
        ".",
        "-q",
    ]


def _earlier_run(ws: Workspace) -> list[str]:
    copy_into(ws.dir, ws.shared.run_folder, "out")
    return run_on(ws, m3(ws.dir / "m3"))


def _earlier_run_with_users_file(ws: Workspace) -> list[str]:
    copy_into(ws.dir, ws.shared.run_folder, "out")
    ws.protect(
        user_folder(ws.out, {"my-reading-notes.txt": "what I make of these numbers"}) / "my-reading-notes.txt"
    )
    return run_on(ws, m3(ws.dir / "m3"))


def _out_is_data(ws: Workspace) -> list[str]:
    data = m3(ws.dir / "m3")
    ws.protect(data)
    return run_on(ws, data, out=data)


def _out_is_parent_of_data(ws: Workspace) -> list[str]:
    data = m3(ws.dir / "study" / "m3")
    ws.protect(ws.dir / "study")
    return run_on(ws, data, out=ws.dir / "study")


def _out_is_link(ws: Workspace) -> list[str]:
    ws.protect(user_folder(ws.dir / "mine", {"thesis.docx": "precious", "models/ft/config.json": "{}"}))
    ws.out.symlink_to(ws.dir / "mine")
    return run_on(ws, m3(ws.dir / "m3"))


def _out_is_synthetic_cohort(ws: Workspace) -> list[str]:
    cohort = copy_into(ws.dir, ws.shared.tiny, "cohort")
    ws.protect(cohort)
    return run_on(ws, m3(ws.dir / "m3"), out=cohort)


def _out_trailing_slash(ws: Workspace) -> list[str]:
    ws.protect(user_folder(ws.out, {"report.html": "<p>my own report</p>"}))
    return run_on(ws, m3(ws.dir / "m3"), out=f"{ws.out}/")


def _out_new_inside_users_folder(ws: Workspace) -> list[str]:
    ws.protect(user_folder(ws.dir / "mine", {"thesis.docx": "precious"}))
    return run_on(ws, m3(ws.dir / "m3"), out=ws.dir / "mine" / "run")


def _out_is_cache(ws: Workspace) -> list[str]:
    data = m3(ws.dir / "m3")
    ws.cli("data", "check", str(data))
    ws.protect(ws.cache)
    return run_on(ws, data, out=ws.cache)


def _report_out(target: Callable[[Workspace], Path]) -> Build:
    def build(ws: Workspace) -> list[str]:
        run = copy_into(ws.dir, ws.shared.run_folder, "run-a")
        out = target(ws)
        ws.protect(out, run)
        return ["report", str(run), "--out", str(out)]

    return build


def _report_over_earlier_report(ws: Workspace) -> list[str]:
    run = copy_into(ws.dir, ws.shared.run_folder, "run-a")
    first = ws.cli("report", str(run), "--out", str(ws.out))
    if first.returncode != 0:
        ws.problems.append(f"the first report failed: {first.stderr.strip()[-200:]}")
    return ["report", str(run), "--out", str(ws.out)]


def _finetune_into(target: Callable[[Workspace], Path]) -> Build:
    def build(ws: Workspace) -> list[str]:
        out = target(ws)
        ws.protect(out)
        return [
            "finetune",
            "--data",
            str(m3(ws.dir / "m3")),
            "--base",
            str(ws.shared.minilm),
            "--out",
            str(out),
            "--max-steps",
            "1",
            "-q",
        ]

    return build


ABLATION = """base_model = "bundled-minilm"
max_seq_length = 32
[data]
synthetic = "tiny"
[finetune]
max_steps = 1
batch_size = 4
[recipes.seed]
preset = "seed"
"""


def _ablate_into_users_folder(ws: Workspace) -> list[str]:
    (ws.dir / "ablation.toml").write_text(ABLATION)
    ws.protect(user_folder(ws.out, {"recipes.xlsx": b"PK\x03\x04 my spreadsheet"}))
    return ["ablate", "--config", str(ws.dir / "ablation.toml"), "--out", str(ws.out), "-q"]


def _demo_into_users_models(ws: Workspace) -> list[str]:
    ws.protect(user_folder(ws.out, MODEL_FILES))
    return ["demo", "--out", str(ws.out), "--size", "tiny", "--quiet"]


def _synth_into(files: dict[str, str | bytes]) -> Build:
    def build(ws: Workspace) -> list[str]:
        ws.protect(user_folder(ws.out, files))
        return ["synth", "--out", str(ws.out), "--quiet"]

    return build


def _synth_into_data(ws: Workspace) -> list[str]:
    ws.protect(m3(ws.out))
    return ["synth", "--out", str(ws.out), "--quiet"]


def _synth_over_earlier(ws: Workspace) -> list[str]:
    copy_into(ws.dir, ws.shared.tiny, "out")
    return ["synth", "--out", str(ws.out), "--quiet"]


def _synth_dot(ws: Workspace) -> list[str]:
    ws.protect(user_folder(ws.dir / "mine", {"NOTEEVENTS.csv.gz": b"\x1f\x8b my real notes"}))
    return ["synth", "--out", ".", "--quiet"]


def _out_dot_dot(ws: Workspace) -> list[str]:
    data = m3(ws.dir / "mine" / "m3")
    ws.protect(user_folder(ws.dir / "mine", {"thesis.docx": "precious"}))
    (ws.dir / "mine" / "sub").mkdir()
    return ["run", "--data", str(data), "-b", "tfidf:min_df=1", "-t", "recall", "--out", "..", "-q"]


def _report_dot(ws: Workspace) -> list[str]:
    run = copy_into(ws.dir, ws.shared.run_folder, "run-a")
    ws.protect(user_folder(ws.dir / "mine", {"slides.pptx": b"PK\x03\x04 talk"}), run)
    return ["report", str(run), "--out", "."]


def _into_a_run(command: Callable[[Workspace, Path], list[str]]) -> Build:
    def build(ws: Workspace) -> list[str]:
        run = copy_into(ws.dir, ws.shared.run_folder, "run-a")
        ws.protect(run)
        return command(ws, run)

    return build


DATA_LOSS = [
    Case(
        "run --out holds the user's models/ft",
        "data loss",
        refuses_out(MODEL_FILES),
        expect=("did not write",),
    ),
    Case(
        "run --out holds only units/",
        "data loss",
        refuses_out({"units/mine.parquet": b"PAR1 my table"}),
        expect=("did not write",),
    ),
    Case(
        "run --out holds only report.html",
        "data loss",
        refuses_out({"report.html": "<p>mine</p>"}),
        expect=("did not write",),
    ),
    Case(
        "run --out holds only RESULTS.md and config.json",
        "data loss",
        refuses_out({"RESULTS.md": "# my results", "config.json": '{"mine": true}'}),
        expect=("did not write",),
    ),
    Case(
        "run --out holds a results.json clinpred cannot read",
        "data loss",
        refuses_out({"results.json": "{ not json", "analysis.R": "x <- 1"}),
        expect=("did not write",),
    ),
    Case(
        "run --out holds another tool's results.json",
        "data loss",
        refuses_out({"results.json": '{"accuracy": 0.9}', "umap.png": b"\x89PNG mine"}),
        expect=("did not write",),
    ),
    Case(
        "run --out holds only a hidden file",
        "data loss",
        refuses_out({".my-notes": "private"}),
        expect=("did not write",),
    ),
    Case("run --out is the data folder", "data loss", _out_is_data),
    Case("run --out is the folder above the data", "data loss", _out_is_parent_of_data),
    Case("run --out is a link to the user's folder", "data loss", _out_is_link),
    Case("run --out is a synthetic cohort folder", "data loss", _out_is_synthetic_cohort),
    Case("run --out with a trailing slash", "data loss", _out_trailing_slash, expect=("did not write",)),
    Case("run --out is the cache folder", "data loss", _out_is_cache),
    Case(
        "run --out . in the user's folder",
        "data loss",
        _out_dot_user_folder,
        expect=("did not write",),
        driver=in_folder("mine"),
    ),
    Case(
        "run --out . in an empty folder", "data loss", _out_dot_empty, code=(0, 2), driver=in_folder("empty")
    ),
    Case("run --out an earlier run: replaced", "data loss", _earlier_run, code=0),
    Case("run --out .. (the user's folder above)", "data loss", _out_dot_dot, driver=in_folder("mine/sub")),
    Case("report --out . in the user's folder", "data loss", _report_dot, driver=in_folder("mine")),
    Case(
        "synth --out a run folder",
        "data loss",
        _into_a_run(lambda ws, run: ["synth", "--out", str(run), "--quiet"]),
    ),
    Case(
        "finetune --out a run folder",
        "data loss",
        _into_a_run(
            lambda ws, run: [
                "finetune",
                "--data",
                str(m3(ws.dir / "m3")),
                "--base",
                str(ws.shared.minilm),
                "--out",
                str(run),
                "--max-steps",
                "1",
                "-q",
            ]
        ),
    ),
    Case(
        "run --out an earlier run holding a file the user added",
        "data loss",
        _earlier_run_with_users_file,
        code=(0, 2),
    ),
    Case("run --out a new folder inside the user's", "data loss", _out_new_inside_users_folder, code=0),
    Case("report --out a data folder", "data loss", _report_out(lambda ws: m3(ws.dir / "m3"))),
    Case(
        "report --out another run's folder",
        "data loss",
        _report_out(lambda ws: copy_into(ws.dir, ws.shared.run_folder, "run-b")),
    ),
    Case("report --out the run it reads", "data loss", _report_out(lambda ws: ws.dir / "run-a")),
    Case(
        "report --out holds the user's files",
        "data loss",
        _report_out(lambda ws: user_folder(ws.out, {"slides.pptx": b"PK\x03\x04 talk"})),
        expect=("did not write",),
    ),
    Case(
        "report --out a synthetic cohort folder",
        "data loss",
        _report_out(lambda ws: copy_into(ws.dir, ws.shared.tiny, "cohort")),
    ),
    Case("report --out an earlier report: replaced", "data loss", _report_over_earlier_report, code=0),
    Case(
        "finetune --out holds the user's files",
        "data loss",
        _finetune_into(lambda ws: user_folder(ws.out, MODEL_FILES)),
        any_of=("did not write", "not empty"),
    ),
    Case("finetune --out is the data folder", "data loss", _finetune_into(lambda ws: m3(ws.dir / "data"))),
    Case(
        "ablate --out holds the user's files",
        "data loss",
        _ablate_into_users_folder,
        expect=("did not write",),
        timeout=300,
    ),
    Case(
        "demo --out holds the user's models/ft",
        "data loss",
        _demo_into_users_models,
        expect=("did not write",),
        timeout=300,
    ),
    Case(
        "synth --out holds the user's NOTEEVENTS.csv.gz",
        "data loss",
        _synth_into({"NOTEEVENTS.csv.gz": b"\x1f\x8b my real notes"}),
        any_of=("did not write", "not empty"),
    ),
    Case(
        "synth --out is a MIMIC-III folder",
        "data loss",
        _synth_into_data,
        any_of=("did not write", "not empty"),
    ),
    Case("synth --out an earlier synthetic cohort", "data loss", _synth_over_earlier, code=(0, 2)),
    Case(
        "synth --out . in the user's folder",
        "data loss",
        _synth_dot,
        any_of=("did not write", "not empty"),
        driver=in_folder("mine"),
    ),
]


# -- duplicated and inconsistent rows ------------------------------------------------------------------

NOTES = m3_table("NOTEEVENTS")


def _other_content(column_name: str, value: str) -> list[list[str]]:
    return [*NOTES, cell(NOTES, 1, column_name, value)[1]]


def _cat_concatenated(ws: Workspace) -> list[str]:
    data = m3(ws.dir / "m3")
    path = data / "NOTEEVENTS.csv.gz"
    path.write_bytes(path.read_bytes() * 2)  # `cat a.csv.gz a.csv.gz`: two gzip members, the header twice
    return check(data)


def _notes_8_if_read(ws: Workspace, proc: Proc) -> list[str]:
    if proc.returncode != 0:
        return []
    notes = shown_counts(proc.stdout).get("notes")
    return [] if notes == 8 else [f"notes = {notes} after the repair (the clean files give 8)"]


def _tiny_relaxed(change: Callable[[Path], None], task: str, *, note_change: bool = True) -> Build:
    def build(ws: Workspace) -> list[str]:
        data = copy_into(ws.dir, ws.shared.tiny_marked, "cohort")
        change(data)
        ws.shared.baseline(task)  # built before the case's own run is timed
        return [
            "run",
            "--data",
            str(data),
            *relaxed(ws),
            "-b",
            "tfidf",
            "-t",
            task,
            "--out",
            str(ws.out),
            "-q",
        ]

    return build


def _results_md_names(*words: str) -> Callable[[Workspace, Proc], list[str]]:
    def verify(ws: Workspace, proc: Proc) -> list[str]:
        path = ws.out / "RESULTS.md"
        text = path.read_text() if path.is_file() else ""
        config = cohort_of(ws, proc).get("config", {}).get("data", {})
        problems = [] if any(w in text for w in words) else [f"RESULTS.md names none of {list(words)}"]
        if config.get("max_repaired_share") != 1.0:
            problems.append(
                f"results.json config.data.max_repaired_share = {config.get('max_repaired_share')}"
            )
        return problems

    return verify


def _no_notes_said(ws: Workspace, proc: Proc) -> list[str]:
    """Refused as a file with no notes, or read and counted: 9 error notes dropped, none left."""
    if proc.returncode == 2:
        return [] if "no notes" in proc.stderr else ["the refusal does not say there are no notes"]
    found = shown_counts(proc.stdout)
    if found.get("error_notes_dropped") != 9 or found.get("notes") != 0:
        return [f"error notes dropped {found.get('error_notes_dropped')}, notes {found.get('notes')}"]
    return []


DIAG = m3_table("DIAGNOSES_ICD")
M4_DIS = m4_table("note/discharge")
M4_RAD = m4_table("note/radiology")

DUPLICATES = [
    Case(
        "NOTEEVENTS rows all repeated",
        "duplicated rows",
        notes3(twice),
        code=0,
        counts={"duplicate_note_rows_dropped": (8, 9), "notes": 8, "error_notes_dropped": (1, 2)},
    ),
    Case(
        "one note row repeated",
        "duplicated rows",
        notes3(lambda r: repeat_rows(r, 2)),
        code=0,
        counts={"duplicate_note_rows_dropped": 1, "notes": 8},
    ),
    Case(
        "one note row three times",
        "duplicated rows",
        notes3(lambda r: repeat_rows(r, 9, 9)),
        code=0,
        counts={"duplicate_note_rows_dropped": 2, "notes": 8},
    ),
    Case(
        "a discharge summary repeated",
        "duplicated rows",
        notes3(lambda r: repeat_rows(r, 3)),
        code=0,
        counts={"duplicate_note_rows_dropped": 1, "discharge_summary": 1},
    ),
    Case(
        "a note row repeated in a plain CSV",
        "duplicated rows",
        lambda ws: check(m3(ws.dir / "m3", gz=False, NOTEEVENTS=repeat_rows(NOTES, 1))),
        code=0,
        counts={"duplicate_note_rows_dropped": 1, "notes": 8},
    ),
    Case(
        "a note row repeated, lowercase headers (the open demo's layout)",
        "duplicated rows",
        lambda ws: check(m3(ws.dir / "m3", upper=False, NOTEEVENTS=repeat_rows(NOTES, 1))),
        code=0,
        counts={"duplicate_note_rows_dropped": 1, "notes": 8},
    ),
    Case(
        "NOTEEVENTS.csv.gz concatenated with cat (the header inside)",
        "duplicated rows",
        _cat_concatenated,
        code=(0, 2),
        check=_notes_8_if_read,
    ),
    Case(
        "same ROW_ID, other TEXT",
        "duplicated rows",
        notes3(lambda r: _other_content("TEXT", f"{MARK} another text {MARK}")),
        expect=("ROW_ID", "appears again"),
        notes_refused=True,
    ),
    Case(
        "same ROW_ID, other CHARTTIME",
        "duplicated rows",
        notes3(lambda r: _other_content("CHARTTIME", "2150-01-01 12:00:00")),
        expect=("ROW_ID", "appears again"),
        notes_refused=True,
    ),
    Case(
        "same ROW_ID, other SUBJECT_ID",
        "duplicated rows",
        notes3(lambda r: _other_content("SUBJECT_ID", "30")),
        expect=("ROW_ID", "appears again"),
        notes_refused=True,
    ),
    Case(
        "same ROW_ID, other CATEGORY",
        "duplicated rows",
        notes3(lambda r: _other_content("CATEGORY", "Radiology")),
        expect=("ROW_ID", "appears again"),
        notes_refused=True,
    ),
    Case(
        "MIMIC-IV discharge note repeated",
        "duplicated rows",
        check_m4(**{"note/discharge": repeat_rows(M4_DIS, 1)}),
        code=0,
        counts={"duplicate_note_rows_dropped": 1, "notes": 4},
    ),
    Case(
        "MIMIC-IV radiology note repeated",
        "duplicated rows",
        check_m4(**{"note/radiology": repeat_rows(M4_RAD, 2)}),
        code=0,
        counts={"duplicate_note_rows_dropped": 1, "notes": 4},
    ),
    Case(
        "MIMIC-IV discharge notes all repeated",
        "duplicated rows",
        check_m4(**{"note/discharge": twice(M4_DIS)}),
        code=0,
        counts={"duplicate_note_rows_dropped": 2, "notes": 4},
    ),
    Case(
        "MIMIC-IV same note_id, other text",
        "duplicated rows",
        check_m4(**{"note/discharge": [*M4_DIS, cell(M4_DIS, 1, "text", f"{MARK} other {MARK}")[1]]}),
        expect=("note_id", "appears again"),
        notes_refused=True,
    ),
    Case(
        "run on repeated notes beyond the share limit",
        "duplicated rows",
        lambda ws: run_on(ws, m3(ws.dir / "m3", NOTEEVENTS=twice(NOTES))),
        expect=("max_repaired_share",),
    ),
    Case(
        "run on repeated notes, limit relaxed: the clean cohort's recall",
        "duplicated rows",
        _tiny_relaxed(lambda d: edit_table(d / "NOTEEVENTS.csv.gz", twice), "recall"),
        code=0,
        counts={"duplicate_note_rows_dropped": (748, 750), "notes": 750},  # the tiny cohort, generator 2.3
        counts_from="results",
        check=same_as_baseline("recall"),
        timeout=300,
    ),
    Case(
        "a note with empty TEXT",
        "duplicated rows",
        notes3(lambda r: cell(r, 8, "TEXT", "")),
        code=0,
        counts={"empty_notes_dropped": 1, "notes": 7},
    ),
    Case(
        "a note whose TEXT is white space",
        "duplicated rows",
        notes3(lambda r: cell(r, 8, "TEXT", "  \n\t ")),
        code=0,
        counts={"empty_notes_dropped": 1, "notes": 7},
    ),
    Case(
        "MIMIC-IV note with empty text",
        "duplicated rows",
        check_m4(**{"note/radiology": cell(M4_RAD, 1, "text", "")}),
        code=0,
        counts={"empty_notes_dropped": 1, "notes": 3},
    ),
    Case(
        "one more ISERROR note",
        "duplicated rows",
        notes3(lambda r: cell(r, 9, "ISERROR", "1")),
        code=0,
        counts={"error_notes_dropped": 2, "notes": 7},
    ),
    Case(
        "every note ISERROR",
        "duplicated rows",
        notes3(lambda r: column(r, "ISERROR", lambda v: "1")),
        code=(0, 2),
        check=_no_notes_said,
    ),
    Case(
        "a note's HADM_ID names no admission",
        "duplicated rows",
        notes3(lambda r: cell(r, 1, "HADM_ID", "999")),
        code=0,
        counts={"note_admission_links_unknown_cleared": 1, "notes": 8},
    ),
    Case(
        "two notes' HADM_ID name no admission",
        "duplicated rows",
        notes3(lambda r: cell(cell(r, 7, "HADM_ID", "998"), 9, "HADM_ID", "999")),
        code=0,
        counts={"note_admission_links_unknown_cleared": 2, "notes": 8},
    ),
    Case(
        "a note on another patient's admission",
        "duplicated rows",
        notes3(lambda r: cell(r, 1, "HADM_ID", "300")),
        code=0,
        counts={"notes_of_another_patients_admission_dropped": 1, "notes": 7},
    ),
    Case(
        "a diagnosis of no admission",
        "duplicated rows",
        check_m3(DIAGNOSES_ICD=cell(DIAG, 1, "HADM_ID", "999")),
        code=0,
        counts={"diagnoses_of_unknown_admission_dropped": 1},
    ),
    Case(
        "a diagnosis on another patient's admission",
        "duplicated rows",
        check_m3(DIAGNOSES_ICD=cell(DIAG, 6, "HADM_ID", "100")),
        code=0,
        counts={"diagnoses_of_another_patients_admission_dropped": 1},
    ),
    Case(
        "MIMIC-IV note's hadm_id names no admission",
        "duplicated rows",
        check_m4(**{"note/radiology": cell(M4_RAD, 1, "hadm_id", "9999")}),
        code=0,
        counts={"note_admission_links_unknown_cleared": 1, "notes": 4},
    ),
    Case(
        "MIMIC-IV note on another patient's admission",
        "duplicated rows",
        check_m4(**{"note/radiology": cell(M4_RAD, 1, "hadm_id", "6000")}),
        code=0,
        counts={"notes_of_another_patients_admission_dropped": 1, "notes": 3},
    ),
    Case(
        "MIMIC-IV diagnosis of no admission",
        "duplicated rows",
        check_m4(**{"hosp/diagnoses_icd": cell(m4_table("hosp/diagnoses_icd"), 2, "hadm_id", "7777")}),
        code=0,
        counts={"diagnoses_of_unknown_admission_dropped": 1},
    ),
    Case(
        "run with a note on another patient's admission (over the limit)",
        "duplicated rows",
        lambda ws: run_on(ws, m3(ws.dir / "m3", NOTEEVENTS=cell(NOTES, 1, "HADM_ID", "300"))),
        expect=("max_repaired_share",),
    ),
    Case(
        "run with a note on another patient's admission, limit relaxed",
        "duplicated rows",
        lambda ws: run_on(ws, m3(ws.dir / "m3", NOTEEVENTS=cell(NOTES, 1, "HADM_ID", "300")), *relaxed(ws)),
        code=0,
        counts={"notes_of_another_patients_admission_dropped": 1},
        counts_from="results",
        check=_results_md_names("notes_of_another_patients_admission_dropped", "another patient"),
    ),
    Case(
        "run with a diagnosis of no admission, limit relaxed",
        "duplicated rows",
        lambda ws: run_on(ws, m3(ws.dir / "m3", DIAGNOSES_ICD=cell(DIAG, 1, "HADM_ID", "999")), *relaxed(ws)),
        code=0,
        counts={"diagnoses_of_unknown_admission_dropped": 1},
        counts_from="results",
    ),
]


# -- names matched as the source means them -------------------------------------------------------------


def category(value: str, row: int = 3) -> Build:
    return notes3(lambda r: cell(r, row, "CATEGORY", value))


def icd10(code: str) -> Build:
    dx = cell(m4_table("hosp/diagnoses_icd"), 1, "icd_code", code)
    return check_m4(**{"hosp/diagnoses_icd": dx})


ALL_MAP = shows(absent=("without a CCS category",))


def _no_damage_repaired(ws: Workspace, proc: Proc) -> list[str]:
    """A clean source: no repair of damaged rows is shown with a count above zero."""
    import clinpred.data.load  # noqa: F401  (the readers declare their repair classes)
    from clinpred.data.integrity import REPAIRS

    found = shown_counts(proc.stdout)
    wrong = [
        f"{k} = {found[k]}" for k, r in REPAIRS.items() if not getattr(r, "expected", False) and found.get(k)
    ]
    text = (proc.stdout + proc.stderr).lower()
    if "categories that are none of" in text or "unknown categor" in text:
        wrong.append("a category flagged as unknown")
    return [f"clean data flagged: {', '.join(wrong)}"] if wrong else []


def _tiny_categories(value: str) -> Callable[[Path], None]:
    def change(d: Path) -> None:
        edit_table(
            d / "NOTEEVENTS.csv.gz",
            lambda rows: column(rows, "CATEGORY", lambda v: value if v.strip() == "Discharge summary" else v),
        )

    return change


def _codes_map_to_nothing(d: Path) -> None:
    edit_table(
        d / "DIAGNOSES_ICD.csv.gz", lambda rows: column(rows, "ICD9_CODE", lambda v: "ZZZ99" if v else v)
    )


def _unmapped_named(ws: Workspace, proc: Proc) -> list[str]:
    """Where the run says why diagnosis could not be scored, it names codes mapping to nothing."""
    said = proc.stdout + proc.stderr
    for backend in cohort_of(ws, proc).get("backends", []):
        said += " ".join(backend.get("tasks_not_run", {}).values()) + " ".join(backend.get("warnings", []))
    said = said.lower()
    problems = ["blamed on feature notes"] if "feature notes" in said else []
    if not any(
        w in said
        for w in (
            "map to no",
            "maps to no",
            "map to nothing",
            "no ccs",
            "without a ccs",
            "code maps to",
            "codes map to",
        )
    ):
        problems.append("does not say the codes map to nothing")
    return problems


NAMES = [
    Case(
        "category 'discharge SUMMARY '",
        "names",
        category("discharge SUMMARY "),
        code=0,
        counts={"note_categories_normalised": 1, "discharge_summary": 1},
    ),
    Case(
        "category 'DISCHARGE SUMMARY'",
        "names",
        category("DISCHARGE SUMMARY"),
        code=0,
        counts={"note_categories_normalised": 1, "discharge_summary": 1},
    ),
    Case(
        "category 'Discharge  Summary' (two spaces)",
        "names",
        category("Discharge  Summary"),
        code=0,
        counts={"note_categories_normalised": 1, "discharge_summary": 1},
    ),
    Case(
        "category ' discharge summary' (leading space)",
        "names",
        category(" discharge summary"),
        code=0,
        counts={"note_categories_normalised": 1, "discharge_summary": 1},
    ),
    Case(
        "category 'NURSING/OTHER'",
        "names",
        category("NURSING/OTHER", row=1),
        code=0,
        counts={"note_categories_normalised": 1, "nursing/other": 2},
    ),
    Case(
        "category 'radiology'",
        "names",
        category("radiology", row=6),
        code=0,
        counts={"note_categories_normalised": 1, "radiology": 1},
    ),
    Case(
        "MIMIC's own trailing spaces ('Physician ') are not counted",
        "names",
        lambda ws: check(m3(ws.dir / "m3")),
        code=0,
        counts={"note_categories_normalised": 0, "physician": 1},
    ),
    Case(
        "unknown category 'Telemetry' is listed",
        "names",
        category("Telemetry", row=1),
        code=0,
        expect=("Telemetry",),
        any_of=("unknown", "none of", "not a known", "not one of"),
    ),
    Case(
        "unknown category 'Discharge summaries' is listed",
        "names",
        category("Discharge summaries"),
        code=0,
        expect=("Discharge summaries",),
        any_of=("unknown", "none of", "not a known", "not one of"),
    ),
    Case(
        "discharge summaries recased: the guard still excludes them",
        "names",
        _tiny_relaxed(_tiny_categories("DISCHARGE SUMMARY"), "diagnosis"),
        code=0,
        counts={"note_categories_normalised": 59},
        counts_from="results",
        check=same_as_baseline(
            "diagnosis", ("discharge_summaries_in_cohort", "discharge_summaries_used", "notes_used")
        ),
        timeout=300,
    ),
    Case("ICD-10 'i50.9' (lowercase, dot)", "names", icd10("i50.9"), code=0, check=ALL_MAP),
    Case("ICD-10 'I50.9' (dot)", "names", icd10("I50.9"), code=0, check=ALL_MAP),
    Case("ICD-10 'i5023' (lowercase)", "names", icd10("i5023"), code=0, check=ALL_MAP),
    Case("ICD-10 ' I509 ' (spaces)", "names", icd10(" I509 "), code=0, check=ALL_MAP),
    Case(
        "ICD-9 '428.0' (dot)",
        "names",
        check_m3(DIAGNOSES_ICD=cell(DIAG, 3, "ICD9_CODE", "428.0")),
        code=0,
        check=ALL_MAP,
    ),
    Case(
        "codes that map to nothing: data check names them",
        "names",
        check_m3(DIAGNOSES_ICD=column(DIAG, "ICD9_CODE", lambda v: "ZZZ99" if v else v)),
        code=0,
        expect=("ZZZ99",),
        counts={"patients_whose_codes_all_map_to_nothing": 3},
    ),
    Case(
        "codes that map to nothing: run says so, not '0 patients have feature notes'",
        "names",
        _tiny_relaxed(_codes_map_to_nothing, "diagnosis"),
        code=(0, 2),
        check=_unmapped_named,
    ),
    Case(
        "the tiny synthetic cohort: nothing flagged",
        "names",
        lambda ws: check(ws.shared.tiny),
        code=0,
        check=_no_damage_repaired,
    ),
    Case(
        "the hand-built MIMIC-III files: nothing flagged",
        "names",
        lambda ws: check(m3(ws.dir / "m3")),
        code=0,
        check=_no_damage_repaired,
    ),
    Case(
        "the hand-built MIMIC-IV files: nothing flagged",
        "names",
        lambda ws: check(m4(ws.dir / "m4")),
        code=0,
        check=_no_damage_repaired,
    ),
]


# -- dates and numbers ----------------------------------------------------------------------------------

ADM = m3_table("ADMISSIONS")
PAT = m3_table("PATIENTS")
M4_ADM = m4_table("hosp/admissions")
M4_PAT = m4_table("hosp/patients")


def notes_at(row: int, col: str, value: str) -> Build:
    return notes3(lambda r: cell(r, row, col, value))


def refused(name: str, build: Build, *fragments: str, notes: bool = False) -> Case:
    return Case(name, "dates and numbers", build, expect=fragments, notes_refused=notes)


def counted(name: str, build: Build, **counts: int) -> Case:
    return Case(name, "dates and numbers", build, code=0, counts=counts)


def _big_note(ws: Workspace) -> list[str]:
    text = f"{MARK} " + ("Pt stable on room air. " * 2_300_000)[:50_000_000] + f" {MARK}"
    return check(m3(ws.dir / "m3", NOTEEVENTS=cell(NOTES, 9, "TEXT", text)))


def _big_note_m4(ws: Workspace) -> list[str]:
    text = f"{MARK} " + ("Brief Hospital Course: ___ " * 2_000_000)[:50_000_000] + f" {MARK}"
    return check(m4(ws.dir / "m4", **{"note/discharge": cell(M4_DIS, 1, "text", text)}))


def _big_note_read(ws: Workspace, proc: Proc) -> list[str]:
    if proc.returncode == 2:
        return [] if "limit" in proc.stderr.lower() else ["a 50 MB note refused without naming the limit"]
    return []


def _edited_in_place(old: bytes, new: bytes) -> Build:
    def build(ws: Workspace) -> list[str]:
        data = m3(ws.dir / "m3", gz=False)
        first = ws.cli("data", "check", str(data))
        if first.returncode != 0:
            ws.problems.append(f"the first check failed: {first.stderr.strip()[-200:]}")
        path = data / "NOTEEVENTS.csv"
        stat = path.stat()
        edit_bytes(path, lambda b: b.replace(old, new, 1))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size
        return check(data)

    return build


DATES = [
    counted(
        "CHARTTIME in 2300",
        notes_at(9, "CHARTTIME", "2300-05-01 12:00:00"),
        charttime_out_of_range_set_missing=1,
        notes=8,
    ),
    counted(
        "CHARTTIME past pandas' range (2262-05-01)",
        notes_at(1, "CHARTTIME", "2262-05-01 11:00:00"),
        charttime_out_of_range_set_missing=1,
    ),
    counted(
        "CHARTTIME in 1600",
        notes_at(2, "CHARTTIME", "1600-01-02 08:00:00"),
        charttime_out_of_range_set_missing=1,
    ),
    counted(
        "CHARTTIME 9999-12-31",
        notes_at(7, "CHARTTIME", "9999-12-31 23:59:59"),
        charttime_out_of_range_set_missing=1,
    ),
    counted(
        "two CHARTTIMEs in 2300",
        notes3(
            lambda r: cell(
                cell(r, 1, "CHARTTIME", "2300-01-01 11:00:00"), 2, "CHARTTIME", "2300-01-02 08:00:00"
            )
        ),
        charttime_out_of_range_set_missing=2,
    ),
    refused(
        "CHARTDATE in 2300", notes_at(9, "CHARTDATE", "2300-05-01"), "NOTEEVENTS", "CHARTDATE", notes=True
    ),
    refused(
        "CHARTDATE in 1600", notes_at(9, "CHARTDATE", "1600-05-01"), "NOTEEVENTS", "CHARTDATE", notes=True
    ),
    refused(
        "ADMITTIME in 2300",
        check_m3(ADMISSIONS=cell(ADM, 2, "ADMITTIME", "2300-03-01 08:00:00")),
        "ADMISSIONS",
        "ADMITTIME",
    ),
    refused(
        "ADMITTIME in 1500",
        check_m3(ADMISSIONS=cell(ADM, 1, "ADMITTIME", "1500-01-01 10:00:00")),
        "ADMISSIONS",
        "ADMITTIME",
    ),
    counted(
        "DISCHTIME in 2300",
        check_m3(ADMISSIONS=cell(ADM, 4, "DISCHTIME", "2300-05-04 10:00:00")),
        dischtime_out_of_range_set_missing=1,
    ),
    counted(
        "DEATHTIME in 2300",
        check_m3(ADMISSIONS=cell(ADM, 3, "DEATHTIME", "2300-03-01 05:00:00")),
        deathtime_out_of_range_set_missing=1,
    ),
    counted(
        "DOD in 2300",
        check_m3(PATIENTS=cell(PAT, 3, "DOD", "2300-01-01 00:00:00")),
        dod_out_of_range_set_missing=1,
    ),
    counted(
        "DOB in 1600",
        check_m3(PATIENTS=cell(PAT, 1, "DOB", "1600-01-01 00:00:00")),
        dob_out_of_range_set_missing=1,
    ),
    refused(
        "CHARTTIME on Feb 30",
        notes_at(1, "CHARTTIME", "2150-02-30 11:00:00"),
        "NOTEEVENTS",
        "CHARTTIME",
        notes=True,
    ),
    refused(
        "CHARTDATE on Feb 30", notes_at(1, "CHARTDATE", "2150-02-30"), "NOTEEVENTS", "CHARTDATE", notes=True
    ),
    refused(
        "CHARTDATE on Apr 31", notes_at(8, "CHARTDATE", "2152-04-31"), "NOTEEVENTS", "CHARTDATE", notes=True
    ),
    refused(
        "ADMITTIME on Feb 30",
        check_m3(ADMISSIONS=cell(ADM, 2, "ADMITTIME", "2151-02-30 08:00:00")),
        "ADMISSIONS",
        "ADMITTIME",
    ),
    refused(
        "ADMITTIME on Feb 29 of 2151 (no leap year)",
        check_m3(ADMISSIONS=cell(ADM, 2, "ADMITTIME", "2151-02-29 08:00:00")),
        "ADMISSIONS",
        "ADMITTIME",
    ),
    counted(
        "ADMITTIME on Feb 29 of 2152 (a leap year) is a date",
        check_m3(ADMISSIONS=cell(ADM, 3, "ADMITTIME", "2152-02-29 10:00:00")),
        admissions=4,
    ),
    refused(
        "DISCHTIME on Feb 30",
        check_m3(ADMISSIONS=cell(ADM, 3, "DISCHTIME", "2152-02-30 05:00:00")),
        "ADMISSIONS",
        "DISCHTIME",
    ),
    refused(
        "DEATHTIME on Feb 30",
        check_m3(ADMISSIONS=cell(ADM, 3, "DEATHTIME", "2152-02-30 05:00:00")),
        "ADMISSIONS",
        "DEATHTIME",
    ),
    refused(
        "DOB on Feb 30", check_m3(PATIENTS=cell(PAT, 1, "DOB", "2100-02-30 00:00:00")), "PATIENTS", "DOB"
    ),
    refused(
        "DOD on Feb 31", check_m3(PATIENTS=cell(PAT, 2, "DOD", "2152-02-31 00:00:00")), "PATIENTS", "DOD"
    ),
    counted(
        "DISCHTIME before ADMITTIME",
        check_m3(ADMISSIONS=cell(ADM, 2, "DISCHTIME", "2151-02-28 09:00:00")),
        discharge_before_admission_set_missing=1,
    ),
    counted(
        "DEATHTIME before ADMITTIME",
        check_m3(ADMISSIONS=cell(ADM, 3, "DEATHTIME", "2152-02-19 05:00:00")),
        death_before_admission_set_missing=1,
    ),
    counted(
        "DISCHTIME equal to ADMITTIME is kept",
        check_m3(ADMISSIONS=cell(ADM, 2, "DISCHTIME", "2151-03-01 08:00:00")),
        discharge_before_admission_set_missing=0,
    ),
    counted(
        "MIMIC-IV dischtime before admittime",
        check_m4(**{"hosp/admissions": cell(M4_ADM, 1, "dischtime", "2179-12-31 10:00:00")}),
        discharge_before_admission_set_missing=1,
    ),
    refused(
        "MIMIC-IV note charttime in 2300",
        check_m4(**{"note/radiology": cell(M4_RAD, 1, "charttime", "2300-01-01 12:00:00")}),
        "radiology",
        "charttime",
        notes=True,
    ),
    refused(
        "MIMIC-IV note charttime on Feb 30",
        check_m4(**{"note/discharge": cell(M4_DIS, 2, "charttime", "2150-02-30 00:00:00")}),
        "discharge",
        "charttime",
        notes=True,
    ),
    refused(
        "MIMIC-IV admittime on Feb 30",
        check_m4(**{"hosp/admissions": cell(M4_ADM, 2, "admittime", "2150-02-30 10:00:00")}),
        "admissions",
        "admittime",
    ),
    refused(
        "MIMIC-IV admittime in 2300",
        check_m4(**{"hosp/admissions": cell(M4_ADM, 2, "admittime", "2300-03-01 10:00:00")}),
        "admissions",
        "admittime",
    ),
    counted(
        "MIMIC-IV dod in 2300",
        check_m4(**{"hosp/patients": cell(M4_PAT, 2, "dod", "2300-06-01")}),
        dod_out_of_range_set_missing=1,
    ),
    refused(
        "MIMIC-IV dod on Feb 30",
        check_m4(**{"hosp/patients": cell(M4_PAT, 2, "dod", "2151-02-30")}),
        "patients",
        "dod",
    ),
    refused(
        "SUBJECT_ID past int64 in NOTEEVENTS",
        notes_at(9, "SUBJECT_ID", PAST_INT64),
        "NOTEEVENTS",
        "SUBJECT_ID",
        notes=True,
    ),
    refused(
        "SUBJECT_ID past uint64 in NOTEEVENTS",
        notes_at(9, "SUBJECT_ID", PAST_UINT64),
        "NOTEEVENTS",
        "SUBJECT_ID",
        notes=True,
    ),
    refused(
        "HADM_ID past int64 in NOTEEVENTS",
        notes_at(9, "HADM_ID", PAST_INT64),
        "NOTEEVENTS",
        "HADM_ID",
        notes=True,
    ),
    refused(
        "ROW_ID past int64 in NOTEEVENTS",
        notes_at(9, "ROW_ID", PAST_UINT64),
        "NOTEEVENTS",
        "ROW_ID",
        notes=True,
    ),
    refused(
        "SUBJECT_ID past int64 in PATIENTS",
        check_m3(PATIENTS=cell(PAT, 3, "SUBJECT_ID", PAST_INT64)),
        "PATIENTS",
        "SUBJECT_ID",
    ),
    refused(
        "SUBJECT_ID past int64 in ADMISSIONS",
        check_m3(ADMISSIONS=cell(ADM, 4, "SUBJECT_ID", PAST_UINT64)),
        "ADMISSIONS",
        "SUBJECT_ID",
    ),
    refused(
        "HADM_ID past int64 in ADMISSIONS",
        check_m3(ADMISSIONS=cell(ADM, 4, "HADM_ID", PAST_INT64)),
        "ADMISSIONS",
        "HADM_ID",
    ),
    refused(
        "HADM_ID past int64 in DIAGNOSES_ICD",
        check_m3(DIAGNOSES_ICD=cell(DIAG, 6, "HADM_ID", PAST_UINT64)),
        "DIAGNOSES_ICD",
        "HADM_ID",
    ),
    refused(
        "negative SUBJECT_ID in PATIENTS",
        check_m3(PATIENTS=cell(PAT, 3, "SUBJECT_ID", "-30")),
        "PATIENTS",
        "SUBJECT_ID",
    ),
    refused(
        "negative HADM_ID in ADMISSIONS",
        check_m3(ADMISSIONS=cell(ADM, 4, "HADM_ID", "-300")),
        "ADMISSIONS",
        "HADM_ID",
    ),
    refused(
        "negative SUBJECT_ID in NOTEEVENTS",
        notes_at(9, "SUBJECT_ID", "-30"),
        "NOTEEVENTS",
        "SUBJECT_ID",
        notes=True,
    ),
    refused(
        "MIMIC-IV subject_id past int64",
        check_m4(**{"hosp/patients": cell(M4_PAT, 1, "subject_id", PAST_INT64)}),
        "patients",
        "subject_id",
    ),
    refused("header-only PATIENTS", check_m3(PATIENTS=header_only(PAT)), "PATIENTS"),
    refused("header-only ADMISSIONS", check_m3(ADMISSIONS=header_only(ADM)), "ADMISSIONS"),
    refused("header-only DIAGNOSES_ICD", check_m3(DIAGNOSES_ICD=header_only(DIAG)), "DIAGNOSES_ICD"),
    refused("MIMIC-IV header-only patients", check_m4(**{"hosp/patients": header_only(M4_PAT)}), "patients"),
    Case("a 50 MB note", "dates and numbers", _big_note, code=(0, 2), check=_big_note_read, timeout=300),
    Case(
        "a 50 MB MIMIC-IV note",
        "dates and numbers",
        _big_note_m4,
        code=(0, 2),
        check=_big_note_read,
        timeout=300,
    ),
    Case(
        "NOTEEVENTS edited in place, same size and mtime (a time)",
        "dates and numbers",
        _edited_in_place(b"2159-05-01 12:00:00", b"2159-05-01 13:00:00"),
        code=0,
        check=shows("2159-05-01 13:00:00"),
    ),
    Case(
        "NOTEEVENTS edited in place, same size and mtime (a category)",
        "dates and numbers",
        _edited_in_place(b",Echo,", b",ECHO,"),
        code=0,
        counts={"note_categories_normalised": 1},
    ),
]


# -- secrets --------------------------------------------------------------------------------------------


def _openai_run(
    base_url: Callable[[Workspace], str], *settings: str, tfidf: bool = True, **env: str
) -> Build:
    def build(ws: Workspace) -> list[str]:
        ws.secret(SK, PASSWORD, TOKEN, HF, ENV_VALUE)
        url = base_url(ws)
        spec = ",".join([f"base_url={url}", *settings] if url else settings)
        backends = ["-b", f"openai:{spec}" if spec else "openai"] + (
            ["-b", "tfidf:min_df=1"] if tfidf else []
        )
        ws.env.update(env)
        return [
            "run",
            "--data",
            str(m3(ws.dir / "m3")),
            *backends,
            "-t",
            "recall",
            "--allow-external-api",
            "--out",
            str(ws.out),
            "-q",
        ]

    return build


def _server(path: str = "/v1", userinfo: str = "", query: str = "") -> Callable[[Workspace], str]:
    def url(ws: Workspace) -> str:
        root = ws.shared.server.root.replace("http://", f"http://{userinfo}@" if userinfo else "http://")
        return root + path + (f"?{query}" if query else "")

    return url


def _closed(userinfo: str) -> Callable[[Workspace], str]:
    return lambda ws: f"http://{userinfo}@127.0.0.1:{free_port()}/v1"


def _secret_args(*args: str, env: dict[str, str] | None = None) -> Build:
    """Arguments with {m3} (the hand-built files) and {out} filled in; every key is looked for after."""

    def build(ws: Workspace) -> list[str]:
        ws.secret(SK, PASSWORD, TOKEN, HF, ENV_VALUE)
        ws.env.update(env or {})
        data = str(m3(ws.dir / "m3")) if "{m3}" in args else ""
        return [a.replace("{m3}", data).replace("{out}", str(ws.out)) for a in args]

    return build


def _base_url_from_env(ws: Workspace) -> list[str]:
    args = _openai_run(lambda ws: "", f"api_key={SK}")(ws)
    ws.env["OPENAI_BASE_URL"] = _server(userinfo=f"u:{PASSWORD}")(ws)
    return args


def _config_with(text: str, command: str = "show") -> Build:
    def build(ws: Workspace) -> list[str]:
        ws.secret(SK, PASSWORD, TOKEN)
        path = ws.dir / "exp.toml"
        path.write_text(text.replace("{server}", ws.shared.server.root))
        if command == "show":
            return ["config", "show", "--config", str(path), *SOURCE]
        return [
            "run",
            "--config",
            str(path),
            "--data",
            str(m3(ws.dir / "m3")),
            "-t",
            "recall",
            "--allow-external-api",
            "--out",
            str(ws.out),
            "-q",
        ]

    return build


OPENAI_TOML = (
    '[[backends]]\nname = "openai"\n[backends.settings]\n'
    f'base_url = "{{server}}/v1?api_key={TOKEN}"\napi_key = "{SK}"\n'
    '[[backends]]\nname = "tfidf"\n[backends.settings]\nmin_df = 1\n'
)
USERINFO_TOML = (
    '[[backends]]\nname = "openai"\n[backends.settings]\n'
    f'base_url = "http://hostile:{PASSWORD}@127.0.0.1:9/v1"\n'
)


def _no_key_and_ran(ws: Workspace, proc: Proc) -> list[str]:
    """The backend given the key ran (so the key-bearing setting was used and recorded, redacted)."""
    results = cohort_of(ws, proc)
    status = {b.get("label"): b.get("status") for b in results.get("backends", [])}
    return [] if status.get("openai") == "ok" else [f"the openai backend did not run: {status}"]


SECRETS = [
    Case(
        "key in base_url's userinfo",
        "secrets",
        _openai_run(_server(userinfo=f"hostile:{PASSWORD}"), f"api_key={SK}"),
        code=0,
        check=_no_key_and_ran,
    ),
    Case(
        "token in base_url's query (api_key=)",
        "secrets",
        _openai_run(_server(query=f"api_key={TOKEN}"), f"api_key={SK}"),
        code=0,
    ),
    Case(
        "token in base_url's query (token=)",
        "secrets",
        _openai_run(_server(query=f"token={TOKEN}"), f"api_key={SK}"),
        code=0,
    ),
    Case(
        "signature in base_url's query (sig=)",
        "secrets",
        _openai_run(_server(query=f"api-version=1&sig={TOKEN}"), f"api_key={SK}"),
        code=0,
    ),
    Case(
        "key in OPENAI_API_KEY",
        "secrets",
        _openai_run(_server(), OPENAI_API_KEY=SK),
        code=0,
        check=_no_key_and_ran,
    ),
    Case("key in OPENAI_BASE_URL's userinfo", "secrets", _base_url_from_env, code=0, check=_no_key_and_ran),
    Case(
        "a key-shaped model name",
        "secrets",
        _openai_run(_server(), f"api_key={SK}", f"model={SK}x"),
        code=0,
        check=_no_key_and_ran,
    ),
    Case(
        "server down, key in userinfo, only backend",
        "secrets",
        _openai_run(_closed(f"u:{PASSWORD}"), f"api_key={SK}", "max_retries=0", tfidf=False),
        code=2,
    ),
    Case(
        "server down, key in userinfo, beside TF-IDF",
        "secrets",
        _openai_run(_closed(f"u:{PASSWORD}"), f"api_key={SK}", "max_retries=0"),
        code=0,
    ),
    Case(
        "config file with a token in base_url",
        "secrets",
        _config_with(OPENAI_TOML, "run"),
        code=0,
    ),
    Case("config show of a key in userinfo (config file)", "secrets", _config_with(USERINFO_TOML), code=0),
    Case(
        "config show of a key in userinfo (flag)",
        "secrets",
        _secret_args("config", "show", "-b", f"openai:base_url=http://u:{PASSWORD}@example.org/v1"),
        code=0,
    ),
    Case(
        "config show of a key setting",
        "secrets",
        _secret_args("config", "show", "-b", f"openai:api_key={SK}"),
        code=0,
    ),
    Case(
        "config show of a query token",
        "secrets",
        _secret_args("config", "show", "-b", f"openai:base_url=https://example.org/v1?access_token={TOKEN}"),
        code=0,
    ),
    Case(
        "an env key's value echoed by a bad setting",
        "secrets",
        _secret_args(
            "run",
            "--data",
            "{m3}",
            "-b",
            f"tfidf:min_df={ENV_VALUE}",
            "--out",
            "{out}",
            env={"HOSTILE_API_KEY": ENV_VALUE},
        ),
        code=2,
    ),
    Case(
        "an env token's value as a task name",
        "secrets",
        _secret_args(
            "run",
            "--data",
            "{m3}",
            "-b",
            "tfidf",
            "-t",
            ENV_VALUE,
            "--out",
            "{out}",
            env={"MY_SERVICE_TOKEN": ENV_VALUE},
        ),
        code=2,
    ),
    Case(
        "a key-shaped --seed",
        "secrets",
        _secret_args("run", "--data", "{m3}", "-b", "tfidf", "--seed", SK, "--out", "{out}"),
        code=2,
    ),
    Case(
        "an hf_ token as a model name",
        "secrets",
        _secret_args("run", "--data", "{m3}", "-b", f"sentence-transformers:model={HF}", "--out", "{out}"),
        code=2,
    ),
    Case(
        "a key under a misspelt setting",
        "secrets",
        _secret_args("run", "--data", "{m3}", "-b", f"openai:api_kye={SK}", "--out", "{out}"),
        code=2,
    ),
    Case(
        "backends check with a key in userinfo",
        "secrets",
        _secret_args(
            "backends",
            "check",
            "openai",
            "-s",
            f"base_url=http://u:{PASSWORD}@127.0.0.1:9/v1",
            "-s",
            f"api_key={SK}",
            "-s",
            "max_retries=0",
        ),
        code=(0, 1, 2),
    ),
    Case("a key-shaped value as --data", "secrets", _secret_args("data", "check", SK), code=2),
]


# -- config bounds ---------------------------------------------------------------------------------------


def bound(name: str, toml: str, key: str, *, command: str = "show", code: int = 2) -> Case:
    def build(ws: Workspace) -> list[str]:
        path = ws.dir / "exp.toml"
        path.write_text(toml)
        if command == "show":
            return ["config", "show", "--config", str(path), *SOURCE]
        return [
            "run",
            "--config",
            str(path),
            "--data",
            str(m3(ws.dir / "m3")),
            "-b",
            "tfidf:min_df=1",
            "--out",
            str(ws.out),
            "-q",
        ]

    return Case(name, "config bounds", build, code=code, expect=(key,), timeout=120)


CONFIG = [
    bound("window_hours = inf", "[tasks.survival]\nwindow_hours = inf\n", "window_hours"),
    bound("window_hours = nan", "[tasks.survival]\nwindow_hours = nan\n", "window_hours"),
    bound("window_hours = -48", "[tasks.survival]\nwindow_hours = -48.0\n", "window_hours"),
    bound("early_hours = 1e308", "[tasks.diagnosis]\nearly_hours = 1e308\n", "early_hours"),
    bound("early_hours = inf", '[tasks.diagnosis]\nvariant = "early"\nearly_hours = inf\n', "early_hours"),
    bound(
        "recall n_resamples = 100000000", "[tasks.recall.bootstrap]\nn_resamples = 100000000\n", "n_resamples"
    ),
    bound(
        "diagnosis n_resamples = 100000000",
        "[tasks.diagnosis.bootstrap]\nn_resamples = 100000000\n",
        "n_resamples",
    ),
    bound(
        "subgroup n_resamples = 100000000",
        "[tasks.recall.subgroups]\nn_resamples = 100000000\n",
        "n_resamples",
    ),
    bound("ipcw_resamples = 100000000", "[tasks.survival]\nipcw_resamples = 100000000\n", "ipcw_resamples"),
    bound("horizon_days = inf", "[tasks.survival]\nhorizon_days = inf\n", "horizon_days"),
    bound("horizon_days = nan", "[tasks.survival]\nhorizon_days = nan\n", "horizon_days"),
    bound("half_life_days = nan", "[tasks.diagnosis]\nhalf_life_days = nan\n", "half_life_days"),
    bound("tie_tolerance = nan", "[tasks.recall]\ntie_tolerance = nan\n", "tie_tolerance"),
    bound("confidence = nan", "[tasks.recall.bootstrap]\nconfidence = nan\n", "confidence"),
    bound("confidence = 1.5", "[tasks.recall.bootstrap]\nconfidence = 1.5\n", "confidence"),
    bound("evaluation_fraction = nan", "[split]\nevaluation_fraction = nan\n", "evaluation_fraction"),
    bound("mortality window_hours = 1e308", "[tasks.mortality]\nwindow_hours = 1e308\n", "window_hours"),
    bound("auc_times_days = [inf]", "[tasks.survival]\nauc_times_days = [inf]\n", "auc_times_days"),
    bound("c_grid = [nan]", "[tasks.diagnosis]\nc_grid = [nan]\n", "c_grid"),
    bound("umap_min_dist = nan", "[tasks.geometry]\numap_min_dist = nan\n", "umap_min_dist"),
    bound("max_repaired_share = nan", "[data]\nmax_repaired_share = nan\n", "max_repaired_share"),
    bound("max_repaired_share = 2", "[data]\nmax_repaired_share = 2.0\n", "max_repaired_share"),
    bound(
        "run refuses window_hours = inf before any work",
        "[tasks.survival]\nwindow_hours = inf\n",
        "window_hours",
        command="run",
    ),
    bound(
        "run refuses n_resamples = 100000000 before any work",
        '[tasks]\nrun = ["recall"]\n[tasks.recall.bootstrap]\nn_resamples = 100000000\n',
        "n_resamples",
        command="run",
    ),
    Case(
        "finetune --learning-rate nan",
        "config bounds",
        lambda ws: [
            "finetune",
            "--data",
            str(m3(ws.dir / "m3")),
            "--base",
            str(ws.shared.minilm),
            "--out",
            str(ws.out),
            "--learning-rate",
            "nan",
            "--max-steps",
            "1",
            "-q",
        ],
        expect=("learning",),
        timeout=180,
    ),
    Case(
        "finetune --epochs inf",
        "config bounds",
        lambda ws: [
            "finetune",
            "--data",
            str(m3(ws.dir / "m3")),
            "--base",
            str(ws.shared.minilm),
            "--out",
            str(ws.out),
            "--epochs",
            "inf",
            "-q",
        ],
        expect=("epochs",),
        timeout=180,
    ),
]


# -- resource failures ----------------------------------------------------------------------------------


def _cache_is_a_file(command: str) -> Build:
    def build(ws: Workspace) -> list[str]:
        (ws.dir / "cachefile").write_text("not a folder")
        ws.env["CLINPRED_CACHE"] = str(ws.dir / "cachefile")
        data = m3(ws.dir / "m3")
        return {"check": check(data), "run": run_on(ws, data), "info": ["cache", "info"]}[command]

    return build


def _cache_under_a_file(ws: Workspace) -> list[str]:
    (ws.dir / "cachefile").write_text("not a folder")
    ws.env["CLINPRED_CACHE"] = str(ws.dir / "cachefile" / "cache")
    return check(m3(ws.dir / "m3"))


def _notes_cache_is_a_file(ws: Workspace) -> list[str]:
    ws.cache.mkdir()
    (ws.cache / "notes").write_text("not a folder")
    return check(m3(ws.dir / "m3"))


def _report_of_run(ws: Workspace) -> list[str]:
    return ["report", str(copy_into(ws.dir, ws.shared.run_folder, "run-a")), "--out", str(ws.out)]


def _tiny_recall_two_workers(ws: Workspace) -> list[str]:
    """Recall on the tiny cohort: its bootstrap is large enough to start loky's pool (parallel.MIN_WORK)."""
    ws.env["CLINPRED_JOBS"] = "2"
    return ["run", "--data", str(ws.shared.tiny_marked), "-b", "tfidf", "-t", "recall", "--out", str(ws.out)]


def _quiet_shutdown(ws: Workspace, proc: Proc) -> list[str]:
    noisy = [w for w in ("leaked semaphore", "resource_tracker", "Exception ignored") if w in proc.stderr]
    return [f"warnings after the signal: {noisy}"] if noisy else []


def _two_synths(ws: Workspace) -> list[str]:
    return ["synth", "--out", str(ws.out), "--quiet"]


def _synth_sealed(ws: Workspace, proc: Proc) -> list[str]:
    after = ws.cli("data", "check", str(ws.out))
    if after.returncode != 0:
        return [f"the cohort left is not whole: {after.stderr.strip()[-200:]}"]
    return [] if "(synthetic)" in after.stdout else ["the cohort left is no longer sealed as synthetic"]


def _refusal_names_the_limit(ws: Workspace, proc: Proc) -> list[str]:
    if proc.returncode != 2:
        return []
    said = proc.stderr.lower()
    return (
        []
        if any(w in said for w in ("too large", "limit", "space"))
        else ["the refusal does not name the file size"]
    )


LONG = "x" * 300

RESOURCES = [
    Case(
        "CLINPRED_CACHE is a file (data check)",
        "resources",
        _cache_is_a_file("check"),
        expect=("CLINPRED_CACHE",),
    ),
    Case("CLINPRED_CACHE is a file (run)", "resources", _cache_is_a_file("run"), expect=("CLINPRED_CACHE",)),
    Case(
        "CLINPRED_CACHE is a file (cache info)",
        "resources",
        _cache_is_a_file("info"),
        code=(0, 2),
        any_of=("CLINPRED_CACHE",),
    ),
    Case("CLINPRED_CACHE under a file", "resources", _cache_under_a_file, expect=("CLINPRED_CACHE",)),
    Case("the note cache folder is a file", "resources", _notes_cache_is_a_file, code=(0, 2)),
    Case(
        "ulimit -f 64 KiB during run",
        "resources",
        lambda ws: run_on(ws, m3(ws.dir / "m3")),
        code=(0, 2),
        driver=file_size_limit(64 * 1024),
        check=_refusal_names_the_limit,
    ),
    Case(
        "ulimit -f 8 KiB during synth",
        "resources",
        lambda ws: ["synth", "--out", str(ws.out), "--quiet"],
        driver=file_size_limit(8 * 1024),
        any_of=("too large", "limit", "space"),
    ),
    Case(
        "ulimit -f 2 KiB during data check (the note cache)",
        "resources",
        lambda ws: check(m3(ws.dir / "m3")),
        code=(0, 2),
        driver=file_size_limit(2 * 1024),
        check=_refusal_names_the_limit,
    ),
    Case(
        "ulimit -f 16 KiB during report",
        "resources",
        _report_of_run,
        code=(0, 2),
        driver=file_size_limit(16 * 1024),
        check=_refusal_names_the_limit,
    ),
    Case(
        "two synth --out into one folder at once",
        "resources",
        _two_synths,
        code=(0, 2),
        driver=alongside(_two_synths),
        check=_synth_sealed,
    ),
    Case(
        "SIGTERM during a run with two worker processes",
        "resources",
        _tiny_recall_two_workers,
        code=143,
        expect=("terminated",),
        driver=interrupted(signal.SIGTERM),
        check=_quiet_shutdown,
        notes_refused=False,
    ),
    Case(
        "Ctrl-C during a run with two worker processes",
        "resources",
        _tiny_recall_two_workers,
        code=130,
        expect=("interrupted",),
        driver=interrupted(signal.SIGINT),
        check=_quiet_shutdown,
    ),
    Case(
        "--out name longer than the file system allows",
        "resources",
        lambda ws: run_on(ws, m3(ws.dir / "m3"), out=ws.dir / LONG),
        expect=("too long",),
    ),
    Case(
        "--data name longer than the file system allows",
        "resources",
        lambda ws: check(ws.dir / LONG),
        any_of=("too long", "no such"),
    ),
    Case(
        "TMPDIR is a file",
        "resources",
        lambda ws: check(m3(ws.dir / "m3")),
        code=(0, 2),
        env={"TMPDIR": "/dev/null"},
    ),
]


# -- the older families of tests/test_cli_errors.py: new cases only --------------------------------------


def _m3_edit(change: Callable[[Path], None]) -> Build:
    def build(ws: Workspace) -> list[str]:
        data = m3(ws.dir / "m3")
        change(data)
        return check(data)

    return build


def _broken_run(change: Callable[[Path], None]) -> Build:
    def build(ws: Workspace) -> list[str]:
        run = copy_into(ws.dir, ws.shared.run_folder, "run-a")
        change(run)
        return ["report", str(run), "--out", str(ws.out)]

    return build


def _drop_column(rows: list[list[str]], name: str) -> list[list[str]]:
    i = rows[0].index(name)
    return [r[:i] + r[i + 1 :] for r in rows]


def _semicolons(d: Path) -> None:
    edit_bytes(d / "PATIENTS.csv.gz", lambda b: b.replace(b",", b";"))


def _utf16(d: Path) -> None:
    edit_bytes(d / "ADMISSIONS.csv.gz", lambda b: b.decode().encode("utf-16"))


def _crlf(d: Path) -> None:
    edit_bytes(d / "NOTEEVENTS.csv.gz", lambda b: b.replace(b"\n", b"\r\n"))


def _bz2_named_gz(d: Path) -> None:
    import bz2
    import gzip

    path = d / "DIAGNOSES_ICD.csv.gz"
    path.write_bytes(bz2.compress(gzip.decompress(path.read_bytes())))


def _link_loop(ws: Workspace) -> list[str]:
    (ws.dir / "loop").symlink_to(ws.dir / "loop")
    return check(ws.dir / "loop")


def _gzip_folder(d: Path) -> None:
    (d / "NOTEEVENTS.csv.gz").unlink()
    (d / "NOTEEVENTS.csv.gz").mkdir()


def _empty_file(d: Path) -> None:
    (d / "PATIENTS.csv.gz").write_bytes(b"")


def _nul_in_note(d: Path) -> None:
    edit_bytes(d / "NOTEEVENTS.csv.gz", lambda b: b.replace(b"LVEF 55%.", b"LVEF\x0055%", 1))


def _run_without_results(d: Path) -> None:
    (d / "results.json").unlink()


def _run_truncated(d: Path) -> None:
    path = d / "results.json"
    path.write_bytes(path.read_bytes()[:200])


def _run_other_json(d: Path) -> None:
    (d / "results.json").write_text('{"accuracy": 0.9}')


def _m4_without_notes(ws: Workspace) -> list[str]:
    data = m4(ws.dir / "m4")
    shutil.rmtree(data / "note")
    return check(data)


def _notes_of_unknown_patient_twice(ws: Workspace) -> list[str]:
    return check(
        m3(
            ws.dir / "m3",
            NOTEEVENTS=repeat_rows(cell(cell(NOTES, 9, "SUBJECT_ID", "40"), 9, "HADM_ID", ""), 9),
        )
    )


OLDER = [
    Case(
        "unknown task",
        "older",
        lambda ws: run_on(ws, m3(ws.dir / "m3"), "-t", "nosuchtask"),
        expect=("nosuchtask",),
    ),
    Case(
        "an empty folder as data",
        "older",
        lambda ws: check(user_folder(ws.dir / "empty", {".keep": ""})),
        any_of=("NOTEEVENTS", "layout", "MIMIC"),
    ),
    Case(
        "a note file as --data",
        "older",
        lambda ws: check(m3(ws.dir / "m3") / "NOTEEVENTS.csv.gz"),
        expect=("not a directory",),
    ),
    Case("a link loop as --data", "older", _link_loop),
    Case("NOTEEVENTS.csv.gz is a folder", "older", _m3_edit(_gzip_folder), expect=("NOTEEVENTS",)),
    Case("a zero-byte PATIENTS.csv.gz", "older", _m3_edit(_empty_file), expect=("PATIENTS",)),
    Case(
        "NOTEEVENTS without TEXT",
        "older",
        notes3(lambda r: _drop_column(r, "TEXT")),
        expect=("NOTEEVENTS", "TEXT"),
        notes_refused=True,
    ),
    Case(
        "NOTEEVENTS without CATEGORY",
        "older",
        notes3(lambda r: _drop_column(r, "CATEGORY")),
        expect=("NOTEEVENTS", "CATEGORY"),
        notes_refused=True,
    ),
    Case(
        "ADMISSIONS without HADM_ID",
        "older",
        check_m3(ADMISSIONS=_drop_column(ADM, "HADM_ID")),
        expect=("ADMISSIONS", "HADM_ID"),
    ),
    Case(
        "DIAGNOSES_ICD without ICD9_CODE",
        "older",
        check_m3(DIAGNOSES_ICD=_drop_column(DIAG, "ICD9_CODE")),
        expect=("DIAGNOSES_ICD", "ICD9_CODE"),
    ),
    Case(
        "MIMIC-IV discharge without text",
        "older",
        check_m4(**{"note/discharge": _drop_column(M4_DIS, "text")}),
        expect=("discharge", "text"),
        notes_refused=True,
    ),
    Case("MIMIC-IV without note/", "older", _m4_without_notes, any_of=("note", "layout")),
    Case("semicolons for commas", "older", _m3_edit(_semicolons), expect=("PATIENTS",)),
    Case("a UTF-16 ADMISSIONS", "older", _m3_edit(_utf16), expect=("ADMISSIONS",)),
    Case("bzip2 bytes named .gz", "older", _m3_edit(_bz2_named_gz), expect=("DIAGNOSES_ICD",)),
    Case("Windows line endings are read", "older", _m3_edit(_crlf), code=0, counts={"notes": 8}),
    Case("a NUL byte inside a note", "older", _m3_edit(_nul_in_note), code=(0, 2)),
    Case(
        "notes of a patient missing from PATIENTS, repeated",
        "older",
        _notes_of_unknown_patient_twice,
        code=0,
        counts={"notes_of_patients_missing_from_patients_dropped": (1, 2), "notes": 7},
    ),
    Case(
        "report of a run without results.json",
        "older",
        _broken_run(_run_without_results),
        expect=("results.json",),
    ),
    Case(
        "report of a run with a truncated results.json",
        "older",
        _broken_run(_run_truncated),
        expect=("results.json",),
    ),
    Case(
        "report of a folder with another tool's results.json",
        "older",
        _broken_run(_run_other_json),
        expect=("results.json",),
    ),
    Case(
        "report of a data folder",
        "older",
        lambda ws: ["report", str(m3(ws.dir / "m3")), "--out", str(ws.out)],
    ),
    Case(
        "--config is an empty file: the defaults",
        "older",
        lambda ws: [
            "config",
            "show",
            "--config",
            str(user_folder(ws.dir, {"empty.toml": ""}) / "empty.toml"),
            *SOURCE,
        ],
        code=0,
    ),
    Case(
        "--config with a duplicate key",
        "older",
        lambda ws: [
            "config",
            "show",
            "--config",
            str(user_folder(ws.dir, {"dup.toml": "seed = 1\nseed = 2\n"}) / "dup.toml"),
            *SOURCE,
        ],
        expect=("TOML",),
    ),
    Case(
        "--config with a string for a number",
        "older",
        lambda ws: [
            "config",
            "show",
            "--config",
            str(user_folder(ws.dir, {"s.toml": '[split]\nseed = "one"\n'}) / "s.toml"),
            *SOURCE,
        ],
        expect=("seed",),
    ),
    Case(
        "--synthetic and --data together",
        "older",
        lambda ws: run_on(ws, m3(ws.dir / "m3"), "--synthetic", "tiny"),
        code=(0, 2),
    ),
]


CASES: list[Case] = DATA_LOSS + DUPLICATES + NAMES + DATES + SECRETS + CONFIG + RESOURCES + OLDER
