"""The OMOP NOTE table -> the Cohort's notes, with a category the discharge-summary guard understands.

CSV notes go through the note reader of MIMIC (``note_stream.read_notes``: streamed, text spilled,
sorted once, cached by content). Parquet notes are read a batch at a time with pyarrow, normalised by the
same function, sorted once by the same keys and repaired by the same rules (``source_repairs``), so
both formats treat a repeated note_id alike, as the MIMIC readers do: a row repeated whole (same
note_id, same fields and text) is dropped and counted (``duplicate_note_rows_dropped``); the same
note_id with other content is refused, naming the file(s), column NOTE_ID and data rows.

What is read: note_id (an integer, as the CDM has it), person_id, visit_occurrence_id (-> hadm_id),
note_datetime, else note_date (then ``time_is_date``), note_text (required: a NOTE table without it
is refused), note_title (-> description), note_class_concept_id, note_type_concept_id and
note_source_value (-> category). The category rule runs after the read, on the distinct values (the
cache holds what the file says, so a CONCEPT table added later changes the categories, not the cache):

1. ``concept_discharge_summary``: the class or type concept is a discharge summary (concept 44814637,
   or a CONCEPT name containing "discharge summary"): always "Discharge summary", so no other field
   can hide one from the leakage guard;
2. ``mimic_category``: note_source_value or note_title is one of MIMIC-III's 15 categories (as MIMIC
   means them: categories.py); MIMIC's OMOP conversion keeps the category in note_source_value;
3. ``concept``: the class (else type) concept is one of ``NOTE_CONCEPTS`` or named in CONCEPT;
4. ``title_text``: note_title says discharge summary / radiology (``TITLE_PATTERNS``);
5. ``title_as_given`` / ``source_value_as_given``: the title as written, else the source value;
6. ``none``: "Unknown".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clinpred.data.categories import KNOWN_CATEGORIES, canonical_category, category_key, matches
from clinpred.data.cohort import DISCHARGE_SUMMARY, NOTE_DTYPES, conform
from clinpred.data.memory import return_freed_memory
from clinpred.data.note_stream import (
    CACHE_SCHEMA,
    CHARTTIME_SET_MISSING,
    SORT_KEYS,
    BlockContext,
    NoteFilters,
    notes_frame,
    read_notes,
    strings,
    to_int,
    to_time,
)
from clinpred.data.omop_tables import (
    EVENT_YEARS,
    ISO_DATETIME,
    NO_SECONDS,
    header,
    is_parquet,
    parquet_columns,
    require,
    text_column,
)
from clinpred.data.source_repairs import repair_notes
from clinpred.errors import InputError

REQUIRED = ["NOTE_ID", "PERSON_ID", "NOTE_DATE", "NOTE_TEXT"]
OPTIONAL = (
    "NOTE_DATETIME",
    "VISIT_OCCURRENCE_ID",
    "NOTE_TITLE",
    "NOTE_CLASS_CONCEPT_ID",
    "NOTE_TYPE_CONCEPT_ID",
    "NOTE_SOURCE_VALUE",
)
# The Note Type vocabulary's concepts (as MIT-LCP's MIMIC-III -> OMOP conversion maps NOTEEVENTS
# categories to them) -> the category clinpred writes: MIMIC's name where MIMIC has the category.
NOTE_CONCEPTS: dict[int, str] = {
    44814637: DISCHARGE_SUMMARY,  # Discharge summary
    44814639: "Inpatient note",
    44814641: "Radiology",  # Radiology report
    44814642: "Pathology report",
    44814643: "Ancillary report",
    44814644: "Nursing",  # Nursing report
}
# a CONCEPT name or a note_title that says what the note is
TITLE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"discharge\s*(summary|summaries|note|report)", DISCHARGE_SUMMARY),
    (r"radiology|imaging report", "Radiology"),
)
SEP = "\x1f"  # between the fields packed into the cached category (never in a concept id)
HOW = (
    "concept_discharge_summary",
    "mimic_category",
    "concept",
    "title_text",
    "title_as_given",
    "source_value_as_given",
    "none",
)
PARQUET_BATCH_ROWS = 4_096


def note_columns(path: Path) -> list[str]:
    """The NOTE columns this part has, required first (NOTE_ID first: repairs name it)."""
    have = header(path)
    if "NOTE_TEXT" not in have:
        raise InputError(
            f"{path}: the OMOP NOTE table has no NOTE_TEXT column: there is no note text to embed. "
            "Export NOTE with note_text (some extracts leave it out for privacy)."
        )
    require(path, have, REQUIRED, "NOTE")
    return [*REQUIRED, *(c for c in OPTIONAL if c in have)]


def _optional(block: pa.Table, column: str) -> pa.ChunkedArray | pa.Array:
    return strings(block, column) if column in block.column_names else pa.repeat("", block.num_rows)


def _iso(block: pa.Table, column: str) -> pa.Table:
    """``column`` rewritten from an exporter's datetime form to YYYY-MM-DD HH:MM:SS (omop_tables)."""
    values = pc.replace_substring_regex(strings(block, column), ISO_DATETIME, r"\1 \2")
    values = pc.replace_substring_regex(values, NO_SECONDS, r"\1 \2:00")
    return block.set_column(block.schema.get_field_index(column), column, values)


def normalise_note(block: pa.Table, ctx: BlockContext) -> pa.Table:
    """One NOTE block (UPPERCASE text columns) -> the note cache schema; the category fields packed."""
    n = block.num_rows
    note_id = to_int(block, "NOTE_ID", ctx, nullable=False)
    date, _ = to_time(_iso(block, "NOTE_DATE"), "NOTE_DATE", ctx, EVENT_YEARS, required=False)
    if "NOTE_DATETIME" in block.column_names:
        when, cleared = to_time(
            _iso(block, "NOTE_DATETIME"), "NOTE_DATETIME", ctx, EVENT_YEARS, required=False
        )
    else:
        when, cleared = pa.nulls(n, pa.timestamp("s")), pa.repeat(False, n)
    time = pc.coalesce(when, date)
    missing = pc.is_null(time)
    if pc.any(missing).as_py():
        raise ctx.refuse("NOTE_DATE", pc.index(missing, True).as_py(), "is empty and so is NOTE_DATETIME")
    packed = pc.binary_join_element_wise(
        _optional(block, "NOTE_CLASS_CONCEPT_ID"),
        _optional(block, "NOTE_TYPE_CONCEPT_ID"),
        _optional(block, "NOTE_SOURCE_VALUE"),
        SEP,
    )
    hadm = (
        to_int(block, "VISIT_OCCURRENCE_ID", ctx, nullable=True)
        if "VISIT_OCCURRENCE_ID" in block.column_names
        else pa.nulls(n, pa.int64())
    )
    return pa.table(
        {
            "note_id": pc.cast(note_id, pa.string()),
            "order": note_id,
            "subject_id": to_int(block, "PERSON_ID", ctx, nullable=False),
            "hadm_id": hadm,
            "time": time,
            "time_is_date": pc.is_null(when),
            "charttime_out_of_range": cleared,
            "category": packed,
            "description": _optional(block, "NOTE_TITLE"),
            "cgid": pa.nulls(n, pa.int64()),
            "iserror": pa.repeat(False, n),
            "text": block.column("NOTE_TEXT"),
        }
    )


def _concept_category(concept_id: str, names: dict[int, str]) -> str | None:
    """The category a note class/type concept gives (None: it says nothing clinpred knows)."""
    if not concept_id.isdigit() or int(concept_id) == 0:
        return None
    cid = int(concept_id)
    if cid in NOTE_CONCEPTS:
        return NOTE_CONCEPTS[cid]
    name = names.get(cid)
    if name is None:
        return None
    for pattern, category in TITLE_PATTERNS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return category
    return name.strip() or None


_MIMIC_KEYS = {category_key(c) for c in KNOWN_CATEGORIES}


def decide_category(packed: str, title: str, names: dict[int, str]) -> tuple[str, str]:
    """(category, how) of one note from its packed class|type|source value and its title."""
    klass, kind, source = [*packed.split(SEP), "", ""][:3]
    by_concept = [c for c in (_concept_category(klass, names), _concept_category(kind, names)) if c]
    if DISCHARGE_SUMMARY in by_concept:
        return DISCHARGE_SUMMARY, "concept_discharge_summary"
    for written in (source, title):
        if written.strip() and category_key(written) in _MIMIC_KEYS:
            return canonical_category(written), "mimic_category"
    if by_concept:
        return by_concept[0], "concept"
    for pattern, category in TITLE_PATTERNS:
        if re.search(pattern, title, flags=re.IGNORECASE):
            return category, "title_text"
    if title.strip():
        return title.strip(), "title_as_given"
    if source.strip():
        return source.strip(), "source_value_as_given"
    return "Unknown", "none"


def categorise(
    notes: pd.DataFrame, concept_names: Callable[[set[int]], dict[int, str]]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Notes with their category decided (on the distinct packed fields and titles) and the counts of
    each way it was decided (``omop_note_category_<how>``). ``concept_names``: CONCEPT's names of the
    class and type concept ids (looked up once, for the ids the notes hold)."""
    if notes.empty:
        return notes, {}
    keys = notes["category"].astype(str) + "\x1e" + notes["description"].fillna("").astype(str)
    codes, distinct = pd.factorize(keys)
    ids = {int(v) for key in distinct for v in key.split("\x1e")[0].split(SEP)[:2] if v.strip().isdigit()}
    names = concept_names(ids - {0} - set(NOTE_CONCEPTS))
    decided = [decide_category(*key.split("\x1e", 1), names) for key in distinct]
    category = np.array([c for c, _ in decided], dtype=object)[codes]
    how = pd.Series(np.array([h for _, h in decided], dtype=object)[codes]).value_counts()
    out = notes.assign(
        category=pd.array(category, dtype="string"),
        description=notes["description"].mask(notes["description"] == ""),
    )
    return out, {f"omop_note_category_{k}": int(v) for k, v in how.items()}


def _parquet_notes(parts: list[Path], keep: frozenset[int] | None) -> pa.Table:
    """Every Parquet NOTE part, normalised batch by batch and sorted once (CACHE_SCHEMA)."""
    tables = []
    for number, path in enumerate(parts):
        columns = note_columns(path)
        originals = {c.strip().upper(): c for c in parquet_columns(path)}
        try:
            batches = pq.ParquetFile(path).iter_batches(
                batch_size=PARQUET_BATCH_ROWS, columns=[originals[c] for c in columns]
            )
            first = 0
            for batch in batches:
                block = pa.table(
                    {
                        name.strip().upper(): col if name.strip().upper() == "NOTE_TEXT" else text_column(col)
                        for name, col in zip(batch.schema.names, batch.columns, strict=True)
                    }
                )
                table = normalise_note(block, BlockContext(path, first))
                first += batch.num_rows
                table = table.append_column("part", pa.array(np.full(table.num_rows, number, np.int16)))
                tables.append(table.select(CACHE_SCHEMA.names).cast(CACHE_SCHEMA))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(
                f"{path}: cannot be read as Parquet ({type(exc).__name__}). Is the file complete?"
            ) from None
    table = pa.concat_tables(tables)
    if keep is not None:
        table = table.filter(pc.is_in(table.column("subject_id"), pa.array(sorted(keep), pa.int64())))
    order = pc.sort_indices(table.select([k for k, _ in SORT_KEYS]), sort_keys=SORT_KEYS)
    if not pc.all(pc.equal(order, pa.array(np.arange(table.num_rows)))).as_py():
        table = table.take(order)  # the text's one copy: the unsorted batches are freed with ``tables``
    del tables
    return_freed_memory()
    return table


def read_omop_notes(
    parts: list[Path],
    *,
    visits: pd.DataFrame,
    concept_names: Callable[[set[int]], dict[int, str]],
    subject_ids: frozenset[int] | None,
    categories: Iterable[str] | None,
    use_cache: bool,
    cache_dir: Path | None,
    progress: bool,
    origin: tuple[str, Path],
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The notes (NOTE_DTYPES, patient/time order) and their counts.

    ``visits``: every visit (hadm_id = visit_occurrence_id, subject_id), inpatient or not, so that the
    repair rules clear and count only links to visits that do not exist; the caller then unlinks notes
    of visits that are not admissions.
    """
    if is_parquet(parts[0]):
        table = _parquet_notes(parts, subject_ids)
        table, counts = repair_notes(table, sources=parts, id_column="NOTE_ID", admissions=visits)
        if cleared := pc.sum(table.column("charttime_out_of_range")).as_py():
            counts[CHARTTIME_SET_MISSING] = int(cleared)
        notes = conform(notes_frame(table), NOTE_DTYPES)
        del table
    else:
        columns = note_columns(parts[0])
        notes, counts = read_notes(
            parts,
            columns,
            normalise_note,
            NoteFilters(subject_ids=subject_ids, drop_errors=False),
            use_cache=use_cache,
            cache_dir=cache_dir,
            progress=progress,
            patients=visits["subject_id"].to_numpy(),
            admissions=visits,
            origin=origin,
        )
        counts = {
            k: v for k, v in counts.items() if k not in ("error_notes_dropped", "notes_read_from_cache")
        }
    counts.pop("note_categories_normalised", None)  # the packed fields are not categories yet
    notes, how = categorise(notes, concept_names)
    if categories is not None:
        keep = matches(pa.array(notes["category"].astype("string").fillna(""), pa.string()), categories)
        notes = notes[np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)].reset_index(drop=True)
    return notes, {**counts, **how}
