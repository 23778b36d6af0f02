"""The keyed seal both synthetic sources use (synthetic_seal.py; meds_seal.py under its own key)."""

from __future__ import annotations

from pathlib import Path

from clinpred.data.synthetic_seal import _seal, record_matches, sealed_record


def test_a_record_matches_only_its_files_unchanged_under_its_key(tmp_path: Path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,y\n1,2\n")
    b.write_text("z\n3\n")
    files = {"a.csv": a, "data/b.csv": b}  # the names are the caller's: any {name: path}
    record = sealed_record({"written_by": "test"}, files, key=b"k1")
    assert record["files"] == {
        "a.csv": {"bytes": 8, "sha256": record["files"]["a.csv"]["sha256"]},
        "data/b.csv": {"bytes": 4, "sha256": record["files"]["data/b.csv"]["sha256"]},
    }
    assert record_matches(record, files, key=b"k1")
    assert not record_matches(record, files, key=b"k2")  # another kind of seal
    assert not record_matches(record, {"a.csv": a}, key=b"k1")  # a file missing
    assert not record_matches(record, {**files, "c.csv": a}, key=b"k1")  # a file added
    assert not record_matches({**record, "written_by": "me"}, files, key=b"k1")  # the seal broken
    assert not record_matches(None, files, key=b"k1") and not record_matches({"files": []}, files)
    odd: dict = {"files": {"a.csv": "not a record"}}
    odd["seal"] = _seal(odd, b"k1")
    assert not record_matches(odd, {"a.csv": a}, key=b"k1")  # an intact seal over an odd entry: no crash
    b.write_text("w\n3\n")  # same size, other content: caught by the sha256
    assert not record_matches(record, files, key=b"k1")
