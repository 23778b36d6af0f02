"""Inconsistent note and diagnosis rows: refused, or repaired by the rules declared in integrity.py.

Notes are checked on the Arrow table the note reader returns (a memory map of the sorted cache, or of
a temporary file), before any pandas copy: duplicates are found by note id, and only the repeated rows'
text is hashed (a digest each, never a second copy of the text); every row the rules drop is removed
by one filter, so clean notes are never copied at all. The rules are the same whatever the notes were
read from (MIMIC's CSVs, OMOP's NOTE as CSV or Parquet parts): a refusal names each part's data rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from clinpred.data.categories import canonicalise
from clinpred.data.tables import read_raw_header
from clinpred.errors import InputError

HASH_ROWS = 4_096  # repeated rows whose text is hashed at a time
SHOWN = 3  # repeated ids named in a refusal


def _text_digests(text: pa.ChunkedArray, rows: np.ndarray) -> list[bytes]:
    """A digest of the text of each of ``rows``, a slice at a time (the text is never collected)."""
    out: list[bytes] = []
    for start in range(0, len(rows), HASH_ROWS):
        piece = text.take(pa.array(rows[start : start + HASH_ROWS]))
        out += [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in piece.to_pylist()]
    return out


def _column_batches(path: Path, column: str) -> Iterator[pa.Array]:
    """One column of a CSV or Parquet part (OMOP's NOTE may be Parquet), a batch at a time, as text."""
    if path.name.lower().endswith((".parquet", ".pq")):
        file = pq.ParquetFile(path)
        original = {h.strip().upper(): h for h in file.schema_arrow.names}[column]
        for batch in file.iter_batches(columns=[original]):
            yield pc.fill_null(pc.cast(batch.column(0), pa.string()), "")  # an int64 id: 3 -> "3"
        return
    original = {h.strip().upper(): h for h in read_raw_header(path)}[column]
    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="detect"),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={original: pa.string()}, include_columns=[original], strings_can_be_null=False
        ),
    )
    with reader:
        for batch in reader:
            yield batch.column(0)


def _data_rows(path: Path, column: str, ids: set[str]) -> dict[str, list[int]]:
    """The data rows (1 = the first after the header; in Parquet, the first row) where ``column``
    holds one of ``ids``: read again, that column alone, only when a refusal must name them."""
    found: dict[str, list[int]] = {}
    seen = 0
    for batch in _column_batches(path, column):
        values = pc.utf8_trim_whitespace(batch).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(np.isin(values, list(ids))):
            found.setdefault(str(values[i]), []).append(seen + int(i) + 1)
        seen += len(batch)
    return found


def _duplicates(table: pa.Table, sources: Sequence[Path], id_column: str) -> tuple[np.ndarray, int]:
    """Rows that repeat an earlier row whole (to drop; the first copy is kept), and their number.

    An id that appears again with other content is refused: which copy is right cannot be known.
    """
    ids = table.column("note_id")
    drop = np.zeros(table.num_rows, dtype=bool)
    if len(pc.unique(ids)) == len(ids):  # the common case: one hash of the ids
        return drop, 0
    tally = pc.value_counts(ids)
    repeated = pc.filter(tally.field("values"), pc.greater(tally.field("counts"), 1))
    rows = np.flatnonzero(pc.is_in(ids, value_set=repeated).to_numpy(zero_copy_only=False))
    columns = [c for c in table.column_names if c not in ("text", "part")]
    copies = table.select(columns).take(pa.array(rows)).to_pandas()
    copies["_text"] = _text_digests(table.column("text"), rows)
    copies["_row"] = rows
    whole = copies.duplicated(subset=[*columns, "_text"], keep="first")
    conflicting = copies.loc[~whole, "note_id"]
    conflicting = sorted(set(conflicting[conflicting.duplicated()]), key=lambda v: (len(v), v))
    if conflicting:
        _refuse_conflicts(conflicting, table, rows, sources, id_column)
    drop[copies.loc[whole, "_row"].to_numpy()] = True
    return drop, int(whole.sum())


def _refuse_conflicts(
    ids: list[str], table: pa.Table, rows: np.ndarray, sources: Sequence[Path], id_column: str
) -> None:
    """The InputError for ids that appear again with other content, naming file, column and rows."""
    shown = set(ids[:SHOWN])
    parts = pc.take(table.column("part"), pa.array(rows)) if "part" in table.column_names else None
    files = sorted({int(p) for p in parts.to_pylist()}) if parts is not None else list(range(len(sources)))
    found = {sources[part]: _data_rows(sources[part], id_column, shown) for part in files}
    found = {path: at for path, at in found.items() if at}
    located: dict[str, list[str]] = {}
    for path, at_rows in found.items():
        for value, at in at_rows.items():
            where = f"data row(s) {', '.join(str(r) for r in at)}"
            located.setdefault(value, []).append(where if len(found) == 1 else f"{path.name} {where}")
    named = "; ".join(f"{id_column} {v} in {' and '.join(located.get(v, ['?']))}" for v in ids[:SHOWN])
    more = f" ({len(ids)} such ids in all)" if len(ids) > SHOWN else ""
    where = ", ".join(str(path) for path in found) or ", ".join(str(s) for s in sources)
    raise InputError(
        f"{where}: column {id_column}: {named}: the {id_column} appears again with different content"
        f"{more}. Each note must have one {id_column}: which copy is right cannot be told, so remove the "
        "wrong rows (or take the file again from the release)."
    )


def _empty_text(table: pa.Table) -> np.ndarray:
    """Notes whose TEXT is empty or white space only: nothing to embed."""
    text = table.column("text")
    empty = pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))  # lengths: offsets only
    return pc.fill_null(empty, True).to_numpy(zero_copy_only=False)


def _admission_links(table: pa.Table, admissions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(notes whose HADM_ID names no admission, notes whose HADM_ID is another patient's admission)."""
    hadm = table.column("hadm_id")
    index = pc.index_in(hadm, value_set=pa.array(admissions["hadm_id"].to_numpy(), pa.int64()))
    known = pc.is_valid(index).to_numpy(zero_copy_only=False)
    unknown = pc.is_valid(hadm).to_numpy(zero_copy_only=False) & ~known
    owner = pc.take(pa.array(admissions["subject_id"].to_numpy(), pa.int64()), index)
    other = pc.fill_null(pc.not_equal(owner, table.column("subject_id")), False)
    return unknown, other.to_numpy(zero_copy_only=False)


def repair_notes(
    table: pa.Table, *, sources: Sequence[Path], id_column: str, admissions: pd.DataFrame
) -> tuple[pa.Table, dict[str, int]]:
    """Apply the note rules of integrity.py to the notes read (Arrow, cache schema).

    Returns the repaired table (the same one when nothing needed repair) and the non-zero counts.
    """
    counts: dict[str, int] = {}
    drop, counts["duplicate_note_rows_dropped"] = _duplicates(table, sources, id_column)
    empty = _empty_text(table) & ~drop
    counts["empty_notes_dropped"] = int(empty.sum())
    drop |= empty
    unknown, other = _admission_links(table, admissions)
    other &= ~drop
    counts["notes_of_another_patients_admission_dropped"] = int(other.sum())
    drop |= other
    clear = unknown & ~drop
    counts["note_admission_links_unknown_cleared"] = int(clear.sum())
    if clear.any():
        hadm = pc.if_else(pa.array(clear), pa.scalar(None, pa.int64()), table.column("hadm_id"))
        table = table.set_column(table.schema.get_field_index("hadm_id"), "hadm_id", hadm)
    if drop.any():
        table = table.filter(pa.array(~drop))
    category, counts["note_categories_normalised"] = canonicalise(table.column("category"))
    if counts["note_categories_normalised"]:
        table = table.set_column(table.schema.get_field_index("category"), "category", category)
    return table, {k: v for k, v in counts.items() if v}


def link_diagnoses(diagnoses: pd.DataFrame, admissions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Diagnoses whose HADM_ID names no admission, or another patient's, dropped and counted: their
    codes would label a stay (or a patient) they do not belong to."""
    owner = diagnoses["hadm_id"].map(admissions.set_index("hadm_id")["subject_id"])
    unknown = owner.isna().to_numpy()
    other = ~unknown & (owner.to_numpy() != diagnoses["subject_id"].to_numpy())
    counts = {
        "diagnoses_of_unknown_admission_dropped": int(unknown.sum()),
        "diagnoses_of_another_patients_admission_dropped": int(other.sum()),
    }
    keep = ~(unknown | other)
    frame = diagnoses if keep.all() else diagnoses[keep].reset_index(drop=True)
    return frame, {k: v for k, v in counts.items() if v}
