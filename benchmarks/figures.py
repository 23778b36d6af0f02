"""Where a benchmark's figures go: one JSON file under benchmarks/results/, written whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_figures(out: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``out`` through a temporary beside it (a killed run leaves the old file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(out)
    print(f"written: {out}")
