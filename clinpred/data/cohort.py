"""The Cohort: one source-independent form of notes, patients, admissions and diagnoses.

Every reader (MIMIC-III, MIMIC-IV-Note, and so the synthetic cohort, which is written in MIMIC-III
format) returns a ``Cohort``; every later stage reads only this form. Notes are kept in time order per
patient, which is what next-note recall, fine-tuning pairs and the survival landmark all rely on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

# Column -> dtype of each canonical table. Readers must produce exactly these columns.
NOTE_DTYPES: dict[str, str] = {
    "note_id": "string",  # ROW_ID (MIMIC-III) or note_id (MIMIC-IV), as text
    "subject_id": "int64",
    "hadm_id": "Int64",  # empty for outpatient notes
    "time": "datetime64[ns]",  # CHARTTIME, or CHARTDATE where a category has no CHARTTIME
    "time_is_date": "bool",  # True where only the date is known
    "category": "string",  # MIMIC-III category names, trailing spaces stripped
    "description": "string",
    "cgid": "Int64",  # caregiver id (MIMIC-III), empty where unknown
    "text": "string",
}
PATIENT_DTYPES: dict[str, str] = {
    "subject_id": "int64",
    "gender": "string",
    "dob": "datetime64[ns]",  # MIMIC-IV: 1 January of anchor_year - anchor_age
    "dod": "datetime64[ns]",  # NaT when no death is recorded
}
ADMISSION_DTYPES: dict[str, str] = {
    "subject_id": "int64",
    "hadm_id": "int64",
    "admittime": "datetime64[ns]",
    "dischtime": "datetime64[ns]",
    "deathtime": "datetime64[ns]",
    "hospital_expire_flag": "int64",
    # as written by the source, where it has them (missing: <NA>); used for subgroups and readmission
    "admission_type": "string",
    "race": "string",  # MIMIC-III ETHNICITY, MIMIC-IV race (ethnicity before v2.0)
    "insurance": "string",
}
# columns a source (or a hand-built frame) may lack: conform fills them with <NA>
OPTIONAL_COLUMNS = frozenset({"admission_type", "race", "insurance"})
CORE_ADMISSION_COLUMNS = [c for c in ADMISSION_DTYPES if c not in OPTIONAL_COLUMNS]
DIAGNOSIS_DTYPES: dict[str, str] = {
    "subject_id": "int64",
    "hadm_id": "int64",
    "seq_num": "Int64",
    "icd_code": "string",  # without the dot, as MIMIC stores it
    "icd_version": "int64",  # 9 or 10
}

DISCHARGE_SUMMARY = "Discharge summary"


def empty_frame(dtypes: dict[str, str]) -> pd.DataFrame:
    """An empty table with the canonical columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


def conform(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Select and cast the canonical columns, in canonical order."""
    absent = [c for c in dtypes if c not in frame.columns and c in OPTIONAL_COLUMNS]
    if absent:
        frame = frame.assign(**{c: pd.NA for c in absent})
    out = frame.loc[:, list(dtypes)]  # copy-on-write (pandas >= 3): columns are copied only if changed
    for col, dtype in dtypes.items():
        if str(out[col].dtype) != dtype:
            out[col] = out[col].astype(dtype)
    return out.reset_index(drop=True)


def arrow_chunks(column: pd.Series) -> pa.ChunkedArray | None:
    """An Arrow-backed column's own chunks (never joined: joining copies all of the text), else None."""
    chunks = getattr(column.array, "_pa_array", None)
    return chunks if isinstance(chunks, pa.ChunkedArray) else None


def rows_where(frame: pd.DataFrame, mask: pd.Series | np.ndarray) -> pd.DataFrame:
    """The rows where ``mask`` holds; the frame itself when that is all of them (the readers filter
    while reading, so a subset often keeps every note: no copy of the text then).

    Arrow-backed columns (the note text) are filtered chunk by chunk with Arrow's own filter: pandas'
    boolean indexing joins the chunks into one array first, a copy of the whole column's text (about
    2.5 GB for MIMIC-III) on top of the rows kept.
    """
    keep = np.asarray(
        mask.to_numpy(dtype=bool, na_value=False) if isinstance(mask, pd.Series) else mask, bool
    )
    if bool(keep.all()):
        return frame.reset_index(drop=True)  # copy-on-write: no copy
    arrow_keep = pa.array(keep)
    columns = {}
    for name, column in frame.items():
        chunks = arrow_chunks(column)
        if chunks is not None:
            columns[name] = pd.array(chunks.filter(arrow_keep), dtype=column.dtype)
        else:
            columns[name] = column.array[keep]
    return pd.DataFrame(columns, columns=frame.columns).astype(frame.dtypes.to_dict())


def _in_patient_time_order(notes: pd.DataFrame) -> bool:
    """Whether notes are already sorted by (subject_id, time): readers sort once, we do not copy again."""
    s = notes["subject_id"].to_numpy()
    t = notes["time"].to_numpy()
    same = s[1:] == s[:-1]
    return bool(np.all((s[1:] > s[:-1]) | (same & (t[1:] >= t[:-1]))))


@dataclass(frozen=True)
class Cohort:
    """Notes, patients, admissions and diagnoses of one data source, in canonical form.

    ``synthetic`` is True only for cohorts written by clinpred's own generator. Everything else is
    treated as protected health information: external API backends refuse it by default (DESIGN.md,
    rule 6).
    """

    notes: pd.DataFrame
    patients: pd.DataFrame
    admissions: pd.DataFrame
    diagnoses: pd.DataFrame
    source: str  # "mimic3" or "mimic4"
    path: Path | None = None
    synthetic: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # e.g. error_notes_dropped

    def __post_init__(self) -> None:
        if not _in_patient_time_order(self.notes):
            notes = self.notes.sort_values(["subject_id", "time"], kind="stable").reset_index(drop=True)
            object.__setattr__(self, "notes", notes)

    @property
    def protected(self) -> bool:
        """Whether the text is credentialed data that must not leave the machine by accident."""
        return not self.synthetic

    @property
    def subject_ids(self) -> np.ndarray:
        """Every patient in the cohort, sorted."""
        return np.sort(self.patients["subject_id"].to_numpy())

    def subset(self, subject_ids: Iterable[int]) -> Cohort:
        """The same cohort restricted to the given patients."""
        keep = set(int(s) for s in subject_ids)

        def pick(frame: pd.DataFrame) -> pd.DataFrame:
            return rows_where(frame, frame["subject_id"].isin(keep))

        return replace(
            self,
            notes=pick(self.notes),
            patients=pick(self.patients),
            admissions=pick(self.admissions),
            diagnoses=pick(self.diagnoses),
        )

    def with_phi_setting(self, mode: str) -> Cohort:
        """The same cohort with its note text under a PHI-placeholder setting (``keep``: itself)."""
        from clinpred.data.phi import apply_phi_setting

        if mode == "keep":
            return self
        return replace(self, notes=self.notes.assign(text=apply_phi_setting(self.notes["text"], mode)))

    def without_unknown_patients(self) -> Cohort:
        """Notes, admissions and diagnoses of SUBJECT_IDs missing from PATIENTS dropped, and counted.

        Without a PATIENTS row a patient has no sex, birth or death date, and counting their notes
        would make shares of patients exceed 100%.
        """
        known = set(self.patients["subject_id"].tolist())
        counts = dict(self.counts)
        frames = {}
        for name in ("notes", "admissions", "diagnoses"):
            frame = getattr(self, name)
            mask = frame["subject_id"].isin(known)
            dropped = int((~mask).sum())
            if dropped:
                counts[f"{name}_of_patients_missing_from_patients_dropped"] = dropped
            frames[name] = rows_where(frame, mask)
        return replace(self, **frames, counts=counts)

    def without_categories(self, categories: Iterable[str]) -> Cohort:
        """The same cohort without notes of the given categories (e.g. discharge summaries)."""
        drop = set(categories)
        return replace(self, notes=rows_where(self.notes, ~self.notes["category"].isin(drop)))

    def last_known_alive(self) -> pd.Series:
        """Per patient, the last time the record shows them alive: latest discharge or note time."""
        disch = self.admissions.groupby("subject_id")["dischtime"].max()
        note = self.notes.groupby("subject_id")["time"].max()
        both = pd.concat([disch, note], axis=1).max(axis=1)
        return both.reindex(self.subject_ids)

    def summary(self) -> dict[str, object]:
        """Counts for `clinpred data check` and for every result's cohort description."""
        notes = self.notes
        with_notes = notes["subject_id"].nunique()
        with_dx = self.diagnoses["subject_id"].nunique()
        n = len(self.patients)
        return {
            "source": self.source,
            "synthetic": self.synthetic,
            "patients": n,
            "admissions": len(self.admissions),
            "diagnosis_rows": len(self.diagnoses),
            "notes": len(notes),
            "notes_by_category": {str(k): int(v) for k, v in notes["category"].value_counts().items()},
            "patients_with_notes": int(with_notes),
            "patients_with_diagnoses": int(with_dx),
            "share_with_notes": round(with_notes / n, 4) if n else 0.0,
            "share_with_diagnoses": round(with_dx / n, 4) if n else 0.0,
            "first_note": None if notes.empty else str(notes["time"].min()),
            "last_note": None if notes.empty else str(notes["time"].max()),
            **{k: int(v) for k, v in self.counts.items()},
            **self._repair_rules(),
        }

    def _repair_rules(self) -> dict[str, dict[str, str]]:
        """The rule of each repair made (beside its count), for readers of results.json; none: nothing."""
        from clinpred.data.integrity import damage_repaired

        made = damage_repaired(self.counts)
        return {"repair_rules": {r.key: r.rule for r, _ in made}} if made else {}
