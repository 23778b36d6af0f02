"""OpenVINO inference for the sentence-transformers backend, exported once per model and cached.

Why: on a CPU, OpenVINO runs the same transformer about 2x faster than torch float32 (issue 26:
``benchmarks/embed.py`` prints the figures). The library made for the job does all of it:
sentence-transformers' own ``SentenceTransformer(path, backend="openvino")`` exports the model through
optimum-intel (``model_kwargs={"export": True}``) and loads an exported one (``export=False``, the IR
found in its ``openvino/`` subfolder); ``ov_config`` carries OpenVINO's compile properties. clinpred
writes no graph of its own.

The export (seconds for MiniLM, a minute for EmbeddingGemma) is paid once per model: the exported
SentenceTransformer folder is saved under ``<clinpred cache>/openvino/<key>/``, the key a sha256 of the
model's weights identity (content hash of a local folder, or hub id and commit) and of the exporting
libraries' versions. It is written in a hidden temporary folder and renamed into place under a file
lock, so concurrent processes export it once and never see half of it. Its folder is no more readable
than the source model's folder and the process umask allow: the export of a model fine-tuned on
credentialed notes derives from those notes, and stays owner-only as the model is.

Inference precision is set explicitly (``INFERENCE_PRECISION_HINT``), never left to OpenVINO's choice
per CPU: ``dtype=auto`` is bf16 where the CPU reports native bf16 (what OpenVINO would pick there, and
the 2x), f32 elsewhere; ``dtype=float32`` forces f32 (closest to torch, slower); float16 is refused
(CPUs run it emulated). The compiled model's property is read back and must be what was asked for, and
the backend's fingerprint records the engine and this precision.

``engine=auto`` goes to OpenVINO only after a one-time check: a few fixed sentences (invented, no
patient's) embedded by torch float32 and by the export, minimum cosine at least ``MIN_COSINE``; the
result is cached beside the export, per precision.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import time
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from clinpred.errors import InputError
from clinpred.paths import cache_root
from clinpred.temporaries import remove_stale_temporaries, temporary_directory

OPENVINO_EXTRA = "pip install 'clinpred[openvino]'"
EXPORT_RECORD = "clinpred-export.json"  # written last: an export folder without it is not complete
CHECKS_FILE = "clinpred-checks.json"
MIN_COSINE = 0.999
PRECISIONS = {"f32": "float32", "bf16": "bfloat16"}  # OpenVINO's names -> the dtype setting's names
CHECK_SENTENCES = [
    "Patient admitted with chest pain; troponin negative, discharged home.",
    "CXR: no acute cardiopulmonary process. Small left pleural effusion.",
    "Sinus rhythm, rate 72, occasional premature ventricular contractions.",
    "Nursing: resting comfortably, pain 2/10, tolerating oral diet, ambulating with PT.",
    "Echo: LVEF 35%, moderate mitral regurgitation, no pericardial effusion.",
    "Plan: continue IV antibiotics for pneumonia, diurese with furosemide, repeat labs in the morning.",
]
_LIBRARIES = ("optimum-intel", "openvino", "sentence-transformers", "transformers")
_importable: dict[str, str | None] = {}


def openvino_missing() -> str | None:
    """Why engine=openvino cannot run here (optimum-intel or openvino cannot be imported), or None.

    The import is real (optimum-intel can fail on import against a transformers it does not support,
    which a spec lookup would not see); its outcome is memoised for the process.
    """
    if "result" not in _importable:
        block_telemetry()
        try:
            import openvino  # noqa: F401
            import optimum.intel.openvino  # noqa: F401

            _importable["result"] = None
        except Exception as exc:  # ImportError, or a library refusing the installed transformers
            missing = getattr(exc, "name", None) or f"{type(exc).__name__}: {exc}"
            _importable["result"] = (
                f"engine=openvino needs optimum-intel and openvino, which cannot be imported here "
                f"({missing}). Install them with {OPENVINO_EXTRA}, or use engine=torch."
            )
    return _importable["result"]


def block_telemetry() -> None:
    """Keep OpenVINO from phoning home: ``import openvino`` (and nncf, and every model conversion) sends
    usage events to Google Analytics through ``openvino_telemetry`` unless the user opted out in
    ``~/intel/openvino_telemetry`` or runs in CI. A machine that holds credentialed notes must make no
    such connection, and clinpred never writes to the user's home to opt out, so the module is made
    unimportable for this process before openvino is imported: openvino and nncf then use the silent
    stubs they ship for an installation without it. Does nothing once openvino_telemetry is loaded."""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 (AVX-512-BF16 or AMX)."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def resolve_precision(dtype: str) -> str:
    """The inference precision hint (``f32`` or ``bf16``) for a ``dtype`` setting on this CPU."""
    if dtype == "float32":
        return "f32"
    if dtype == "float16":
        raise InputError(
            "dtype=float16 is not offered with engine=openvino (CPUs run float16 emulated, slower than "
            "float32); use dtype=auto (bf16 where the CPU has it), float32 or bfloat16"
        )
    has_bf16 = cpu_has_bf16()
    if dtype == "bfloat16" and not has_bf16:
        raise InputError(
            "dtype=bfloat16 with engine=openvino needs a CPU with native bf16 (AVX-512-BF16 or AMX), and "
            "this one has none; use dtype=auto or float32"
        )
    return "bf16" if has_bf16 else "f32"


def _versions() -> dict[str, str]:
    found = {}
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def export_key(weights: str) -> str:
    """The folder name of a model's export: sha256 of its weights identity and the libraries' versions."""
    body = json.dumps({"weights": weights, **_versions()}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def export_root() -> Path:
    """``openvino/`` under clinpred's cache root."""
    return cache_root() / "openvino"


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """No export chatter: transformers' load report, optimum's and sentence-transformers' advice to save
    the export (clinpred saves it), torch.jit tracer warnings. Errors still raise."""
    from transformers.utils import logging as transformers_logging

    names = ("optimum", "optimum.intel", "sentence_transformers", "nncf", "transformers")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def _cap_tree(folder: Path, reference: Path) -> None:
    """No file or folder under ``folder`` more readable than ``reference`` (the source model's folder)."""
    allowed = stat.S_IMODE(reference.stat().st_mode) | 0o700
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        cap = allowed if path.is_dir() else (allowed & ~0o111) | 0o600
        if mode & ~cap:
            os.chmod(path, mode & cap)


def _write_json(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
    os.replace(tmp, path)


def load_exported(folder: Path, precision: str) -> Any:
    """The exported model in ``folder``, compiled for the CPU at ``precision``; never exports again."""
    from sentence_transformers import SentenceTransformer

    try:
        with _quiet_libraries():
            model = SentenceTransformer(
                str(folder),
                backend="openvino",
                device="cpu",
                local_files_only=True,
                model_kwargs={"export": False, "ov_config": {"INFERENCE_PRECISION_HINT": precision}},
            )
    except Exception as exc:
        raise InputError(
            f"the OpenVINO export in {folder} could not be loaded ({type(exc).__name__}: {exc}); remove "
            "that folder and run again to export the model anew"
        ) from None
    ran = running_precision(model)
    if ran != precision:  # OpenVINO did not honour the hint: the fingerprint would lie
        raise RuntimeError(f"OpenVINO compiled at {ran} where {precision} was asked for")
    return model


def running_precision(model: Any) -> str:
    """The inference precision the compiled OpenVINO model really runs at (``f32``, ``bf16``)."""
    request = model[0].auto_model.request
    return request.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def export_folder(source: Path, weights: str, model_id: str, *, announce: bool = True) -> Path:
    """The cached export of the model at ``source`` (identified by ``weights``), exported now if absent.

    Concurrent callers wait on one lock; the first exports, the others find the finished folder.
    """
    root = export_root()
    root.mkdir(parents=True, exist_ok=True)
    key = export_key(weights)
    final = root / key
    if (final / EXPORT_RECORD).is_file():
        return final
    with FileLock(str(root / f"{key}.lock"), timeout=3600):
        if (final / EXPORT_RECORD).is_file():
            return final
        remove_stale_temporaries(root)
        started = time.perf_counter()
        tmp = temporary_directory(final)
        try:
            tmp.chmod(0o700)  # nothing inside is reachable until the folder is capped and renamed
            _export_into(source, tmp)
            _write_json(
                tmp / EXPORT_RECORD,
                {
                    "model": model_id,
                    "weights": weights,
                    "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "seconds": round(time.perf_counter() - started, 1),
                    **_versions(),
                },
            )
            tmp.chmod(0o777 & ~_umask())
            _cap_tree(tmp, source)
            if final.exists():  # an incomplete folder of ours (no record): replaced
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if announce:
        print(
            f"clinpred: exported {model_id} to OpenVINO once, in {time.perf_counter() - started:.0f} s "
            f"(cached in {final}; later runs load it)",
            file=sys.stderr,
        )
    return final


def _umask() -> int:
    from clinpred.privacy.modes import current_umask

    return current_umask()


def _export_into(source: Path, folder: Path) -> None:
    from sentence_transformers import SentenceTransformer

    try:
        with _quiet_libraries():
            model = SentenceTransformer(
                str(source),
                backend="openvino",
                device="cpu",
                local_files_only=True,
                model_kwargs={"export": True},
            )
            model.save_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise InputError(
            f"the model at {source} could not be exported to OpenVINO ({type(exc).__name__}: {exc}); "
            "use engine=torch"
        ) from None


def passes_check(folder: Path, source: Path, precision: str) -> dict[str, Any]:
    """The cached (else computed now) cosine check of the export against torch float32 at ``precision``:
    ``{"min_cosine", "passed", ...}``."""
    record = folder / CHECKS_FILE
    with FileLock(str(folder.parent / f"{folder.name}.lock"), timeout=3600):
        try:
            checks = json.loads(record.read_text())
        except (OSError, ValueError):
            checks = {}
        if precision in checks:
            return checks[precision]
        import torch
        from sentence_transformers import SentenceTransformer

        with _quiet_libraries():
            reference = SentenceTransformer(
                str(source), device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32}
            ).encode(CHECK_SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
        candidate = load_exported(folder, precision).encode(
            CHECK_SENTENCES, normalize_embeddings=True, convert_to_numpy=True
        )
        cosine = (np.asarray(reference, dtype=np.float64) * np.asarray(candidate, dtype=np.float64)).sum(1)
        result = {
            "min_cosine": round(float(cosine.min()), 6),
            "mean_cosine": round(float(cosine.mean()), 6),
            "threshold": MIN_COSINE,
            "passed": bool(cosine.min() >= MIN_COSINE),
            "sentences": len(CHECK_SENTENCES),
        }
        checks[precision] = result
        _write_json(record, checks)
        return result
