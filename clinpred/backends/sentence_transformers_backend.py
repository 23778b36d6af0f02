"""sentence-transformers backends: ``gemma-base``, ``gemma-finetuned`` and ``sentence-transformers``.

One class serves all three; they differ in defaults. A model is found as a local directory or in the
local Hugging Face cache, never silently downloaded when the hub is off (``HF_HUB_OFFLINE``). The
fingerprint is computed from the files (or the hub commit) and the settings without loading the model,
so a run whose vectors are all cached never pays for loading torch weights.

On a GPU (issue 17) the backend runs the fast path by itself, with the settings' defaults:

- ``dtype=auto``: bfloat16 on a CUDA device that supports it, float32 elsewhere (CPU, MPS), so CPU
  numbers and fingerprints are what they were before ``auto`` existed (the fingerprint holds the
  resolved dtype). float16 stays refused for Gemma3.
- attention through PyTorch's SDPA, or FlashAttention-2 when the ``flash_attn`` package is importable
  on a CUDA device in bfloat16; sentence-transformers then also packs the texts of a batch without
  padding (``DataCollatorWithFlattening``). A model that supports neither loads with its default.
- notes sorted by length into batches: ``SentenceTransformer.encode`` already sorts every call's texts
  by length (longest first) and restores the order, and the cache wrapper hands over missing texts
  longest first, so nothing here sorts again. Long notes in ``long_notes=chunk`` mode become windows
  of exactly ``chunk_tokens`` tokens (``clinpred.backends.chunking``), which batch without padding.
- ``batch_size=auto``: 32 on CPU/MPS (as before); on CUDA a start of 2^17 tokens per batch, halved on
  every CUDA out-of-memory error until a batch fits (``encode_with_backoff``); the size used is in
  ``describe()``.
- several visible CUDA devices: sentence-transformers' own multi-process pool, one process per device
  (``device_plan``), started once and reused for every ``embed`` call.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clinpred.backends.base import Role, l2_normalise
from clinpred.backends.chunking import mean_of_windows, split_into_windows
from clinpred.errors import InputError

GEMMA_DEFAULT_MODEL = "google/embeddinggemma-300m"
GEMMA_DOCUMENT_PROMPT = "title: none | text: "
GEMMA_QUERY_PROMPTS = {
    "search": "task: search result | query: ",
    "similarity": "task: sentence similarity | query: ",
}
_MODELS_EXTRA = "needs the 'models' extra: pip install 'clinpred[models]'"


class SentenceTransformerSettings(BaseModel):
    """Every setting of a sentence-transformers backend; all but batch_size/device enter the fingerprint."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="a local model directory or a Hugging Face model id")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit); hub ids only")
    document_prompt: str | None = Field(
        None, description="prepended to documents; None: the model's saved 'document' prompt, if any"
    )
    query_prompt: str | None = Field(
        None, description="prepended to queries; None: the model's saved 'query' prompt, if any"
    )
    truncate_dim: int | None = Field(
        None, gt=0, description="Matryoshka: keep the first N dims, re-normalise"
    )
    max_seq_length: int | None = Field(None, gt=0, description="tokens per input; None: the model's own")
    batch_size: Annotated[int, Field(gt=0)] | Literal["auto"] = Field(
        "auto",
        description="texts per forward pass; auto: 32 on CPU/MPS, on CUDA 2^17 tokens' worth; halved on "
        "CUDA out-of-memory either way",
    )
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="auto: bfloat16 on a CUDA GPU that supports it, float32 elsewhere; float16 is refused "
        "for Gemma3 models",
    )
    long_notes: Literal["truncate", "chunk"] = "truncate"
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="int8: torch dynamic quantisation of the Linear layers (per-channel weights), CPU "
        "only; faster, not exact (benchmarks/embed.py prints the cosine to float32)",
    )
    engine: Literal["torch", "openvino", "auto"] = Field(
        "torch",
        description="what runs the model: torch; openvino (CPU only, through sentence-transformers' "
        "backend='openvino', exported once and cached; needs the 'openvino' extra); auto: openvino for a "
        "CPU run when it is installed and a one-time cosine check against torch float32 passes, else torch",
    )
    chunk_tokens: int | None = Field(None, gt=0, description="window size; None: what fits after the prompt")
    overlap: int = Field(32, ge=0, description="tokens shared by consecutive windows")

    @field_validator("model", mode="before")
    @classmethod
    def _path_as_string(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value


class GemmaBaseSettings(SentenceTransformerSettings):
    """EmbeddingGemma defaults: the model id and its prompts, with the query task as a setting."""

    model: str = GEMMA_DEFAULT_MODEL
    query_task: Literal["search", "similarity"] = "search"

    @model_validator(mode="after")
    def _gemma_prompts(self) -> GemmaBaseSettings:
        if self.document_prompt is None:
            self.document_prompt = GEMMA_DOCUMENT_PROMPT
        if self.query_prompt is None:
            self.query_prompt = GEMMA_QUERY_PROMPTS[self.query_task]
        return self


# --------------------------------------------------------------------------- finding the model on disk


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are, and what identifies them for the fingerprint."""

    model_id: str  # what the user asked for
    path: Path  # a local directory holding the files
    revision: str | None  # the hub commit, for a model from the Hugging Face cache
    from_hub_cache: bool


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.rstrip(os.sep).count(os.sep) > 1


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _not_available_message(model: str, cache_dir: str) -> str:
    return (
        f"model '{model}' is not on this machine: it is not a local directory and not in the Hugging Face "
        f"cache ({cache_dir}), and the hub cannot be reached"
        f"{' (HF_HUB_OFFLINE=1)' if _offline() else ''}. Point clinpred at a local copy with "
        "the setting model=/path/to/model (a sentence-transformers directory: `clinpred run --backend "
        "NAME:model=/path`, or --backend-setting model=/path in `backends check`), or on a machine with "
        f"internet run `huggingface-cli download {model}` and copy its Hugging Face cache here (set HF_HOME "
        "to it), or save the model directory and copy that."
    )


def resolve_model(model: str, revision: str | None = None) -> ResolvedModel:
    """A local directory as is; a hub id from the local Hugging Face cache (downloaded only when online)."""
    local = Path(model).expanduser()
    if local.exists():
        if not local.is_dir():
            raise InputError(f"model '{model}' is a file; give the model's directory (holding modules.json)")
        if not (local / "modules.json").exists() and not (local / "config.json").exists():
            raise InputError(
                f"model directory '{model}' holds neither modules.json nor config.json: it is not a "
                "sentence-transformers or transformers model. Give the directory that `clinpred finetune` "
                "or `SentenceTransformer.save` wrote."
            )
        return ResolvedModel(model, local.resolve(), None, False)
    if _looks_like_path(model):
        raise InputError(f"model directory '{model}' does not exist; check the model=PATH setting")
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise InputError(f"backend for model '{model}' {_MODELS_EXTRA}") from None
    try:
        snapshot = Path(snapshot_download(model, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        from clinpred.finetune.model_names import local_copy

        bundled = local_copy(model)  # the bundled all-MiniLM-L6-v2, named by its hub id (the demo does)
        if bundled != model and revision is None:
            return ResolvedModel(model, Path(bundled).resolve(), None, False)
        if _offline():
            raise InputError(_not_available_message(model, constants.HF_HUB_CACHE)) from None
        try:
            snapshot = Path(snapshot_download(model, revision=revision))
        except Exception:
            raise InputError(_not_available_message(model, constants.HF_HUB_CACHE)) from None
    except Exception as exc:  # bad repo id syntax and the like
        raise InputError(f"model '{model}' cannot be looked up in the Hugging Face cache: {exc}") from None
    return ResolvedModel(model, snapshot, snapshot.name, True)


_FILE_HASHES: dict[tuple, str] = {}


def directory_hash(directory: Path) -> str:
    """sha256 over every file's relative path and streamed bytes (README excluded); memoised by size+mtime."""
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and p.name != "README.md"
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )
    stats = tuple((str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(directory), stats)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        for path, (relative, size, _) in zip(files, stats, strict=True):
            digest.update(f"{relative}\0{size}\0".encode())
            with path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _transformer_config(directory: Path) -> dict[str, Any]:
    """The transformers config.json of the model's first (Transformer) module."""
    for module in _read_json(directory / "modules.json") or []:
        if isinstance(module, dict) and "Transformer" in str(module.get("type", "")):
            return _read_json(directory / str(module.get("path", "")) / "config.json")
    return _read_json(directory / "config.json")


def is_gemma3(directory: Path) -> bool:
    """True for Gemma3 (EmbeddingGemma) models, whose activations overflow float16."""
    config = _transformer_config(directory)
    model_type = str(config.get("model_type", ""))
    architectures = " ".join(config.get("architectures") or [])
    return model_type.startswith("gemma3") or "Gemma3" in architectures


# --------------------------------------------------------------------------- the GPU path: plain decisions

CPU_BATCH_SIZE = 32  # batch_size=auto off CUDA: the size every CPU figure so far was measured with
CUDA_BATCH_TOKENS = 1 << 17  # batch_size=auto on CUDA starts at this many tokens per batch
_T = TypeVar("_T")


def resolve_dtype(setting: str, device: str, bf16_supported: bool) -> str:
    """The dtype a model is loaded in: ``auto`` is bfloat16 on a CUDA device that supports it, else float32."""
    if setting != "auto":
        return setting
    return "bfloat16" if device.startswith("cuda") and bf16_supported else "float32"


def flash_attention_available() -> bool:
    """True where the ``flash_attn`` package can be imported (it is never a requirement)."""
    return importlib.util.find_spec("flash_attn") is not None


def attention_plan(device: str, dtype: str, flash_available: bool) -> list[str | None]:
    """Attention implementations to try in order; None is the model's own default (the last resort).

    FlashAttention-2 runs on CUDA in 16-bit only; SDPA (PyTorch's fused attention) everywhere else.
    """
    plan: list[str | None] = []
    if flash_available and device.startswith("cuda") and dtype == "bfloat16":
        plan.append("flash_attention_2")
    return [*plan, "sdpa", None]


def device_plan(device: str, cuda_count: int) -> list[str]:
    """One entry per encoding process: every visible CUDA device when there are several, else ``device``."""
    if device == "cuda" and cuda_count > 1:
        return [f"cuda:{i}" for i in range(cuda_count)]
    return [device]


def start_batch_size(setting: int | str, device: str, max_seq_length: int | None) -> int:
    """The first batch size tried: the setting, or for ``auto`` 32 off CUDA and 2^17 tokens' worth on CUDA
    (a power of two between 8 and 1024: 256 texts at 512 tokens, 64 at 2048)."""
    if setting != "auto":
        return int(setting)
    if not device.startswith("cuda"):
        return CPU_BATCH_SIZE
    fits = CUDA_BATCH_TOKENS // max(int(max_seq_length or 512), 1)
    return int(min(1024, max(8, 2 ** int(math.log2(max(fits, 1))))))


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA out-of-memory error, raised here or re-raised from a pool worker (where it may arrive as a
    RuntimeError carrying the worker's traceback text)."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - the models extra is what calls this
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def encode_with_backoff(
    encode: Callable[[int], _T], batch_size: int, *, on_backoff: Callable[[int], None] | None = None
) -> tuple[_T, int]:
    """``encode(batch_size)``, halving the batch size after every out-of-memory error until it fits.

    Returns the result and the batch size that worked; a batch of one that does not fit re-raises.
    ``on_backoff(new_size)`` runs before each retry (the backend frees the CUDA cache there).
    """
    size = int(batch_size)
    while True:
        try:
            return encode(size), size
        except Exception as exc:
            if size <= 1 or not is_out_of_memory(exc):
                raise
        size = max(1, size // 2)
        if on_backoff is not None:
            on_backoff(size)


def _free_cuda_cache(_: int) -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _about_attention(exc: BaseException) -> bool:
    return "attention" in str(exc).lower() or "attn" in str(exc).lower()


def _stop_pool(pool: dict[str, Any]) -> None:
    from sentence_transformers import SentenceTransformer

    with contextlib.suppress(Exception):  # processes already gone at interpreter exit
        SentenceTransformer.stop_multi_process_pool(pool)


# --------------------------------------------------------------------------- the backend


class SentenceTransformerBackend:
    """Any sentence-transformers model as an ``EmbeddingBackend``: prompts, Matryoshka, long-note chunking."""

    sends_text_off_machine = False

    def __init__(
        self,
        settings: SentenceTransformerSettings,
        *,
        name: str = "sentence-transformers",
        devices: Sequence[str] | None = None,
    ) -> None:
        """``devices``: an explicit list of encoding processes (e.g. ``["cpu", "cpu"]`` in a test); default
        ``device_plan`` (every visible CUDA device when there are several)."""
        self.name = name
        self._devices_asked = list(devices) if devices is not None else None
        self.settings = settings
        self.resolved = resolve_model(settings.model, settings.revision)
        if settings.dtype == "float16" and is_gemma3(self.resolved.path):
            raise InputError(
                f"dtype=float16 is refused for '{settings.model}': it is a Gemma3 model, and Gemma3 "
                "activations overflow float16 (the vectors come out as NaN). Use dtype=float32 or "
                "dtype=bfloat16."
            )
        if settings.chunk_tokens is not None and settings.overlap >= settings.chunk_tokens:
            raise InputError(
                f"overlap ({settings.overlap}) must be smaller than chunk_tokens ({settings.chunk_tokens})"
            )
        saved = _read_json(self.resolved.path / "config_sentence_transformers.json").get("prompts") or {}
        self.prompts: dict[str, str] = {
            "document": settings.document_prompt
            if settings.document_prompt is not None
            else saved.get("document", ""),
            "query": settings.query_prompt if settings.query_prompt is not None else saved.get("query", ""),
        }
        self._model: Any = None
        self._fingerprint: str | None = None
        self._pool: dict[str, Any] | None = None
        self._attention: str | None = None
        self._batch_size: int | None = None  # the size that last worked (after any back-off)
        self._backoffs = 0
        self._engine: str | None = None  # "torch" or "openvino", once resolved
        self._precision: str | None = None  # OpenVINO's inference precision (f32, bf16)
        self._export: Path | None = None  # the cached OpenVINO export
        self._check: dict[str, Any] | None = None  # engine=auto: the cosine check that chose

    # ---- identity

    def fingerprint(self) -> str:
        """Model id + commit (hub) or content hash (local) + prompts + dimension + length + long-note mode."""
        if self._fingerprint is None:
            s = self.settings
            parts = {
                "kind": "sentence-transformers",
                "model": self._weights(),
                "prompts": self.prompts,
                "dim": s.truncate_dim or "full",
                "max_seq_length": s.max_seq_length or "model",
                "dtype": self.resolved_dtype(),  # float32 on CPU for dtype=auto: CPU caches unchanged
                "long_notes": s.long_notes,
            }
            if s.quantize != "none":  # absent when off: fingerprints of float models are unchanged
                parts["quantize"] = s.quantize
            if self.resolved_engine() == "openvino":  # absent for torch: torch caches stay valid
                parts["engine"] = "openvino"
                parts["precision"] = self._precision
            if s.long_notes == "chunk":
                parts["chunk_tokens"] = s.chunk_tokens or "fit"
                parts["overlap"] = s.overlap
            self._fingerprint = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        return self._fingerprint

    def _weights(self) -> str:
        """What identifies the weights: hub id and commit, or the local folder's content hash."""
        if self.resolved.from_hub_cache:
            return f"{self.resolved.model_id}@{self.resolved.revision}"
        return f"sha256:{directory_hash(self.resolved.path)}"

    def describe(self) -> dict[str, Any]:
        """Model id, revision, dimension, library versions and settings: recorded with every result."""
        import sentence_transformers
        import transformers

        model = self._load()
        engine: dict[str, Any] = {"name": self.resolved_engine()}
        if engine["name"] == "openvino":
            from importlib.metadata import version

            engine.update(
                precision=self._precision,
                export=self._export.name if self._export else None,  # the cache key, not a path
                openvino=version("openvino"),
                optimum_intel=version("optimum-intel"),
            )
        if self._check is not None:
            engine["check"] = self._check
        return {
            "backend": self.name,
            "engine": engine,
            "dtype": self.resolved_dtype(),
            "device": self._device(),
            "devices": self.devices(),
            "attention": self._attention,
            "batch_size": {
                "start": self._start_batch_size(),
                "used": self._batch_size,  # None until something was embedded
                "out_of_memory_backoffs": self._backoffs,
            },
            "model": self.resolved.model_id,
            # the model as given (no resolved path: results.json travels, and names no folder of this
            # machine the user did not give), identified by its hub commit or its files' hash
            "revision": self.resolved.revision or f"sha256:{directory_hash(self.resolved.path)}",
            "dimension": self.dimension,
            "max_seq_length": model.max_seq_length,
            "prompts": self.prompts,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "settings": self.settings.model_dump(),
        }

    # ---- loading

    def resolved_engine(self) -> str:
        """``torch`` or ``openvino``: the setting, or for ``auto`` OpenVINO on a CPU run where it is
        installed and its one-time cosine check passed (the export and the check are cached)."""
        if self._engine is not None:
            return self._engine
        from clinpred.backends import openvino_engine as ov

        s = self.settings
        if s.engine == "openvino":
            if s.quantize != "none":
                raise InputError(
                    "quantize=int8 is torch's dynamic quantisation; it cannot run with engine=openvino. "
                    "Use one or the other."
                )
            self._device()  # refuses device=cuda/mps
            missing = ov.openvino_missing()
            if missing:
                raise InputError(missing)
            self._precision = ov.resolve_precision(s.dtype)
            self._engine = "openvino"
        elif s.engine == "auto":
            self._engine = "torch"  # on CUDA/MPS, with int8 or float16, or without the extra
            eligible = s.quantize == "none" and s.dtype != "float16" and self._device() == "cpu"
            if eligible and ov.openvino_missing() is None:
                if s.dtype == "bfloat16" and not ov.cpu_has_bf16():
                    return self._engine  # torch emulates what this CPU lacks; OpenVINO is refused it
                precision = ov.resolve_precision(s.dtype)
                folder = ov.export_folder(self.resolved.path, self._weights(), self.resolved.model_id)
                self._check = ov.passes_check(folder, self.resolved.path, precision)
                if self._check["passed"]:
                    self._engine, self._precision, self._export = "openvino", precision, folder
        else:
            self._engine = "torch"
        return self._engine

    def _device(self) -> str:
        if self.settings.engine == "openvino":
            if self.settings.device not in ("auto", "cpu"):
                raise InputError(
                    f"engine=openvino runs on the CPU only (device={self.settings.device} was asked for); "
                    "use device=cpu, or engine=torch on a GPU"
                )
            return "cpu"
        if self.settings.quantize == "int8":
            if self.settings.device not in ("auto", "cpu"):
                raise InputError(
                    f"quantize=int8 runs on the CPU only (device={self.settings.device} was asked for); "
                    "use device=cpu or quantize=none"
                )
            return "cpu"
        import torch

        wanted = self.settings.device
        cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
        if wanted == "auto":
            return "cuda" if cuda else "mps" if mps else "cpu"
        if (wanted == "cuda" and not cuda) or (wanted == "mps" and not mps):
            raise InputError(
                f"device={wanted} was asked for but is not available here; use device=auto or cpu"
            )
        return wanted

    def resolved_dtype(self) -> str:
        """The dtype the model runs in: the setting, or for ``auto`` bfloat16 on a CUDA GPU that supports
        it and float32 elsewhere. Needs no model loaded (the fingerprint calls it)."""
        if self.resolved_engine() == "openvino":
            from clinpred.backends.openvino_engine import PRECISIONS

            return PRECISIONS[str(self._precision)]
        device, bf16 = self._device(), False
        if self.settings.dtype == "auto" and device.startswith("cuda"):
            import torch

            bf16 = bool(torch.cuda.is_bf16_supported())
        return resolve_dtype(self.settings.dtype, device, bf16)

    def devices(self) -> list[str]:
        """The encoding processes: one device, or one process per visible CUDA device."""
        if self._devices_asked is not None:
            return list(self._devices_asked)
        device = self._device()
        if device != "cuda":
            return [device]
        import torch

        return device_plan(device, torch.cuda.device_count())

    def _start_batch_size(self) -> int:
        max_len = self.settings.max_seq_length
        if max_len is None and self._model is not None:
            max_len = self._model.max_seq_length
        return start_batch_size(self.settings.batch_size, self._device(), max_len)

    @property
    def preferred_chunk_size(self) -> int | None:
        """Texts per call from the cache wrapper: its default (512) off CUDA; on CUDA 8,192 per device, so
        that each call fills many large batches (a killed run loses at most one such chunk)."""
        if self.settings.quantize == "int8" or self._device() != "cuda":
            return None
        return 8192 * len(self.devices())

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        if self.resolved_engine() == "openvino":
            from clinpred.backends import openvino_engine as ov

            if self._export is None:
                self._export = ov.export_folder(self.resolved.path, self._weights(), self.resolved.model_id)
            model = ov.load_exported(self._export, str(self._precision))
        else:
            model = self._load_torch()
        if self.settings.max_seq_length is not None:
            model.max_seq_length = self.settings.max_seq_length
        if self.settings.quantize == "int8":
            model = _quantize_int8(model)
        full = model.get_embedding_dimension()
        if self.settings.truncate_dim is not None and full is not None and self.settings.truncate_dim > full:
            raise InputError(
                f"truncate_dim={self.settings.truncate_dim} is larger than the model's dimension ({full})"
            )
        self._full_dimension = full
        self._model = model
        devices = self.devices()
        if len(devices) > 1:  # one process per device, started once; moves the model to the CPU
            self._pool = model.start_multi_process_pool(devices)
            weakref.finalize(self, _stop_pool, self._pool)
        return model

    def _load_torch(self) -> Any:
        """The model in torch, with the resolved dtype and the first attention implementation it takes."""
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        device, dtype_name = self._device(), self.resolved_dtype()
        plan = attention_plan(device, dtype_name, flash_attention_available())
        if self.settings.quantize == "int8":
            plan = [None]  # as before: dynamic quantisation wraps whatever the model's default is
        bars_were_on = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every run
        try:
            for attention in plan:
                model_kwargs: dict[str, Any] = {"dtype": dtype[dtype_name]}
                if attention is not None:
                    model_kwargs["attn_implementation"] = attention
                try:
                    model = SentenceTransformer(
                        str(self.resolved.path),
                        device=device,
                        local_files_only=True,
                        model_kwargs=model_kwargs,
                    )
                    break
                except (OSError, ValueError, ImportError) as exc:
                    if attention is not None and _about_attention(exc):
                        continue  # this model does not support it: the next implementation
                    raise InputError(
                        f"model '{self.settings.model}' at {self.resolved.path} could not be loaded: {exc}"
                    ) from None
        finally:
            if bars_were_on:
                transformers_logging.enable_progress_bar()
        # what transformers really chose (e.g. 'sdpa' when the default was taken), for describe()
        self._attention = getattr(getattr(model, "config", None), "_attn_implementation", None) or attention
        return model

    def close(self) -> None:
        """Stop the multi-process pool, if one was started (it also stops when the backend is collected)."""
        if self._pool is not None:
            _stop_pool(self._pool)
            self._pool = None

    @property
    def dimension(self) -> int:
        """Length of the vectors this backend returns."""
        self._load()
        return int(self.settings.truncate_dim or self._full_dimension)

    def _chunk_tokens(self, prompt: str) -> int:
        model = self._model
        tokenizer = model.tokenizer
        room = int(model.max_seq_length) - tokenizer.num_special_tokens_to_add()
        room -= len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else 0
        wanted = self.settings.chunk_tokens
        if wanted is None:
            if room <= self.settings.overlap:
                raise InputError(
                    f"max_seq_length {model.max_seq_length} leaves no room for chunks after the prompt "
                    f"and an overlap of {self.settings.overlap}; lower overlap or raise max_seq_length"
                )
            return room
        if wanted > room:
            raise InputError(
                f"chunk_tokens={wanted} does not fit: max_seq_length {model.max_seq_length} leaves {room} "
                "tokens after the prompt and special tokens; lower chunk_tokens or raise max_seq_length"
            )
        return wanted

    # ---- embedding

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        """One ``SentenceTransformer.encode`` call (which sorts the texts by length into batches itself),
        through the pool when there is one, with the batch size halved on CUDA out-of-memory."""
        texts = list(texts)

        def encode(batch_size: int) -> Any:
            return self._model.encode(
                texts,
                prompt=prompt,
                batch_size=batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,
                **({"pool": self._pool} if self._pool is not None else {}),
            )

        def backed_off(size: int) -> None:
            self._backoffs += 1
            _free_cuda_cache(size)

        start = self._batch_size or self._start_batch_size()
        vectors, self._batch_size = encode_with_backoff(encode, start, on_backoff=backed_off)
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.settings.truncate_dim is not None:
            vectors = vectors[:, : self.settings.truncate_dim]
        return l2_normalise(vectors)

    def embed(self, texts: Sequence[str], *, role: Role = "document") -> np.ndarray:
        """float32 unit rows; documents and queries get their own prompt."""
        if role not in self.prompts:
            raise ValueError(f"role must be 'document' or 'query', not {role!r}")
        texts = list(texts)
        self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prompt = self.prompts[role]
        if self.settings.long_notes == "truncate":
            return self._encode(texts, prompt)
        windows, owners = split_into_windows(
            texts, self._model.tokenizer, self._chunk_tokens(prompt), self.settings.overlap
        )
        return mean_of_windows(self._encode(windows, prompt), owners, len(texts)).astype(np.float32)


def _quantize_int8(model: Any) -> Any:
    """torch's dynamic int8 quantisation of every Linear layer, weights per output channel (per-tensor
    scales lose much more: on MiniLM the cosine to float32 fell to 0.85 at worst, against 0.94)."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


# --------------------------------------------------------------------------- registry entries


def _build(settings_cls: type[SentenceTransformerSettings], name: str, settings: dict[str, Any]):
    try:
        validated = settings_cls(**settings)
    except ValidationError as exc:
        from clinpred.backends.registry import describe_validation_error

        raise InputError(describe_validation_error(name, exc)) from None
    return SentenceTransformerBackend(validated, name=name)


def gemma_base(**settings: Any) -> SentenceTransformerBackend:
    """``gemma-base``: EmbeddingGemma-300m (or any model given as ``model``) with EmbeddingGemma's prompts."""
    return _build(GemmaBaseSettings, "gemma-base", settings)


def gemma_finetuned(**settings: Any) -> SentenceTransformerBackend:
    """``gemma-finetuned``: the directory `clinpred finetune` wrote (``model`` is required)."""
    if "model" not in settings:
        raise InputError(
            "backend 'gemma-finetuned' needs the model directory that `clinpred finetune` wrote: "
            "`--backend gemma-finetuned:model=/path/to/finetuned-model`"
        )
    return _build(SentenceTransformerSettings, "gemma-finetuned", settings)


def sentence_transformers(**settings: Any) -> SentenceTransformerBackend:
    """``sentence-transformers``: any local path or hub id; prompts optional."""
    if "model" not in settings:
        raise InputError(
            "backend 'sentence-transformers' needs a model: `--backend sentence-transformers:model=/path/or/hub-id`"
        )
    return _build(SentenceTransformerSettings, "sentence-transformers", settings)


def _models_extra_missing() -> str | None:
    for module in ("torch", "sentence_transformers", "transformers"):
        if importlib.util.find_spec(module) is None:
            return f"{_MODELS_EXTRA} ({module} is missing)"
    return None


def sentence_transformers_status() -> tuple[bool, str]:
    """Runs wherever the models extra is installed; the model itself is a setting."""
    missing = _models_extra_missing()
    return (False, missing) if missing else (True, "any local model directory or cached hub id: model=...")


def gemma_finetuned_status() -> tuple[bool, str]:
    """Runs wherever the models extra is installed; needs a directory from `clinpred finetune`."""
    missing = _models_extra_missing()
    return (False, missing) if missing else (True, "needs model=DIR written by `clinpred finetune`")


def gemma_base_status() -> tuple[bool, str]:
    """Available when the models extra is installed and EmbeddingGemma is in the local Hugging Face cache."""
    missing = _models_extra_missing()
    if missing:
        return False, missing
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(GEMMA_DEFAULT_MODEL, "modules.json")
    if isinstance(cached, str):
        return True, f"{GEMMA_DEFAULT_MODEL} found in the Hugging Face cache"
    return False, (
        f"{GEMMA_DEFAULT_MODEL} is not on disk (Hugging Face cache {constants.HF_HUB_CACHE}); "
        "pass model=/path/to/a/local/copy, or run `huggingface-cli download "
        f"{GEMMA_DEFAULT_MODEL}` on a machine with internet and copy the cache here"
    )
