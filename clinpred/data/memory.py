"""Giving freed memory back to the OS between the stages of a large read.

Arrow's allocator (and glibc's, for the Python objects of ISA-L's reader) keeps freed blocks for the
thread that freed them to reuse. A note read frees a stage's temporaries on one thread and fills the
next stage on another, so without this the process would hold both at its peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

import pyarrow as pa


def return_freed_memory() -> None:
    """Hand the memory this thread's allocators keep for reuse back to the OS (about 1 ms)."""
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)  # glibc; absent from musl, which keeps no such arenas
