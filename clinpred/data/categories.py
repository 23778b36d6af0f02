"""MIMIC note categories compared as MIMIC means them: trimmed, case-folded, spacing ignored.

MIMIC-III writes 15 categories, several with a trailing space ("Physician "); an export or a hand edit
can write them in another case or spacing ("discharge SUMMARY "). A category that is not recognised
would slip past the discharge-summary leakage guard and the ``categories`` filter, so every reader
writes the canonical form, every guard and filter matches by the same key, and the rows whose written
form differed beyond the release's own trailing spaces are counted (``note_categories_normalised``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clinpred.data.cohort import DISCHARGE_SUMMARY

# MIMIC-III v1.4's categories, as clinpred writes them (the release's trailing spaces stripped)
KNOWN_CATEGORIES: tuple[str, ...] = (
    "Nursing/other",
    "Radiology",
    "Nursing",
    "ECG",
    "Physician",
    "Discharge summary",
    "Echo",
    "Respiratory",
    "Nutrition",
    "General",
    "Rehab Services",
    "Social Work",
    "Case Management",
    "Pharmacy",
    "Consult",
)


def category_key(name: str) -> str:
    """What two spellings of one category share: lower case, no white space."""
    return "".join(name.lower().split())


_CANONICAL = {category_key(name): name for name in KNOWN_CATEGORIES}
_KEYS = pa.array(list(_CANONICAL), pa.string())
_NAMES = pa.array(list(_CANONICAL.values()), pa.string())


def canonical_category(name: str) -> str:
    """The canonical name of a known category; any other name trimmed."""
    return _CANONICAL.get(category_key(name), name.strip())


def _keys(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.replace_substring_regex(pc.utf8_lower(values), r"\s+", "")


def canonicalise(written: pa.ChunkedArray | pa.Array) -> tuple[pa.ChunkedArray | pa.Array, int]:
    """Categories as written -> their canonical form, and how many rows differed from it beyond
    trailing white space (the release's own). Unknown categories stay as written, trimmed.

    The rule runs on the few distinct values, then maps every row through them (2M notes: one lookup)."""
    distinct = pc.unique(written)
    trimmed = pc.utf8_trim_whitespace(distinct)
    keys = _keys(trimmed)
    index = pc.index_in(keys, value_set=_KEYS.cast(keys.type))
    canonical = pc.coalesce(pc.take(_NAMES.cast(trimmed.type), index), trimmed)
    changed = pc.fill_null(
        pc.and_(pc.is_valid(index), pc.not_equal(pc.utf8_rtrim_whitespace(distinct), canonical)), False
    )
    rows = pc.index_in(written, value_set=distinct)
    n_changed = int(pc.sum(pc.take(changed, rows)).as_py() or 0)
    return pc.take(canonical, rows), n_changed


def matches(categories: pa.ChunkedArray | pa.Array, wanted: Iterable[str]) -> pa.ChunkedArray | pa.Array:
    """Which rows hold one of the ``wanted`` categories, compared by key (the ``categories`` filter)."""
    keys = _keys(categories)
    wanted_keys = pa.array(sorted({category_key(name) for name in wanted}), pa.string()).cast(keys.type)
    return pc.fill_null(pc.is_in(keys, value_set=wanted_keys), False)


def is_discharge_summary(categories: pd.Series) -> np.ndarray:
    """The leakage guard's test, by key: a recased or respaced discharge summary is one too."""
    values = pa.array(categories.astype("string").fillna(""), pa.string())
    return np.asarray(matches(values, [DISCHARGE_SUMMARY]).to_numpy(zero_copy_only=False), dtype=bool)


def unknown_categories(by_category: Mapping[str, int]) -> dict[str, int]:
    """Categories (with note counts) that are none of the 15 MIMIC-III categories."""
    return {name: int(n) for name, n in by_category.items() if category_key(name) not in _CANONICAL}
