"""Where clinpred keeps what it derives from your data: one root for every cache."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """clinpred's cache folder: $CLINPRED_CACHE, else ~/.cache/clinpred (keep it on local disk)."""
    return Path(os.environ.get("CLINPRED_CACHE") or Path.home() / ".cache" / "clinpred").expanduser()
