"""Carried-forward personal details: kept as written, or masked in the text a fine-tune learns from.

Beyond the de-identification placeholders (``clinpred.data.phi``), the notes of one patient repeat
details that say who the patient is without saying what they have: the age in the opening line ("68 yo
F", "92 year old man"), the allergy list, the social history (who they live with, what they did for a
living). A temporal fine-tune (note t -> note t+1) learns to match them: that is identity, not clinical
content (issue 15). ``mask`` replaces an age by ``[AGE]`` and the rest of an Allergies or Social
(History) line, or the line under such a header, by ``[ALLERGIES]`` / ``[SOCIAL]``. Problems,
medications, vitals and labs are left as written: they are the content the model should learn.

A fine-tuning setting (``FinetuneConfig.identity_details``), not an evaluation one: every backend is
scored on the same text, so a difference between them is the model, not what it was shown.
Done with the placeholder masking's Arrow RE2 helper (``clinpred.data.phi.replace_regexes``).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from clinpred.data.phi import replace_regexes

# keep: as written; mask: ages, allergy lists and social histories; mask_histories: allergy lists and
# social histories only (the age stays: it identifies, but it is also what a death hazard rises with);
# decade_ages: the histories masked and each age rounded down to its decade (the risk kept, less identity)
IdentityMode = Literal["keep", "mask", "mask_histories", "decade_ages"]

_HEADER_END = r"[ \t]*[:=-][ \t]*\n?[^\n]*"  # the separator, then the rest of the line or the next line
_AGE_UNIT = r"[ \t]*-?[ \t]*(?:yo|y/o|y\.o\.|yr old|yrs old|year old|years old|year-old|years-old)\b"
AGE = (r"(?i)\b\d{1,3}" + _AGE_UNIT, "[AGE]")
# the last digit becomes 0 (RE2's rewrite reads "\10" as group 1, then a literal 0)
AGE_DECADE = (r"(?i)\b(\d{0,2})\d(" + _AGE_UNIT + ")", r"\10\2")
HISTORIES: tuple[tuple[str, str], ...] = (
    (r"(?im)^([ \t#*-]*allerg(?:ies|y))" + _HEADER_END, r"\1: [ALLERGIES]"),
    (r"(?im)^([ \t#*-]*social(?: history)?)" + _HEADER_END, r"\1: [SOCIAL]"),
)
PATTERNS = (AGE, *HISTORIES)


def mask_identity_details(text: pd.Series, *, ages: bool = True) -> pd.Series:
    """Allergy lists, social histories and (``ages``) ages replaced by their tokens; all else unchanged."""
    return replace_regexes(text, PATTERNS if ages else HISTORIES)


def apply_identity_setting(text: pd.Series, mode: IdentityMode) -> pd.Series:
    """The note text under an identity-details setting (``keep``: the same series, not a copy)."""
    if mode == "keep":
        return text
    if mode == "decade_ages":
        return replace_regexes(text, (AGE_DECADE, *HISTORIES))
    return mask_identity_details(text, ages=mode == "mask")
