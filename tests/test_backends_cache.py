"""The embedding cache: once per fingerprint, ever; survives kill -9; shared by processes; no text on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clinpred.backends import CachedBackend, EmbeddingCache, create_backend
from clinpred.backends.cache import fingerprint_key
from clinpred.backends.tfidf import TfidfBackend

REPO = Path(__file__).resolve().parents[1]
SECRET = "Mr Zebediah Quillfeather, MRN 99817, admitted for xylophone-induced tachycardia"

# A worker process: fits TF-IDF deterministically, embeds texts [start, stop) through the cache.
WORKER = """
import json, sys
from clinpred.backends import CachedBackend, EmbeddingCache
from clinpred.backends.tfidf import TfidfBackend

root, start, stop, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
texts = [f"note {i}: patient {i % 97} with fever {i % 13} and cough {i % 7} day {i}" for i in range(stop)]
backend = TfidfBackend(n_components=16, min_df=1).fit(texts[:200])
cached = CachedBackend(backend, EmbeddingCache(root), progress=False, chunk_size=chunk)
vectors = cached.embed(texts[start:stop])
fresh = backend.embed(texts[start:stop])
print(json.dumps({"embedded": cached.last_embedded, "fingerprint": backend.fingerprint(),
                  "max_diff": float(abs(vectors - fresh).max())}))
"""


def _worker(tmp_path: Path, root: Path, start: int, stop: int, chunk: int) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(root), str(start), str(stop), str(chunk)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def minilm(minilm_path: Path):
    return create_backend("sentence-transformers", {"model": str(minilm_path), "device": "cpu"})


def test_cached_vectors_equal_fresh_ones_and_each_text_is_embedded_once(minilm, tmp_path: Path):
    texts = ["CXR: small left effusion.", "Sinus tachycardia.", "CXR: small left effusion.", SECRET]
    cached = CachedBackend(minilm, EmbeddingCache(tmp_path), progress=False, chunk_size=2)
    cold = cached.embed(texts)
    assert cached.last_embedded == 3  # the duplicate is embedded once
    np.testing.assert_allclose(cold, minilm.embed(texts), atol=1e-6)
    warm = cached.embed(list(reversed(texts)))
    assert cached.last_embedded == 0
    np.testing.assert_array_equal(warm, cold[::-1])
    queries = cached.embed(texts[:1], role="query")  # another role is another key
    assert cached.last_embedded == 1
    np.testing.assert_allclose(queries, cold[:1], atol=1e-6)  # MiniLM has no prompts
    fresh_cache = CachedBackend(minilm, EmbeddingCache(tmp_path), progress=False)
    np.testing.assert_array_equal(fresh_cache.embed(texts), cold)
    assert fresh_cache.last_embedded == 0
    assert cached.fingerprint() == minilm.fingerprint() and cached.describe()["dimension"] == 384


def test_no_text_is_stored_on_disk(minilm, tmp_path: Path):
    CachedBackend(minilm, EmbeddingCache(tmp_path), progress=False).embed([SECRET, "plain"])
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".shard" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in ("Quillfeather", "xylophone", "99817"):
            assert needle.encode() not in data, path
            assert needle.encode("utf-16-le") not in data, path


def test_plan_is_printed_for_missing_texts_only(tmp_path: Path, capsys: pytest.CaptureFixture):
    class PlannedTfidf(TfidfBackend):
        def plan(self, texts):
            return f"PLAN: {len(texts)} texts to embed"

    backend = PlannedTfidf(n_components=4, min_df=1).fit([f"fever day {i}" for i in range(20)])
    cached = CachedBackend(backend, EmbeddingCache(tmp_path), progress=True)
    cached.embed(["fever day 1", "fever day 2"])
    cached.embed(["fever day 1", "fever day 2", "fever day 3"])
    assert "PLAN: 2 texts" in capsys.readouterr().err
    CachedBackend(backend, EmbeddingCache(tmp_path), progress=True).embed(["fever day 4", "fever day 1"])
    assert "PLAN: 1 texts" in capsys.readouterr().err
    CachedBackend(backend, EmbeddingCache(tmp_path), progress=False).embed(["fever day 5"])
    assert "PLAN" not in capsys.readouterr().err


def test_kill_9_mid_run_resumes_with_only_the_missing_texts(tmp_path: Path):
    root = tmp_path / "cache"
    process = _worker(tmp_path, root, 0, 1500, 1)
    deadline = time.monotonic() + 120
    shards: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None:
        shards = list(root.glob("*/shards/*.shard"))
        if len(shards) >= 20:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the worker finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (directory,) = root.iterdir()
    before = EmbeddingCache(root).info()[0].vectors
    assert 20 <= before < 1500
    resumed = _finish(_worker(tmp_path, root, 0, 1500, 100))
    assert resumed["embedded"] == 1500 - before
    assert resumed["max_diff"] < 1e-6
    assert directory.name == fingerprint_key(resumed["fingerprint"])
    again = _finish(_worker(tmp_path, root, 0, 1500, 100))
    assert again["embedded"] == 0 and again["max_diff"] < 1e-6
    index = json.loads((directory / "index.json").read_text())
    assert set(index["shards"]) == {p.name for p in (directory / "shards").glob("*.shard")}


def test_concurrent_writers_never_corrupt_the_cache(tmp_path: Path):
    root = tmp_path / "cache"
    first, second = _worker(tmp_path, root, 0, 600, 3), _worker(tmp_path, root, 300, 900, 3)
    a, b = _finish(first), _finish(second)
    assert a["fingerprint"] == b["fingerprint"]
    assert a["max_diff"] < 1e-6 and b["max_diff"] < 1e-6
    check = _finish(_worker(tmp_path, root, 0, 900, 50))
    assert check["embedded"] == 0 and check["max_diff"] < 1e-6
    (entry,) = EmbeddingCache(root).info()
    assert entry.vectors == 900
    (directory,) = root.iterdir()
    index = json.loads((directory / "index.json").read_text())
    assert set(index["shards"]) == {p.name for p in (directory / "shards").glob("*.shard")}
    assert sum(index["shards"].values()) == a["embedded"] + b["embedded"]


def test_cache_info_and_clear_through_the_cli(tmp_path: Path, cli):
    root = tmp_path / "embeddings"  # what `clinpred run` uses under $CLINPRED_CACHE
    backend = TfidfBackend(n_components=4, min_df=1).fit([f"cough day {i}" for i in range(20)])
    other = TfidfBackend(n_components=3, min_df=1).fit([f"cough day {i}" for i in range(20)])
    for b in (backend, other):
        CachedBackend(b, EmbeddingCache(root), progress=False).embed(["cough day 1", "cough day 2"])
    env = {"CLINPRED_CACHE": str(tmp_path), "COLUMNS": "250"}
    info = cli("cache", "info", env=env)
    assert info.returncode == 0, info.stderr
    assert "2 fingerprint(s)" in info.stdout and fingerprint_key(backend.fingerprint())[:12] in info.stdout
    cleared = cli("cache", "clear", "--fingerprint", fingerprint_key(backend.fingerprint())[:12], env=env)
    assert cleared.returncode == 0 and "removed 1" in cleared.stdout
    assert [e.key for e in EmbeddingCache(root).info()] == [fingerprint_key(other.fingerprint())]
    missing = cli("cache", "clear", "--fingerprint", "ffffffffffff", env=env)
    assert missing.returncode == 2 and "no fingerprint matching" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert cli("cache", "clear", "--cache-dir", str(root)).returncode == 0
    assert EmbeddingCache(root).info() == []
