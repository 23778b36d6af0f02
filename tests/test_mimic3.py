"""The MIMIC-III reader on hand-written files in the v1.4 format, with the real data's quirks."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from mimic_files import NOTE_HEADER, NOTES, write_mimic3

from clinpred.data.mimic3 import SYNTHETIC_MARKER, read_mimic3
from clinpred.data.note_stream import cache_path
from clinpred.data.synthetic import generate_cohort
from clinpred.data.synthetic_seal import is_sealed_synthetic


@pytest.fixture
def m3(tmp_path):
    return write_mimic3(tmp_path / "mimic3")


def test_reads_all_tables_in_canonical_form(m3, tmp_path):
    cohort = read_mimic3(m3, cache_dir=tmp_path / "cache")
    assert cohort.source == "mimic3"
    assert list(cohort.patients["subject_id"]) == [10, 20, 30]
    assert len(cohort.admissions) == 4
    assert cohort.notes["subject_id"].dtype == "int64"
    assert str(cohort.notes["hadm_id"].dtype) == "Int64"
    # The outpatient radiology report keeps an empty HADM_ID.
    radiology = cohort.notes[cohort.notes["note_id"] == "15"].iloc[0]
    assert pd.isna(radiology["hadm_id"])


def test_notes_are_in_time_order_with_chartdate_fallback_and_row_id_ties(m3, tmp_path):
    cohort = read_mimic3(m3, cache_dir=tmp_path / "cache")
    patient = cohort.notes[cohort.notes["subject_id"] == 10]
    # ECG (ROW_ID 10) and the discharge summary (ROW_ID 13) share CHARTDATE 2150-01-05 and have no
    # CHARTTIME: both fall back to the date, and the lower ROW_ID comes first.
    assert list(patient["note_id"]) == ["11", "12", "10", "13", "15"]
    ds = patient[patient["category"] == "Discharge summary"].iloc[0]
    assert ds["time"] == pd.Timestamp("2150-01-05") and bool(ds["time_is_date"])
    assert not bool(patient.iloc[0]["time_is_date"])


def test_trailing_spaces_in_category_are_stripped(m3, tmp_path):
    cohort = read_mimic3(m3, cache_dir=tmp_path / "cache")
    assert {"Physician", "Respiratory"} <= set(cohort.notes["category"])
    assert not any(c != c.strip() for c in cohort.notes["category"])


def test_error_notes_are_dropped_and_counted(m3, tmp_path):
    cohort = read_mimic3(m3, cache_dir=tmp_path / "cache")
    assert "14" not in set(cohort.notes["note_id"])
    assert cohort.counts["error_notes_dropped"] == 1
    kept = read_mimic3(m3, cache_dir=tmp_path / "cache", drop_errors=False)
    assert "14" in set(kept.notes["note_id"]) and kept.counts["error_notes_dropped"] == 0


def test_text_survives_embedded_newlines_quotes_and_placeholders(m3, tmp_path):
    cohort = read_mimic3(m3, cache_dir=tmp_path / "cache")
    text = dict(zip(cohort.notes["note_id"], cohort.notes["text"], strict=True))
    assert text["11"] == NOTES[1][-1]
    assert text["13"] == NOTES[3][-1]  # quotes and a [** date **] placeholder inside


def test_over_89_dob_is_kept_as_shifted(m3, tmp_path):
    cohort = read_mimic3(m3, cache_dir=tmp_path / "cache")
    dob = cohort.patients.set_index("subject_id").loc[20, "dob"]
    assert dob.year == 1850  # about 300 years before the admission, as MIMIC-III shifts it


def test_lowercase_headers_and_plain_csv_read_the_same(tmp_path):
    upper = read_mimic3(write_mimic3(tmp_path / "upper"), cache_dir=tmp_path / "c1")
    lower = read_mimic3(write_mimic3(tmp_path / "lower", upper=False, gz=False), cache_dir=tmp_path / "c2")
    pd.testing.assert_frame_equal(upper.notes, lower.notes)
    pd.testing.assert_frame_equal(upper.diagnoses, lower.diagnoses)
    pd.testing.assert_frame_equal(upper.patients, lower.patients)


def test_filters_apply_while_reading_and_on_the_cached_read(m3, tmp_path):
    cache = tmp_path / "cache"
    first = read_mimic3(m3, cache_dir=cache, categories=["Physician", "ECG"], subject_ids=[10])
    assert first.counts["notes_read_from_cache"] == 0
    assert sorted(first.notes["category"]) == ["ECG", "Physician"]
    assert set(first.patients["subject_id"]) == {10} and set(first.diagnoses["subject_id"]) == {10}
    second = read_mimic3(m3, cache_dir=cache, categories=["Physician", "ECG"], subject_ids=[10])
    assert second.counts["notes_read_from_cache"] == 1
    pd.testing.assert_frame_equal(first.notes, second.notes)
    # The cache holds every note, so a different filter is served from it too.
    everything = read_mimic3(m3, cache_dir=cache)
    assert everything.counts["notes_read_from_cache"] == 1 and len(everything.notes) == len(NOTES) - 2


def test_cache_is_keyed_by_size_and_mtime(m3, tmp_path):
    cache = tmp_path / "cache"
    read_mimic3(m3, cache_dir=cache)
    notes_file = m3 / "NOTEEVENTS.csv.gz"
    before = cache_path(notes_file, cache)
    assert before.exists()
    write_mimic3(m3, notes=[NOTE_HEADER, *NOTES[1:3]])  # the source changes
    assert cache_path(notes_file, cache) != before
    reread = read_mimic3(m3, cache_dir=cache)
    assert reread.counts["notes_read_from_cache"] == 0 and len(reread.notes) == 2


def test_diagnoses_without_code_are_dropped_and_in_admission_order(m3, tmp_path):
    cohort = read_mimic3(m3, cache_dir=tmp_path / "cache")
    assert cohort.counts["diagnosis_rows_without_code"] == 1
    assert list(cohort.diagnoses.query("subject_id == 10")["icd_code"]) == ["99591", "5849", "4280"]


def test_a_marker_dropped_into_a_mimic_folder_does_not_unprotect_it(m3, tmp_path):
    assert read_mimic3(m3, cache_dir=tmp_path / "c").protected
    (m3 / SYNTHETIC_MARKER).write_text("{}")
    assert read_mimic3(m3, cache_dir=tmp_path / "c").protected
    # a marker copied from a real synthetic cohort: its files are not these files
    synthetic = generate_cohort(tmp_path / "syn", size="tiny", seed=0)
    shutil.copy(synthetic / SYNTHETIC_MARKER, m3 / SYNTHETIC_MARKER)
    assert read_mimic3(m3, cache_dir=tmp_path / "c").protected


def test_only_an_intact_sealed_synthetic_cohort_is_unprotected(tmp_path):
    synthetic = generate_cohort(tmp_path / "syn", size="tiny", seed=0)
    assert not read_mimic3(synthetic, cache_dir=tmp_path / "c").protected
    record = json.loads((synthetic / SYNTHETIC_MARKER).read_text())
    assert set(record["files"]) == {p.name for p in synthetic.glob("*.csv.gz")}
    # a file added beside the generator's, or one of its files replaced, breaks the seal
    shutil.copy(synthetic / "PATIENTS.csv.gz", synthetic / "EXTRA.csv.gz")
    assert read_mimic3(synthetic, cache_dir=tmp_path / "c").protected
    (synthetic / "EXTRA.csv.gz").unlink()
    assert not read_mimic3(synthetic, cache_dir=tmp_path / "c").protected
    # same size, one byte changed: the hash catches it
    notes = synthetic / "NOTEEVENTS.csv.gz"
    data = bytearray(notes.read_bytes())
    data[len(data) // 2] ^= 0xFF
    notes.write_bytes(bytes(data))
    assert not is_sealed_synthetic(synthetic)


def test_a_subset_keeping_every_note_shares_the_text(m3, tmp_path):
    """Readers filter while reading, so the subset they then take keeps every note: no second copy."""
    cohort = read_mimic3(m3, cache_dir=tmp_path / "cache")

    def text_buffers(notes):
        return [chunk.buffers()[2].address for chunk in notes["text"].array._pa_array.chunks]

    everyone = cohort.subset(cohort.subject_ids)
    assert text_buffers(everyone.notes) == text_buffers(cohort.notes)
    one = int(cohort.notes["subject_id"].iloc[0])
    fewer = cohort.subset([one])
    assert set(fewer.notes["subject_id"]) == {one} and list(fewer.notes.index) == list(
        range(len(fewer.notes))
    )
