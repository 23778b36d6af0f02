"""Backends by name: the built-ins, registered by import path, plus the ``clinpred.backends`` entry points.

Built-ins are named by ``module:attribute`` strings and imported only when used, so the registry works
without the optional extras (``models``, ``openai``) and even before an optional module exists. A team
adds a backend by installing a package that declares::

    [project.entry-points."clinpred.backends"]
    my-model = "my_package.backend:MyBackend"

The entry point loads a callable (a class or a factory) called with the settings as keyword
arguments; it returns an ``EmbeddingBackend``. If the callable has a ``status()`` attribute returning
``(available, reason)``, ``clinpred backends list`` shows it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from clinpred.errors import InputError
from clinpred.redaction import redact, remember_settings

ENTRY_POINT_GROUP = "clinpred.backends"
BUILT_IN = "built-in"


class BackendStatus(BaseModel):
    """One row of ``clinpred backends list``: can this backend run here, and if not, why not."""

    model_config = ConfigDict(frozen=True)

    name: str
    available: bool
    reason: str
    source: str  # "built-in" or the distribution that declares the entry point


@dataclass(frozen=True)
class _BuiltIn:
    factory: str  # "module:attribute" of the callable that takes **settings
    status: str  # "module:attribute" of a function () -> (available, reason)
    extra: str | None  # the pip extra the module needs, named in the reason when an import fails


_BUILT_INS: dict[str, _BuiltIn] = {
    "gemma-base": _BuiltIn(
        "clinpred.backends.sentence_transformers_backend:gemma_base",
        "clinpred.backends.sentence_transformers_backend:gemma_base_status",
        "models",
    ),
    "gemma-finetuned": _BuiltIn(
        "clinpred.backends.sentence_transformers_backend:gemma_finetuned",
        "clinpred.backends.sentence_transformers_backend:gemma_finetuned_status",
        "models",
    ),
    "sentence-transformers": _BuiltIn(
        "clinpred.backends.sentence_transformers_backend:sentence_transformers",
        "clinpred.backends.sentence_transformers_backend:sentence_transformers_status",
        "models",
    ),
    "tfidf": _BuiltIn("clinpred.backends.tfidf:TfidfBackend", "clinpred.backends.tfidf:tfidf_status", None),
    "openai": _BuiltIn(
        "clinpred.backends.openai_backend:OpenAIBackend",
        "clinpred.backends.openai_backend:openai_status",
        "openai",
    ),
}


def _import_attribute(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _import_failure_reason(path: str, extra: str | None, exc: ImportError) -> str:
    """Why a built-in cannot be imported, phrased as what the user can do about it."""
    module_name = path.partition(":")[0]
    missing = getattr(exc, "name", None) or ""
    if missing == module_name or (missing and module_name.startswith(missing + ".")):
        return f"{module_name} is not part of this installation of clinpred"
    if extra:
        return f"needs the '{extra}' extra ({missing or exc}): pip install 'clinpred[{extra}]'"
    return f"cannot be imported: {exc}"


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _source(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "entry point"


def list_backends() -> list[BackendStatus]:
    """Every backend clinpred knows, built-in first, with whether it can run here and why not.

    A reason is redacted by value: a plug-in's status or import error can quote a URL with its key.
    """
    return [row.model_copy(update={"reason": redact(row.reason)}) for row in _backend_rows()]


def _backend_rows() -> list[BackendStatus]:
    rows: list[BackendStatus] = []
    for name, spec in _BUILT_INS.items():
        try:
            status_fn = _import_attribute(spec.status)
            available, reason = status_fn()
        except ImportError as exc:
            available, reason = False, _import_failure_reason(spec.status, spec.extra, exc)
        rows.append(BackendStatus(name=name, available=available, reason=reason, source=BUILT_IN))
    for ep in _entry_points():
        source = _source(ep)
        if ep.name in _BUILT_INS:
            rows.append(
                BackendStatus(
                    name=ep.name,
                    available=False,
                    reason=f"ignored: the name is taken by a built-in backend ({ep.value})",
                    source=source,
                )
            )
            continue
        try:
            factory = ep.load()
        except Exception as exc:  # a third-party package can fail in any way; report it, never crash the list
            rows.append(
                BackendStatus(
                    name=ep.name,
                    available=False,
                    reason=f"cannot load {ep.value}: {type(exc).__name__}: {exc}",
                    source=source,
                )
            )
            continue
        status = getattr(factory, "status", None)
        available, reason = (True, "") if not callable(status) else status()
        rows.append(BackendStatus(name=ep.name, available=bool(available), reason=str(reason), source=source))
    return rows


def _factory_for(name: str) -> Callable[..., Any]:
    spec = _BUILT_INS.get(name)
    if spec is not None:
        try:
            return _import_attribute(spec.factory)
        except ImportError as exc:
            raise InputError(
                f"backend '{name}' cannot run here: {_import_failure_reason(spec.factory, spec.extra, exc)}"
            ) from None
    for ep in _entry_points():
        if ep.name == name:
            try:
                return ep.load()
            except Exception as exc:
                raise InputError(
                    f"backend '{name}' from package '{_source(ep)}' cannot be loaded ({ep.value}): "
                    f"{type(exc).__name__}: {exc}. Reinstall that package or pick another backend."
                ) from None
    known = sorted(set(_BUILT_INS) | {ep.name for ep in _entry_points()})
    raise InputError(
        f"unknown backend '{name}'. Known backends: {', '.join(known)} "
        "(`clinpred backends list` shows which can run here)."
    )


def describe_validation_error(backend: str, exc: ValidationError) -> str:
    """One line naming each bad setting and what was wrong with it."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return (
        f"invalid setting(s) for backend '{backend}': {'; '.join(problems)}. "
        "Fix them in `--backend NAME:key=value` (run), --backend-setting KEY=VALUE (backends check) or the config file."
    )


def create_backend(name: str, settings: Mapping[str, Any] | None = None) -> Any:
    """Build the named backend from its settings; a bad name or bad settings raise ``InputError``."""
    factory = _factory_for(name)
    remember_settings(dict(settings or {}))  # a key among them is redacted wherever it is quoted later
    try:
        return factory(**dict(settings or {}))
    except ValidationError as exc:
        raise InputError(describe_validation_error(name, exc)) from None


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """``["model=/x", "truncate_dim=256"]`` -> a settings dict; JSON objects and lists are decoded.

    Scalars stay strings: the backend's pydantic model converts them ("256" -> 256, "true" -> True).
    """
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"backend setting '{pair}' is not KEY=VALUE (for example truncate_dim=256)")
        if value and value[0] in "[{":
            try:
                settings[key] = json.loads(value)
                continue
            except json.JSONDecodeError:
                raise InputError(f"backend setting '{key}' looks like JSON but does not parse") from None
        settings[key] = value
    return settings
