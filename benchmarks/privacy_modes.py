"""What keeping credentialed output private costs: the umask, and the walk of the cache root.

The modes themselves cost one system call: ``protect_writes`` sets the process umask, and every file is
then created with the right mode, with no chmod afterwards. What a protected command adds beyond that is
``narrow_cache``: it looks for paths of clinpred's cache root that others can reach, and a folder that
gives them nothing hides all below it, so in the usual case (the root 0700) it is one lstat; only a cache
left open (by an older clinpred, a synthetic run's folders) is walked, once, and fixed. Peer: a bare
``os.walk`` plus ``lstat`` of every path (what a check that did not stop at closed folders would cost),
and the start of the ``clinpred`` command itself (``clinpred --help``). Measured on this project's
2-core machine, 3,223 paths (30 fingerprint folders of 100 shards): the umask 1.4 us, the usual check
about 4 us against the bare walk's 17-38 ms, the one-time fix of a fully exposed cache 74-139 ms.

    .venv/bin/python benchmarks/privacy_modes.py
    .venv/bin/python benchmarks/privacy_modes.py --folders 50 --shards 100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clinpred.privacy.modes import narrow_cache, protect_writes


def _build(root: Path, folders: int, shards: int) -> int:
    """A cache root shaped like clinpred's: note files with their records, fingerprint folders of shards."""
    (root / "notes").mkdir(parents=True)
    for i in range(20):
        (root / "notes" / f"noteevents-{i:024x}.arrow").write_bytes(b"x" * 64)
        (root / "notes" / f"noteevents-{i:024x}.arrow.source.json").write_text("{}")
    for f in range(folders):
        shard_dir = root / "embeddings" / f"{f:064x}" / "shards"
        shard_dir.mkdir(parents=True)
        for name in ("index.json", "index.lock", "embedding.lock", "sources.json"):
            (shard_dir.parent / name).write_text("{}")
        for s in range(shards):
            (shard_dir / f"{s:020d}.shard").write_bytes(b"x" * 64)
    return sum(1 for _ in root.rglob("*")) + 1


def _best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=30, help="fingerprint folders")
    parser.add_argument("--shards", type=int, default=100, help="shards per fingerprint folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cache"
        os.umask(0o022)
        paths = _build(root, args.folders, args.shards)
        umask = _best(lambda: (protect_writes(True), os.umask(0o022)), repeat=1000)
        os.umask(0o022)
        exposed = _best(lambda: narrow_cache(root), repeat=1)  # every path 0644/0755: all of them changed
        clean = _best(lambda: narrow_cache(root))  # the usual case: nothing to change

        def bare() -> None:
            for directory, folders, files in os.walk(root):
                for name in [*folders, *files]:
                    os.lstat(os.path.join(directory, name))

        walk = _best(bare)
        script = Path(sys.executable).parent / "clinpred"
        start = _best(lambda: subprocess.run([str(script), "--help"], capture_output=True, check=True), 3)
    print(
        f"cache of {paths:,} paths ({args.folders} fingerprint folders x {args.shards} shards, 40 note files)"
    )
    print(f"protect_writes (the umask):          {umask * 1e6:8.1f} us")
    print(
        f"narrow_cache, nothing to change:      {clean * 1e6:8.1f} us  (bare os.walk + lstat {walk * 1e3:.1f} ms, "
        f"{clean / walk:.2f}x)"
    )
    print(
        f"narrow_cache, every path exposed:     {exposed * 1e3:8.1f} ms  (once: the next walk finds nothing)"
    )
    print(
        f"clinpred --help (the command's start): {start * 1e3:8.1f} ms  (the check is {clean / start:.3%} of it)"
    )


if __name__ == "__main__":
    main()
