"""Malformed and truncated note files, found and reported without ever echoing a cell of them.

pyarrow's CSV reader repeats the offending row in its error message, and that row is note text
(DESIGN.md rule 6). Bad rows are therefore caught by an ``invalid_row_handler`` that records only the
field counts. And a file cut inside a quoted note (a partial download, a disk that filled up) parses
without error: its last note simply runs to the end of the file. A well-formed CSV holds an even number
of quote characters (each quoted field opens and closes, an escaped quote is doubled), so the reader
counts them as the bytes stream past, and an odd total means the file ends inside a quoted field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinpred.errors import InputError


class QuoteCountingStream:
    """A binary stream that counts the ``"`` bytes read through it (pyarrow reads it like a file)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.quotes = 0
        self.bytes = 0
        self.error: Exception | None = None
        self.stopped = False

    def read(self, size: int = -1) -> bytes:
        # A decompression error is kept and the reader sees the end of the file: an exception raised
        # inside pyarrow's read-ahead thread can outlive the reader and abort the process at exit.
        if self.error is not None or self.stopped:
            return b""
        try:
            data = self.raw.read(size)
        except Exception as exc:
            self.error = exc
            return b""
        self.quotes += data.count(b'"')
        self.bytes += len(data)
        return data

    def stop(self) -> None:
        """Report the end of the file from now on, so that a reader stopped early drains quickly.

        Leaving pyarrow's reader while its read-ahead still calls into this stream can abort the
        process at exit ("terminate called without an active exception"); a reader that reaches the
        end of its input finishes cleanly.
        """
        self.stopped = True

    def raise_read_error(self) -> None:
        """Re-raise what reading the file raised (a corrupt or truncated gzip), if anything."""
        if self.error is not None:
            raise self.error

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def close(self) -> None:
        self.raw.close()

    def check_complete(self, path: Path) -> None:
        """Raise when the file ended inside a quoted field (call after the whole file was read)."""
        if self.quotes % 2:
            raise InputError(
                f"{path}: the file ends inside a quoted field (an odd number of quote characters in "
                f"{self.bytes:,} bytes): it is truncated, or a quote is unbalanced. Download or "
                "decompress it again."
            )


@dataclass
class InvalidRows:
    """Records the first row with the wrong number of fields; pyarrow then skips it, text unseen."""

    first: tuple[int, int] | None = None  # (expected, actual) fields
    count: int = 0

    def __call__(self, row: Any) -> str:
        self.count += 1
        if self.first is None:
            self.first = (row.expected_columns, row.actual_columns)
        return "skip"

    def check(self, path: Path) -> None:
        """Raise a message naming the file and the row, never the row's content."""
        if self.first is None:
            return
        expected, actual = self.first
        row = first_bad_row(path, expected)
        where = f"data row {row:,}" if row is not None else "a data row"
        raise InputError(
            f"{path}: {where} has {actual} fields where the header has {expected}: the file is malformed "
            "(an unescaped quote or a stray comma) or truncated. Download or decompress it again."
        )


def first_bad_row(path: Path, expected: int) -> int | None:
    """The 1-based data row of the first record with the wrong field count (a slow pass, errors only)."""
    import csv

    from clinpred.data.tables import open_text

    csv.field_size_limit(1 << 30)
    try:
        with open_text(path) as f:
            reader = csv.reader(f)
            next(reader, None)
            for number, record in enumerate(reader, start=1):
                if len(record) != expected:
                    return number
    except (OSError, EOFError, UnicodeDecodeError, csv.Error):
        return None
    return None
