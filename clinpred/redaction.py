"""Secrets redacted by value: whatever clinpred writes or prints that can hold a setting goes through here.

Redacting a setting by its name (``api_key``) misses a key written where the name says nothing: inside
``base_url`` (``http://user:KEY@host/v1``), in a query string (``?api_key=...``), under another setting,
or quoted back by a server in an error. So every text that can hold a setting (config.json,
results.json, RESULTS.md, logs, error messages, ``config show``) is passed through :func:`redact`,
which replaces

- the credentials of a URL (its userinfo), keeping scheme, host, port and path;
- the value of a query-string or ``name=value`` parameter whose name says key, token, secret,
  signature, password or credential (``token=``, ``sig=``, ``access_token=``, ``"api_key": "..."``);
- strings shaped like API keys (``sk-...``, ``sk-proj-...``, ``hf_...``, GitHub and Slack tokens, AWS
  access key ids, Google API keys, JWTs) and the credential after ``Bearer`` / ``Basic``;
- the value of every environment variable whose name looks like a secret (``*_API_KEY``, ``*_TOKEN``,
  ``*_SECRET``, ``*PASSWORD*``, ``HF_TOKEN``, ...), and every value this process was given as a secret
  setting (:func:`remember`), wherever they appear.

What the user needs to read a result (host, path, model, every number) is kept.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

# A setting named as a secret keeps this exact text, so a reader knows where the key should come from.
REDACTED_SETTING = "<redacted: use the environment variable>"
REDACTED = "<redacted>"

_SECRET_WORDS = ("key", "token", "secret", "password", "credential", "credentials")
# A value shorter than this is not replaced by value: "1" or "true" in an environment variable would
# otherwise blank out every number. Real keys and tokens are far longer.
MIN_ENV_VALUE = 8
MIN_REMEMBERED_VALUE = 6
# Environment variable names that hold paths, not secrets (HF_TOKEN_PATH, SSH_AUTH_SOCK, PWD).
_NOT_SECRET_SUFFIXES = ("FILE", "PATH", "DIR", "SOCK", "ID", "URL", "HOST", "ENDPOINT", "USER", "USERNAME")

_remembered: set[str] = set()
_lock = threading.Lock()


def is_secret_setting(name: str) -> bool:
    """api_key, hf_token, client_secret, ...: a setting whose value is a credential."""
    key = name.lower().replace("-", "_")
    return key.rsplit("_", 1)[-1] in _SECRET_WORDS or key in ("apikey", "auth", "authorization")


def is_secret_env_name(name: str) -> bool:
    """OPENAI_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, ...: a variable that holds a credential."""
    upper = name.upper()
    parts = [p for p in re.split(r"[^A-Z0-9]+", upper) if p]
    if not parts or parts[-1] in _NOT_SECRET_SUFFIXES or upper in ("PWD", "OLDPWD"):
        return False
    words = {"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS"}
    return bool(words & set(parts)) or "PASSWORD" in upper or "SECRET" in upper


def remember(value: Any) -> None:
    """A value the user gave as a secret: redact it wherever it appears from now on in this process."""
    if isinstance(value, str) and len(value.strip()) >= MIN_REMEMBERED_VALUE:
        with _lock:
            _remembered.add(value.strip())


def remember_settings(settings: Mapping[str, Any]) -> None:
    """Remember every secret a settings mapping holds: values of secret-named keys and URL credentials."""
    for key, value in settings.items():
        if isinstance(value, Mapping):
            remember_settings(value)
        elif is_secret_setting(str(key)):
            secret = getattr(value, "get_secret_value", None)  # a pydantic SecretStr
            remember(secret() if callable(secret) else value)
        elif isinstance(value, str):
            for match in _URL_USERINFO.finditer(value):
                user, _, password = match.group(2).partition(":")
                remember(password or user)


def _known_values() -> list[str]:
    values = {v for k, v in os.environ.items() if is_secret_env_name(k) and len(v.strip()) >= MIN_ENV_VALUE}
    with _lock:
        values |= _remembered
    out: set[str] = set()
    for v in {v.strip() for v in values}:
        out |= {v, quote(v, safe=""), json.dumps(v)[1:-1]}  # as written, URL-encoded, JSON-escaped
    return sorted(out, key=len, reverse=True)  # the longest first: a key that contains another


_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#@\"'<>]+(?:@[^\s/?#@\"'<>]+)*)@")
_NAME = r"[A-Za-z0-9_.-]*?(?:key|token|secret|sig|signature|password|passwd|pwd|credential|auth)"
# name=value (a query string, a command line, a message); the name ends in a secret word; a placeholder
# (key=value, key=VALUE, api_key=...) is help text, not a secret
_PARAM = re.compile(
    rf"(?i)(?<![A-Za-z0-9_.-])({_NAME})(=)(?!<redacted|value\b|\.\.\.)([^\s&#,;\"'`<>)\]}}]+)",
)
# "name": "value" (JSON, a Python dict's repr)
_QUOTED = re.compile(rf"(?i)([\"']{_NAME}[\"']\s*:\s*)([\"'])(?!<redacted)((?:[^\"'\\]|\\.)+)\2")
# an Authorization header's credential: one with a digit in it (prose such as "Basic statistics" stays)
_AUTH_HEADER = re.compile(
    r"\b([Bb]earer|BEARER|Basic)(\s+)(?!<redacted)(?=[A-Za-z._~+/=-]*[0-9])([A-Za-z0-9._~+/=-]{8,})"
)
_KEY_SHAPES = re.compile(
    r"\b(?:"
    r"sk-(?:[A-Za-z]+-)?[A-Za-z0-9_-]{16,}"  # OpenAI (sk-, sk-proj-), Anthropic, Stripe
    r"|hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*"  # a JWT
    r")"
)


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``<redacted>``; everything else as it was."""
    if not text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)  # the user name goes too
    text = _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _KEY_SHAPES.sub(REDACTED, text)
    for value in _known_values():  # wherever else they appear
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_setting(name: str, value: Any) -> Any:
    """A setting as it may be written: a secret-named one hidden whole, any other redacted by value."""
    if is_secret_setting(name) and value:
        return REDACTED_SETTING
    return redact_value(value)


def redact_value(value: Any) -> Any:
    """Strings redacted inside dicts and lists (a secret-named key hides its value whole); the rest as is."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_setting(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def redact_lines(lines: Iterable[str]) -> list[str]:
    """Each line redacted (a log, a summary)."""
    return [redact(line) for line in lines]
