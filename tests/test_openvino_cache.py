"""`clinpred cache info` lists engine=openvino's exports and `cache clear` removes them, and nothing else.

The export is real: the bundled MiniLM, copied owner-only as a model fine-tuned on credentialed notes
would be, exported by the engine itself into the layout it writes (``<cache>/openvino/<key>/``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clinpred.backends.openvino_engine import EXPORT_RECORD, export_folder, openvino_missing

pytestmark = pytest.mark.skipif(
    openvino_missing() is not None, reason="the 'openvino' extra is not installed"
)


def _bytes(folder: Path) -> int:
    return sum(os.path.getsize(Path(d) / f) for d, _, files in os.walk(folder) for f in files)


def test_cache_info_lists_exports_and_clear_removes_only_clinpreds(
    cli, tmp_path: Path, minilm_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CLINPRED_CACHE", str(cache))
    model = tmp_path / "finetuned"
    shutil.copytree(minilm_path, model)
    model.chmod(0o700)  # as a model fine-tuned on credentialed notes is written
    export = export_folder(model, "weights-of-this-test", "my-finetuned-model", announce=False)
    root = cache / "openvino"
    assert export.parent == root and (export / EXPORT_RECORD).is_file()

    incomplete = root / ("a" * 64)  # a key-named folder without its record: the engine would replace it
    incomplete.mkdir()
    (incomplete / "openvino_model.bin").write_bytes(b"x" * 10)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid names no process now
    stale = root / f".{'b' * 64}.{dead.pid}.tmp-k1ll"  # an export killed while being written
    stale.mkdir()
    (stale / "openvino_model.xml").write_bytes(b"y" * 7)
    live = root / f".{'c' * 64}.{os.getpid()}.tmp-l1ve"  # an export being written right now
    live.mkdir()
    foreign = root / "my-notes"  # not clinpred's: never deleted
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    hex_file = root / ("d" * 64)  # named like an export but a file: not clinpred's
    hex_file.write_text("mine too")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (root / ("e" * 64)).symlink_to(outside, target_is_directory=True)  # a link: left, target untouched

    env = {"CLINPRED_CACHE": str(cache), "COLUMNS": "300"}
    info = cli("cache", "info", env=env)
    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    line = next(x for x in lines if export.name[:12] in x)
    size = _bytes(export)
    assert size > 1_000_000  # the model's weights are in it
    assert line.split() == [
        "export",
        export.name[:12],
        "my-finetuned-model",
        f"{size:,}",
        "bytes",
        "exported",
        line.split()[6],
        "mode",
        "0700",  # no more readable than the model it was exported from
    ]
    assert f"incomplete {'a' * 12}  -  10 bytes" in info.stdout
    assert f"left by a killed export {stale.name}  -  7 bytes" in info.stdout
    assert f"3 OpenVINO export(s), {size + 17:,} bytes" in lines
    assert live.name not in info.stdout and "my-notes" not in info.stdout and "d" * 12 not in info.stdout

    for part in ("--embeddings", "--notes"):  # a part of the cache: the exports stay
        assert cli("cache", "clear", part, env=env).returncode == 0
        assert export.is_dir()

    cleared = cli("cache", "clear", env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert f"removed 3 OpenVINO export folder(s) from {root}" in cleared.stdout
    assert not export.exists() and not incomplete.exists() and not stale.exists()
    assert live.is_dir() and (foreign / "keep.txt").read_text() == "mine" and hex_file.is_file()
    assert (root / ("e" * 64)).is_symlink() and (outside / "keep.txt").read_text() == "mine"
    assert not [p for p in root.iterdir() if p.name.startswith(f".{export.name}")]  # no half-deleted copy
    after = cli("cache", "info", env=env)
    assert "0 OpenVINO export(s), 0 bytes" in after.stdout
