"""OpenAI embeddings (and any OpenAI-compatible or Azure OpenAI endpoint) through the real ``openai`` client.

Why this is more than one ``embeddings.create`` call: the API takes at most 2048 inputs and a total
token budget per request and at most 8191 tokens per input, rate-limits with 429 + Retry-After, and
fails now and then with 5xx or a timeout. So the backend counts tokens offline (``openai_tokens``),
truncates long notes and records how many, packs requests within both limits, keeps a bounded number
of requests in flight, retries with its own backoff (the client's retries are off so ours are the
ones that count), reassembles rows in input order by their ``index``, and, when a request fails for
good, says how far the run got. It never prints, logs or raises with note text, nor the API key.

The registry builds it as ``OpenAIBackend(**settings)``; the cache wrapper calls ``plan(texts)``
once and then ``embed(chunk)`` chunk by chunk. ``embed_batches`` yields each answered request as it
arrives, for a caller that wants to store partial progress at request granularity.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from email.utils import parsedate_to_datetime
from importlib.util import find_spec
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from clinpred.backends.base import Role, l2_normalise
from clinpred.backends.openai_tokens import CL100K_MODELS, TokenCounter, load_counter
from clinpred.errors import InputError
from clinpred.redaction import redact

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# US dollars per 1M input tokens (OpenAI's published prices for these models).
DEFAULT_PRICES: dict[str, float] = {
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    "text-embedding-ada-002": 0.10,
}
NO_KEY_MESSAGE = "no API key: set OPENAI_API_KEY or the api_key setting"
_RETRY_STATUSES = frozenset({408, 409, 429})


class OpenAISettings(BaseModel):
    """Every setting of the OpenAI backend; ``api_key`` is a secret and never printed or recorded."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(
        "text-embedding-3-small", min_length=1, description="model id, or Azure deployment name"
    )
    dimensions: int | None = Field(None, ge=1, description="server-side Matryoshka truncation (-3 models)")
    base_url: str | None = Field(None, description="default: $OPENAI_BASE_URL, else api.openai.com")
    api_key: SecretStr | None = Field(None, description="default: $OPENAI_API_KEY ($AZURE_OPENAI_API_KEY)")
    api_type: Literal["openai", "azure"] = "openai"
    azure_endpoint: str | None = Field(None, description="default: $AZURE_OPENAI_ENDPOINT")
    api_version: str | None = Field(None, description="Azure API version; default: $OPENAI_API_VERSION")
    max_inputs_per_request: int = Field(2048, ge=1, le=2048)
    max_tokens_per_input: int = Field(8191, ge=1, le=8191)
    max_tokens_per_request: int = Field(300_000, ge=1)
    max_in_flight: int = Field(4, ge=1, le=64, description="requests sent at once")
    max_retries: int = Field(5, ge=0, le=50, description="retries per request on 429, 5xx, timeouts")
    backoff_base: float = Field(0.5, ge=0, description="first backoff in seconds; doubles each retry")
    backoff_max: float = Field(30.0, ge=0, description="longest backoff and longest Retry-After honoured")
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    # an OpenAI-compatible server (vLLM, TEI, infinity) serving a prompted model such as EmbeddingGemma
    # embeds what it is sent: the model's prompts are prepended here, so its vectors match the local
    # sentence-transformers backend's (e.g. document_prompt="title: none | text: ")
    document_prompt: str = Field("", description="prepended to every document (notes)")
    query_prompt: str = Field("", description="prepended to every query")
    token_counter: Literal["auto", "estimate"] = "auto"
    prices_per_million_tokens: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES))


class EmbeddingRequestError(InputError):
    """A request failed for good; the message says how far the run got, never any note text."""


def _settings_from(kwargs: Mapping[str, Any]) -> OpenAISettings:
    try:
        return OpenAISettings(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise InputError(f"bad openai backend setting: {problems}") from None


def _resolve_key(settings: OpenAISettings) -> str | None:
    if settings.api_key is not None and settings.api_key.get_secret_value():
        return settings.api_key.get_secret_value()
    names = ["AZURE_OPENAI_API_KEY", "OPENAI_API_KEY"] if settings.api_type == "azure" else ["OPENAI_API_KEY"]
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _openai_installed() -> bool:
    try:
        return find_spec("openai") is not None
    except (ValueError, ImportError):  # sys.modules["openai"] = None marks it blocked
        return False


def openai_status(settings: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    """(available, why not) for ``clinpred backends list``; makes no network call."""
    try:
        parsed = OpenAISettings(**(settings or {}))
    except ValidationError as exc:
        return False, f"bad settings: {exc.errors()[0]['msg']}"
    return _status(parsed)


def _status(settings: OpenAISettings) -> tuple[bool, str]:
    if not _openai_installed():
        return False, "the openai package is not installed: pip install 'clinpred[openai]'"
    if _resolve_key(settings) is None:
        if settings.api_type == "azure":
            return False, "no API key: set AZURE_OPENAI_API_KEY (or OPENAI_API_KEY) or the api_key setting"
        return False, NO_KEY_MESSAGE
    return True, ""


class _Failed(Exception):
    """A request failed for good; ``reason`` is safe to show (status, error type, scrubbed message)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OpenAIBackend:
    """Embeds texts with an OpenAI embedding model: float32, L2-normalised, rows in input order."""

    name = "openai"
    sends_text_off_machine = True

    def __init__(self, **settings: Any) -> None:
        self.settings = _settings_from(settings)
        self.counter: TokenCounter = load_counter(self.settings.token_counter)
        s = self.settings
        if s.api_type == "azure":
            endpoint = s.azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
            if not endpoint:
                raise InputError("api_type azure needs the azure_endpoint setting or $AZURE_OPENAI_ENDPOINT")
            version = s.api_version or os.environ.get("OPENAI_API_VERSION")
            if not version:
                raise InputError("api_type azure needs the api_version setting or $OPENAI_API_VERSION")
            self._endpoint, self._api_version = endpoint, version
        else:
            self._endpoint = s.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
            self._api_version = None
        if urlsplit(self._endpoint).scheme not in ("http", "https") or not urlsplit(self._endpoint).hostname:
            setting = "azure_endpoint" if s.api_type == "azure" else "base_url"
            raise InputError(f"the {setting} setting must be an http(s) URL, e.g. {DEFAULT_BASE_URL}")
        self._client: Any = None
        self._lock = threading.Lock()
        self._prepared: dict[str, tuple[str, int, bool]] = {}
        self._stats = {
            "texts": 0,
            "tokens": 0,
            "truncated": 0,
            "empty_replaced": 0,
            "requests": 0,
            "retries": 0,
            "failed_requests": 0,
        }
        self._progress = {"texts": 0, "requests": 0, "planned_texts": 0, "planned_requests": 0}
        self._planned = False

    # -- identity ------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """Where the text goes: host[:port] of the endpoint, without credentials or path."""
        parts = urlsplit(self._endpoint)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "?"

    def fingerprint(self) -> str:
        """Provider, host, model, dimensions, per-input token cap and counter: what makes vectors comparable."""
        s = self.settings
        dim = s.dimensions if s.dimensions is not None else "native"
        prompts = (
            f":prompts={json.dumps([s.document_prompt, s.query_prompt])}"
            if s.document_prompt or s.query_prompt
            else ""  # no prompt: the fingerprint (and the cache) of every earlier run stays valid
        )
        return (
            f"openai:{s.api_type}:{self.host}:{s.model}:dim={dim}"
            f":max_tokens={s.max_tokens_per_input}:counter={self.counter.name}{prompts}"
        )

    def _prompted(self, texts: Sequence[str], role: Role) -> list[str]:
        """The texts as sent: the role's prompt first (none by default)."""
        prompt = self.settings.query_prompt if role == "query" else self.settings.document_prompt
        return [prompt + t for t in texts] if prompt else list(texts)

    @property
    def preferred_chunk_size(self) -> int:
        """Texts per ``embed`` call for the cache: enough to fill every request slot in flight, so that
        chunking keeps the concurrency, while a failure loses at most one chunk of answered requests."""
        return self.settings.max_inputs_per_request * self.settings.max_in_flight

    @property
    def tokens_exact(self) -> bool:
        """Counts are exact only with the real cl100k_base file and a model that uses it."""
        return self.counter.exact and (
            self.settings.model in CL100K_MODELS or self.settings.api_type == "azure"
        )

    @property
    def stats(self) -> dict[str, int]:
        """Running totals: texts, tokens sent, inputs truncated, empty inputs replaced, requests, retries."""
        with self._lock:
            return dict(self._stats)

    def describe(self) -> dict[str, Any]:
        """Everything that identifies this run's embeddings, for the results; never the API key."""
        s = self.settings
        return {
            "backend": self.name,
            "fingerprint": self.fingerprint(),
            "api_type": s.api_type,
            "host": self.host,
            "api_version": self._api_version,
            "model": s.model,
            "dimensions": s.dimensions,
            "max_inputs_per_request": s.max_inputs_per_request,
            "max_tokens_per_input": s.max_tokens_per_input,
            "max_tokens_per_request": s.max_tokens_per_request,
            "max_in_flight": s.max_in_flight,
            "max_retries": s.max_retries,
            "timeout": s.timeout,
            "document_prompt": s.document_prompt,
            "query_prompt": s.query_prompt,
            "token_counter": self.counter.name,
            "token_counts_exact": self.tokens_exact,
            "sends_text_off_machine": self.sends_text_off_machine,
            "openai_version": _package_version("openai"),
            "stats": self.stats,
        }

    # -- planning ------------------------------------------------------------------------------
    def _prepare_one(self, text: str) -> tuple[str, int, bool]:
        if not text.strip():
            return " ", 1, False  # the API refuses empty input; one space embeds as "nothing said"
        return self.counter.truncate(text, self.settings.max_tokens_per_input)

    def _prepare(self, texts: Sequence[str]) -> list[tuple[str, int, bool]]:
        out = []
        for text in texts:
            hit = self._prepared.get(text)
            out.append(hit if hit is not None else self._prepare_one(text))
        return out

    def _pack(self, counts: Sequence[int]) -> list[tuple[int, int]]:
        """Consecutive [start, end) ranges within the input-count and token-budget limits."""
        s = self.settings
        batches: list[tuple[int, int]] = []
        start, budget = 0, 0
        for i, n in enumerate(counts):
            if i > start and (i - start >= s.max_inputs_per_request or budget + n > s.max_tokens_per_request):
                batches.append((start, i))
                start, budget = i, 0
            budget += n
        if counts:
            batches.append((start, len(counts)))
        return batches

    def plan(self, texts: Sequence[str]) -> str:
        """One line for the user before anything is sent: texts, tokens, truncations, requests, cost."""
        texts = self._prompted(texts, "document")  # what plan counts is what embed will send
        unique = list(dict.fromkeys(texts))
        self._prepared = dict(zip(unique, self._prepare(unique), strict=True))
        prepared = [self._prepared[t] for t in texts]
        counts = [n for _, n, _ in prepared]
        tokens = sum(counts)
        truncated = sum(1 for *_, cut in prepared if cut)
        chunk = self.preferred_chunk_size  # the cache embeds in chunks of this size: count as it will send
        requests = sum(len(self._pack(counts[i : i + chunk])) for i in range(0, len(counts), chunk))
        with self._lock:
            self._progress = {
                "texts": 0,
                "requests": 0,
                "planned_texts": len(texts),
                "planned_requests": requests,
            }
            self._planned = True
        s = self.settings
        price = s.prices_per_million_tokens.get(s.model)
        cost = (
            f"estimated cost ${tokens * price / 1e6:,.6f}" if price is not None else "cost unknown (no price)"
        )
        kind = "exact" if self.tokens_exact else f"estimated, {self.counter.name}"
        where = f"{s.model} at {self.host}" + (f" ({s.dimensions}-d)" if s.dimensions else "")
        return (
            f"OpenAI {where}: {len(texts):,} texts, {tokens:,} tokens ({kind}), "
            f"{truncated:,} to be truncated to {s.max_tokens_per_input:,} tokens, "
            f"{requests:,} requests (at most {s.max_in_flight} in flight), {cost}"
        )

    def check_ready(self) -> None:
        """Raise InputError now (no key, no openai package) rather than after the cohort is read."""
        ok, why = _status(self.settings)
        if not ok:
            raise InputError(f"the openai backend cannot run: {why}")

    # -- embedding -----------------------------------------------------------------------------
    def _get_client(self) -> Any:
        if self._client is None:
            ok, why = _status(self.settings)
            if not ok:
                raise InputError(f"the openai backend cannot run: {why}")
            key = _resolve_key(self.settings)
            import openai

            s = self.settings
            if s.api_type == "azure":
                self._client = openai.AzureOpenAI(
                    api_key=key,
                    azure_endpoint=self._endpoint,
                    api_version=self._api_version,
                    max_retries=0,
                    timeout=s.timeout,
                )
            else:
                self._client = openai.OpenAI(
                    api_key=key, base_url=self._endpoint, max_retries=0, timeout=s.timeout
                )
        return self._client

    def embed(self, texts: Sequence[str], *, role: Role = "document") -> np.ndarray:
        """float32 (len(texts), dim), L2-normalised, in input order; ``role`` picks the prompt (if any)."""
        texts = list(texts)
        if not texts:
            dim = self.settings.dimensions or 0
            return np.zeros((0, dim), dtype=np.float32)
        out: np.ndarray | None = None
        for idx, vectors in self.embed_batches(texts, role=role):
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            if vectors.shape[1] != out.shape[1]:
                raise InputError(
                    f"OpenAI endpoint {self.host} returned vectors of {vectors.shape[1]} and {out.shape[1]} "
                    f"dimensions for model {self.settings.model}: check the model and dimensions settings"
                )
            out[idx] = vectors
        assert out is not None
        return out

    def embed_batches(
        self, texts: Sequence[str], *, role: Role = "document"
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row indices into ``texts``, float32 L2-normalised vectors) as each request is answered."""
        texts = self._prompted(texts, role)
        if not texts:
            return
        client = self._get_client()
        prepared = self._prepare(texts)
        for t in texts:
            self._prepared.pop(t, None)
        batches = self._pack([n for _, n, _ in prepared])
        with self._lock:
            self._stats["texts"] += len(texts)
            self._stats["tokens"] += sum(n for _, n, _ in prepared)
            self._stats["truncated"] += sum(1 for *_, cut in prepared if cut)
            self._stats["empty_replaced"] += sum(1 for t in texts if not t.strip())
            if not self._planned:  # no plan(): this call is the whole run
                self._progress = {
                    "texts": 0,
                    "requests": 0,
                    "planned_texts": len(texts),
                    "planned_requests": len(batches),
                }
        abort = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.settings.max_in_flight, thread_name_prefix="openai-embed")
        pending: dict[Future, tuple[int, int]] = {}
        try:
            for start, end in batches:
                inputs = [p[0] for p in prepared[start:end]]
                pending[pool.submit(self._request, client, inputs, abort)] = (start, end)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    start, end = pending.pop(fut)
                    try:
                        vectors = fut.result()
                    except _Failed as exc:
                        abort.set()
                        raise self._failure(exc.reason) from None
                    with self._lock:
                        self._progress["texts"] += end - start
                        self._progress["requests"] += 1
                    yield np.arange(start, end), vectors
        finally:
            abort.set()
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _failure(self, reason: str) -> EmbeddingRequestError:
        with self._lock:
            self._stats["failed_requests"] += 1
            p = dict(self._progress)
        total_requests = max(p["planned_requests"], p["requests"] + 1)
        return EmbeddingRequestError(
            f"OpenAI embeddings failed after {p['requests']:,} of {total_requests:,} requests "
            f"({p['texts']:,} of {p['planned_texts']:,} texts embedded; chunks already answered are kept in "
            f"the cache, so a rerun embeds only what is missing): {reason}"
        )

    def _request(self, client: Any, inputs: list[str], abort: threading.Event) -> np.ndarray:
        """One request with retries; returns its rows ordered by ``index``, L2-normalised."""
        import openai

        s = self.settings
        extra: dict[str, Any] = {"dimensions": s.dimensions} if s.dimensions is not None else {}
        attempt = 0
        while True:
            if abort.is_set():
                raise _Failed("cancelled after another request failed")
            wait_for: float | None = None
            try:
                with self._lock:
                    self._stats["requests"] += 1
                response = client.embeddings.create(model=s.model, input=inputs, **extra)
                return self._rows(response, len(inputs))
            except openai.APITimeoutError:
                reason = f"request timed out after {s.timeout:g} s (the timeout setting)"
            except openai.APIConnectionError as exc:
                reason = f"could not connect to {self.host}: {type(exc.__cause__ or exc).__name__}"
            except openai.APIStatusError as exc:
                reason = _status_reason(exc, inputs)
                if exc.status_code in (401, 403):
                    raise _Failed(
                        f"{reason}; check the API key (OPENAI_API_KEY or the api_key setting)"
                    ) from None
                if exc.status_code < 500 and exc.status_code not in _RETRY_STATUSES:
                    raise _Failed(reason) from None
                wait_for = _retry_after(exc.response.headers)
            except (ValueError, openai.APIResponseValidationError) as exc:  # unparsable JSON, misfit rows
                raise _Failed(
                    f"the endpoint at {self.host} sent a malformed response ({type(exc).__name__}: "
                    f"{redact(str(exc))[:200]}); "
                    "is base_url an OpenAI-compatible embeddings API?"
                ) from None
            except openai.OpenAIError as exc:
                raise _Failed(f"the openai client failed: {type(exc).__name__}") from None
            if attempt >= s.max_retries:
                raise _Failed(f"{reason} (gave up after {attempt + 1} attempts; max_retries={s.max_retries})")
            delay = min(s.backoff_max, s.backoff_base * 2**attempt)
            if wait_for is not None:
                delay = min(max(wait_for, 0.0), max(s.backoff_max, 0.0))
            attempt += 1
            with self._lock:
                self._stats["retries"] += 1
            if abort.wait(delay):
                raise _Failed("cancelled after another request failed")

    def _rows(self, response: Any, n: int) -> np.ndarray:
        data = getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else "no"
            raise ValueError(f"expected {n} embeddings, got {got}")
        index = [getattr(row, "index", None) for row in data]
        if sorted(i for i in index if isinstance(i, int)) != list(range(n)):
            raise ValueError("response rows do not carry the indices 0..n-1")
        try:
            matrix = np.asarray(
                [row.embedding for row in sorted(data, key=lambda r: r.index)], dtype=np.float32
            )
        except (TypeError, AttributeError) as exc:
            raise ValueError("embedding rows are not numeric vectors of one length") from exc
        if matrix.ndim != 2 or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
            raise ValueError("embedding rows are not finite vectors of one length")
        dims = self.settings.dimensions
        if dims is not None and matrix.shape[1] != dims:
            raise ValueError(f"asked for {dims} dimensions, got {matrix.shape[1]}")
        return l2_normalise(matrix)


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, else Retry-After (seconds or HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def _status_reason(exc: Any, inputs: Sequence[str]) -> str:
    """'HTTP 500 server_error: message', with the server's message dropped if it quotes any input."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    kind = error.get("code") or error.get("type") or ""
    message = redact(str(error.get("message") or ""))[:300]  # a refused key is quoted back by OpenAI
    if message and _quotes_input(message, inputs):
        message = "(server message withheld: it quotes the input)"
    parts = [f"HTTP {exc.status_code}", str(kind) if kind else "", message]
    return " ".join(p for p in parts if p).strip()


def _quotes_input(message: str, inputs: Sequence[str], window: int = 16) -> bool:
    """Whether any ``window``-character stretch of ``message`` appears in one of the inputs."""
    if len(message) < window:
        return any(message in t for t in inputs)
    joined = "\x00".join(inputs)
    return any(message[i : i + window] in joined for i in range(0, len(message) - window + 1))
