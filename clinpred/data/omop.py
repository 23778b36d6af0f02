"""OMOP CDM v5.3 / v5.4 reader: a hospital research warehouse into the same Cohort as MIMIC.

Read (table: columns -> Cohort):

- PERSON: person_id -> subject_id; gender_concept_id 8507 -> "M", 8532 -> "F", else gender_source_value;
  birth_datetime, else year_of_birth / month_of_birth / day_of_birth (a missing month or day: 1) ->
  dob; race_source_value, else the name of a standard race_concept_id -> each admission's race.
- VISIT_OCCURRENCE: visits whose visit_concept_id is inpatient (``INPATIENT_VISITS``: 9201 Inpatient
  Visit, 262 Emergency Room and Inpatient Visit; the ``inpatient_visits`` keyword) are the admissions:
  visit_occurrence_id -> hadm_id, visit_start_datetime else visit_start_date -> admittime,
  visit_end_datetime else visit_end_date -> dischtime (an end given as a date alone on the day of the
  start takes the start time: a same-day stay). Other visits are counted by concept, never admissions.
  OMOP has no admission type nor insurance on a visit: both are missing (readmission then treats no
  admission as planned).
- DEATH: death_datetime else death_date -> dod; a second DEATH row of a person is refused (the CDM
  allows one). An admission ends in death (deathtime, hospital_expire_flag 1) when:

  1. the death's time is known and lies within [admittime, dischtime] (deathtime: that time);
  2. only its date is known and that date is from the visit's start date to the day before its end
     date (deathtime: the date, kept inside the stay: no earlier than admittime); or on the end date
     only when the visit says the patient died, discharged to concept 4216643 "Patient died"
     (discharged_to_concept_id, v5.4; discharge_to_concept_id, v5.3) (deathtime: dischtime). A visit
     with no end: any date from its start date. A date-only death on the end date of a visit that
     does not say so is a death after a discharge alive, on the same day (the date cannot tell which,
     and the visit's own record says alive): not in hospital, counted
     (``omop_date_only_deaths_on_discharge_day_not_in_hospital``, shown by `data check`);
  3. the visit says the patient died (4216643) and DEATH has no death inside it (deathtime:
     dischtime; counted, ``omop_admission_deaths_from_discharge_concept_only``).
- CONDITION_OCCURRENCE: condition_source_value (ICD-9-CM / ICD-10-CM as coded: dots, padding, case
  ignored) -> icd_code, its version by ``icd_versions`` (CONCEPT through condition_source_concept_id,
  else the vendored code lists), linked through visit_occurrence_id: conditions of inpatient visits
  are diagnoses; those of other visits or of none are counted, not kept; conditions with no ICD source
  (a SNOMED condition_concept_id only, or a source in another vocabulary) are counted and named by
  concept. seq_num: the order within the visit by condition_occurrence_id (OMOP has no sequence).
- NOTE: ``omop_notes`` (note_text required; category rule there).
- OBSERVATION_PERIOD (optional): the latest observation_period_end_date per person, the end of follow-up.
  The Cohort has no slot for it: it is counted (``omop_persons_with_observation_period``) and returned
  in ``OmopDetails.follow_up_end`` for a survival task that would censor there.
- CONCEPT (optional): vocabulary_id and concept_name of the concept ids read (Athena's tab-separated
  CONCEPT.csv too), only those rows kept, the file streamed (``omop_concepts``).

Everything from OMOP is credentialed (``Cohort.synthetic`` False): a warehouse's notes are patients'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from clinpred.data.cohort import ADMISSION_DTYPES, DIAGNOSIS_DTYPES, PATIENT_DTYPES, Cohort, conform
from clinpred.data.icd_versions import AmbiguityRule, decide_versions
from clinpred.data.labels import normalise_icd
from clinpred.data.mimic3 import order_diagnoses
from clinpred.data.omop_concepts import ConceptLookup
from clinpred.data.omop_notes import read_omop_notes
from clinpred.data.omop_tables import BIRTH_YEARS, EVENT_YEARS, find_table, read_omop_table
from clinpred.data.source_repairs import link_diagnoses
from clinpred.data.tables import OUT_OF_RANGE_SET_MISSING, parse_datetimes
from clinpred.errors import InputError

INPATIENT_VISITS: tuple[int, ...] = (9201, 262)  # Inpatient Visit; Emergency Room and Inpatient Visit
PATIENT_DIED = 4216643  # discharged_to_concept_id "Patient died" (SNOMED)
GENDERS = {8507: "M", 8532: "F"}
RACES = {  # the standard race concepts (OMB categories) -> the names MIMIC-IV writes
    8527: "WHITE",
    8516: "BLACK/AFRICAN AMERICAN",
    8515: "ASIAN",
    8557: "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER",
    8657: "AMERICAN INDIAN/ALASKA NATIVE",
}
TOP = 10  # concepts / codes named in data check
# a date-only death on the day of a discharge the visit records as alive: not in hospital (docstring)
DISCHARGE_DAY_DEATHS = "omop_date_only_deaths_on_discharge_day_not_in_hospital"


@dataclass
class OmopDetails:
    """What `data check` shows of an OMOP source beyond the Cohort's counts (ids and counts only)."""

    visits_by_concept: dict[str, dict[str, int]] = field(default_factory=dict)  # concept -> kept/not kept
    conditions_by_version_rule: dict[str, int] = field(default_factory=dict)
    conditions_without_icd: dict[str, int] = field(default_factory=dict)  # top condition_concept_ids
    ambiguous_codes: dict[str, int] = field(default_factory=dict)  # codes in both ICD lists, resolved how
    notes_by_category_rule: dict[str, int] = field(default_factory=dict)
    admission_deaths: dict[str, int] = field(default_factory=dict)  # by rule, and the discharge-day ones
    follow_up_end: pd.Series | None = None  # per person: latest observation_period_end_date

    def summary(self) -> dict[str, dict[str, object]]:
        """Everything but the per-person follow-up, which is summarised by its count and span."""
        out: dict[str, dict[str, object]] = {
            "visits_by_concept": dict(self.visits_by_concept),
            "conditions_by_version_rule": dict(self.conditions_by_version_rule),
            "conditions_without_icd": dict(self.conditions_without_icd),
            "ambiguous_codes": dict(self.ambiguous_codes),
            "notes_by_category_rule": dict(self.notes_by_category_rule),
            "admission_deaths": dict(self.admission_deaths),
        }
        if self.follow_up_end is not None:
            ends = self.follow_up_end.dropna()
            out["follow_up"] = {
                "persons_with_an_end": len(ends),
                "latest_end": str(ends.max().date()) if len(ends) else None,
            }
        return out


def _concept_name(cid: int, names: dict[int, str]) -> str:
    return f"{cid} {names[cid]}" if cid in names else str(cid)


def _persons(root: Path) -> tuple[pd.DataFrame, pd.Series, dict[str, int]]:
    """Patients, each person's race, and the count of births set missing (outside BIRTH_YEARS)."""
    table = read_omop_table(
        root,
        "person",
        ["PERSON_ID", "GENDER_CONCEPT_ID", "YEAR_OF_BIRTH"],
        (
            "MONTH_OF_BIRTH",
            "DAY_OF_BIRTH",
            "BIRTH_DATETIME",
            "GENDER_SOURCE_VALUE",
            "RACE_CONCEPT_ID",
            "RACE_SOURCE_VALUE",
        ),
    )
    assert table is not None
    frame = table.frame
    subject = table.ints("PERSON_ID")
    table.require_unique(subject, "PERSON_ID", "Each person must appear once in PERSON.")
    gender = table.concept_ids("GENDER_CONCEPT_ID").map(GENDERS).astype("string")
    gender = gender.fillna(table.text("GENDER_SOURCE_VALUE"))
    born, n_dt = table.times("BIRTH_DATETIME", BIRTH_YEARS)
    year = table.ints("YEAR_OF_BIRTH", nullable=True)
    month = table.ints("MONTH_OF_BIRTH", nullable=True).fillna(1)
    day = table.ints("DAY_OF_BIRTH", nullable=True).fillna(1)
    written = (
        year.astype("string").str.zfill(4)
        + "-"
        + month.astype("string").str.zfill(2)
        + "-"
        + day.astype("string").str.zfill(2)
    ).fillna("")
    by_parts = table.per_part_of(
        written,
        lambda v, p: parse_datetimes(v, p, "YEAR_OF_BIRTH", BIRTH_YEARS, implausible="missing")[0],
    )
    outside = int((year.notna() & by_parts.isna()).sum())
    dob = born.fillna(by_parts.where(born.isna()))
    race = table.text("RACE_SOURCE_VALUE").fillna(
        table.concept_ids("RACE_CONCEPT_ID").map(RACES).astype("string")
    )
    patients = conform(frame.assign(subject_id=subject, gender=gender, dob=dob, dod=pd.NaT), PATIENT_DTYPES)
    n = n_dt + outside
    return (
        patients,
        pd.Series(race.to_numpy(), index=subject.to_numpy()),
        ({OUT_OF_RANGE_SET_MISSING.format("dob"): n} if n else {}),
    )


def _deaths(root: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per person with a DEATH row: dod and whether only its date is known."""
    table = read_omop_table(root, "death", ["PERSON_ID", "DEATH_DATE"], ("DEATH_DATETIME",), must_exist=False)
    if table is None:
        return pd.DataFrame({"subject_id": [], "dod": [], "date_only": []}), {}
    person = table.ints("PERSON_ID")
    repeated = person.duplicated(keep="first").to_numpy()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        path, at = table.where(row)
        raise InputError(
            f"{path}: column PERSON_ID, data row {at}: person {person.iloc[row]} has a second DEATH row "
            f"({int(repeated.sum())} such row(s) in all). The OMOP CDM records one death per person: "
            "keep the right one."
        )
    when, n_dt = table.times("DEATH_DATETIME", EVENT_YEARS)
    date, n_date = table.times("DEATH_DATE", EVENT_YEARS)
    dod = when.fillna(date)
    counts = {OUT_OF_RANGE_SET_MISSING.format("dod"): n_dt + n_date} if n_dt + n_date else {}
    return pd.DataFrame({"subject_id": person, "dod": dod, "date_only": when.isna()}), counts


def _visits(
    root: Path, inpatient: frozenset[int]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], dict[int, dict[str, int]]]:
    """(every visit's id and person, the inpatient admissions, counts, visits by concept id)."""
    table = read_omop_table(
        root,
        "visit_occurrence",
        ["VISIT_OCCURRENCE_ID", "PERSON_ID", "VISIT_CONCEPT_ID", "VISIT_START_DATE"],
        (
            "VISIT_START_DATETIME",
            "VISIT_END_DATE",
            "VISIT_END_DATETIME",
            "DISCHARGED_TO_CONCEPT_ID",  # v5.4
            "DISCHARGE_TO_CONCEPT_ID",  # v5.3
        ),
    )
    assert table is not None
    visit = table.ints("VISIT_OCCURRENCE_ID")
    table.require_unique(visit, "VISIT_OCCURRENCE_ID", "Each visit must appear once in VISIT_OCCURRENCE.")
    person = table.ints("PERSON_ID")
    concept = table.concept_ids("VISIT_CONCEPT_ID")
    start_dt, n1 = table.times("VISIT_START_DATETIME", EVENT_YEARS)
    start_d, n2 = table.times("VISIT_START_DATE", EVENT_YEARS)
    end_dt, n3 = table.times("VISIT_END_DATETIME", EVENT_YEARS)
    end_d, n4 = table.times("VISIT_END_DATE", EVENT_YEARS)
    admit = start_dt.fillna(start_d)
    kept = concept.isin(inpatient).to_numpy()
    missing = kept & admit.isna().to_numpy()
    if missing.any():
        path, at = table.where(int(np.flatnonzero(missing)[0]))
        raise InputError(
            f"{path}: column VISIT_START_DATE, data row {at}: an inpatient visit without a start date "
            "(or one outside the years 1900-2250); every admission needs one."
        )
    end_from_date = end_d.where(end_dt.isna())
    same_day = (end_from_date.dt.normalize() == admit.dt.normalize()) & (end_from_date < admit)
    disch = end_dt.fillna(end_from_date.mask(same_day, admit))
    before = (disch < admit).to_numpy()
    disch = disch.mask(before)
    discharged_to = table.concept_ids("DISCHARGED_TO_CONCEPT_ID")
    if not table.has("DISCHARGED_TO_CONCEPT_ID"):
        discharged_to = table.concept_ids("DISCHARGE_TO_CONCEPT_ID")
    every = pd.DataFrame({"hadm_id": visit, "subject_id": person})
    admissions = pd.DataFrame(
        {
            "subject_id": person,
            "hadm_id": visit,
            "admittime": admit,
            "dischtime": disch,
            "start_date": admit.dt.normalize(),
            "end_date": end_dt.fillna(end_d).dt.normalize(),
            "died_at_discharge": discharged_to == PATIENT_DIED,
        }
    )[kept].reset_index(drop=True)
    counts: dict[str, int] = {
        "omop_visits_inpatient": int(kept.sum()),
        "omop_visits_not_inpatient": int((~kept).sum()),
    }
    if n3 + n4:
        counts[OUT_OF_RANGE_SET_MISSING.format("dischtime")] = n3 + n4
    if n1 + n2:
        counts["omop_visit_starts_out_of_range_set_missing"] = n1 + n2
    if int(before[kept].sum()):
        counts["discharge_before_admission_set_missing"] = int(before[kept].sum())
    by_concept: dict[int, dict[str, int]] = {}
    for cid, n in concept.value_counts().items():
        by_concept[int(cid)] = {
            "kept": int(n) if cid in inpatient else 0,
            "not_kept": 0 if cid in inpatient else int(n),
        }
    return every, admissions, counts, by_concept


def _with_deaths(admissions: pd.DataFrame, deaths: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """deathtime and hospital_expire_flag of each admission (the rule in the module docstring)."""
    death = deaths.set_index("subject_id")
    dod = admissions["subject_id"].map(death["dod"]).astype("datetime64[ns]")
    date_only = admissions["subject_id"].map(death["date_only"]).fillna(False).astype(bool)
    admit, disch = admissions["admittime"], admissions["dischtime"]
    start, end = admissions["start_date"], admissions["end_date"]
    died = admissions["died_at_discharge"].astype(bool)
    timed_inside = ~date_only & (dod >= admit) & (disch.isna() | (dod <= disch))
    dated = date_only & (dod >= start)
    before_end_day = dated & (end.isna() | (dod < end))
    on_end_day = dated & (dod == end)
    dated_inside = before_end_day | (on_end_day & died)
    inside = (timed_inside | dated_inside).to_numpy()
    kept_in_stay = dod.clip(lower=admit).where(disch.isna(), dod.clip(lower=admit, upper=disch))
    deathtime = dod.where(timed_inside).fillna(kept_in_stay.where(before_end_day))
    deathtime = deathtime.fillna(disch.where(on_end_day & died))
    by_concept = died.to_numpy() & ~inside
    deathtime = deathtime.fillna(disch.where(by_concept))
    frame = admissions.assign(deathtime=deathtime, hospital_expire_flag=(inside | by_concept).astype("int64"))
    counts = {"omop_admission_deaths_from_death_table": int(inside.sum())}
    if by_concept.any():
        counts["omop_admission_deaths_from_discharge_concept_only"] = int(by_concept.sum())
    if (alive := int((on_end_day & ~died).sum())) > 0:
        counts[DISCHARGE_DAY_DEATHS] = alive
    return frame, counts


def _conditions(
    root: Path,
    admissions: pd.DataFrame,
    every: pd.DataFrame,
    rule: AmbiguityRule,
    concepts: ConceptLookup,
) -> tuple[pd.DataFrame, dict[str, int], OmopDetails]:
    """Diagnoses of the inpatient admissions, their counts and the details for data check."""
    table = read_omop_table(
        root,
        "condition_occurrence",
        ["PERSON_ID", "CONDITION_CONCEPT_ID"],
        (
            "CONDITION_OCCURRENCE_ID",
            "VISIT_OCCURRENCE_ID",
            "CONDITION_SOURCE_VALUE",
            "CONDITION_SOURCE_CONCEPT_ID",
            "CONDITION_START_DATE",
        ),
    )
    assert table is not None
    person = table.ints("PERSON_ID")
    visit = table.ints("VISIT_OCCURRENCE_ID", nullable=True)
    concept = table.concept_ids("CONDITION_CONCEPT_ID")
    source_concept = table.concept_ids("CONDITION_SOURCE_CONCEPT_ID")
    ids = set(source_concept[source_concept > 0]) | set(concept[concept > 0])
    vocab, names = concepts.vocabularies(ids), concepts.names(ids)
    codes = normalise_icd(table.frame["CONDITION_SOURCE_VALUE"])
    date, _ = table.times("CONDITION_START_DATE", EVENT_YEARS)
    no_source = (codes == "").to_numpy()
    version, how = decide_versions(
        codes,
        source_concept.map(vocab).astype("string"),
        visit,
        date,
        rule,
        table.where,
    )
    how = how.mask(no_source, "no_icd_source")
    version = version.mask(no_source)
    details = OmopDetails()
    details.conditions_by_version_rule = {str(k): int(v) for k, v in how.value_counts().items()}
    without = how.isin(["no_icd_source", "other_vocabulary", "not_icd"]).to_numpy()
    top = concept[without].value_counts().head(TOP)
    details.conditions_without_icd = {_concept_name(int(c), names): int(n) for c, n in top.items()}
    ambiguous = how.str.startswith("ambiguous").fillna(False).to_numpy(dtype=bool)
    details.ambiguous_codes = {
        f"{code} ({h})": int(n)
        for (code, h), n in pd.DataFrame({"c": codes[ambiguous], "h": how[ambiguous]})
        .value_counts()
        .head(TOP)
        .items()
    }
    counts = {f"omop_conditions_{k}": v for k, v in details.conditions_by_version_rule.items()}
    has_version = version.notna().to_numpy()
    inpatient = visit.isin(admissions["hadm_id"]).fillna(False).to_numpy(dtype=bool)
    other_visit = visit.isin(every["hadm_id"]).fillna(False).to_numpy(dtype=bool) & ~inpatient
    no_visit = visit.isna().to_numpy()
    counts["omop_conditions_of_visits_not_inpatient"] = int((has_version & other_visit).sum())
    counts["omop_conditions_without_visit"] = int((has_version & no_visit).sum())
    keep = has_version & ~other_visit & ~no_visit  # inpatient, or a visit that does not exist (repairs)
    order = (
        table.ints("CONDITION_OCCURRENCE_ID", nullable=True)
        if table.has("CONDITION_OCCURRENCE_ID")
        else pd.Series(np.arange(len(table.frame)))
    )
    frame = pd.DataFrame(
        {
            "subject_id": person.to_numpy(),
            "hadm_id": visit.to_numpy(),
            "order": order.to_numpy(),
            "icd_code": codes.to_numpy(),
            "icd_version": version.to_numpy(),
        }
    )[keep]
    frame = frame.sort_values(["hadm_id", "order"], kind="stable")
    frame["seq_num"] = frame.groupby("hadm_id").cumcount() + 1
    frame, linked = link_diagnoses(conform(frame, DIAGNOSIS_DTYPES), admissions)
    return order_diagnoses(frame, admissions), {**counts, **linked}, details


def _follow_up(root: Path) -> tuple[pd.Series | None, dict[str, int]]:
    """The latest observation_period_end_date per person, where OBSERVATION_PERIOD is present."""
    table = read_omop_table(
        root, "observation_period", ["PERSON_ID", "OBSERVATION_PERIOD_END_DATE"], must_exist=False
    )
    if table is None:
        return None, {}
    end, _ = table.times("OBSERVATION_PERIOD_END_DATE", EVENT_YEARS)
    person = table.ints("PERSON_ID")
    latest = end.groupby(person.to_numpy()).max()
    return latest, {
        "omop_observation_periods": len(table.frame),
        "omop_persons_with_observation_period": int(latest.notna().sum()),
    }


def read_omop_with_details(
    root: str | Path,
    *,
    categories: Iterable[str] | None = None,
    subject_ids: Iterable[int] | None = None,
    inpatient_visits: Iterable[int] = INPATIENT_VISITS,
    icd_version_when_ambiguous: AmbiguityRule = "by_visit",
    use_cache: bool = True,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> tuple[Cohort, OmopDetails]:
    """``read_omop``, with what `data check` shows beyond the Cohort's counts."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such directory. Give the folder that holds the OMOP CDM tables.")
    note_parts = find_table(root, "note")
    assert note_parts is not None
    inpatient = frozenset(int(v) for v in inpatient_visits)
    patients, race, person_counts = _persons(root)
    deaths, death_counts = _deaths(root)
    every, admissions, visit_counts, by_concept = _visits(root, inpatient)
    concepts = ConceptLookup(root)
    concepts.want(by_concept)  # looked up in the conditions' pass over CONCEPT
    admissions, death_visit_counts = _with_deaths(admissions, deaths)
    admissions = conform(
        admissions.assign(race=admissions["subject_id"].map(race)), ADMISSION_DTYPES
    ).sort_values(["subject_id", "admittime"], ignore_index=True)
    patients = patients.assign(
        dod=patients["subject_id"].map(deaths.set_index("subject_id")["dod"]).astype("datetime64[ns]")
    )
    diagnoses, dx_counts, details = _conditions(root, admissions, every, icd_version_when_ambiguous, concepts)
    names = concepts.names(by_concept)
    visits_by_concept = {_concept_name(cid, names): n for cid, n in by_concept.items()}
    keep = None if subject_ids is None else frozenset(int(s) for s in subject_ids)
    notes, note_counts = read_omop_notes(
        note_parts,
        visits=every,
        concept_names=concepts.names,
        subject_ids=keep,
        categories=categories,
        use_cache=use_cache,
        cache_dir=cache_dir,
        progress=progress,
        origin=("omop", root),
    )
    linked_elsewhere = notes["hadm_id"].notna() & ~notes["hadm_id"].isin(admissions["hadm_id"])
    if linked_elsewhere.any():  # a note of an outpatient or ER visit: a note of no admission
        notes = notes.assign(hadm_id=notes["hadm_id"].mask(linked_elsewhere))
    note_counts["omop_notes_of_visits_not_inpatient"] = int(linked_elsewhere.sum())
    follow_up, follow_counts = _follow_up(root)
    details.visits_by_concept = visits_by_concept
    details.notes_by_category_rule = {
        k.removeprefix("omop_note_category_"): v
        for k, v in note_counts.items()
        if k.startswith("omop_note_category_")
    }
    details.follow_up_end = follow_up
    details.admission_deaths = {  # zeros too: that a rule found none is worth seeing
        key.removeprefix("omop_"): int(death_visit_counts.get(key, 0))
        for key in (
            "omop_admission_deaths_from_death_table",
            "omop_admission_deaths_from_discharge_concept_only",
            DISCHARGE_DAY_DEATHS,
        )
    }
    cohort = Cohort(
        notes=notes,
        patients=patients,
        admissions=admissions,
        diagnoses=diagnoses,
        source="omop",
        path=root,
        counts={
            **note_counts,
            **dx_counts,
            **person_counts,
            **death_counts,
            **visit_counts,
            **death_visit_counts,
            **follow_counts,
        },
    ).without_unknown_patients()
    return (cohort if keep is None else cohort.subset(keep)), details


def read_omop(root: str | Path, **options: object) -> Cohort:
    """Read an OMOP CDM v5.3 / v5.4 folder (PERSON, VISIT_OCCURRENCE, CONDITION_OCCURRENCE, NOTE; DEATH,
    OBSERVATION_PERIOD and CONCEPT where present) into a Cohort (``source`` "omop", credentialed).

    Options: ``categories``, ``subject_ids``, ``use_cache``, ``cache_dir``, ``progress`` as for the MIMIC
    readers; ``inpatient_visits`` (visit_concept_ids that are admissions, default 9201 and 262) and
    ``icd_version_when_ambiguous`` (icd_versions.AmbiguityRule, default "by_visit").
    """
    return read_omop_with_details(root, **options)[0]  # type: ignore[arg-type]
