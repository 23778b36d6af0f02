"""ICD-9 / ICD-10-CM grouping and patient-by-label matrices.

Three label schemes, each stated in every result that uses it:

- ``ccs_benchmark``: the 25 CCS phenotypes of the MIMIC-III benchmark (Harutyunyan et al. 2019);
- ``icd_topk``: the k most frequent raw ICD codes (k=25 is the public reproduction's setting);
- ``ccs_single_topk``: the k most frequent single-level CCS categories.

ICD-9 codes group through the mimic3-benchmarks code lists and AHRQ's ICD-9 CCS; ICD-10-CM codes
(MIMIC-IV codes about half its diagnoses so) through AHRQ's ICD-10-CM CCS into the same categories
(``scripts/vendor_icd10.py`` says why that route and not the GEMs). A code neither table knows maps to
nothing; a unit all of whose codes map to nothing has no CCS labels at all (``unmapped_units``) and
must not be scored as negative for every phenotype.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
import pandas as pd

LabelScheme = Literal["ccs_benchmark", "icd_topk", "ccs_single_topk"]
LabelUnit = Literal["patient", "admission"]

BENCHMARK_PHENOTYPES: tuple[str, ...] = (
    "Acute and unspecified renal failure",
    "Acute cerebrovascular disease",
    "Acute myocardial infarction",
    "Cardiac dysrhythmias",
    "Chronic kidney disease",
    "Chronic obstructive pulmonary disease and bronchiectasis",
    "Complications of surgical procedures or medical care",
    "Conduction disorders",
    "Congestive heart failure; nonhypertensive",
    "Coronary atherosclerosis and other heart disease",
    "Diabetes mellitus with complications",
    "Diabetes mellitus without complication",
    "Disorders of lipid metabolism",
    "Essential hypertension",
    "Fluid and electrolyte disorders",
    "Gastrointestinal hemorrhage",
    "Hypertension with complications and secondary hypertension",
    "Other liver diseases",
    "Other lower respiratory disease",
    "Other upper respiratory disease",
    "Pleurisy; pneumothorax; pulmonary collapse",
    "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
    "Respiratory failure; insufficiency; arrest (adult)",
    "Septicemia (except in labor)",
    "Shock",
)


@cache
def icd9_table() -> pd.DataFrame:
    """ICD-9-CM codes with description, single-level CCS and benchmark phenotype (see PROVENANCE.md)."""
    ref = resources.files("clinpred.data") / "resources" / "icd9_ccs.csv.gz"
    with resources.as_file(ref) as path:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["ccs_single"] = table["ccs_single"].astype(int)
    return table.set_index("icd9_code")


@cache
def icd10_table() -> pd.DataFrame:
    """ICD-10-CM codes with single-level CCS number and benchmark phenotype (see PROVENANCE.md)."""
    ref = resources.files("clinpred.data") / "resources" / "icd10_ccs.csv.gz"
    with resources.as_file(ref) as path:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["ccs_single"] = table["ccs_single"].astype(int)
    return table.set_index("icd10_code").sort_index()


@cache
def ccs_single_names() -> dict[int, str]:
    """Single-level CCS number -> name (the ICD-9 table names every category the ICD-10 table uses)."""
    table = icd9_table()
    named = table[table["ccs_single_name"] != ""].drop_duplicates("ccs_single")
    return dict(zip(named["ccs_single"], named["ccs_single_name"], strict=True))


def normalise_icd(codes: pd.Series) -> pd.Series:
    """ICD codes as the tables key them: trimmed, upper-case, no dot (``i50.9`` -> ``I509``, ``428.0`` ->
    ``4280``, ``v10.3`` -> ``V103``, ``e880.9`` -> ``E8809``).

    MIMIC writes codes without the dot, in upper case; a hand-made or exported file often writes them
    as printed (``I50.9``) or in lower case, and then no code maps and every label is silently empty.
    Removing the dot is safe for both versions: ICD-9 E and V codes and ICD-10 codes keep their letter,
    and no two codes differ only by the dot's place.
    """
    return codes.astype(str).str.strip().str.upper().str.replace(".", "", regex=False)


def icd10_ccs(codes: pd.Series) -> pd.Series:
    """Single-level CCS number of each ICD-10-CM code (no dot); <NA> where the table cannot place it.

    A code newer than the table (v2019.1) takes the category of the codes that extend its longest
    prefix (3 characters at least), but only when all of them share one category.
    """
    table = icd10_table()
    known = codes.map(table["ccs_single"]).astype("Int64")
    unknown = pd.unique(codes[known.isna()].astype(str))
    if len(unknown):
        fallback = {code: _icd10_prefix_ccs(code) for code in unknown}
        known = known.fillna(codes.map(fallback).astype("Int64"))
    return known


@cache
def _icd10_sorted() -> tuple[np.ndarray, np.ndarray]:
    table = icd10_table()
    return table.index.to_numpy(dtype=str), table["ccs_single"].to_numpy()


def _icd10_prefix_ccs(code: str) -> int | None:
    index, ccs = _icd10_sorted()
    for length in range(len(code) - 1, 2, -1):
        prefix = code[:length]
        lo, hi = np.searchsorted(index, prefix), np.searchsorted(index, prefix + "\uffff")
        cats = np.unique(ccs[lo:hi])
        if len(cats) == 1:
            return int(cats[0])
        if len(cats) > 1:
            return None
    return None


@cache
def ccs_to_phenotype() -> dict[int, str]:
    """Single-level CCS number -> benchmark phenotype, for the 25 categories that are one."""
    table = icd10_table()
    has = table[table["benchmark_phenotype"] != ""].drop_duplicates("ccs_single")
    return dict(zip(has["ccs_single"], has["benchmark_phenotype"], strict=True))


def code_to_phenotype() -> dict[str, str]:
    """ICD-9 code (no dot) -> benchmark phenotype, for the codes that have one."""
    table = icd9_table()
    has = table["benchmark_phenotype"] != ""
    return dict(zip(table.index[has], table.loc[has, "benchmark_phenotype"], strict=True))


def code_to_ccs_single() -> dict[str, str]:
    """ICD-9 code (no dot) -> single-level CCS category name."""
    table = icd9_table()
    has = table["ccs_single_name"] != ""
    return dict(zip(table.index[has], table.loc[has, "ccs_single_name"], strict=True))


def describe_code(code: str) -> str:
    """The CMS long description of an ICD-9 code, or '' when unknown."""
    table = icd9_table()
    return str(table.at[code, "description"]) if code in table.index else ""


def _icd10_labels(diagnoses: pd.DataFrame, scheme: LabelScheme) -> pd.Series:
    """CCS labels of the ICD-10 rows (NaN elsewhere and where none applies)."""
    icd10 = diagnoses["icd_version"].to_numpy() == 10
    out = pd.Series(np.nan, index=diagnoses.index, dtype=object)
    if not icd10.any():
        return out
    ccs = icd10_ccs(normalise_icd(diagnoses["icd_code"])[icd10])
    names = ccs.map(ccs_to_phenotype() if scheme == "ccs_benchmark" else ccs_single_names())
    out[icd10] = names.to_numpy(dtype=object)
    return out


def mapped_rows(diagnoses: pd.DataFrame, scheme: LabelScheme = "ccs_benchmark") -> pd.Series:
    """Whether each diagnosis row's code is known to the scheme's grouper (it may still carry no label:
    a known ICD-9/ICD-10 code outside the 25 phenotypes is a true negative, an unknown one is not)."""
    codes = normalise_icd(diagnoses["icd_code"])
    version = diagnoses["icd_version"].to_numpy()
    if scheme == "icd_topk":
        return pd.Series(np.isin(version, [9, 10]), index=diagnoses.index)
    icd9 = (version == 9) & codes.isin(icd9_table().index).to_numpy()
    icd10 = np.zeros(len(codes), dtype=bool)
    if (version == 10).any():
        icd10[version == 10] = icd10_ccs(codes[version == 10]).notna().to_numpy()
    return pd.Series(icd9 | icd10, index=diagnoses.index)


def unmapped_units(
    diagnoses: pd.DataFrame, scheme: LabelScheme = "ccs_benchmark", unit: LabelUnit = "patient"
) -> pd.Index:
    """Units (patients, or (subject_id, hadm_id)) with diagnoses none of whose codes the grouper knows:
    they have no labels under ``scheme``, neither positive nor negative."""
    keys = ["subject_id"] if unit == "patient" else ["subject_id", "hadm_id"]
    any_mapped = diagnoses.assign(_m=mapped_rows(diagnoses, scheme)).groupby(keys)["_m"].any()
    return any_mapped.index[~any_mapped.to_numpy()]


def row_labels(diagnoses: pd.DataFrame, scheme: LabelScheme) -> pd.Series:
    """One label per diagnosis row (NaN where the scheme gives none)."""
    icd9 = diagnoses["icd_version"].to_numpy() == 9
    codes = normalise_icd(diagnoses["icd_code"])
    if scheme == "ccs_benchmark":
        return codes.map(code_to_phenotype()).where(icd9, _icd10_labels(diagnoses, scheme))
    if scheme == "ccs_single_topk":
        return codes.map(code_to_ccs_single()).where(icd9, _icd10_labels(diagnoses, scheme))
    if scheme == "icd_topk":
        version = diagnoses["icd_version"].astype(str)
        # ICD-9 and ICD-10 codes can share a string ("V10"); prefix ICD-10 codes to keep them apart.
        return codes.where(icd9, "ICD10:" + codes).where(version.isin(["9", "10"]))
    raise ValueError(f"unknown label scheme {scheme!r}")


def label_matrix(
    diagnoses: pd.DataFrame,
    subject_ids: pd.Index | list[int] | None = None,
    *,
    scheme: LabelScheme = "ccs_benchmark",
    k: int = 25,
    unit: LabelUnit = "patient",
) -> pd.DataFrame:
    """A boolean unit-by-label matrix.

    Rows are patients (``unit="patient"``: any admission carries the label) or admissions. For the
    top-k schemes the k labels with the most units are kept, ties broken by name. ``subject_ids``
    fixes the rows (patients with no diagnoses get all-False rows); by default every patient with a
    diagnosis. For ``ccs_benchmark`` all 25 phenotypes are columns, even those with no positive.
    """
    dx = diagnoses.assign(label=row_labels(diagnoses, scheme)).dropna(subset=["label"])
    keys = ["subject_id"] if unit == "patient" else ["subject_id", "hadm_id"]
    pairs = dx[[*keys, "label"]].drop_duplicates()
    if scheme == "ccs_benchmark":
        columns = list(BENCHMARK_PHENOTYPES)
    else:
        counts = pairs["label"].value_counts()
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        columns = list(counts.index[:k])
        pairs = pairs[pairs["label"].isin(columns)]
    matrix = pd.crosstab(
        [pairs[c] for c in keys] if len(keys) > 1 else pairs[keys[0]], pairs["label"]
    ).astype(bool)
    matrix = matrix.reindex(columns=columns, fill_value=False)
    if unit == "patient":
        index = pd.Index(
            sorted(diagnoses["subject_id"].unique()) if subject_ids is None else list(subject_ids),
            name="subject_id",
        )
        matrix = matrix.reindex(index, fill_value=False)
    else:
        adm = diagnoses[["subject_id", "hadm_id"]].drop_duplicates()
        if subject_ids is not None:
            adm = adm[adm["subject_id"].isin(set(subject_ids))]
        index = pd.MultiIndex.from_frame(adm.sort_values(keys))
        matrix = matrix.reindex(index, fill_value=False)
    matrix.columns.name = scheme
    return matrix.astype(bool)


def primary_phenotype(diagnoses: pd.DataFrame, subject_ids: list[int] | None = None) -> pd.Series:
    """Each patient's primary benchmark phenotype, for colouring plots and cluster scores.

    The phenotype of the lowest-SEQ_NUM diagnosis that has one, in the earliest admission that has
    one. Readers give diagnoses in admission-time order, which is what "earliest" relies on.
    Patients without any benchmark phenotype get "none".
    """
    dx = diagnoses.assign(label=row_labels(diagnoses, "ccs_benchmark")).dropna(subset=["label"])
    dx = dx.reset_index(drop=True)
    dx["order"] = range(len(dx))
    first_adm = dx.groupby("subject_id", sort=False)["hadm_id"].first()
    dx = dx[dx["hadm_id"].to_numpy() == first_adm.reindex(dx["subject_id"]).to_numpy()]
    primary = dx.sort_values(["subject_id", "seq_num", "order"]).groupby("subject_id")["label"].first()
    index = sorted(diagnoses["subject_id"].unique()) if subject_ids is None else list(subject_ids)
    return primary.reindex(index).fillna("none").rename("primary_phenotype")


@cache
def ccs_chapters() -> dict[int, int]:
    """Single-level CCS number -> level-1 chapter of AHRQ's multi-level CCS (18 chapters; see PROVENANCE.md)."""
    ref = resources.files("clinpred.data") / "resources" / "ccs_chapters.csv"
    with resources.as_file(ref) as path:
        table = pd.read_csv(path)
    return dict(zip(table["ccs_single"].astype(int), table["chapter"].astype(int), strict=True))


def row_ccs_single(diagnoses: pd.DataFrame) -> pd.Series:
    """The single-level CCS number of each diagnosis row (ICD-9 or ICD-10-CM); <NA> where none applies."""
    codes = normalise_icd(diagnoses["icd_code"])
    version = diagnoses["icd_version"].to_numpy()
    out = codes.map(icd9_table()["ccs_single"]).astype("Int64").where(version == 9, pd.NA)
    if (version == 10).any():
        out[version == 10] = icd10_ccs(codes[version == 10]).to_numpy()
    return out


def code_levels(diagnoses: pd.DataFrame, subject_ids: list[int]) -> dict[str, pd.DataFrame]:
    """Patients-by-category indicators at two levels of the CCS hierarchy, for the given patients only:
    ``ccs_single`` (every single-level category any of them has) and ``chapter`` (the 18 multi-level
    chapters). What a hierarchy-aware loss compares two patients by: sharing a chapter is some similarity,
    sharing the category more."""
    ids = list(subject_ids)
    dx = diagnoses[diagnoses["subject_id"].isin(set(ids))]
    single = row_ccs_single(dx)
    frame = pd.DataFrame({"subject_id": dx["subject_id"].to_numpy(), "ccs_single": single.to_numpy()})
    frame = frame.dropna().astype({"ccs_single": int}).drop_duplicates()
    frame["chapter"] = frame["ccs_single"].map(ccs_chapters())
    out = {}
    for level, columns in (("ccs_single", sorted(frame["ccs_single"].unique())), ("chapter", range(1, 19))):
        pairs = frame.dropna(subset=[level])[["subject_id", level]].drop_duplicates()
        matrix = pd.crosstab(pairs["subject_id"], pairs[level]).astype(bool) if len(pairs) else pd.DataFrame()
        out[level] = matrix.reindex(
            index=pd.Index(ids, name="subject_id"), columns=list(columns), fill_value=False
        )
    return out
