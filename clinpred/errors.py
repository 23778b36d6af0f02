"""Errors a user can cause. The CLI turns them into one clear message and exit code 2, no traceback."""

import re


class InputError(Exception):
    """Bad input from the user: a path, a column, a row, a setting, a missing credential or model.

    The message names the file, column or row and says what to do. It must never contain note text.
    """


def cannot_write_message(exc: BaseException) -> str | None:
    """One message for a write that failed for want of room (EFBIG, ENOSPC, EDQUOT); None for other errors.

    It names what could not be written when the error knows (a writer that knows its target sets the
    error's ``filename``); the writers have already removed their temporaries.
    """
    import errno

    code = getattr(exc, "errno", None)
    reasons = {
        errno.EFBIG: "the file-size limit of this process (ulimit -f) was reached",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "the disk quota is exceeded",
    }
    if code not in reasons:
        return None
    target = getattr(exc, "filename", None)
    if target:  # a file inside a run's temporary folder is named by where it was going
        target = re.sub(r"(^|/)\.([^/]+)\.\d+\.tmp(-[A-Za-z0-9_]+)?(?=/|$)", r"\1\2", str(target))
    what = f"could not write {target}" if target else "could not write a file"
    return (
        f"{what}: {reasons[code]}. Free space or raise the limit, then run again; "
        "nothing half-written was left behind."
    )


def path_error_message(exc: BaseException) -> str | None:
    """One message for a path the file system refuses (a name too long, no permission, read-only).

    These come from the user's paths and environment, not from clinpred, wherever they are first
    touched (a check of --out, --data or the cache); None for every other error.
    """
    import errno

    code = getattr(exc, "errno", None)
    target = getattr(exc, "filename", None) or "a path"
    if code == errno.ENAMETOOLONG:
        return (
            f"{target}: a file or folder name in this path is too long for the file system (usually "
            "255 bytes per name). Use a shorter name."
        )
    if code in (errno.EACCES, errno.EPERM):
        return f"{target}: permission denied. Use a path you may read and write, or ask its owner."
    if code == errno.EROFS:
        return f"{target}: the file system is read-only. Choose a writable location."
    if code == errno.ELOOP:
        return f"{target}: too many levels of symbolic links (a link that points to itself?)."
    return None
