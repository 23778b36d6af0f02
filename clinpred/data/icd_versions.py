"""Which ICD version a diagnosis code is, when the source does not say (OMOP's condition_source_value).

MIMIC states the version of every code; an OMOP extract states it only through the vocabulary of the
code's source concept, and extracts often ship a partial vocabulary. The rules, in order:

1. ``concept``: the CONCEPT table names the source concept's vocabulary: ICD9CM -> 9, ICD10CM -> 10,
   ICD10 (WHO's, whose codes are categories of ICD-10-CM: labels.icd10_ccs places them by prefix) -> 10;
   another vocabulary (SNOMED, a local one) -> not an ICD code (``other_vocabulary``).
2. ``icd9_list`` / ``icd10_list``: membership in the vendored code lists (the keys of
   ``resources/icd9_ccs.csv.gz`` and ``icd10_ccs.csv.gz``, see PROVENANCE.md).
3. ``icd9_form`` / ``icd10_form``: a code in neither list by its form: digits only (3-5) are ICD-9-CM,
   a letter other than E or V then a digit are ICD-10-CM (codes newer than the lists: U071).
4. ``not_icd``: neither list nor either form (a SNOMED code, a local code): no version.

A code in both lists (42 codes: ICD-9-CM E-codes such as E870 against ICD-10-CM chapter E), or in
neither but of both forms (an unlisted E or V code), is ambiguous, and is resolved only by a stated
rule (``AmbiguityRule``):

- ``by_visit`` (the default): the version of the other codes of the same visit, where they are all one
  version (a claim or encounter is coded in one version). A code this cannot decide (a visit with no
  other decided code, or with both) is refused, with the count, an example and the other rules. It is
  the default because it decides from the data itself and is right for date-shifted data (MIMIC's
  dates lie in 2100-2215, where a date rule would call every code ICD-10), while a plain refusal would
  stop most US extracts that lack a CONCEPT table over a handful of E-codes.
- ``by_date``: before 2015-10-01 (the US switch date, set by CMS) ICD-9-CM, from it ICD-10-CM, by the
  condition's start date: for US data with real dates.
- ``9`` / ``10``: every ambiguous code is that version; ``drop``: ambiguous codes are dropped, counted;
  ``refuse``: any ambiguous code is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from clinpred.data.labels import icd9_table, icd10_table
from clinpred.errors import InputError

AmbiguityRule = Literal["by_visit", "by_date", "refuse", "9", "10", "drop"]
AMBIGUITY_RULES: tuple[str, ...] = ("by_visit", "by_date", "refuse", "9", "10", "drop")
ICD10_CUTOVER = pd.Timestamp("2015-10-01")  # the US switch from ICD-9-CM to ICD-10-CM (CMS)
CONCEPT_VOCABULARIES = {"ICD9CM": 9, "ICD10CM": 10, "ICD10": 10}

ICD9_FORM = r"^(?:[0-9]{3,5}|V[0-9]{2,4}|E[0-9]{3,4})$"
ICD10_FORM = r"^[A-Z][0-9][0-9A-Z]{1,5}$"

# how each row's version was decided (the keys of `data check`'s table)
HOW = (
    "concept",
    "icd9_list",
    "icd10_list",
    "icd9_form",
    "icd10_form",
    "ambiguous_by_visit",
    "ambiguous_by_date",
    "ambiguous_set_9",
    "ambiguous_set_10",
    "ambiguous_dropped",
    "other_vocabulary",
    "not_icd",
)


def decide_versions(
    codes: pd.Series,
    vocabulary: pd.Series,
    visits: pd.Series,
    dates: pd.Series,
    rule: AmbiguityRule,
    locate: Callable[[int], tuple[Path, int]],
) -> tuple[pd.Series, pd.Series]:
    """The ICD version of each normalised code (Int64: 9, 10 or <NA>) and how it was decided.

    ``vocabulary``: the source concept's vocabulary_id where the CONCEPT table names it (else <NA>);
    ``visits``: the visit of each row (by_visit); ``dates``: its start date (by_date); ``locate``: the
    file and data row of a row, for a refusal.
    """
    if rule not in AMBIGUITY_RULES:
        raise InputError(f"icd_version_when_ambiguous: {rule!r} is none of {', '.join(AMBIGUITY_RULES)}.")
    n = len(codes)
    version = np.zeros(n, dtype=np.int64)  # 0: none (yet)
    how = np.full(n, "", dtype=object)
    vocab = vocabulary.astype("string").str.upper().fillna("").to_numpy(dtype=object)
    named = np.array([v in CONCEPT_VOCABULARIES for v in vocab], dtype=bool)
    version[named] = [CONCEPT_VOCABULARIES[v] for v in vocab[named]]
    how[named] = "concept"
    other = (vocab != "") & ~named
    how[other] = "other_vocabulary"
    open_ = how == ""
    in9 = codes.isin(icd9_table().index).to_numpy()
    in10 = codes.isin(icd10_table().index).to_numpy()
    form9 = codes.str.fullmatch(ICD9_FORM).fillna(False).to_numpy(dtype=bool)
    form10 = codes.str.fullmatch(ICD10_FORM).fillna(False).to_numpy(dtype=bool)
    for mask, v, label in (
        (in9 & ~in10, 9, "icd9_list"),
        (in10 & ~in9, 10, "icd10_list"),
        (~in9 & ~in10 & form9 & ~form10, 9, "icd9_form"),
        (~in9 & ~in10 & form10 & ~form9, 10, "icd10_form"),
    ):
        hit = open_ & mask
        version[hit], how[hit] = v, label
    ambiguous = open_ & ((in9 & in10) | (~in9 & ~in10 & form9 & form10))
    how[open_ & (how == "") & ~ambiguous] = "not_icd"
    if ambiguous.any():
        _resolve(ambiguous, version, how, codes, visits, dates, rule, locate)
    out = pd.Series(version, index=codes.index).astype("Int64")
    return out.mask(out == 0), pd.Series(how, index=codes.index, dtype="string")


def _resolve(
    ambiguous: np.ndarray,
    version: np.ndarray,
    how: np.ndarray,
    codes: pd.Series,
    visits: pd.Series,
    dates: pd.Series,
    rule: str,
    locate: Callable[[int], tuple[Path, int]],
) -> None:
    """Apply ``rule`` to the ambiguous rows, in place; refuse what it cannot decide."""
    if rule in ("9", "10"):
        version[ambiguous], how[ambiguous] = int(rule), f"ambiguous_set_{rule}"
        return
    if rule == "drop":
        how[ambiguous] = "ambiguous_dropped"
        return
    undecided = ambiguous.copy()
    if rule == "by_visit":
        decided = pd.DataFrame({"visit": visits.to_numpy(), "version": version})[version > 0]
        decided = decided.dropna(subset=["visit"])
        per_visit = decided.groupby("visit")["version"].agg(lambda v: v.iloc[0] if v.nunique() == 1 else 0)
        found = pd.Series(visits.to_numpy()).map(per_visit).fillna(0).to_numpy(dtype=np.int64)
        hit = ambiguous & (found > 0)
        version[hit], how[hit] = found[hit], "ambiguous_by_visit"
        undecided = ambiguous & ~hit
        why = "their visit has no other code of one version to decide by"
    elif rule == "by_date":
        when = pd.to_datetime(dates).to_numpy()
        known = ~pd.isna(when)
        hit = ambiguous & known
        version[hit] = np.where(when[hit] < ICD10_CUTOVER.to_datetime64(), 9, 10)
        how[hit] = "ambiguous_by_date"
        undecided = ambiguous & ~known
        why = "they have no start date"
    else:
        why = "icd_version_when_ambiguous is 'refuse'"
    if undecided.any():
        row = int(np.flatnonzero(undecided)[0])
        path, at = locate(row)
        raise InputError(
            f"{path}: column CONDITION_SOURCE_VALUE, data row {at}: {codes.iloc[row]!r} is both an ICD-9-CM "
            f"and an ICD-10-CM code, and {int(undecided.sum())} such code(s) cannot be placed ({why}). "
            "Give a CONCEPT table that names their source concepts, or set icd_version_when_ambiguous "
            "([data.omop] icd_version_when_ambiguous) to 'by_date' (US dates: ICD-9-CM before "
            "2015-10-01), '9', '10' or 'drop'."
        )
