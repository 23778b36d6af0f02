"""engine=openvino of the sentence-transformers backend with the bundled MiniLM: real exports, real runs.

OpenVINO inference goes through sentence-transformers' own backend="openvino" (optimum-intel); clinpred
caches the export under its cache root and records the engine and precision in the fingerprint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clinpred.backends import CachedBackend, EmbeddingCache, create_backend
from clinpred.backends.cache import fingerprint_key
from clinpred.backends.openvino_engine import EXPORT_RECORD, MIN_COSINE, openvino_missing

pytestmark = pytest.mark.skipif(
    openvino_missing() is not None, reason="the 'openvino' extra is not installed"
)

TEXTS = [
    "Patient admitted with chest pain; troponin negative, discharged home.",
    "CXR: no acute cardiopulmonary process.",
    "Sinus rhythm, rate 72.",
    "Nursing: pt resting comfortably, pain 2/10, tolerating diet.",
    "Echo: LVEF 35%, moderate mitral regurgitation.",
]
TINY_CONFIG = "[tasks.recall.bootstrap]\nn_resamples = 100\n"


@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory: pytest.TempPathFactory):
    """One clinpred cache for this module's in-process backends: the export is paid once here."""
    root = tmp_path_factory.mktemp("ov-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLINPRED_CACHE", str(root))
        yield root


def _exports(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "openvino").iterdir() if p.is_dir() and not p.name.startswith("."))


def test_openvino_vectors_are_torch_s_within_the_cosine_bound(ov_cache: Path, minilm_path: Path):
    torch_backend = create_backend("sentence-transformers", {"model": str(minilm_path), "device": "cpu"})
    reference = torch_backend.embed(TEXTS)
    for dtype in ("auto", "float32"):
        backend = create_backend(
            "sentence-transformers", {"model": str(minilm_path), "engine": "openvino", "dtype": dtype}
        )
        vectors = backend.embed(TEXTS)
        assert vectors.shape == (5, 384) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
        assert (vectors * reference).sum(axis=1).min() >= MIN_COSINE
        described = backend.describe()["engine"]
        assert described["name"] == "openvino" and described["precision"] in ("f32", "bf16")
        if dtype == "float32":  # f32 asked for, f32 run: as close to torch as float arithmetic allows
            assert described["precision"] == "f32"
            np.testing.assert_allclose(vectors, reference, atol=1e-4)
    assert len(_exports(ov_cache)) == 1  # one export served both precisions (the hint is set at compile)


def test_each_engine_and_precision_has_its_own_fingerprint_and_cache_folder(
    ov_cache: Path, minilm_path: Path
):
    model = str(minilm_path)
    torch_backend = create_backend("sentence-transformers", {"model": model})
    ov_f32 = create_backend(
        "sentence-transformers", {"model": model, "engine": "openvino", "dtype": "float32"}
    )
    ov_auto = create_backend("sentence-transformers", {"model": model, "engine": "openvino"})
    prints = [b.fingerprint() for b in (torch_backend, ov_f32, ov_auto)]
    assert "engine" not in json.loads(prints[0])  # torch fingerprints are what they were: caches stay valid
    assert json.loads(prints[1])["engine"] == "openvino" and json.loads(prints[1])["precision"] == "f32"
    assert json.loads(prints[2])["precision"] == ov_auto.describe()["engine"]["precision"]
    keys = {fingerprint_key(p) for p in prints[:2]}
    assert len(keys) == 2
    # vectors cached by torch are not served to OpenVINO: the OpenVINO run embeds its own
    cache = EmbeddingCache(ov_cache / "embeddings")
    CachedBackend(torch_backend, cache, progress=False).embed(TEXTS)
    cached_ov = CachedBackend(ov_f32, cache, progress=False)
    cached_ov.embed(TEXTS)
    assert cached_ov.last_embedded == len(TEXTS)


def test_engine_auto_records_its_check_and_stays_torch_by_default(ov_cache: Path, minilm_path: Path):
    auto = create_backend("sentence-transformers", {"model": str(minilm_path), "engine": "auto"})
    assert auto.resolved_engine() == "openvino"  # CPU, extra installed, the check passes for MiniLM
    check = auto.describe()["engine"]["check"]
    assert check["passed"] and check["min_cosine"] >= MIN_COSINE and check["sentences"] >= 5
    checks = json.loads((_exports(ov_cache)[0] / "clinpred-checks.json").read_text())
    assert checks[auto.describe()["engine"]["precision"]] == check  # cached with the export
    default = create_backend("sentence-transformers", {"model": str(minilm_path)})
    assert default.settings.engine == "torch" and default.resolved_engine() == "torch"


def test_settings_openvino_cannot_run_are_refused(ov_cache: Path, minilm_path: Path):
    from clinpred.errors import InputError

    model = str(minilm_path)
    for extra, message in [
        ({"device": "cuda"}, "runs on the CPU only"),
        ({"quantize": "int8"}, "quantize=int8 is torch's"),
        ({"dtype": "float16"}, "dtype=float16 is not offered"),
    ]:
        backend = create_backend("sentence-transformers", {"model": model, "engine": "openvino", **extra})
        with pytest.raises(InputError, match=message):
            backend.fingerprint()


def test_importing_openvino_through_clinpred_sends_no_telemetry():
    code = (
        "from clinpred.backends.openvino_engine import openvino_missing\n"
        "assert openvino_missing() is None\n"
        "import sys, multiprocessing\n"
        "import openvino.tools.ovc.telemetry_utils as t\n"
        "print(t.tm.__name__, sys.modules.get('openvino_telemetry'), multiprocessing.active_children())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "None", "[]"]


def _run(
    cli,
    tmp_path: Path,
    out: str,
    model: Path,
    env: dict[str, str],
    setting: str = "engine=openvino,max_seq_length=128",
):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    return cli(
        "run",
        "--config",
        str(config),
        "--synthetic",
        "tiny",
        "-b",
        f"sentence-transformers:model={model},{setting}",
        "-t",
        "recall",
        "--out",
        str(tmp_path / out),
        "--quiet",
        env=env,
    )


@pytest.mark.slow
def test_clinpred_run_with_openvino_exports_once_and_a_second_process_reuses_it(
    cli, tmp_path: Path, minilm_path: Path
):
    cache = tmp_path / "cache"
    env = {"CLINPRED_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    first = _run(cli, tmp_path, "first", minilm_path, env)
    assert first.returncode == 0, first.stderr
    assert "exported" in first.stderr and "to OpenVINO once" in first.stderr
    assert "Traceback" not in first.stderr
    [export] = _exports(cache)
    record = (export / EXPORT_RECORD).stat().st_mtime_ns
    results = json.loads((tmp_path / "first" / "results.json").read_text())
    [backend] = results["backends"]
    assert backend["status"] == "ok" and json.loads(backend["fingerprint"])["engine"] == "openvino"
    assert backend["description"]["engine"]["export"] == export.name
    assert backend["results"]["recall"]["metrics"]["top5"]["value"] > 0

    # a second process, new output folder, a different max length (same export): nothing exported
    second = _run(cli, tmp_path, "second", minilm_path, env, "engine=openvino,max_seq_length=64")
    assert second.returncode == 0, second.stderr
    assert "to OpenVINO" not in second.stderr
    assert _exports(cache) == [export] and (export / EXPORT_RECORD).stat().st_mtime_ns == record
    again = json.loads((tmp_path / "second" / "results.json").read_text())["backends"][0]
    assert again["fingerprint"] != backend["fingerprint"] and again["notes_newly_embedded"] > 0


def test_engine_openvino_without_optimum_is_one_message_and_exit_2(cli, tmp_path: Path, minilm_path: Path):
    hidden = tmp_path / "hide" / "optimum"
    hidden.mkdir(parents=True)  # an `optimum` that cannot be imported, found before the installed one
    (hidden / "__init__.py").write_text("raise ImportError('optimum is hidden by this test')\n")
    env = {
        "CLINPRED_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "hide"), os.environ.get("PYTHONPATH")])),
    }
    proc = _run(cli, tmp_path, "run", minilm_path, env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("engine=openvino needs optimum-intel and openvino") == 1
    assert "pip install 'clinpred[openvino]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache" / "openvino").exists()
