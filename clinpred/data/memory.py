"""Memory for large reads: freed memory handed back to the OS, files mapped rather than copied in.

Arrow's allocator (and glibc's, for the Python objects of ISA-L's reader) keeps freed blocks for the
thread that freed them to reuse. A note read frees a stage's temporaries on one thread and fills the
next stage on another, so without ``return_freed_memory`` the process would hold both at its peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import sys
import weakref

import pyarrow as pa


def return_freed_memory() -> None:
    """Hand the memory this thread's allocators keep for reuse back to the OS (about 1 ms)."""
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)  # glibc; absent from musl, which keeps no such arenas


def map_file(file: object, *, populate: bool = False) -> mmap.mmap:
    """A read-only memory map of a whole open file (not empty); it stays valid after the file closes.

    Its pages are the page cache's: they count toward the process's resident memory only while
    mapped, and the kernel can drop them and read them again under pressure, as it cannot anonymous
    memory. ``populate`` maps every page in one call (Linux), for a caller about to touch them all.
    """
    file.flush()
    if hasattr(mmap, "MAP_SHARED"):
        flags = mmap.MAP_SHARED | (getattr(mmap, "MAP_POPULATE", 0) if populate else 0)
        mapping = mmap.mmap(file.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
    else:
        mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    _MAPPED.add(mapping)
    return mapping


_MAPPED: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()  # every live map_file mapping


def release_mapped_pages() -> None:
    """Unmap the pages of every file mapping this process holds from its resident set (Linux).

    The note text is a memory map of the note cache: each page read (the notes sorted, masked, fitted
    on) stays in the process's resident set while the mapping lives, about 2.5 GB for full MIMIC-III
    after the fine-tuning and evaluation notes were read once. They are the kernel's page cache, not
    the process's own memory: ``MADV_DONTNEED`` on a shared read-only file mapping drops them from the
    resident set without changing a byte; a later read maps them again from the page cache (or the
    file). Called after the stages that read all the text (the split, a fit, an embedding).
    """
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:
        return
    for mapping in list(_MAPPED):
        with contextlib.suppress(ValueError, OSError):  # closed meanwhile
            mapping.madvise(advice)
