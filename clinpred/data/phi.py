"""De-identification placeholders: kept as written, or masked by kind (DESIGN.md rule 7).

MIMIC-III replaces protected details with ``[** ... **]`` spans whose content is surrogate text: a date
shifted by the patient's own offset (``[**2151-7-16**]``: every note of a patient falls in one random
year), a name, a hospital, a number. Those spans carry the patient's identity and no clinical content,
so a model can "find the next note" by matching them. ``mask`` replaces each span by a token for its
kind, the same for every patient; ``keep`` leaves the text as written (the published recipe). MIMIC-IV
writes ``___`` for every removed detail: already identity-free, and left as it is.

Done with Arrow's RE2 kernels over the whole text column: no Python string per note.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

PhiMode = Literal["keep", "mask"]

# (token, RE2 pattern of the span's content). Order matters: the first kind that matches a span wins,
# and later patterns never see a span already replaced. "Hospital Unit Name" is a hospital, not a name.
_INNER = r"[^*\]]*"
KINDS: tuple[tuple[str, str], ...] = (
    (
        "[DATE]",
        r"\s*(?:\d{1,4}-\d{1,2}(?:-\d{1,4})?|\d{1,2}/\d{1,2}(?:/\d{2,4})?|\d{4}"
        r"|(?i:month|year|date range|day month|month day|month/day|holiday|day)" + _INNER + r")\s*",
    ),
    ("[HOSPITAL]", _INNER + r"(?i:hospital|wardname|ward name|company|university|college|clinic)" + _INNER),
    ("[LOCATION]", _INNER + r"(?i:location|address|street|state|country|apartment|zip|po box)" + _INNER),
    (
        "[NAME]",
        _INNER + r"(?i:name|initial|doctor|dictator|attending|known|md number|first|last)" + _INNER,
    ),
    (
        "[NUMBER]",
        _INNER
        + r"(?i:telephone|fax|phone|pager|number|identifier|serial|record|social security|job|clip"
        + r"|e-mail|email|url|ip address|contact)"
        + _INNER,
    ),
    ("[PHI]", _INNER),  # anything else: "[**Age over 90 **]", "[**Dictator Info**]", ...
)
_SPAN = r"\[\*\*({inner})\*\*\]"


def replace_regexes(text: pd.Series, replacements: Iterable[tuple[str, str]]) -> pd.Series:
    """Each (RE2 pattern, replacement) applied in order over the whole column with Arrow's kernels."""
    from clinpred.data.cohort import arrow_chunks  # (cohort imports this module)

    values = arrow_chunks(text)  # Arrow-backed text: its chunks, not joined
    if values is None:
        values = pa.chunked_array([pa.array(text, from_pandas=True)])
    values = replace_in_arrow(values, replacements)
    return pd.Series(pd.array(values, dtype=text.dtype), index=text.index, name=text.name)


def replace_in_arrow(values: pa.ChunkedArray, replacements: Iterable[tuple[str, str]]) -> pa.ChunkedArray:
    """``replace_regexes`` on Arrow text itself, chunk by chunk: every pattern is applied to one chunk
    before the next is read, so the column is held twice only one chunk at a time, not whole."""
    replacements, pool = list(replacements), pa.default_memory_pool()
    done = []
    for chunk in values.iterchunks():
        for pattern, replacement in replacements:
            chunk = pc.replace_substring_regex(chunk, pattern=pattern, replacement=replacement)
        done.append(chunk)
        pool.release_unused()  # the chunk's intermediate copies: Arrow's allocator would keep them
    return pa.chunked_array(done, type=values.type)


def placeholder_replacements(mode: PhiMode) -> list[tuple[str, str]]:
    """The (pattern, token) pairs of a setting, in order; none for ``keep``."""
    return [] if mode == "keep" else [(_SPAN.format(inner=inner), token) for token, inner in KINDS]


def mask_placeholders(text: pd.Series) -> pd.Series:
    """Every ``[** ... **]`` span replaced by its kind's token; everything else unchanged."""
    return replace_regexes(text, placeholder_replacements("mask"))


def apply_phi_setting(text: pd.Series, mode: PhiMode) -> pd.Series:
    """The note text under a PHI-placeholder setting (``keep``: the same series, not a copy)."""
    return text if mode == "keep" else mask_placeholders(text)
