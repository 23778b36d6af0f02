"""A real HTTP server on 127.0.0.1 that speaks the OpenAI embeddings API, for testing the real client.

It answers POST /v1/embeddings and Azure's /openai/deployments/{deployment}/embeddings?api-version=...,
in either ``encoding_format`` (the client asks for base64 unless told otherwise), with rows in reverse
order so that a client which ignores ``index`` gets them wrong. Faults are scripted per request:
429 with Retry-After, 500, a slow answer (for timeouts), malformed JSON. It records every request
(path, query, headers, body, arrival time) and the largest number of requests it held at once.

Vectors are a deterministic function of the text (``vector_for``), deliberately not unit length, so a
test can compute what the backend must return.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

DEFAULT_DIM = 16


def vector_for(text: str, dim: int = DEFAULT_DIM) -> np.ndarray:
    """The server's (unnormalised, float32) embedding of ``text``: seeded by a hash of the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(dim) * 3.0 + 0.5).astype(np.float32)


@dataclass
class Fault:
    """What the server does to one request instead of (or before) answering normally."""

    kind: str  # "429", "500", "401", "slow", "malformed", "missing_row", "ok"
    retry_after: str | None = None  # Retry-After header value for 429
    retry_after_ms: str | None = None  # retry-after-ms header value for 429
    seconds: float = 0.0  # delay for "slow"


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]
    arrived: float
    status: int = 0

    @property
    def inputs(self) -> list[str]:
        value = self.body.get("input", [])
        return [value] if isinstance(value, str) else list(value)


@dataclass
class EmbeddingServer:
    """Start with ``start()`` (or as a context manager); ``url`` is the OpenAI-style base URL."""

    delay: float = 0.0  # every request is held this long, so concurrency is observable
    requests: list[Recorded] = field(default_factory=list)
    faults: deque = field(default_factory=deque)
    fail_from: int | None = None  # requests numbered >= this (0-based) all answer 500
    max_concurrent: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._current = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> EmbeddingServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> EmbeddingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def script(self, *faults: Fault) -> None:
        """Queue faults for the next requests, in order; after them, requests are answered normally."""
        self.faults.extend(faults)

    # -- handling --------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length", "0"))
        raw = h.rfile.read(length)
        split = urlsplit(h.path)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        rec = Recorded(
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
            arrived=time.monotonic(),
        )
        with self._lock:
            number = len(self.requests)
            self.requests.append(rec)
            fault = self.faults.popleft() if self.faults else Fault("ok")
            if self.fail_from is not None and number >= self.fail_from:
                fault = Fault("500")
            self._current += 1
            self.max_concurrent = max(self.max_concurrent, self._current)
        try:
            if self.delay:
                time.sleep(self.delay)
            if not (split.path == "/v1/embeddings" or split.path.startswith("/openai/deployments/")):
                self._send(
                    h, rec, 404, {"error": {"message": "no such route", "type": "invalid_request_error"}}
                )
            elif fault.kind == "429":
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
                if fault.retry_after_ms is not None:
                    headers["retry-after-ms"] = fault.retry_after_ms
                error = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
                self._send(h, rec, 429, {"error": error}, headers)
            elif fault.kind == "500":
                self._send(
                    h, rec, 500, {"error": {"message": "The server had an error", "type": "server_error"}}
                )
            elif fault.kind == "401":  # as OpenAI does: the refused key quoted back (abridged by OpenAI)
                key = rec.headers.get("authorization", "").removeprefix("Bearer ")
                error = {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error",
                         "code": "invalid_api_key"}  # fmt: skip
                self._send(h, rec, 401, {"error": error})
            elif fault.kind == "missing_row":
                answer = self._answer(body)
                answer["data"] = answer["data"][1:]
                self._send(h, rec, 200, answer)
            elif fault.kind == "malformed":
                self._send_raw(h, rec, 200, b'{"object": "list", "data": [{"embedding": ', {})
            else:
                if fault.kind == "slow":
                    time.sleep(fault.seconds)
                self._send(h, rec, 200, self._answer(body))
        finally:
            with self._lock:
                self._current -= 1

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs
        dim = int(body.get("dimensions") or DEFAULT_DIM)
        fmt = body.get("encoding_format", "float")
        rows = []
        for i, text in enumerate(inputs):
            vec = vector_for(text, dim)
            emb: Any = (
                base64.b64encode(vec.astype("<f4").tobytes()).decode() if fmt == "base64" else vec.tolist()
            )
            rows.append({"object": "embedding", "index": i, "embedding": emb})
        rows.reverse()
        tokens = sum(len(t.split()) for t in inputs)
        return {
            "object": "list",
            "data": rows,
            "model": body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        rec: Recorded,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_raw(h, rec, status, json.dumps(payload).encode(), headers or {})

    def _send_raw(
        self, h: BaseHTTPRequestHandler, rec: Recorded, status: int, data: bytes, headers: dict[str, str]
    ) -> None:
        rec.status = status
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                h.send_header(key, value)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass
