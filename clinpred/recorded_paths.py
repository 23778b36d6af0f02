"""What a run folder carries from one run to the next is recorded relative to it: the folder travels
whole, and its files name no folder of the machine that wrote them.

The demo keeps its fine-tuned models inside its run folder (``RUN_DIR/models/<recipe>``, the entry it
asks the run folder to keep) and loads them from there by absolute path; config.json, results.json,
RESULTS.md and report.html name them ``models/<recipe>``, so that the committed ``results/synthetic``
carries no developer's folder. Any other path (a model the user named with ``-b NAME:model=PATH``) is
recorded as given.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# what may stand just before a path in a sentence, and what ends one (a path is most often a whole
# value; in a warning or a reason it sits in a sentence, perhaps quoted)
_BEFORE = r"(?<![^\s'\"`(])"
_END = r"\s'\"`:;,)"


def relative_inside(value: Any, run_dir: Path, entries: tuple[str, ...]) -> Any:
    """``value`` (a string, or dicts and lists holding strings) with every absolute path to one of
    ``run_dir``'s ``entries`` or below written relative to ``run_dir`` (``models/clinical``); anything
    else as it was. No entries: ``value`` unchanged."""
    if not entries:
        return value
    root = str(Path(run_dir).resolve())
    sep = re.escape(os.sep)
    names = "|".join(re.escape(name) for name in entries)
    pattern = re.compile(_BEFORE + re.escape(root) + rf"{sep}(?:{names})(?:{sep}[^{_END}]*)?(?![^{_END}])")

    def relative(match: re.Match[str]) -> str:
        return os.path.relpath(match.group(0), root)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(relative, item)
        if isinstance(item, dict):
            return {key: walk(v) for key, v in item.items()}
        if isinstance(item, list | tuple):
            return type(item)(walk(v) for v in item)
        return item

    return walk(value)
