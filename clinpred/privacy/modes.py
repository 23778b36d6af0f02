"""Who may read what clinpred derives from credentialed notes (DESIGN.md rule 6).

Note text, embeddings (which can be inverted back to names), runs and fine-tuned models derived from a
non-synthetic source are readable by their owner alone: folders 0700, files 0600, or with
``[privacy] share_with_group`` (or ``CLINPRED_SHARE_WITH_GROUP=1``) 0750 / 0640 for a team under one
data use agreement, never more. The mode is set through the process umask before the first write, so
every file is *created* with it, by clinpred and by the libraries it calls (sentence-transformers'
save, pyarrow, the tokenizers), and is never world-readable for a moment. A chmod afterwards would leave
that moment, and would miss files a library writes on its own. The cost is one system call.

What derives from the synthetic cohort alone keeps the user's usual permissions.

clinpred's cache root holds text and vectors of every source it has read, so its own paths there are
kept private whatever wrote them: a cache made group- or world-readable (by an older clinpred, a copy,
a synthetic run before) is narrowed once by the next protected command, and said. Entries known to
derive from the synthetic cohort alone are left as they are; nothing outside the cache root and the
command's own outputs has its mode changed.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from clinpred.paths import cache_root

PRIVATE_UMASK = 0o077  # folders 0700, files 0600
GROUP_UMASK = 0o027  # folders 0750, files 0640
SHARE_ENV = "CLINPRED_SHARE_WITH_GROUP"
_TRUE = {"1", "true", "yes", "on"}
NOTE_SIDECAR = ".source.json"  # notes/<stem>-<digest>.arrow.source.json: where that note text came from
EMBEDDING_SOURCES = "sources.json"  # embeddings/<key>/sources.json: the sources embedded under it


def share_with_group(setting: bool = False) -> bool:
    """The config's setting, or the environment variable for a whole team's shell."""
    return setting or os.environ.get(SHARE_ENV, "").strip().lower() in _TRUE


def current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc/self/status), else by a set and restore
    that never passes through a wider mask than the one in force."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def protect_writes(protected: bool, *, share: bool = False) -> bool:
    """From now on, what this process creates is owner-only (or group-readable with ``share``).

    Called by every command before its first write, with ``protected`` true when what it reads is
    credentialed (anything but the sealed synthetic cohort). Returns whether the mode was narrowed.
    The umask only ever narrows: a user's stricter umask is kept (so a user whose umask is 077 keeps
    group out even with ``share``). The umask is set to the wanted mask first, then combined with the
    old one, so no file created meanwhile by another thread gets a wider mode than either.
    """
    if not protected:
        return False
    wanted = GROUP_UMASK if share_with_group(share) else PRIVATE_UMASK
    previous = os.umask(wanted)
    os.umask(previous | wanted)
    return True


def is_credentialed(source: Any) -> bool:
    """Whether a data source is credentialed: anything but clinpred's sealed synthetic cohort.

    ``source``: a DataConfig (``synthetic`` set: the generated cohort), a folder path (credentialed
    unless its seal is intact), or None (nothing read: not credentialed).
    """
    from clinpred.data.synthetic_seal import is_sealed_synthetic

    if source is None:
        return False
    if getattr(source, "synthetic", None) is not None:
        return False
    path = getattr(source, "path", source)
    if path is None:
        return False
    path = Path(path)
    return not (path.is_dir() and is_sealed_synthetic(path))


def runs_credentialed(run_dirs: Any) -> bool:
    """Whether any of these run folders derives from a credentialed cohort: its results.json does not
    say ``cohort.synthetic`` true (an unreadable one counts as credentialed)."""
    for run_dir in run_dirs:
        try:
            cohort = json.loads((Path(run_dir) / "results.json").read_text()).get("cohort", {})
        except (OSError, ValueError, AttributeError):
            return True
        if not (isinstance(cohort, dict) and cohort.get("synthetic") is True):
            return True
    return False


def protect_source(source: Any, *, share: bool = False, credentialed: bool | None = None) -> bool:
    """The one call a command makes before its first write: owner-only modes when ``source`` is
    credentialed (``credentialed`` overrides the check: a --pairs file, a report of protected runs), and
    clinpred's own cache narrowed if it was left readable by others, said once on stderr.

    Returns whether the modes were narrowed.
    """
    protected = is_credentialed(source) if credentialed is None else credentialed
    if not protect_writes(protected, share=share):
        return False
    try:
        root = cache_root()
    except Exception:  # a bad CLINPRED_CACHE is refused, by name, where the cache is first used
        return True
    changed = narrow_cache(root, share=share)
    if changed:
        who = "its owner and group" if share_with_group(share) else "its owner"
        print(
            f"clinpred: {len(changed)} path(s) under {root} were readable by others; now readable by {who} "
            "alone (the cache holds note text and embeddings of credentialed data)",
            file=sys.stderr,
        )
    return True


def modes_line(protected: bool, *, share: bool = False) -> str:
    """One line for a command's output: what modes what it writes gets, and why."""
    if not protected:
        return "modes: usual permissions (synthetic cohort)"
    if share_with_group(share):
        return "modes: owner and group, 0750/0640 (credentialed source, share_with_group)"
    return "modes: owner-only, 0700/0600 (credentialed source)"


def cap_to(fd: int, reference: Path) -> None:
    """Give a file being written no access that ``reference`` does not give (0700 -> 0600, 0750 -> 0640).

    ``reference`` is the folder the file goes into (a process on the synthetic cohort adding to a cache
    folder that also holds credentialed entries, the base model's embeddings of both, must not leave
    world-readable files in it) or the file it replaces (never wider than what it replaces).
    """
    try:
        allowed = stat.S_IMODE(reference.stat().st_mode) | 0o600
        current = stat.S_IMODE(os.fstat(fd).st_mode)
        if current & ~allowed & 0o777:
            os.fchmod(fd, current & allowed)
    except OSError:
        pass


def narrow_folders(folders: list[Path]) -> None:
    """Give cache folders of ours that now hold credentialed entries no access the umask in force (set by
    ``protect_writes``) would not give a new folder."""
    mask = current_umask() & 0o077
    for folder in folders:
        try:
            info = folder.lstat()
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
                extra = stat.S_IMODE(info.st_mode) & mask
                if extra:
                    os.chmod(folder, stat.S_IMODE(info.st_mode) & ~extra)
        except OSError:
            continue


def exposed_bits(mode: int, *, share: bool = False) -> int:
    """The permission bits of ``mode`` that reach beyond the owner (beyond the group when shared)."""
    allowed_group = (stat.S_IRGRP | stat.S_IXGRP) if share_with_group(share) else 0
    return mode & (0o077 & ~allowed_group)


def mode_text(path: Path) -> str:
    """``0600``-style permission bits of a path (not following a symlink)."""
    return f"{stat.S_IMODE(path.lstat().st_mode):04o}"


def _synthetic_only(record_file: Path) -> bool:
    """Whether a source record lists sources, every one of them the synthetic cohort."""
    try:
        sources = json.loads(record_file.read_text()).get("sources", [])
    except (OSError, ValueError, AttributeError):
        return False
    return bool(sources) and all(isinstance(s, dict) and s.get("synthetic") is True for s in sources)


_KEY_NAME = re.compile(r"[0-9a-f]{64}")


def _public(directory: Path, names: list[str], root: Path) -> set[str]:
    """The entries of ``directory`` that derive from the synthetic cohort alone: the cache's synthetic
    folder, a fingerprint folder whose recorded sources are all synthetic, a note cache file (and its
    record) read from the synthetic cohort only. They keep the usual permissions."""
    public = {"synthetic"} if directory == root and "synthetic" in names else set()
    for name in names:
        if _KEY_NAME.fullmatch(name) and _synthetic_only(directory / name / EMBEDDING_SOURCES):
            public.add(name)
        elif name.endswith(NOTE_SIDECAR) and _synthetic_only(directory / name):
            public |= {name, name.removesuffix(NOTE_SIDECAR)}
    return public


def exposed_paths(root: Path, *, share: bool = False) -> list[tuple[Path, int]]:
    """clinpred's paths under ``root`` that others (or the group, unless shared) can reach and read,
    write or enter, with their modes; what derives from the synthetic cohort alone excepted.

    A folder that gives them nothing hides everything below it, so the walk stops there: in the usual
    case (the root 0700) it costs one lstat, whatever the cache holds. Below an exposed folder every
    path is checked, so that narrowing the folder alone does not leave files to be exposed again by a
    later chmod of it. Symbolic links and paths of another owner are left.
    """
    found: list[tuple[Path, int]] = []
    uid = os.getuid()
    pending = [root]
    first = True
    while pending:
        directory = pending.pop()
        if first:
            entries, first = [root], False
        else:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            public = _public(directory, names, root)
            entries = [directory / name for name in names if name not in public]
        for path in entries:
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode) or info.st_uid != uid:
                continue
            mode = stat.S_IMODE(info.st_mode)
            if exposed_bits(mode, share=share):
                found.append((path, mode))
                if stat.S_ISDIR(info.st_mode):
                    pending.append(path)
    return found


def narrow_cache(root: Path | None = None, *, share: bool = False) -> list[Path]:
    """Take group/other access away from clinpred's own cache paths that others can reach; returns
    those changed (see ``exposed_paths``: a link is never followed, so a link planted in the cache
    cannot turn this into a chmod of someone else's file)."""
    changed = []
    for path, mode in exposed_paths(root or cache_root(), share=share):
        try:
            os.chmod(path, mode & ~exposed_bits(mode, share=share))  # not a link: exposed_paths checked
            changed.append(path)
        except (FileNotFoundError, PermissionError):
            continue  # gone meanwhile, or not ours to change
    return changed
