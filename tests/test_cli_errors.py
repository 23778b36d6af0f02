"""Bad input through the installed `clinpred` console script: one message, exit 2, nothing leaked or left.

Each case is what a new user (or a broken download) does. For every one the test checks the exit code,
that no traceback is printed, that no note text reaches stdout or stderr (every note of the fixture
carries a marker word), that the message names what is wrong, and that nothing is left behind: no run
folder, no temporary, no note cache file.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import run_cli
from mimic_files import ADMISSIONS, NOTE_HEADER, NOTES, PATIENTS, write_mimic3

SECRET = "ZQXSECRETNOTE"  # in every note's text: must never be printed
SECRET_NOTES = [NOTES[0]] + [[*row[:-1], f"{SECRET} {row[-1]} {SECRET}"] for row in NOTES[1:]]


def mimic(tmp: Path, name: str = "m3", **kw) -> Path:
    kw.setdefault("notes", SECRET_NOTES)
    return write_mimic3(tmp / name, **kw)


def notes_file(d: Path) -> Path:
    return next(d.glob("NOTEEVENTS.csv*"))


def rewrite_notes(d: Path, change: Callable[[bytes], bytes], *, gz: bool | None = None) -> Path:
    """Apply ``change`` to the decompressed NOTEEVENTS bytes (recompressed when the file is .gz)."""
    path = notes_file(d)
    is_gz = path.name.endswith(".gz") if gz is None else gz
    data = gzip.decompress(path.read_bytes()) if is_gz else path.read_bytes()
    data = change(data)
    path.write_bytes(gzip.compress(data, mtime=0) if is_gz else data)
    return d


def cut_inside_a_note(data: bytes) -> bytes:
    return data[: data.rindex(SECRET.encode()) - 3]  # ends inside the last note's quoted text


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # returns the arguments after `clinpred`
    expect: tuple[str, ...] = ()  # fragments of the message
    code: int = 2
    out_must_not_exist: bool = True  # the run folder (tmp/out) is not created
    env: dict[str, str] = field(default_factory=dict)


def run_args(tmp: Path, *extra: str, data: Path | None = None) -> list[str]:
    source = ["--data", str(data)] if data is not None else []
    return ["run", *source, "--out", str(tmp / "out"), "--quiet", *extra]


def _old_demo_models(tmp):
    models = tmp / "out" / "models"
    models.mkdir(parents=True)
    (models / "generator.json").write_text('{"generator": "1.0"}')
    return ["demo", "--out", str(tmp / "out"), "--size", "tiny", "--quiet"]


def _dup_admission(tmp):
    rows = [list(r) for r in ADMISSIONS] + [list(ADMISSIONS[1])]
    return ["data", "check", str(mimic(tmp, ADMISSIONS=rows))]


def _dup_patient(tmp):
    rows = [list(r) for r in PATIENTS] + [list(PATIENTS[2])]
    return ["data", "check", str(mimic(tmp, PATIENTS=rows))]


def _csv_and_gz_differ(tmp):
    d = mimic(tmp)
    other = mimic(tmp, "other", gz=False, notes=[NOTE_HEADER, *SECRET_NOTES[1:3]])
    (other / "NOTEEVENTS.csv").rename(d / "NOTEEVENTS.csv")
    return ["data", "check", str(d)]


def _config(tmp, text: bytes | None = None, *, folder: bool = False):
    path = tmp / "exp.toml"
    if folder:
        path.mkdir()
    else:
        path.write_bytes(text or b"")
    return run_args(tmp, "--config", str(path), "-b", "tfidf", data=mimic(tmp))


def _file(tmp, name="afile"):
    (tmp / name).write_text("not a folder")
    return tmp / name


def _foreign_out(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "thesis.docx").write_text("precious")
    return ["run", "--data", str(mimic(tmp)), "-b", "tfidf", "--out", str(tmp / "out"), "--quiet"]


def _report_out_file(tmp):
    return ["report", str(tmp / "no-such-run"), "--out", str(_file(tmp))]


CASES = [
    # usage errors: typer's own click raises them; each must be one message and exit 2
    Case("unknown option", lambda t: ["run", "--bogus"], ("No such option",)),
    Case("missing --out", lambda t: ["run", "--synthetic", "tiny", "-b", "tfidf"], ("--out",)),
    Case("seed not a number", lambda t: run_args(t, "--seed", "x"), ("--seed",)),
    Case("negative seed", lambda t: run_args(t, "--seed", "-1", "-b", "tfidf"), ("--seed",)),
    Case("unknown command", lambda t: ["frobnicate"], ("No such command",)),
    Case("no command at all", lambda t: [], ("Usage",)),
    Case("data check without a path", lambda t: ["data", "check"], ("Missing argument",)),
    Case("report without runs", lambda t: ["report"], ("Missing argument",)),
    Case("finetune --seed -1", lambda t: ["finetune", "--out", str(t / "m"), "--seed", "-1"], ("--seed",)),
    Case("synth --seed -5", lambda t: ["synth", "--out", str(t / "s"), "--seed", "-5"], ("--seed",)),
    Case("demo of an unknown size", lambda t: ["demo", "--out", str(t / "out"), "--size", "huge"], ("huge",)),
    Case(
        "demo into models of an older synthetic cohort",
        lambda t: _old_demo_models(t),
        ("generator 1.0", "remove it or use another --out"),
        out_must_not_exist=False,
    ),
    Case(
        "a bad process count",
        lambda t: run_args(t, "--synthetic", "tiny", "-b", "tfidf"),
        ("CLINPRED_JOBS",),
        env={"CLINPRED_JOBS": "two"},
    ),
    # the experiment as given
    Case("no data source", lambda t: run_args(t, "-b", "tfidf"), ("--data",)),
    Case("no backend", lambda t: run_args(t, data=mimic(t)), ("--backend",)),
    Case(
        "unknown synthetic size", lambda t: run_args(t, "--synthetic", "huge", "-b", "tfidf"), ("synthetic",)
    ),
    Case("unknown backend", lambda t: run_args(t, "-b", "nosuch", data=mimic(t)), ("nosuch",)),
    Case("unknown backend setting", lambda t: run_args(t, "-b", "tfidf:bogus=1", data=mimic(t)), ("bogus",)),
    Case(
        "model not on disk: refused before the data is read",
        lambda t: run_args(t, "-b", f"sentence-transformers:model={t / 'nomodel'}", data=mimic(t)),
        ("nothing was written", "nomodel"),
    ),
    Case(
        "no API key for the only backend",
        lambda t: run_args(t, "-b", "openai", data=mimic(t)),
        ("OPENAI_API_KEY",),
        env={"OPENAI_API_KEY": ""},
    ),
    Case(
        "a label that is a path", lambda t: run_args(t, "-b", "tfidf:label=../..", data=mimic(t)), ("label",)
    ),
    Case("--config is a folder", lambda t: _config(t, folder=True), ("directory",)),
    Case("--config is not UTF-8", lambda t: _config(t, b"seed = \xff\xfe\n"), ("UTF-8",)),
    Case("--config is not TOML", lambda t: _config(t, b"[[[ nope"), ("TOML",)),
    Case(
        "--config missing", lambda t: run_args(t, "--config", str(t / "no.toml"), "-b", "tfidf"), ("no such",)
    ),
    Case(
        "bootstrap without resamples",
        lambda t: _config(t, b"[tasks.recall.bootstrap]\nn_resamples = 0\n"),
        ("intervals = false",),
    ),
    Case("--config with an unknown key", lambda t: _config(t, b"colour = 'red'\n"), ("colour",)),
    # where the results go
    Case(
        "--out is a file",
        lambda t: ["run", "--data", str(mimic(t)), "-b", "tfidf", "--out", str(_file(t)), "--quiet"],
        ("is a file",),
    ),
    Case(
        "--out under a file",
        lambda t: ["run", "--data", str(mimic(t)), "-b", "tfidf", "--out", str(_file(t) / "x"), "--quiet"],
        ("which is a file",),
    ),
    Case("--out holds someone's files", _foreign_out, ("did not write",), out_must_not_exist=False),
    Case("report --out is a file", _report_out_file, ("is a file",)),
    Case("synth --out is not empty", lambda t: ["synth", "--out", str(_file(t).parent)], ("not empty",)),
    # data folders
    Case("no such folder", lambda t: ["data", "check", str(t / "nowhere")], ("no such directory",)),
    Case("a file, not a folder", lambda t: ["data", "check", str(_file(t))], ("not a directory",)),
    Case(
        "a path that looks like markup",
        lambda t: ["data", "check", str(t / "[/x] [bold]v1.4")],
        ("[/x] [bold]v1.4",),
    ),
    Case(
        "a row with an extra field",
        lambda t: [
            "data",
            "check",
            str(mimic(t, notes=[*SECRET_NOTES[:3], [*SECRET_NOTES[3], "x"], *SECRET_NOTES[4:]])),
        ],
        ("data row 3 has 12 fields where the header has 11",),
    ),
    Case(
        "a row with a field missing",
        lambda t: [
            "data",
            "check",
            str(mimic(t, notes=[*SECRET_NOTES[:2], SECRET_NOTES[2][1:], *SECRET_NOTES[3:]])),
        ],
        ("data row 2 has 10 fields",),
    ),
    Case(
        "text shifted into CHARTTIME",
        lambda t: [
            "data",
            "check",
            str(mimic(t, notes=[NOTE_HEADER, *[[*r[:4], f"{SECRET} pt", *r[5:]] for r in SECRET_NOTES[1:]]])),
        ],
        ("CHARTTIME", "not shown"),
    ),
    Case(
        "cut inside a note (plain CSV)",
        lambda t: ["data", "check", str(rewrite_notes(mimic(t, gz=False), cut_inside_a_note))],
        ("ends inside a quoted field",),
    ),
    Case(
        "cut inside a note (inside a valid gzip)",
        lambda t: ["data", "check", str(rewrite_notes(mimic(t), cut_inside_a_note))],
        ("ends inside a quoted field",),
    ),
    Case(
        "gzip without its trailer",
        lambda t: ["data", "check", str(_truncate_gzip(mimic(t)))],
        ("truncated",),
    ),
    Case(
        "bytes that are not UTF-8",
        lambda t: [
            "data",
            "check",
            str(rewrite_notes(mimic(t, gz=False), lambda b: b.replace(SECRET.encode(), b"caf\xe9", 1))),
        ],
        ("not UTF-8",),
    ),
    Case(
        "header-only NOTEEVENTS",
        lambda t: ["data", "check", str(mimic(t, notes=[NOTE_HEADER]))],
        ("no notes",),
    ),
    Case("HADM_ID twice in ADMISSIONS", _dup_admission, ("HADM_ID", "appears again")),
    Case("SUBJECT_ID twice in PATIENTS", _dup_patient, ("SUBJECT_ID", "appears again")),
    Case("NOTEEVENTS.csv and .csv.gz differ", _csv_and_gz_differ, ("differ",)),
    # the caches
    Case(
        "clear an unknown fingerprint",
        lambda t: ["cache", "clear", "--fingerprint", "abcdef0"],
        ("no fingerprint",),
    ),
    Case("clear both parts 'only'", lambda t: ["cache", "clear", "--notes", "--embeddings"], ("exclude",)),
]


def _truncate_gzip(d: Path) -> Path:
    path = notes_file(d)
    path.write_bytes(path.read_bytes()[:-8])
    return d


def _leftovers(tmp: Path) -> list[str]:
    """Temporaries anywhere under tmp, and note cache files (a failed read must not leave its text)."""
    found = [str(p) for p in tmp.rglob("*") if ".tmp" in p.name]
    found += (
        [str(p) for p in (tmp / "cache" / "notes").glob("*")] if (tmp / "cache" / "notes").is_dir() else []
    )
    return found


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_message_and_exit_2(case: Case, tmp_path: Path):
    args = case.setup(tmp_path)
    env = {"CLINPRED_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": "", **case.env}
    proc = run_cli(*args, cwd=tmp_path, env=env)
    shown = proc.stdout + proc.stderr
    assert proc.returncode == case.code, f"exit {proc.returncode}: {shown[-2000:]}"
    assert "Traceback" not in shown, shown[-3000:]
    assert SECRET not in shown
    for fragment in case.expect:
        assert fragment in shown, shown[-2000:]
    assert not _leftovers(tmp_path)
    if case.out_must_not_exist:
        assert not (tmp_path / "out").exists()
    else:
        assert not (tmp_path / "out" / "config.json").exists()


def test_the_table_covers_every_kind_of_bad_input():
    """The closing note counts these: keep the table honest when cases are added."""
    assert len(CASES) >= 45
    assert len({c.name for c in CASES}) == len(CASES)


def test_a_byte_order_mark_is_read_not_reported_as_a_missing_column(tmp_path):
    d = rewrite_notes(mimic(tmp_path, gz=False), lambda b: b"\xef\xbb\xbf" + b)
    proc = run_cli("data", "check", str(d), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


def test_notes_of_patients_missing_from_patients_are_dropped_and_counted(tmp_path):
    d = mimic(tmp_path, PATIENTS=[PATIENTS[0], PATIENTS[1], PATIENTS[3]])  # patient 20 is gone
    proc = run_cli("data", "check", str(d), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert "notes of patients missing from patients dropped" in proc.stdout
    share = next(line for line in proc.stdout.splitlines() if line.strip().startswith("share with notes"))
    assert float(share.split()[-1]) <= 1.0


def test_plain_and_gzip_copies_of_the_same_file_are_fine(tmp_path):
    d = mimic(tmp_path)
    (d / "NOTEEVENTS.csv").write_bytes(gzip.decompress((d / "NOTEEVENTS.csv.gz").read_bytes()))  # gunzip -k
    proc = run_cli("data", "check", str(d), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr


def test_stale_temporaries_of_dead_processes_are_seen_and_removed(tmp_path):
    """What `kill -9` leaves (a half-written note cache, a half-generated cohort) goes on the next start."""
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    notes_cache = tmp_path / "cache" / "notes"
    notes_cache.mkdir(parents=True)
    stale = notes_cache / f".noteevents-abc.arrow.{dead.pid}.tmp"
    stale.write_bytes(b"note text of a killed reader")
    live = notes_cache / f".noteevents-def.arrow.{os.getpid()}.tmp"  # a live reader's: never touched
    live.write_bytes(b"in progress")
    env = {"CLINPRED_CACHE": str(tmp_path / "cache")}
    info = run_cli("cache", "info", env=env)
    assert info.returncode == 0 and "left by a killed reader" in info.stdout and stale.name in info.stdout
    proc = run_cli("data", "check", str(mimic(tmp_path)), env=env)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and live.exists()
    assert list(notes_cache.glob("*.arrow"))  # the cache the check wrote
    cleared = run_cli("cache", "clear", "--notes", env=env)
    assert cleared.returncode == 0 and not list(notes_cache.glob("*.arrow"))
    synth_parent = tmp_path / "cohorts"
    synth_parent.mkdir()
    half = synth_parent / f".demo.{dead.pid}.tmp-x1y2"
    half.mkdir()
    (half / "NOTEEVENTS.csv.gz").write_bytes(b"half a cohort")
    made = run_cli("synth", "--out", str(synth_parent / "tiny"), "--quiet", env=env)
    assert made.returncode == 0, made.stderr
    assert not half.exists()
