"""Damaged or inconsistent note and diagnosis rows: refused, or repaired by a stated rule and counted.

DESIGN.md rule 9. Each test damages a copy of the tiny synthetic cohort (every note's text carrying a
secret marker that must never be printed), runs the installed `clinpred`, and checks the refusal's
message or the repair's exact count in `data check`'s output and in results.json; where the repair
restores the clean file, the numbers are those of the clean file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

SECRET = "ZQX-SECRET-NOTE-7741"
NOTES = "NOTEEVENTS.csv.gz"
DIAGNOSES = "DIAGNOSES_ICD.csv.gz"
ADMISSIONS = "ADMISSIONS.csv.gz"
RELAX = "[data]\nmax_repaired_share = 1.0\n"


def read_rows(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.reader(f))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerows(rows)
    path.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """The tiny synthetic cohort, every note text ending in SECRET (so no longer sealed: protected), and
    exactly two notes marked ISERROR='1' (the 30th and 60th), as the release marks its error notes."""
    root = tmp_path_factory.mktemp("integrity")
    proc = run_cli("synth", "--size", "tiny", "--out", str(root / "synthetic"))
    assert proc.returncode == 0, proc.stderr
    d = root / "clean"
    shutil.copytree(root / "synthetic", d)
    (d / "CLINPRED_SYNTHETIC.json").unlink()
    rows = read_rows(d / NOTES)
    error = col(rows, "ISERROR")
    for i, row in enumerate(rows[1:], start=1):
        row[error] = "1" if i in (30, 60) else ""
    write_rows(d / NOTES, [rows[0], *[[*r[:-1], r[-1] + f" {SECRET}"] for r in rows[1:]]])
    return d


def variant(clean: Path, where: Path, **tables: list[list[str]]) -> Path:
    """A copy of ``clean`` with some tables replaced (by file name)."""
    shutil.copytree(clean, where)
    for name, rows in tables.items():
        write_rows(where / name, rows)
    return where


def col(rows: list[list[str]], name: str) -> int:
    return rows[0].index(name)


def check(data: Path, tmp_path: Path) -> str:
    """`clinpred data check` on a wide terminal: its output, asserted clean of note text."""
    proc = run_cli(
        "data", "check", str(data), env={"CLINPRED_CACHE": str(tmp_path / "cache"), "COLUMNS": "250"}
    )
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    return " ".join(proc.stdout.split())


def run(data: Path, out: Path, tmp_path: Path, config: str | None = None):
    """`clinpred run -b tfidf -t diagnosis`; with ``config``, a TOML file of it is passed."""
    args = ["run", "--data", str(data), "-b", "tfidf", "-t", "diagnosis", "--quiet", "--out", str(out)]
    if config is not None:
        (tmp_path / "relax.toml").write_text(config)
        args += ["--config", str(tmp_path / "relax.toml")]
    proc = run_cli(*args, env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert SECRET not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def diagnosis(out: Path) -> tuple[dict, dict, dict]:
    """(cohort summary, diagnosis metrics, diagnosis counts) of a run's results.json."""
    results = json.loads((out / "results.json").read_text())
    task = results["backends"][0]["results"]["diagnosis"]
    return results["cohort"], task["metrics"], task["counts"]


@pytest.fixture(scope="module")
def clean_run(clean, tmp_path_factory) -> tuple[dict, dict, dict]:
    tmp = tmp_path_factory.mktemp("clean-run")
    proc = run(clean, tmp / "out", tmp)
    assert proc.returncode == 0, proc.stderr
    assert "Source rows repaired" not in (tmp / "out" / "RESULTS.md").read_text()
    return diagnosis(tmp / "out")


def refused(proc, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and SECRET not in proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_the_clean_cohort_reports_nothing_repaired(clean, tmp_path, clean_run):
    out = check(clean, tmp_path)
    assert "source rows repaired: none" in out
    assert "as in the release: error notes dropped: 2" in out  # ISERROR notes: the release's own
    cohort, _, counts = clean_run
    assert "repair_rules" not in cohort and counts["discharge_summaries_used"] == 0
    assert cohort["error_notes_dropped"] == 2


def test_a_noteevents_concatenated_twice_is_read_once(clean, tmp_path, clean_run):
    rows = read_rows(clean / NOTES)
    data = variant(clean, tmp_path / "twice", **{NOTES: rows + rows[1:]})
    kept = sum(r[col(rows, "ISERROR")] != "1" for r in rows[1:])
    assert f"duplicate note rows dropped: {kept:,} notes rows" in check(data, tmp_path)

    refused(
        run(data, tmp_path / "refused", tmp_path),
        "duplicate_note_rows_dropped",
        f"{kept:,} of {2 * (len(rows) - 1):,} notes rows",  # every row of the file, each copy
        "max_repaired_share",
    )
    assert not (tmp_path / "refused").exists()

    proc = run(data, tmp_path / "out", tmp_path, config=RELAX)
    assert proc.returncode == 0, proc.stderr
    cohort, metrics, counts = diagnosis(tmp_path / "out")
    clean_cohort, clean_metrics, clean_counts = clean_run
    assert cohort["duplicate_note_rows_dropped"] == kept
    assert "first copy is kept" in cohort["repair_rules"]["duplicate_note_rows_dropped"]
    assert metrics == clean_metrics and counts == clean_counts  # the same numbers as the file once
    assert cohort["notes"] == clean_cohort["notes"]
    md = (tmp_path / "out" / "RESULTS.md").read_text()
    assert f"duplicate note rows dropped: {kept:,} notes rows" in md


def test_a_row_id_repeated_with_other_content_is_refused(clean, tmp_path):
    rows = read_rows(clean / NOTES)
    other = [*rows[5]]
    other[-1] = "a different note " + SECRET
    data = variant(clean, tmp_path / "conflict", **{NOTES: [*rows, other]})
    proc = run_cli("data", "check", str(data), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    row_id = rows[5][col(rows, "ROW_ID")]
    refused(
        proc,
        str(data / NOTES),
        "column ROW_ID",
        f"ROW_ID {row_id} in data row(s) 5, {len(rows)}",
        "appears again with different content",
    )
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()], "a refused read left a cache file"


def test_recased_categories_are_read_as_mimic_means_them(clean, tmp_path, clean_run):
    rows = read_rows(clean / NOTES)
    c = col(rows, "CATEGORY")
    recased = {"Discharge summary": "DISCHARGE Summary ", "Echo": "  ECHO", "Nursing/other": "Nursing/other "}
    changed = sum(r[c] in ("Discharge summary", "Echo") for r in rows[1:] if r[col(rows, "ISERROR")] != "1")
    damaged = [rows[0], *[[*r[:c], recased.get(r[c], r[c]), *r[c + 1 :]] for r in rows[1:]]]
    data = variant(clean, tmp_path / "recased", **{NOTES: damaged})
    out = check(data, tmp_path)
    assert f"note categories normalised: {changed:,} notes rows" in out  # trailing spaces alone: not counted
    assert "DISCHARGE Summary" not in out and "warning: note categories" not in out

    proc = run(data, tmp_path / "out", tmp_path)
    assert proc.returncode == 0, proc.stderr  # not limited: no refusal
    cohort, metrics, counts = diagnosis(tmp_path / "out")
    clean_cohort, clean_metrics, clean_counts = clean_run
    assert cohort["note_categories_normalised"] == changed
    # the leakage guard saw every recased discharge summary and excluded it: the clean file's numbers
    assert counts["discharge_summaries_in_cohort"] == clean_counts["discharge_summaries_in_cohort"] > 0
    assert counts["discharge_summaries_used"] == 0
    assert (metrics, counts) == (clean_metrics, clean_counts)
    assert cohort["notes_by_category"] == clean_cohort["notes_by_category"]


def test_unknown_categories_are_kept_and_listed(clean, tmp_path):
    rows = read_rows(clean / NOTES)
    extra = [[*rows[1]], [*rows[2]]]
    for k, row in enumerate(extra):
        row[col(rows, "ROW_ID")], row[col(rows, "CATEGORY")] = str(990001 + k), "Chaplain [notes]"
    data = variant(clean, tmp_path / "unknown", **{NOTES: [*rows, *extra]})
    out = check(data, tmp_path)
    assert "warning: note categories that are none of MIMIC-III's 15" in out
    assert "'Chaplain [notes]' (2 notes)" in out
    assert "source rows repaired: none" in out


def test_the_categories_filter_matches_as_mimic_means_them(clean, tmp_path, clean_run):
    rows = read_rows(clean / NOTES)
    c = col(rows, "CATEGORY")
    damaged = [rows[0], *[[*r[:c], r[c].upper() + " ", *r[c + 1 :]] for r in rows[1:]]]
    data = variant(clean, tmp_path / "upper", **{NOTES: damaged})
    config = '[data]\ncategories = ["nursing/other", "RADIOLOGY", "physician "]\n'
    proc = run(data, tmp_path / "out", tmp_path, config=config)
    assert proc.returncode == 0, proc.stderr
    cohort, _, _ = diagnosis(tmp_path / "out")
    want = {
        k: v
        for k, v in clean_run[0]["notes_by_category"].items()
        if k in ("Nursing/other", "Radiology", "Physician")
    }
    assert cohort["notes_by_category"] == want


def test_inconsistent_admission_links_and_empty_notes_are_counted(clean, tmp_path, clean_run):
    notes, dx, adm = read_rows(clean / NOTES), read_rows(clean / DIAGNOSES), read_rows(clean / ADMISSIONS)
    owner = {r[col(adm, "HADM_ID")]: r[col(adm, "SUBJECT_ID")] for r in adm[1:]}
    n_subj, n_hadm, n_text = col(notes, "SUBJECT_ID"), col(notes, "HADM_ID"), col(notes, "TEXT")
    live = [i for i, r in enumerate(notes) if i and r[col(notes, "ISERROR")] != "1" and r[n_hadm]]
    notes[live[0]][n_hadm] = "999999"  # no such admission: kept, link cleared
    notes[live[1]][n_hadm] = next(h for h, s in owner.items() if s != notes[live[1]][n_subj])  # dropped
    notes[live[2]][n_text] = " \n\t "  # empty: dropped
    d_subj, d_hadm = col(dx, "SUBJECT_ID"), col(dx, "HADM_ID")
    dx[1][d_hadm] = "999998"  # no such admission: dropped
    dx[2][d_hadm] = next(h for h, s in owner.items() if s != dx[2][d_subj])  # another patient's: dropped
    data = variant(clean, tmp_path / "links", **{NOTES: notes, DIAGNOSES: dx})
    out = check(data, tmp_path)
    for fragment in (
        "note admission links unknown cleared: 1 notes rows",
        "notes of another patients admission dropped: 1 notes rows",
        "empty notes dropped: 1 notes rows",
        "diagnoses of unknown admission dropped: 1 diagnoses rows",
        "diagnoses of another patients admission dropped: 1 diagnoses rows",
    ):
        assert fragment in out, fragment

    proc = run(data, tmp_path / "out", tmp_path)
    assert proc.returncode == 0, proc.stderr  # each under 1% of its table
    cohort, _, _ = diagnosis(tmp_path / "out")
    assert cohort["notes"] == clean_run[0]["notes"] - 2
    assert cohort["diagnosis_rows"] == clean_run[0]["diagnosis_rows"] - 2
    for key in (
        "note_admission_links_unknown_cleared",
        "notes_of_another_patients_admission_dropped",
        "empty_notes_dropped",
        "diagnoses_of_unknown_admission_dropped",
        "diagnoses_of_another_patients_admission_dropped",
    ):
        assert cohort[key] == 1, key
    md = (tmp_path / "out" / "RESULTS.md").read_text()
    assert "Source rows repaired" in md and "empty notes dropped: 1 notes rows" in md


def test_empty_notes_added_give_the_numbers_of_the_clean_file(clean, tmp_path, clean_run):
    rows = read_rows(clean / NOTES)
    added = []
    for k, text in enumerate(["", "   ", "\n\n"]):
        row = [*rows[1 + k]]
        row[col(rows, "ROW_ID")], row[col(rows, "TEXT")] = str(980000 + k), text
        added.append(row)
    data = variant(clean, tmp_path / "empty", **{NOTES: [*rows, *added]})
    proc = run(data, tmp_path / "out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    cohort, metrics, counts = diagnosis(tmp_path / "out")
    assert cohort["empty_notes_dropped"] == 3
    assert (metrics, counts) == clean_run[1:]


def test_the_share_limit_refuses_and_its_setting_relaxes_it(clean, tmp_path):
    dx = read_rows(clean / DIAGNOSES)
    d_hadm = col(dx, "HADM_ID")
    n = len(dx) // 10  # 10% of the diagnoses name no admission
    for r in dx[1 : n + 1]:
        r[d_hadm] = "999997"
    data = variant(clean, tmp_path / "many", **{DIAGNOSES: dx})
    out = check(data, tmp_path)
    assert f"warning: diagnoses_of_unknown_admission_dropped: {n:,} of {len(dx) - 1:,} diagnoses rows" in out
    assert "[data] max_repaired_share" in out

    message = refused(
        run(data, tmp_path / "refused", tmp_path),
        "diagnoses_of_unknown_admission_dropped",
        f"{n:,} of {len(dx) - 1:,} diagnoses rows",
        "more than the limit of 1.0%",
        "[data] max_repaired_share in the run's config (now 0.01)",
    )
    assert "clinpred data check" in message
    # fine-tuning reads the same cohort: refused too, before any training, naming its own flag
    proc = run_cli(
        "finetune",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "ft"),
        "--quiet",
        env={"CLINPRED_CACHE": str(tmp_path / "cache")},
    )
    refused(proc, "diagnoses_of_unknown_admission_dropped", "raising --max-repaired-share (now 0.01)")
    proc = run(data, tmp_path / "out", tmp_path, config="[data]\nmax_repaired_share = 0.2\n")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["cohort"]["diagnoses_of_unknown_admission_dropped"] == n
    assert results["config"]["data"]["max_repaired_share"] == 0.2  # the relaxation is recorded


def test_mimic4_notes_repeated_or_of_another_patients_stay(tmp_path):
    from mimic_files import M4_DISCHARGE, M4_RADIOLOGY, write_mimic4

    discharge = [M4_DISCHARGE[0], *[[*r[:-1], r[-1] + f" {SECRET}"] for r in M4_DISCHARGE[1:]]]
    radiology = [M4_RADIOLOGY[0], *[[*r[:-1], r[-1] + f" {SECRET}"] for r in M4_RADIOLOGY[1:]]]
    radiology[2][2] = "6000"  # patient 1000's report filed under patient 2000's stay: dropped
    root = write_mimic4(
        tmp_path / "m4", **{"note/discharge": [*discharge, discharge[1]], "note/radiology": radiology}
    )
    out = check(root, tmp_path)
    assert "duplicate note rows dropped: 1 notes rows" in out
    assert "notes of another patients admission dropped: 1 notes rows" in out
    assert "warning: duplicate_note_rows_dropped: 1 of 5 notes rows (20.0%)" in out

    changed = [*discharge, [*discharge[1][:-1], "another text " + SECRET]]
    root = write_mimic4(tmp_path / "m4-conflict", **{"note/discharge": changed})
    proc = run_cli("data", "check", str(root), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    refused(proc, "discharge.csv.gz: column NOTE_ID: NOTE_ID 1000-DS-1 in data row(s) 1, 3", "appears again")
    assert "radiology" not in proc.stderr.split("error:")[-1]  # only the file that holds the copies
