"""Values a source file can hold that no number may silently rest on (issue 27), through the installed CLI.

Dates outside what the source can plausibly hold (a CHARTTIME in 2300 became 1715: nanoseconds wrap),
dates that are not on the calendar (February 30 became March 2), stays that end before they begin,
identifiers that overflow int64 or are negative, tables with a header and no rows, a note longer than
the CSV reader's block, and a note file edited in place with its size and modification time kept.
Each is refused (exit 2: file, column, data row; never a traceback, never note text, no note-cache
file left) or repaired by a stated rule and counted in `clinpred data check`.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import pytest
from mimic_files import (
    ADMISSIONS,
    DIAGNOSES,
    M4_ADMISSIONS,
    M4_DISCHARGE,
    M4_PATIENTS,
    NOTE_HEADER,
    NOTES,
    PATIENTS,
    write_mimic3,
    write_mimic4,
)

# Words of the hand-built notes: none may appear in any message.
NOTE_WORDS = ("Pt arrived from ED", "Lactate 2.1", "Sinus tachycardia", "diltiazem", "Vent settings")
COLUMNS = {name: i for i, name in enumerate(NOTE_HEADER)}
ADM = {name: i for i, name in enumerate(ADMISSIONS[0])}
PAT = {name: i for i, name in enumerate(PATIENTS[0])}


def _edit(table: list[list[str]], row: int, column: int, value: str) -> list[list[str]]:
    """A copy of ``table`` with one cell changed (``row`` 1 = the first data row)."""
    rows = [list(r) for r in table]
    rows[row][column] = value
    return rows


def _check(cli, directory: Path, cache: Path):
    return cli("data", "check", str(directory), env={"CLINPRED_CACHE": str(cache), "COLUMNS": "200"})


def _assert_refused(result, cache: Path, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    for word in NOTE_WORDS:
        assert word not in result.stdout + result.stderr
    assert not [p for p in cache.rglob("*") if p.is_file()], "a refused read left a note-cache file"


def _count(output: str, key: str) -> int | None:
    """The count `data check` shows for a repair class (its key, words separated by spaces or _)."""
    pattern = re.escape(key).replace("_", "[ _]") + r"\W+([0-9][0-9,]*)"
    found = re.search(pattern, output)
    return int(found.group(1).replace(",", "")) if found else None


# ---- refused ------------------------------------------------------------------------------------

M3_REFUSED = [
    # (table, row, column, value, fragments): row 1 = the first data row
    pytest.param(
        "NOTEEVENTS",
        3,
        "CHARTDATE",
        "2300-01-05",
        ["CHARTDATE", "data row 3", "2000-2250"],
        id="chartdate-2300",
    ),
    pytest.param(
        "NOTEEVENTS",
        4,
        "CHARTDATE",
        "1700-01-05",
        ["CHARTDATE", "data row 4", "2000-2250"],
        id="chartdate-1700",
    ),
    pytest.param(
        "NOTEEVENTS", 2, "CHARTDATE", "2150-02-30", ["CHARTDATE", "data row 2", "calendar"], id="feb30"
    ),
    pytest.param(
        "NOTEEVENTS",
        2,
        "CHARTTIME",
        "2150-02-30 08:00:00",
        ["CHARTTIME", "data row 2", "calendar"],
        id="ct-feb30",
    ),
    pytest.param(
        "NOTEEVENTS",
        1,
        "CHARTTIME",
        "2150-01-01 11:00:60",
        ["CHARTTIME", "data row 1", "calendar"],
        id="sec60",
    ),
    pytest.param(
        "ADMISSIONS",
        2,
        "ADMITTIME",
        "2300-03-01 08:00:00",
        ["ADMITTIME", "data row 2", "2000-2250"],
        id="admit-2300",
    ),
    pytest.param(
        "ADMISSIONS",
        2,
        "ADMITTIME",
        "2151-02-29 08:00:00",
        ["ADMITTIME", "data row 2", "calendar"],
        id="admit-feb29",
    ),
    pytest.param(
        "ADMISSIONS",
        4,
        "DISCHTIME",
        "2159-04-31 10:00:00",
        ["DISCHTIME", "data row 4", "calendar"],
        id="disch-apr31",
    ),
    pytest.param(
        "ADMISSIONS",
        3,
        "DEATHTIME",
        "2152-02-30 05:00:00",
        ["DEATHTIME", "data row 3", "calendar"],
        id="death-feb30",
    ),
    pytest.param(
        "PATIENTS", 1, "DOB", "2100-02-30 00:00:00", ["DOB", "data row 1", "calendar"], id="dob-feb30"
    ),
    pytest.param(
        "PATIENTS", 3, "DOD", "2160-02-31 00:00:00", ["DOD", "data row 3", "calendar"], id="dod-feb31"
    ),
    # identifiers that overflow int64, and negative ones
    pytest.param(
        "PATIENTS",
        2,
        "SUBJECT_ID",
        "99999999999999999999",
        ["SUBJECT_ID", "data row 2", "int64"],
        id="pat-subject",
    ),
    pytest.param(
        "ADMISSIONS", 3, "HADM_ID", "99999999999999999999", ["HADM_ID", "data row 3", "int64"], id="adm-hadm"
    ),
    pytest.param(
        "ADMISSIONS",
        1,
        "SUBJECT_ID",
        "9223372036854775808",
        ["SUBJECT_ID", "data row 1", "int64"],
        id="adm-subj",
    ),
    pytest.param(
        "ADMISSIONS", 2, "HADM_ID", "-101", ["HADM_ID", "data row 2", "negative"], id="adm-negative"
    ),
    pytest.param(
        "DIAGNOSES_ICD", 4, "SEQ_NUM", "99999999999999999999", ["SEQ_NUM", "data row 4", "int64"], id="dx-seq"
    ),
    pytest.param(
        "DIAGNOSES_ICD",
        2,
        "HADM_ID",
        "99999999999999999999",
        ["HADM_ID", "data row 2", "int64"],
        id="dx-hadm",
    ),
    pytest.param(
        "NOTEEVENTS", 5, "ROW_ID", "99999999999999999999", ["ROW_ID", "data row 5", "int64"], id="note-rowid"
    ),
    pytest.param(
        "NOTEEVENTS", 1, "CGID", "99999999999999999999", ["CGID", "data row 1", "int64"], id="note-cgid"
    ),
    pytest.param(
        "NOTEEVENTS",
        6,
        "SUBJECT_ID",
        "99999999999999999999",
        ["SUBJECT_ID", "data row 6", "int64"],
        id="note-subj",
    ),
    pytest.param(
        "NOTEEVENTS", 2, "HADM_ID", "99999999999999999999", ["HADM_ID", "data row 2", "int64"], id="note-hadm"
    ),
    pytest.param(
        "NOTEEVENTS", 7, "SUBJECT_ID", "-20", ["SUBJECT_ID", "data row 7", "negative"], id="note-negative"
    ),
]
TABLES = {"PATIENTS": PATIENTS, "ADMISSIONS": ADMISSIONS, "DIAGNOSES_ICD": DIAGNOSES, "NOTEEVENTS": NOTES}


@pytest.mark.parametrize(("table", "row", "column", "value", "fragments"), M3_REFUSED)
def test_mimic3_value_refused(cli, tmp_path, table, row, column, value, fragments):
    rows = TABLES[table]
    changed = _edit(rows, row, [h.upper() for h in rows[0]].index(column), value)
    m3 = write_mimic3(tmp_path / "m3", **({"notes": changed} if table == "NOTEEVENTS" else {table: changed}))
    cache = tmp_path / "cache"
    _assert_refused(_check(cli, m3, cache), cache, f"{table}.csv.gz", *fragments)


@pytest.mark.parametrize("table", ["PATIENTS", "ADMISSIONS", "DIAGNOSES_ICD"])
def test_header_only_table_is_named(cli, tmp_path, table):
    m3 = write_mimic3(tmp_path / "m3", gz=False, **{table: [TABLES[table][0]]})
    cache = tmp_path / "cache"
    _assert_refused(_check(cli, m3, cache), cache, f"{table}.csv has a header but no rows")


M4_REFUSED = [
    pytest.param(
        "note/discharge",
        M4_DISCHARGE,
        1,
        "charttime",
        "2300-01-06 00:00:00",
        ["CHARTTIME", "data row 1", "2000-2250"],
    ),
    pytest.param(
        "note/discharge",
        M4_DISCHARGE,
        2,
        "charttime",
        "2150-02-30 00:00:00",
        ["CHARTTIME", "data row 2", "calendar"],
    ),
    pytest.param(
        "hosp/admissions", M4_ADMISSIONS, 2, "admittime", "1990-03-01 10:00:00", ["ADMITTIME", "data row 2"]
    ),
    pytest.param(
        "hosp/admissions", M4_ADMISSIONS, 1, "dischtime", "2180-02-30 10:00:00", ["DISCHTIME", "calendar"]
    ),
    pytest.param("hosp/patients", M4_PATIENTS, 2, "dod", "2151-06-31", ["DOD", "data row 2", "calendar"]),
    pytest.param(
        "hosp/patients", M4_PATIENTS, 1, "anchor_year", "99999999999999999999", ["ANCHOR_YEAR", "int64"]
    ),
    pytest.param(
        "hosp/patients", M4_PATIENTS, 1, "anchor_age", "-60", ["ANCHOR_AGE", "data row 1", "negative"]
    ),
    pytest.param(
        "note/discharge", M4_DISCHARGE, 2, "subject_id", "99999999999999999999", ["SUBJECT_ID", "int64"]
    ),
]


@pytest.mark.parametrize(("name", "rows", "row", "column", "value", "fragments"), M4_REFUSED)
def test_mimic4_value_refused(cli, tmp_path, name, rows, row, column, value, fragments):
    root = write_mimic4(tmp_path / "m4", **{name: _edit(rows, row, rows[0].index(column), value)})
    cache = tmp_path / "cache"
    _assert_refused(_check(cli, root, cache), cache, f"{name.split('/')[1]}.csv.gz", *fragments)


# ---- repaired and counted -----------------------------------------------------------------------


def test_charttime_out_of_range_falls_back_to_chartdate(cli, tmp_path):
    # the last note's CHARTTIME in 2300: it used to wrap to 1715 and become the patient's first note
    notes = _edit(NOTES, len(NOTES) - 1, COLUMNS["CHARTTIME"], "2300-05-01 12:00:00")
    m3 = write_mimic3(tmp_path / "m3", notes=notes)
    result = _check(cli, m3, tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert _count(result.stdout, "charttime_out_of_range_set_missing") == 1, result.stdout
    assert re.search(r"last note\s+2159-05-01 00:00:00", result.stdout), result.stdout  # its CHARTDATE
    assert "1715" not in result.stdout and "2300" not in result.stdout
    again = _check(cli, m3, tmp_path / "cache")  # served from the note cache: the same count
    assert _count(again.stdout, "charttime_out_of_range_set_missing") == 1, again.stdout


M3_REPAIRED = [
    # (table, row, column, value, count key)
    pytest.param("ADMISSIONS", 1, "DISCHTIME", "2300-01-05 12:00:00", "dischtime_out_of_range_set_missing"),
    pytest.param("ADMISSIONS", 2, "DISCHTIME", "9999-01-05 12:00:00", "dischtime_out_of_range_set_missing"),
    pytest.param("ADMISSIONS", 3, "DEATHTIME", "1700-03-01 05:00:00", "deathtime_out_of_range_set_missing"),
    pytest.param(
        "ADMISSIONS", 2, "DISCHTIME", "2151-02-28 09:00:00", "discharge_before_admission_set_missing"
    ),
    pytest.param("ADMISSIONS", 3, "DEATHTIME", "2152-02-19 05:00:00", "death_before_admission_set_missing"),
    pytest.param("PATIENTS", 1, "DOB", "1700-01-01 00:00:00", "dob_out_of_range_set_missing"),
    pytest.param("PATIENTS", 1, "DOB", "0001-01-01 00:00:00", "dob_out_of_range_set_missing"),
    pytest.param("PATIENTS", 2, "DOD", "2300-03-01 00:00:00", "dod_out_of_range_set_missing"),
]


@pytest.mark.parametrize(("table", "row", "column", "value", "key"), M3_REPAIRED)
def test_mimic3_value_set_missing_and_counted(cli, tmp_path, table, row, column, value, key):
    rows = TABLES[table]
    m3 = write_mimic3(tmp_path / "m3", **{table: _edit(rows, row, rows[0].index(column), value)})
    result = _check(cli, m3, tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert _count(result.stdout, key) == 1, result.stdout
    assert "1715" not in result.stdout


def test_clean_fixture_repairs_nothing_by_these_rules(cli, tmp_path):
    # the MIMIC-III DOB of a patient over 89 (1850) is plausible: ages near 300 are MIMIC's, not damage
    result = _check(cli, write_mimic3(tmp_path / "m3"), tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    for key in ("out_of_range", "before_admission"):
        assert key.replace("_", " ") not in result.stdout and key not in result.stdout, result.stdout


def test_mimic4_birth_year_out_of_range_set_missing(cli, tmp_path):
    patients = _edit(M4_PATIENTS, 1, M4_PATIENTS[0].index("anchor_age"), "500")  # born 1680
    result = _check(cli, write_mimic4(tmp_path / "m4", **{"hosp/patients": patients}), tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert _count(result.stdout, "dob_out_of_range_set_missing") == 1, result.stdout


def test_mimic4_discharge_before_admission_counted(cli, tmp_path):
    admissions = _edit(M4_ADMISSIONS, 2, M4_ADMISSIONS[0].index("dischtime"), "2150-02-28 10:00:00")
    result = _check(cli, write_mimic4(tmp_path / "m4", **{"hosp/admissions": admissions}), tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert _count(result.stdout, "discharge_before_admission_set_missing") == 1, result.stdout


# ---- a note longer than the CSV reader's block ------------------------------------------------------


def test_fifty_megabyte_note_is_read(cli, tmp_path):
    words = ("Lungs clear. ", "Plan: continue diuresis. ", "Lactate trending down. ", "Family updated. ")
    text = "".join(words[i % len(words)] for i in range(50 * 2**20 // 16))
    assert len(text) > 50 * 2**20 // 2
    notes = _edit(NOTES, 2, COLUMNS["TEXT"], text)
    m3 = write_mimic3(tmp_path / "m3", notes=notes)
    result = _check(cli, m3, tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert re.search(r"notes\s+8\b", result.stdout), result.stdout
    assert "gzip" not in result.stdout + result.stderr


# ---- the note cache is keyed by content ---------------------------------------------------------------


def test_in_place_edit_with_same_size_and_mtime_is_not_served_from_cache(cli, tmp_path):
    m3 = write_mimic3(tmp_path / "m3", gz=False)
    cache = tmp_path / "cache"
    notes_file = m3 / "NOTEEVENTS.csv"
    first = _check(cli, m3, cache)
    assert first.returncode == 0, first.stderr
    assert re.search(r"Radiology\s*│\s*1\b", first.stdout) and "Nutrition" not in first.stdout
    before = notes_file.stat()
    content = notes_file.read_bytes()
    assert content.count(b"Radiology") == 1
    notes_file.write_bytes(content.replace(b"Radiology", b"Nutrition"))  # as long: the size is kept
    os.utime(notes_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = notes_file.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second = _check(cli, m3, cache)
    assert second.returncode == 0, second.stderr
    assert re.search(r"Nutrition\s*│\s*1\b", second.stdout), second.stdout
    assert "Radiology" not in second.stdout


def test_unchanged_file_is_served_from_cache(cli, tmp_path):
    # content keyed, a copy of the same bytes elsewhere is the same cache file (and nothing is written twice)
    a = write_mimic3(tmp_path / "a")
    b = write_mimic3(tmp_path / "b")
    assert gzip.decompress((a / "NOTEEVENTS.csv.gz").read_bytes()) == gzip.decompress(
        (b / "NOTEEVENTS.csv.gz").read_bytes()
    )
    cache = tmp_path / "cache"
    assert _check(cli, a, cache).returncode == 0
    assert _check(cli, b, cache).returncode == 0
    assert len(list((cache / "notes").glob("*.arrow"))) == 1


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 16 KiB, and 64 KiB on the second try: the limit on one field, at a size a test can write."""
    from clinpred.data import note_stream

    monkeypatch.setattr(note_stream, "BLOCK_BYTES", 16 << 10)
    monkeypatch.setattr(note_stream, "LARGE_BLOCK_BYTES", 64 << 10)


@pytest.mark.parametrize("use_cache", [True, False])
def test_note_longer_than_a_block_is_read_and_one_beyond_the_limit_refused(small_blocks, tmp_path, use_cache):
    from clinpred.data.mimic3 import NOTE_COLUMNS, _normalise_noteevents
    from clinpred.data.note_stream import NoteFilters, read_notes
    from clinpred.errors import InputError

    long_text = "Lungs clear, plan unchanged. " * 1_400  # 40 KiB: more than a block, less than the limit
    notes = _edit(NOTES, 3, COLUMNS["TEXT"], long_text)
    path = write_mimic3(tmp_path / "m3", notes=notes) / "NOTEEVENTS.csv.gz"
    cache = tmp_path / "cache"
    frame, _ = read_notes(
        path, NOTE_COLUMNS, _normalise_noteevents, NoteFilters(), use_cache=use_cache, cache_dir=cache
    )
    assert frame.set_index("note_id").loc["13", "text"] == long_text
    assert len(frame) == len(NOTES) - 2

    too_long = _edit(NOTES, 3, COLUMNS["TEXT"], "Lungs clear, plan unchanged. " * 10_000)  # 290 KiB
    path = write_mimic3(tmp_path / "m3b", notes=too_long) / "NOTEEVENTS.csv.gz"
    with pytest.raises(InputError, match=r"longer than 0.0625 MiB, the longest note") as refused:
        read_notes(
            path, NOTE_COLUMNS, _normalise_noteevents, NoteFilters(), use_cache=use_cache, cache_dir=cache
        )
    assert "gzip" not in str(refused.value) and "Lungs" not in str(refused.value)
    # the first file's cache (with its source record and that record's lock), nothing of this one
    left = [p.name for p in cache.rglob("*") if p.is_file() and p.suffix == ".arrow"]
    assert len(left) == (1 if use_cache else 0), left
    others = {p.name for p in cache.rglob("*") if p.is_file()} - set(left)
    assert others == ({left[0] + ".source.json", "sources.lock"} if use_cache else set()), others
