"""Notes come back in patient/time order whatever the file's order, with their text intact.

The reader parses a note file in blocks, spills the text to disk and gathers it back in sorted order
(``text_spill``). These tests shrink the block and slice sizes so that a few thousand notes cross
every boundary, and check the result note by note against an independent sort of the same rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import random

import numpy as np
import pyarrow as pa
import pytest
from mimic_files import NOTE_HEADER

from clinpred.data import note_stream, text_spill
from clinpred.data.mimic3 import NOTE_COLUMNS, _normalise_noteevents
from clinpred.data.note_stream import NoteFilters, read_notes
from clinpred.data.text_spill import TextSpill

WORDS = ["pt", "afebrile", "lasix 40mg", "no acute distress", "[**Hospital 123**]", "café", "β-blocker", "—"]


def note_rows(n: int, *, seed: int, order: str) -> list[list[str]]:
    """NOTEEVENTS rows (ROW_ID = file position) for ~n/12 patients, in ``order``: shuffled/patient/runs."""
    rng = random.Random(seed)
    notes = []
    for i in range(n):
        subject = 1 + i // 12
        day, hour = 1 + (i % 12) // 3, 8 + i % 3
        dated_only = i % 7 == 0  # discharge-summary-like: CHARTDATE only, ties broken by ROW_ID
        words = [rng.choice(WORDS) for _ in range(rng.choice([0, 1, 5, 40, 400]))]
        text = " ".join(words).replace(" pt ", '\n"pt"\n')
        notes.append(
            (subject, f"2150-02-{day:02d}", "" if dated_only else f"2150-02-{day:02d} {hour:02d}:00:00", text)
        )
    if order == "shuffled":
        rng.shuffle(notes)
    elif order == "runs":  # interleaved sorted runs, like categories written one after another
        notes = notes[0::3] + notes[1::3] + notes[2::3]
    rows = [NOTE_HEADER]
    for row_id, (subject, date, time, text) in enumerate(notes, start=1):
        error = "1" if row_id % 97 == 0 else ""
        rows.append(
            [
                str(row_id),
                str(subject),
                str(100 + subject),
                date,
                time,
                "",
                "Nursing",
                "Report",
                "",
                error,
                text,
            ]
        )
    return rows


def write_notes(path, rows) -> None:
    buf = io.StringIO()
    buf.write(",".join(f'"{h}"' for h in rows[0]) + "\n")
    csv.writer(buf, lineterminator="\n").writerows(rows[1:])
    path.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))


def expected(rows, *, drop_errors=True, subjects=None) -> list[tuple[str, str]]:
    """(ROW_ID, text) of the kept notes in (patient, time, ROW_ID) order, by plain Python."""
    kept = []
    for row in rows[1:]:
        row_id, subject, date, time, error, text = row[0], int(row[1]), row[3], row[4], row[9], row[10]
        if (drop_errors and error == "1") or (subjects is not None and subject not in subjects):
            continue
        kept.append(((subject, time or f"{date} 00:00:00", int(row_id)), row_id, text))
    return [(row_id, text) for _, row_id, text in sorted(kept)]


@pytest.fixture
def small_pieces(monkeypatch):
    """Blocks and spill buckets of a few KiB, slices of 97 notes and 4 patient ranges, so that a few
    thousand notes cross every boundary."""
    monkeypatch.setattr(note_stream, "BLOCK_BYTES", 16 << 10)
    monkeypatch.setattr(note_stream, "SLICE_ROWS", 97)
    monkeypatch.setattr(note_stream, "PARTITIONS", 4)
    monkeypatch.setattr(text_spill, "SEGMENT_BYTES", 8 << 10)


def read(path, cache, filters=NoteFilters(), use_cache=True, patients=None):
    return read_notes(
        path,
        NOTE_COLUMNS,
        _normalise_noteevents,
        filters,
        use_cache=use_cache,
        cache_dir=cache,
        patients=patients,
    )


@pytest.mark.parametrize("order", ["shuffled", "patient", "runs"])
def test_every_read_returns_the_notes_sorted_with_their_text(small_pieces, tmp_path, order):
    rows = note_rows(3000, seed=1, order=order)
    path = tmp_path / "NOTEEVENTS.csv.gz"
    write_notes(path, rows)
    want = expected(rows)
    first, counts = read(path, tmp_path / "cache")
    assert counts == {"error_notes_dropped": 3000 // 97, "notes_read_from_cache": 0}
    cached, counts = read(path, tmp_path / "cache")
    assert counts["notes_read_from_cache"] == 1
    uncached, _ = read(path, None, use_cache=False)
    for frame in (first, cached, uncached):
        assert list(zip(frame["note_id"], frame["text"], strict=True)) == want


def test_filters_and_kept_error_notes_on_every_path(small_pieces, tmp_path):
    rows = note_rows(2000, seed=2, order="shuffled")
    path = tmp_path / "NOTEEVENTS.csv.gz"
    write_notes(path, rows)
    subjects = frozenset({3, 50, 51, 160})
    with_errors = NoteFilters(subject_ids=subjects, drop_errors=False)
    want = expected(rows, drop_errors=False, subjects=subjects)
    first, _ = read(path, tmp_path / "cache", with_errors)  # writes the whole cache
    cached, counts = read(path, tmp_path / "cache", with_errors)  # the mapped cache, filtered
    uncached, _ = read(path, None, with_errors, use_cache=False)
    assert counts["notes_read_from_cache"] == 1
    for frame in (first, cached, uncached):
        assert list(zip(frame["note_id"], frame["text"], strict=True)) == want


def test_the_spill_files_have_no_name_on_disk(small_pieces, tmp_path):
    rows = note_rows(1000, seed=3, order="shuffled")
    path = tmp_path / "NOTEEVENTS.csv.gz"
    write_notes(path, rows)
    cache = tmp_path / "cache"
    seen = []
    gather = TextSpill.gather

    def watching(self, *args):
        for k, piece in enumerate(gather(self, *args)):
            if k == 1:  # the spill is open and mapped now
                seen.append(sorted(os.listdir(cache)))
            yield piece

    TextSpill.gather = watching
    try:
        read(path, cache)
    finally:
        TextSpill.gather = gather
    (names,) = seen
    assert len(names) == 1 and names[0].endswith(".tmp")  # only the cache being written
    # the cache file, its source record (issue 29: what each entry derives from) and that record's lock
    arrow = [p.name for p in cache.iterdir() if p.suffix == ".arrow"]
    assert len(arrow) == 1
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [*arrow, arrow[0] + ".source.json", "sources.lock"]
    )


@pytest.mark.parametrize("kind", ["random", "identity", "reversed-blocks"])
@pytest.mark.parametrize("partitioned", [False, True])
def test_gather_puts_any_order_back(monkeypatch, tmp_path, kind, partitioned):
    monkeypatch.setattr(text_spill, "SEGMENT_BYTES", 4 << 10)
    rng = np.random.default_rng(4)
    texts = ["".join(rng.choice(list("abcé—\n"), size=int(rng.integers(0, 300)))) for _ in range(1500)]
    order = {
        "random": rng.permutation(1500),
        "identity": np.arange(1500),
        "reversed-blocks": np.concatenate([np.arange(i, i + 50)[::-1] for i in range(0, 1500, 50)]),
    }[kind]
    with TextSpill(tmp_path) as spill:
        for lo in range(0, 1500, 50):  # appended in blocks, as the parser does
            part = rng.integers(0, 5, size=50) if partitioned else None
            spill.append(pa.array(texts[lo : lo + 50], pa.string()), part)
        buckets = spill.open_buckets
        assert buckets > 10  # the partitions rolled over to new buckets
        slices, still_open = [], []
        for piece in spill.gather(order, 64):
            slices.append(piece)
            still_open.append(spill.open_buckets)
        assert spill.open_buckets == 0  # every bucket closed once its last slice was taken
    assert [len(s) for s in slices[:-1]] == [64] * (len(slices) - 1)
    assert pa.chunked_array(slices).to_pylist() == [texts[i] for i in order]
    if kind == "identity" and not partitioned:  # a file in order is freed as it is consumed
        assert still_open[len(still_open) // 2] < buckets * 0.6


def test_filters_that_keep_nothing_and_notes_without_text(small_pieces, tmp_path):
    rows = note_rows(300, seed=5, order="shuffled")
    for row in rows[1:]:
        row[10] = ""  # no text at all: nothing to map
    path = tmp_path / "NOTEEVENTS.csv.gz"
    write_notes(path, rows)
    nobody = NoteFilters(subject_ids=frozenset({10**9}))
    for use_cache in (True, True, False):  # first read, cached read, uncached read
        frame, counts = read(path, tmp_path / "cache", nobody, use_cache=use_cache)
        assert len(frame) == 0 and counts["error_notes_dropped"] == 0
        assert list(frame.columns) == list(note_stream.NOTE_DTYPES)
        frame, _ = read(path, tmp_path / "cache", use_cache=use_cache)
        assert list(zip(frame["note_id"], frame["text"], strict=True)) == expected(rows)


def test_several_files_are_read_as_one_sorted_table(small_pieces, tmp_path):
    """MIMIC-IV's discharge and radiology notes: one sort; ties of patient and time broken by file."""
    rows = note_rows(2000, seed=6, order="shuffled")
    # ROW_IDs unique across the files, but the first file holds the higher ones (as MIMIC-IV's note_seq,
    # they say nothing about the other file)
    parts = [[rows[0], *rows[1001:]], [rows[0], *rows[1:1001]]]
    for row in parts[1][1:]:
        row[4] = ""  # date only (at midnight), so times tie within and across the files
    paths = [tmp_path / "discharge.csv.gz", tmp_path / "radiology.csv.gz"]
    for path, part in zip(paths, parts, strict=True):
        write_notes(path, part)
    kept = [
        ((int(row[1]), row[4] or f"{row[3]} 00:00:00", part, int(row[0])), row[0], row[10])
        for part, part_rows in enumerate(parts)
        for row in part_rows[1:]
        if row[9] != "1"
    ]
    want = [(row_id, text) for _, row_id, text in sorted(kept)]
    assert len({key[:2] for key, _, _ in kept}) < len(kept)  # there are ties for the file to break
    cache = tmp_path / "cache"
    assert note_stream.cache_path(paths, cache).name.startswith("discharge+radiology-")
    for use_cache in (True, True, False):  # first read, cached read, uncached read
        frame, counts = read(paths, cache, use_cache=use_cache)
        assert list(zip(frame["note_id"], frame["text"], strict=True)) == want
        assert counts["error_notes_dropped"] == 2000 // 97
    before = note_stream.cache_path(paths, cache)
    write_notes(paths[1], parts[1][:10])  # either file changing changes the key
    assert note_stream.cache_path(paths, cache) != before


@pytest.mark.parametrize("patients", [np.arange(1, 251), np.array([7]), np.array([10**6, 10**6 + 1])])
def test_patient_ranges_change_speed_never_the_result(small_pieces, tmp_path, patients):
    rows = note_rows(3000, seed=7, order="runs")
    path = tmp_path / "NOTEEVENTS.csv.gz"
    write_notes(path, rows)
    for use_cache in (True, False):
        frame, _ = read(path, tmp_path / "cache", use_cache=use_cache, patients=patients)
        assert list(zip(frame["note_id"], frame["text"], strict=True)) == expected(rows)


def test_buckets_grow_so_that_large_spills_keep_few_files_open(monkeypatch, tmp_path):
    monkeypatch.setattr(text_spill, "SEGMENT_BYTES", 1000)
    monkeypatch.setattr(text_spill, "BUCKETS_PER_DOUBLING", 8)
    texts = [f"{i:04d}" * 250 for i in range(200)]  # 1,000 bytes each, one block each
    with TextSpill(tmp_path) as spill:
        for text in texts:
            spill.append(pa.array([text]))
        assert 30 < spill.open_buckets < 50  # not 200: every 8 buckets, the next ones hold twice as much
        order = np.random.default_rng(8).permutation(200)
        assert pa.chunked_array(list(spill.gather(order, 16))).to_pylist() == [texts[i] for i in order]
