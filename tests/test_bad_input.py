"""Every error a user can cause ends in one clear message and exit code 2, with nothing half-written."""

from __future__ import annotations

import gzip

import pytest
from mimic_files import ADMISSIONS, NOTE_HEADER, NOTES, PATIENTS, write_mimic3

from clinpred.data.mimic3 import read_mimic3
from clinpred.errors import InputError


def _assert_clean_exit_2(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_missing_directory(cli, tmp_path):
    _assert_clean_exit_2(cli("data", "check", str(tmp_path / "nowhere")), "no such directory")


def test_missing_table(cli, tmp_path):
    m3 = write_mimic3(tmp_path / "m3")
    (m3 / "ADMISSIONS.csv.gz").unlink()
    _assert_clean_exit_2(cli("data", "check", str(m3)), "ADMISSIONS")


def test_missing_column_names_file_and_column(cli, tmp_path):
    bad = [row[:3] + row[4:] for row in PATIENTS]  # drop DOB
    m3 = write_mimic3(tmp_path / "m3", PATIENTS=bad)
    _assert_clean_exit_2(cli("data", "check", str(m3)), "PATIENTS.csv.gz", "DOB")


def test_header_only_noteevents(cli, tmp_path):
    m3 = write_mimic3(tmp_path / "m3", notes=[NOTE_HEADER])
    cache = tmp_path / "cache"
    result = cli("data", "check", str(m3), env={"CLINPRED_CACHE": str(cache)})
    _assert_clean_exit_2(result, "NOTEEVENTS.csv.gz", "contains no notes")
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_unparseable_datetime_names_file_column_and_row(cli, tmp_path):
    admissions = [list(r) for r in ADMISSIONS]
    admissions[3][4] = "2152-13-45 99:00:00"  # DISCHTIME of the third data row
    m3 = write_mimic3(tmp_path / "m3", ADMISSIONS=admissions)
    _assert_clean_exit_2(cli("data", "check", str(m3)), "ADMISSIONS.csv.gz", "DISCHTIME", "data row 3")


def test_unparseable_note_datetime_leaves_no_cache(cli, tmp_path):
    notes = [list(r) for r in NOTES]
    notes[5][4] = "yesterday"  # CHARTTIME of the fifth note
    m3 = write_mimic3(tmp_path / "m3", notes=notes)
    cache = tmp_path / "cache"
    result = cli("data", "check", str(m3), env={"CLINPRED_CACHE": str(cache)})
    _assert_clean_exit_2(result, "NOTEEVENTS.csv.gz", "CHARTTIME", "data row 5")
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_unreadable_gzip(cli, tmp_path):
    m3 = write_mimic3(tmp_path / "m3")
    data = (m3 / "NOTEEVENTS.csv.gz").read_bytes()
    (m3 / "NOTEEVENTS.csv.gz").write_bytes(data[: len(data) // 2])  # truncated download
    cache = tmp_path / "cache"
    result = cli("data", "check", str(m3), env={"CLINPRED_CACHE": str(cache)})
    _assert_clean_exit_2(result, "NOTEEVENTS.csv.gz", "truncated or corrupt")
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_not_gzip_at_all(tmp_path):
    m3 = write_mimic3(tmp_path / "m3")
    (m3 / "PATIENTS.csv.gz").write_bytes(b"this is not gzip")
    with pytest.raises(InputError, match=r"PATIENTS\.csv\.gz"):
        read_mimic3(m3, cache_dir=tmp_path / "c")


def test_bad_subject_id_names_row(tmp_path):
    notes = [list(r) for r in NOTES]
    notes[2][1] = "ten"
    m3 = write_mimic3(tmp_path / "m3", notes=notes)
    with pytest.raises(InputError, match=r"SUBJECT_ID, data row 2"):
        read_mimic3(m3, cache_dir=tmp_path / "c")


def test_errors_never_contain_note_text(tmp_path):
    notes = [list(r) for r in NOTES]
    notes[1][4] = "not a time"
    m3 = write_mimic3(tmp_path / "m3", notes=notes)
    with pytest.raises(InputError) as info:
        read_mimic3(m3, cache_dir=tmp_path / "c")
    assert "Febrile" not in str(info.value) and "Pt arrived" not in str(info.value)


def test_empty_gzip_file(tmp_path):
    m3 = write_mimic3(tmp_path / "m3")
    (m3 / "DIAGNOSES_ICD.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(InputError, match="empty"):
        read_mimic3(m3, cache_dir=tmp_path / "c")
