"""Where clinpred keeps what it derives from your data: one root for every cache."""

from __future__ import annotations

import os
from pathlib import Path

from clinpred.errors import InputError

CACHE_ENV = "CLINPRED_CACHE"


def cache_root() -> Path:
    """clinpred's cache folder: $CLINPRED_CACHE, else ~/.cache/clinpred (keep it on local disk).

    A root that is a file, lies under a file, or sits in a folder clinpred cannot write is refused
    here with one message, before any work: otherwise the first write, deep in a reader or the
    embedding cache, fails with an OSError that names neither the setting nor what to do.
    """
    given = os.environ.get(CACHE_ENV)
    root = Path(given or Path.home() / ".cache" / "clinpred").expanduser()
    where = f"{CACHE_ENV}={given}" if given else f"the cache folder {root}"
    for folder in [root, *root.parents]:
        if not folder.exists():
            continue
        if not folder.is_dir():
            what = "is a file" if folder == root else f"lies under {folder}, which is a file"
            raise InputError(f"{where}: {what}. Set {CACHE_ENV} to a folder clinpred may create or write.")
        if not os.access(folder, os.W_OK | os.X_OK):
            what = "cannot be written" if folder == root else f"cannot be created in {folder}"
            raise InputError(
                f"{where}: {what} (permission denied). Set {CACHE_ENV} to a folder clinpred may write."
            )
        break
    return root
