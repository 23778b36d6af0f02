"""The MEDS reader's note cache (meds_notes.py): written on the first read, served on the next, keyed by
every shard's content, listed and purged by `clinpred cache info|clear --source`; off, nothing stays."""

from __future__ import annotations

import json
import os

import pandas as pd

from clinpred.data.meds_read import read_meds
from tests.meds_files import SHARD_0, SHARD_1, write_meds


def _env(tmp_path):
    return {"CLINPRED_CACHE": str(tmp_path / "cache")}


def _cached(tmp_path):
    return sorted((tmp_path / "cache" / "notes").glob("meds-*.arrow"))


def test_the_cache_is_written_once_keyed_by_every_shard_and_purged_by_source(cli, tmp_path):
    root = write_meds(tmp_path / "meds")
    e = _env(tmp_path)
    first = cli("data", "check", str(root), env=e)
    assert first.returncode == 0, first.stderr
    [cache_file] = _cached(tmp_path)
    written = cache_file.stat().st_mtime_ns
    [record] = json.loads((cache_file.parent / (cache_file.name + ".source.json")).read_text())["sources"]
    assert record["reader"] == "meds" and record["root"] == str(root.resolve())
    assert record["files"] == [str(root / "data" / s / "0.parquet") for s in ("held_out", "train")]
    assert record["synthetic"] is False  # not sealed by clinpred: credentialed
    # a second read is served from it (not rewritten); with the cache off, none is read or written
    for use_cache in (True, False):
        again = read_meds(root, use_cache=use_cache, cache_dir=cache_file.parent)
        assert again.notes["text"].tolist()[-1] == "LVEF 55%."
        assert _cached(tmp_path) == [cache_file] and cache_file.stat().st_mtime_ns == written
    # one note's text changed in one shard, same size: another key, the new text read
    changed = [dict(r) for r in SHARD_1]
    changed[3]["text_value"] = "LVEF 45%."
    write_meds(root, {"train/0.parquet": SHARD_0, "held_out/0.parquet": changed})
    os.utime(root / "data" / "held_out" / "0.parquet", ns=(written, written))
    check = cli("data", "check", str(root), env=e)
    assert check.returncode == 0, check.stderr
    assert len(_cached(tmp_path)) == 2
    assert read_meds(root, cache_dir=cache_file.parent).notes["text"].tolist()[-1] == "LVEF 45%."
    info = cli("cache", "info", env=e)
    assert info.returncode == 0, info.stderr
    said = " ".join(info.stdout.split())
    assert f"source {root.resolve()} (meds; credentialed: owner-only)" in said
    assert said.count("meds-") == 2 and "2 note cache file(s)" in said
    purge = cli("cache", "clear", "--source", str(root), env=e)
    assert purge.returncode == 0, purge.stderr
    assert "removed 2 note cache file(s)" in " ".join(purge.stdout.split())
    assert not list((tmp_path / "cache" / "notes").glob("meds-*"))  # the files and their records


def test_cached_uncached_and_filtered_reads_give_the_same_notes(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINPRED_CACHE", str(tmp_path / "cache"))
    root = write_meds(tmp_path / "meds")
    off = read_meds(root, use_cache=False)
    assert not (tmp_path / "cache" / "notes").exists() or not _cached(tmp_path)
    cold, warm = read_meds(root), read_meds(root)
    assert len(_cached(tmp_path)) == 1
    for cohort in (cold, warm):
        pd.testing.assert_frame_equal(cohort.notes, off.notes)
        assert cohort.counts == off.counts
    # notes in Cohort order across shards (held_out/0, read first, holds subject 3)
    assert off.notes["subject_id"].tolist() == [1, 1, 1, 2, 2, 3]
    assert off.notes["text"].tolist()[-1] == "LVEF 55%."
    assert off.counts["note_events_without_text_dropped"] == 1
    # the cache holds every subject; a filtered read from it equals one that never held the others
    subset = read_meds(root, subject_ids=[3], categories=["Echo", "Radiology"])
    alone = read_meds(root, subject_ids=[3], categories=["Echo", "Radiology"], use_cache=False)
    pd.testing.assert_frame_equal(subset.notes, alone.notes)
    assert subset.notes["text"].tolist() == ["LVEF 55%."]
    assert subset.counts == alone.counts and subset.counts["note_events_without_text_dropped"] == 1
