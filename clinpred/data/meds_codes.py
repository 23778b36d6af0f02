"""The MEDS codes clinpred reads and writes, in one place (the lead's contract: /work/meds_contract.md).

The names follow the official MIMIC-IV converter (MIMIC_IV_MEDS, ``event_configs.yaml``), so that a
dataset it wrote and one clinpred wrote read the same way:

- ``MEDS_BIRTH`` / ``MEDS_DEATH`` (the ``meds`` package's ``birth_code`` / ``death_code``);
- ``GENDER//F`` (static: no time);
- ``HOSPITAL_ADMISSION//<admission_type>//<admission_location>`` and
  ``HOSPITAL_DISCHARGE//<discharge_location>`` (``UNK`` where not known), linked by ``hadm_id``;
- ``DIAGNOSIS//ICD//9//<code>`` / ``DIAGNOSIS//ICD//10//<code>`` at the stay's discharge time;
- ``NOTE//<CATEGORY>`` with the note in ``text_value`` (the converter maps no note table: this is
  clinpred's, the category upper-cased with spaces and slashes as underscores; ``NOTE//DISCHARGE``,
  MIMIC-IV-Note's name, is read as a discharge summary too).

Notes and diagnoses are found by patterns a user can change (``MedsCodes``), for datasets that name
them otherwise; the defaults are the names above.
"""

from __future__ import annotations

import re
from functools import cached_property

import meds
from pydantic import BaseModel, ConfigDict, field_validator

from clinpred.data.categories import KNOWN_CATEGORIES, canonical_category
from clinpred.data.cohort import DISCHARGE_SUMMARY

BIRTH = meds.birth_code  # "MEDS_BIRTH"
DEATH = meds.death_code  # "MEDS_DEATH"
SEP = "//"
UNKNOWN = "UNK"  # the converter's word for a missing part of a code
GENDER_PREFIX = "GENDER" + SEP
ADMISSION_PREFIX = "HOSPITAL_ADMISSION" + SEP
DISCHARGE_PREFIX = "HOSPITAL_DISCHARGE" + SEP
NOTE_PREFIX = "NOTE" + SEP
# discharge locations that say the patient died in hospital: MIMIC-IV, MIMIC-III
DEATH_LOCATIONS = frozenset({"DIED", "DEAD/EXPIRED"})
DIED = "DIED"  # what clinpred writes for a stay with HOSPITAL_EXPIRE_FLAG = 1 (MIMIC-IV's word)


def category_suffix(category: str) -> str:
    """A note category as a code suffix: ``Discharge summary`` -> ``DISCHARGE_SUMMARY``,
    ``Nursing/other`` -> ``NURSING_OTHER``."""
    name = canonical_category(category)
    return re.sub(r"[\s/]+", "_", name.strip()).upper()


# suffix -> category: the 15 MIMIC-III categories, and MIMIC-IV-Note's names and note types
_SUFFIXES = {category_suffix(name): name for name in KNOWN_CATEGORIES} | {
    "DISCHARGE": DISCHARGE_SUMMARY,
    "DS": DISCHARGE_SUMMARY,
    "DA": DISCHARGE_SUMMARY,
    "RR": "Radiology",
    "AR": "Radiology",
}


def note_code(category: str) -> str:
    """``NOTE//<CATEGORY>`` for a note category."""
    return NOTE_PREFIX + category_suffix(category)


def category_of(suffix: str | None) -> str:
    """The category a note code names: a MIMIC category where it is one (``DISCHARGE`` is a discharge
    summary), else the suffix with underscores as spaces, as a MIMIC category is written
    (``FOO_BAR`` -> ``Foo bar``); a bare ``NOTE``: ``Note``."""
    if not suffix:
        return "Note"
    key = suffix.strip().upper()
    if key in _SUFFIXES:
        return _SUFFIXES[key]
    return canonical_category(key.replace("_", " ").capitalize())


def admission_code(admission_type: str | None, location: str | None = None) -> str:
    return f"{ADMISSION_PREFIX}{admission_type or UNKNOWN}{SEP}{location or UNKNOWN}"


def parse_admission(code: str) -> tuple[str | None, str | None]:
    """(admission_type, admission_location) of a HOSPITAL_ADMISSION code; ``UNK`` or absent: None."""
    parts = code[len(ADMISSION_PREFIX) :].split(SEP, 1)
    kind = parts[0] if parts[0] and parts[0] != UNKNOWN else None
    where = parts[1] if len(parts) > 1 and parts[1] and parts[1] != UNKNOWN else None
    return kind, where


def discharge_code(location: str | None) -> str:
    return f"{DISCHARGE_PREFIX}{location or UNKNOWN}"


def parse_discharge(code: str) -> str | None:
    where = code[len(DISCHARGE_PREFIX) :]
    return where if where and where != UNKNOWN else None


def diagnosis_code(version: int, icd_code: str) -> str:
    """``DIAGNOSIS//ICD//<version>//<code>`` (the code without the dot, as MIMIC stores it)."""
    return f"DIAGNOSIS{SEP}ICD{SEP}{int(version)}{SEP}{icd_code}"


def gender_code(gender: str) -> str:
    return GENDER_PREFIX + gender


class MedsCodes(BaseModel):
    """Which codes are notes and diagnoses (regular expressions, matched against the whole code).

    ``note_pattern`` may name a group ``category`` (the note's category, see ``category_of``);
    ``diagnosis_pattern`` must name the groups ``version`` (9 or 10) and ``code``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    note_pattern: str = r"NOTE(?://(?P<category>.+))?"
    diagnosis_pattern: str = r"DIAGNOSIS//ICD//(?P<version>9|10)//(?P<code>.+)"

    @field_validator("note_pattern", "diagnosis_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        return value

    @field_validator("diagnosis_pattern")
    @classmethod
    def _names_version_and_code(cls, value: str) -> str:
        missing = {"version", "code"} - set(re.compile(value).groupindex)
        if missing:
            raise ValueError(f"the pattern must name the group(s) {', '.join(sorted(missing))}")
        return value

    @cached_property
    def _note(self) -> re.Pattern[str]:
        return re.compile(self.note_pattern)

    @cached_property
    def _diagnosis(self) -> re.Pattern[str]:
        return re.compile(self.diagnosis_pattern)

    def classify(self, code: str) -> tuple[str, tuple[str | int | None, ...]]:
        """What a code is to clinpred, and its parts:

        ``note`` (category), ``diagnosis`` (version, code), ``admission`` (type, location),
        ``discharge`` (location,), ``birth``, ``death``, ``gender`` (value,), or ``ignored``.
        """
        if code == BIRTH:
            return "birth", ()
        if code == DEATH:
            return "death", ()
        if code.startswith(GENDER_PREFIX):
            return "gender", (code[len(GENDER_PREFIX) :],)
        if code.startswith(ADMISSION_PREFIX):
            return "admission", parse_admission(code)
        if code.startswith(DISCHARGE_PREFIX):
            return "discharge", (parse_discharge(code),)
        if (found := self._diagnosis.fullmatch(code)) is not None:
            try:
                version = int(found.group("version"))
            except ValueError:
                return "ignored", ()
            if version in (9, 10) and found.group("code"):
                return "diagnosis", (version, found.group("code"))
            return "ignored", ()
        if (found := self._note.fullmatch(code)) is not None:
            category = found.groupdict().get("category")
            return "note", (category_of(category),)
        return "ignored", ()
