"""note_stream.notes_frame: the public conversion of a cache-schema Arrow table into the notes frame."""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from clinpred.data.cohort import NOTE_DTYPES
from clinpred.data.note_stream import CACHE_SCHEMA, notes_frame

DATA = Path(__file__).resolve().parents[1] / "clinpred" / "data"


def test_notes_frame_converts_the_cache_schema_to_note_dtypes():
    table = pa.table(
        {
            "note_id": ["7", "9"],
            "part": [0, 1],
            "order": [7, 9],
            "subject_id": [1, 2],
            "hadm_id": [10, None],
            "time": [datetime(2010, 1, 2, 9), datetime(2012, 5, 2)],
            "time_is_date": [False, True],
            "charttime_out_of_range": [False, False],
            "category": ["Radiology", "Nursing"],
            "description": ["CT", None],
            "cgid": [None, 5],
            "iserror": [False, False],
            "text": ["first", "second"],
        },
        schema=CACHE_SCHEMA,
    )
    frame = notes_frame(table)
    assert list(frame.columns) == list(NOTE_DTYPES)
    assert {c: str(frame[c].dtype) for c in ("subject_id", "hadm_id", "time", "time_is_date", "cgid")} == {
        "subject_id": "int64",
        "hadm_id": "Int64",
        "time": "datetime64[ns]",
        "time_is_date": "bool",
        "cgid": "Int64",
    }
    assert list(frame["text"]) == ["first", "second"] and pd.isna(frame.loc[1, "hadm_id"])
    assert frame.loc[0, "time"] == pd.Timestamp("2010-01-02 09:00") and frame.loc[1, "cgid"] == 5


def test_the_omop_readers_import_no_private_name():
    """omop*.py use only the public functions of the modules they share with the MIMIC readers."""
    for path in sorted(DATA.glob("omop*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clinpred"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"
