"""A MEDS dataset's note events, streamed into the note cache: memory bounded by a row group.

Held in memory, a MEDS dataset's note text is the dataset's size (full MIMIC-III: about 4 GB). So, as
for the MIMIC readers (note_stream.py), the text of each row group's note events goes to spill files
as it is read (``text_spill.TextSpill``, one partition per shard: a shard is sorted by subject and
time, so its text is taken back bucket after bucket), and only the small columns stay in memory. They
are sorted by subject, time, shard and row (the Cohort's order), and the notes are written in that
order, a slice at a time, to an uncompressed Arrow IPC file that the result then maps: the note cache,
or an unnamed temporary file when the cache is off (then only the kept subjects' notes are spilled).

The cache file (``$CLINPRED_CACHE/notes/meds-<digest>.arrow``) holds every note event of the dataset,
all subjects and categories, text or none (so that the counts of a later read are the same); filters
apply to the map. It is keyed as the MIMIC note cache is: by the content of every shard (a SHA-256 of
its bytes, and its size) and its path under ``data/`` (generated note ids name the shard), plus the
note and diagnosis patterns (which events are notes) and CACHE_VERSION. Written under a temporary name
and renamed, with a source record beside it (note_cache.py) for `clinpred cache info` and
`cache clear --source`.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clinpred.atomic import atomic_path
from clinpred.data.meds_codes import MedsCodes
from clinpred.data.memory import map_file, return_freed_memory
from clinpred.data.note_stream import content_digest, default_cache_dir
from clinpred.data.text_spill import TextSpill
from clinpred.temporaries import remove_stale_temporaries

CACHE_VERSION = 1
SLICE_ROWS = 2_048  # notes gathered and written at a time (as note_stream.SLICE_ROWS)
SORT_KEYS = [("subject_id", "ascending"), ("time", "ascending"), ("shard", "ascending"), ("row", "ascending")]
HAS_TEXT = "_has_text"  # kept beside the small columns: the spill stores strings, not nulls


def cache_path(names: list[str], paths: list[Path], codes: MedsCodes, cache_dir: Path | None) -> Path:
    """The cache file of a MEDS dataset's notes: keyed by each shard's name, content and size, the
    code patterns and CACHE_VERSION (see the module docstring)."""
    keys = [
        f"{name}|{content_digest(path)}|{path.stat().st_size}"
        for name, path in zip(names, paths, strict=True)
    ]
    settings = codes.model_dump_json()
    digest = hashlib.sha256("|".join([*keys, settings, f"meds-v{CACHE_VERSION}"]).encode()).hexdigest()[:24]
    return Path(cache_dir or default_cache_dir()) / f"meds-{digest}.arrow"


def read_cache(cache_file: Path) -> pa.Table:
    """The cached notes, a memory map of the file."""
    with cache_file.open("rb") as file:
        return _mapped(file)


def _mapped(file: BinaryIO) -> pa.Table:
    with pa.ipc.open_file(pa.py_buffer(map_file(file))) as reader:
        return reader.read_all()


class NoteSink:
    """Takes each row group's note events (subject_id, time, code, text_value, extra columns, shard,
    row); keeps all but the text, which goes to a ``TextSpill``; ``finish`` writes them sorted.

    ``all_subjects``: the rows come for every subject (a cache is being written), not only the kept.
    """

    def __init__(self, schema: pa.Schema, cache_file: Path | None) -> None:
        self.schema = schema
        self.cache_file = cache_file
        self.all_subjects = cache_file is not None
        if cache_file is not None:
            remove_stale_temporaries(cache_file.parent)  # note text left by a reader that was killed
        # the text stays where the cache is (local disk), else in the system's temporary folder
        self._spill = TextSpill(None if cache_file is None else cache_file.parent)
        self._keys: list[pa.Table] = []

    def add(self, notes: pa.Table, shard: int) -> None:
        text = notes.column("text_value")
        self._spill.append(text, np.full(notes.num_rows, shard, dtype=np.int64))
        keys = notes.drop_columns(["text_value"])
        self._keys.append(keys.append_column(HAS_TEXT, pc.is_valid(text)))

    def close(self) -> None:
        """Drop the spill files (unnamed: nothing stays on disk); again does nothing."""
        self._spill.__exit__(None, None, None)
        self._spill = TextSpill()  # empty: nothing to close
        self._keys = []

    def finish(self) -> pa.Table:
        """Sort the notes and write them to the cache (or a temporary file); return a map of it."""
        try:
            keys = pa.concat_tables(self._keys) if self._keys else _key_schema(self.schema).empty_table()
            self._keys = []
            order = pc.sort_indices(keys, sort_keys=SORT_KEYS)
            keys = keys.take(order).combine_chunks()
            order = order.to_numpy()
            return_freed_memory()  # the unsorted columns
            if self.cache_file is None:
                with tempfile.TemporaryFile() as file:
                    self._write(file, keys, order)
                    self.close()
                    return_freed_memory()
                    return _mapped(file)
            with atomic_path(self.cache_file) as tmp, tmp.open("wb") as file:
                self._write(file, keys, order)
            self.close()
            return_freed_memory()
            return read_cache(self.cache_file)
        finally:
            self.close()

    def _write(self, file: BinaryIO, keys: pa.Table, order: np.ndarray) -> None:
        with pa.ipc.new_file(pa.PythonFile(file, mode="w"), self.schema) as writer:
            texts = self._spill.gather(order, SLICE_ROWS)
            for start, text in zip(range(0, len(order), SLICE_ROWS), texts, strict=True):
                piece = keys.slice(start, len(text))
                valid = piece.column(HAS_TEXT)
                if valid.null_count or not pc.all(valid).as_py():  # a note event without text: null
                    text = pc.if_else(valid, text, pa.scalar(None, pa.large_string()))
                piece = piece.drop_columns([HAS_TEXT]).append_column("text_value", text)
                writer.write_table(piece.select(self.schema.names).cast(self.schema))
        file.flush()


def _key_schema(schema: pa.Schema) -> pa.Schema:
    fields = [f for f in schema if f.name != "text_value"]
    return pa.schema([*fields, pa.field(HAS_TEXT, pa.bool_())])
