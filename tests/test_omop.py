"""The OMOP CDM reader: hand-counted fixtures in CSV and Parquet, refusals, a MIMIC-IV conversion, a run."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mimic_files import M4_ADMISSIONS, M4_DIAGNOSES, M4_PATIENTS, write_mimic4
from omop_files import DEATH, NOTE, PERSON, VISIT, write_omop

from clinpred.data import detect_layout, load_cohort
from clinpred.data.check import check_data
from clinpred.data.labels import label_matrix
from clinpred.data.omop import read_omop, read_omop_with_details
from clinpred.errors import InputError


def test_csv_and_parquet_with_upper_case_headers_give_one_cohort(tmp_path):
    csv = read_omop(write_omop(tmp_path / "csv"), cache_dir=tmp_path / "c")
    parquet = read_omop(
        write_omop(tmp_path / "pq", "parquet", upper=True, note_parts=2), cache_dir=tmp_path / "c"
    )
    for table in ("notes", "patients", "admissions", "diagnoses"):
        pd.testing.assert_frame_equal(getattr(csv, table), getattr(parquet, table))
    assert csv.counts == parquet.counts and csv.source == parquet.source == "omop" and csv.protected


def test_hand_counted_values(tmp_path):
    cohort, details = read_omop_with_details(write_omop(tmp_path / "o"), cache_dir=tmp_path / "c")
    assert len(cohort.patients) == 5 and list(cohort.admissions["hadm_id"]) == [10, 12, 20, 30, 50]
    assert cohort.counts["omop_visits_inpatient"] == 5 and cohort.counts["omop_visits_not_inpatient"] == 3
    genders = dict(cohort.patients.set_index("subject_id")["gender"])
    assert genders == {1: "M", 2: "F", 3: "F", 4: "M", 5: "F"}
    assert cohort.patients.set_index("subject_id").loc[3, "dob"] == pd.Timestamp("1960-07-01")
    assert cohort.patients["dod"].notna().sum() == 3  # persons 1, 2 and 5
    adm = cohort.admissions.set_index("hadm_id")
    # 20: DEATH on its end date, discharged "died"; 30: discharged "died", no DEATH row; 50: DEATH on
    # its end date, discharged home: a death after the discharge, not in hospital
    assert list(adm["hospital_expire_flag"]) == [0, 0, 1, 1, 0]
    assert adm.loc[30, "deathtime"] == adm.loc[30, "dischtime"]
    assert adm.loc[20, "deathtime"] == pd.Timestamp("2012-05-10") and pd.isna(adm.loc[50, "deathtime"])
    assert details.admission_deaths == {
        "admission_deaths_from_death_table": 1,
        "admission_deaths_from_discharge_concept_only": 1,
        "date_only_deaths_on_discharge_day_not_in_hospital": 1,
    }
    assert cohort.counts["omop_date_only_deaths_on_discharge_day_not_in_hospital"] == 1
    assert cohort.notes["category"].value_counts().to_dict() == {
        "Discharge summary": 2,
        "Radiology": 2,
        "Physician": 1,
        "Progress note": 1,
        "Nursing/other": 1,
        "Nursing": 1,
    }
    assert details.notes_by_category_rule == {
        "concept": 3,
        "mimic_category": 2,
        "concept_discharge_summary": 1,
        "title_text": 1,
        "title_as_given": 1,
    }
    note = cohort.notes.set_index("note_id")
    assert note.loc["2", "time_is_date"] and not note.loc["1", "time_is_date"]
    assert pd.isna(note.loc["3", "hadm_id"])  # an outpatient visit is no admission
    assert cohort.counts["omop_notes_of_visits_not_inpatient"] == 2
    dx = cohort.diagnoses
    assert len(dx) == 7 and (dx["icd_version"] == 9).sum() == 4 and (dx["icd_version"] == 10).sum() == 3
    assert set(dx["icd_code"]) == {"99591", "5849", "I5023", "E8020", "486", "4280", "J189"}
    assert details.conditions_by_version_rule == {
        "icd10_list": 4,
        "icd9_list": 3,
        "concept": 2,
        "ambiguous_by_visit": 1,
        "no_icd_source": 1,
        "other_vocabulary": 1,
    }
    assert details.conditions_without_icd == {"4229440 Chronic congestive heart failure": 2}
    assert cohort.counts["omop_conditions_of_visits_not_inpatient"] == 2
    assert cohort.counts["omop_conditions_without_visit"] == 1
    assert details.follow_up_end is not None and details.follow_up_end[3] == pd.Timestamp("2018-06-30")


def test_without_concept_the_code_lists_decide(tmp_path):
    _, details = read_omop_with_details(write_omop(tmp_path / "o", concept=None), cache_dir=tmp_path / "c")
    assert details.conditions_by_version_rule == {
        "icd10_list": 5,
        "icd9_list": 4,
        "ambiguous_by_visit": 1,
        "no_icd_source": 1,
        "not_icd": 1,
    }
    assert details.notes_by_category_rule["source_value_as_given"] == 1  # note 6: "CT HEAD"


def test_ambiguous_codes_follow_the_rule_set(tmp_path):
    root = write_omop(tmp_path / "o")
    with pytest.raises(
        InputError, match=r"condition_occurrence.csv: column CONDITION_SOURCE_VALUE, data row 4"
    ):
        read_omop(root, icd_version_when_ambiguous="refuse", cache_dir=tmp_path / "c")
    by_date = read_omop(root, icd_version_when_ambiguous="by_date", cache_dir=tmp_path / "c")
    assert by_date.diagnoses.set_index("icd_code").loc["E8020", "icd_version"] == 10  # 2016-02-01
    dropped = read_omop(root, icd_version_when_ambiguous="drop", cache_dir=tmp_path / "c")
    assert (
        "E8020" not in set(dropped.diagnoses["icd_code"])
        and dropped.counts["omop_conditions_ambiguous_dropped"] == 1
    )


@pytest.mark.parametrize(
    ("death_date", "death_datetime", "discharged_to", "in_hospital", "deathtime", "on_discharge_day"),
    [
        ("2014-03-04", "", "8536", 1, "2014-03-04 00:00", 0),  # date only, before the end date
        ("2014-03-01", "", "8536", 1, "2014-03-01 10:00", 0),  # date only, the start date: from admittime
        ("2014-03-05", "", "8536", 0, None, 1),  # date only, the end date, discharged home
        ("2014-03-05", "", "", 0, None, 1),  # ... discharge destination not recorded
        ("2014-03-05", "", "4216643", 1, "2014-03-05 11:00", 0),  # ... discharged "Patient died"
        ("2014-03-05", "2014-03-05 10:30:00", "8536", 1, "2014-03-05 10:30", 0),  # time known, inside
        ("2014-03-05", "2014-03-05 11:00:00", "8536", 1, "2014-03-05 11:00", 0),  # ... at discharge
        ("2014-03-05", "2014-03-05 12:00:00", "8536", 0, None, 0),  # ... after discharge
        ("2014-03-06", "", "8536", 0, None, 0),  # date only, after the end date
    ],
)
def test_a_death_in_hospital_by_time_or_by_date(
    tmp_path, death_date, death_datetime, discharged_to, in_hospital, deathtime, on_discharge_day
):
    """Person 5's death against visit 50 (2014-03-01 10:00 .. 2014-03-05 11:00): the rule of omop.py."""
    death = [*DEATH[:-1], ["5", death_date, death_datetime, "32817"]]
    visit = _with(VISIT, len(VISIT) - 1, "discharged_to_concept_id", discharged_to)
    cohort, details = read_omop_with_details(
        write_omop(tmp_path / "o", death=death, visit_occurrence=visit), cache_dir=tmp_path / "c"
    )
    stay = cohort.admissions.set_index("hadm_id").loc[50]
    assert stay["hospital_expire_flag"] == in_hospital
    assert (pd.isna(stay["deathtime"]) and deathtime is None) or stay["deathtime"] == pd.Timestamp(deathtime)
    assert details.admission_deaths["date_only_deaths_on_discharge_day_not_in_hospital"] == on_discharge_day
    assert details.admission_deaths["admission_deaths_from_death_table"] == 1 + in_hospital  # 20, and 50


def _with(rows, row, column, value):
    out = [list(r) for r in rows]
    out[row][rows[0].index(column)] = value
    return out


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"note": NOTE}, "no NOTE_TEXT column"),
        ({"death": [*DEATH, ["2", "2012-05-11", "", "32817"]]}, "death.csv: column PERSON_ID, data row 4"),
        ({"person": _with(PERSON, 2, "person_id", "2x")}, "person.csv: column PERSON_ID, data row 2"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(cli, tmp_path, overrides, expected):
    if "note" in overrides:  # drop the note_text column whole
        i = NOTE[0].index("note_text")
        overrides = {"note": [r[:i] + r[i + 1 :] for r in NOTE]}
    root = write_omop(tmp_path / "o", **overrides)
    result = cli("data", "check", str(root), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    assert "renal failure" not in result.stderr  # never note text


def test_layout_and_data_check(cli, tmp_path):
    root = write_omop(tmp_path / "o", "parquet", upper=True, note_parts=2)
    assert detect_layout(root) == "omop" and load_cohort(root, cache_dir=tmp_path / "c").source == "omop"
    report = check_data(root, progress=False)
    assert report.layout == "omop" and report.omop["conditions_without_icd"]
    result = cli("data", "check", str(root), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stdout.split())
    assert "4229440 Chronic congestive heart failure: 2" in shown
    assert "date_only_deaths_on_discharge_day_not_in_hospital: 1" in shown
    assert "2 admissions ending in death" in shown  # 20 and 30, not 50


def _mimic4_as_omop(root):
    """The MIMIC-IV fixture's rows written as an OMOP extract (as the MIMIC-IV -> OMOP ETL does)."""
    head = M4_PATIENTS[0]
    person = [["person_id", "gender_concept_id", "year_of_birth", "gender_source_value"]]
    death = [["person_id", "death_date"]]
    for r in M4_PATIENTS[1:]:
        row = dict(zip(head, r, strict=True))
        gender = {"M": "8507", "F": "8532"}[row["gender"]]
        person.append(
            [row["subject_id"], gender, str(int(row["anchor_year"]) - int(row["anchor_age"])), row["gender"]]
        )
        if row["dod"]:
            death.append([row["subject_id"], row["dod"][:10]])
    head = M4_ADMISSIONS[0]
    visit = [
        [
            "visit_occurrence_id",
            "person_id",
            "visit_concept_id",
            "visit_start_date",
            "visit_start_datetime",
            "visit_end_date",
            "visit_end_datetime",
            "discharged_to_concept_id",
        ]
    ]
    for r in M4_ADMISSIONS[1:]:
        row = dict(zip(head, r, strict=True))
        died = "4216643" if row["hospital_expire_flag"] == "1" else "0"
        visit.append(
            [
                row["hadm_id"],
                row["subject_id"],
                "9201",
                row["admittime"][:10],
                row["admittime"],
                row["dischtime"][:10],
                row["dischtime"],
                died,
            ]
        )
    condition = [["condition_occurrence_id", "person_id", "condition_concept_id", "visit_occurrence_id"]]
    condition[0].append("condition_source_value")
    for i, r in enumerate(M4_DIAGNOSES[1:], 1):
        subject, hadm, _, code, _ = r
        condition.append([str(i), subject, "0", hadm, code])
    return write_omop(
        root, person=person, death=death, visit_occurrence=visit, condition_occurrence=condition
    )


def test_an_omop_conversion_of_mimic4_gives_the_same_cohort(tmp_path):
    native = load_cohort(write_mimic4(tmp_path / "m4"), cache_dir=tmp_path / "c")
    omop = load_cohort(
        _mimic4_as_omop(tmp_path / "omop"), cache_dir=tmp_path / "c", subject_ids=native.subject_ids
    )
    assert list(omop.subject_ids) == list(native.subject_ids)
    cols = ["subject_id", "hadm_id", "admittime", "dischtime", "hospital_expire_flag"]
    pd.testing.assert_frame_equal(omop.admissions[cols], native.admissions[cols])
    pd.testing.assert_frame_equal(
        omop.patients[["subject_id", "dod"]], native.patients[["subject_id", "dod"]]
    )
    pd.testing.assert_series_equal(label_matrix(omop.diagnoses).mean(), label_matrix(native.diagnoses).mean())


def test_run_on_an_omop_folder(cli, tmp_path):
    """`clinpred run --data OMOP -b tfidf -t diagnosis` on the tiny synthetic cohort written as OMOP."""
    from clinpred.data.mimic3 import read_mimic3
    from clinpred.data.synthetic import generate_cohort

    cohort = read_mimic3(generate_cohort(tmp_path / "syn", size="tiny", seed=0), cache_dir=tmp_path / "c")
    root = _cohort_as_omop(cohort, tmp_path / "omop")
    config = tmp_path / "c.toml"
    config.write_text("[tasks.diagnosis.bootstrap]\nn_resamples = 100\n")
    env = {"CLINPRED_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    result = cli(
        "run",
        "--data",
        str(root),
        "--config",
        str(config),
        "-b",
        "tfidf",
        "-t",
        "diagnosis",
        "--out",
        str(out),
        "--quiet",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["cohort"]["source"] == "omop" and results["cohort"]["patients"] == len(cohort.patients)


def _cohort_as_omop(cohort, root):
    """A Cohort written as an OMOP folder (every admission an inpatient visit)."""
    fmt = "%Y-%m-%d %H:%M:%S"
    p = cohort.patients
    person = [["person_id", "gender_concept_id", "birth_datetime", "year_of_birth"]] + [
        [
            str(s),
            {"M": "8507", "F": "8532"}.get(g, "0"),
            d.strftime(fmt) if pd.notna(d) else "",
            str(d.year) if pd.notna(d) else "1900",
        ]
        for s, g, d in zip(p["subject_id"], p["gender"], p["dob"], strict=True)
    ]
    death = [["person_id", "death_date", "death_datetime"]] + [
        [str(s), d.strftime("%Y-%m-%d"), d.strftime(fmt)]
        for s, d in zip(p["subject_id"], p["dod"], strict=True)
        if pd.notna(d)
    ]
    a = cohort.admissions
    visit = [
        [
            "visit_occurrence_id",
            "person_id",
            "visit_concept_id",
            "visit_start_date",
            "visit_start_datetime",
            "visit_end_datetime",
        ]
    ] + [
        [
            str(h),
            str(s),
            "9201",
            t.strftime("%Y-%m-%d"),
            t.strftime(fmt),
            e.strftime(fmt) if pd.notna(e) else "",
        ]
        for h, s, t, e in zip(a["hadm_id"], a["subject_id"], a["admittime"], a["dischtime"], strict=True)
    ]
    d = cohort.diagnoses
    condition = [
        [
            "condition_occurrence_id",
            "person_id",
            "condition_concept_id",
            "visit_occurrence_id",
            "condition_source_value",
        ]
    ] + [
        [str(i), str(s), "0", str(h), c]
        for i, (s, h, c) in enumerate(zip(d["subject_id"], d["hadm_id"], d["icd_code"], strict=True), 1)
    ]
    n = cohort.notes
    note = [
        [
            "note_id",
            "person_id",
            "note_date",
            "note_datetime",
            "note_class_concept_id",
            "note_text",
            "visit_occurrence_id",
            "note_source_value",
        ]
    ] + [
        [
            str(i),
            str(s),
            t.strftime("%Y-%m-%d"),
            "" if date_only else t.strftime(fmt),
            "0",
            text,
            "" if pd.isna(h) else str(h),
            cat,
        ]
        for i, (s, t, date_only, text, h, cat) in enumerate(
            zip(
                n["subject_id"],
                n["time"],
                n["time_is_date"],
                n["text"],
                n["hadm_id"],
                n["category"],
                strict=True,
            ),
            1,
        )
    ]
    return write_omop(
        root,
        person=person,
        death=death,
        visit_occurrence=visit,
        condition_occurrence=condition,
        note=note,
        observation_period=None,
        concept=None,
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_note_repeated_whole_is_dropped_and_counted_in_both_formats(tmp_path, fmt):
    """NOTE with note 2 written twice (the copy the 9th data row, in the second of two parts): the copy
    is dropped, counted once, and the cohort is the one without it, in CSV as in Parquet."""
    clean = read_omop(write_omop(tmp_path / "clean", fmt, upper=True), cache_dir=tmp_path / "c")
    root = write_omop(tmp_path / "o", fmt, upper=True, note_parts=2, note=[*NOTE, NOTE[2]])
    cohort = read_omop(root, cache_dir=tmp_path / "c")
    assert cohort.counts["duplicate_note_rows_dropped"] == 1 and len(cohort.notes) == 8
    pd.testing.assert_frame_equal(cohort.notes, clean.notes)


@pytest.mark.parametrize(("fmt", "suffix"), [("csv", ".csv"), ("parquet", ".parquet")])
def test_a_note_id_repeated_with_other_text_is_refused_in_both_formats(cli, tmp_path, fmt, suffix):
    """note_id 2 again with other text, in the second part (its 4th data row): refused, exit 2, the
    message naming both parts' rows, column NOTE_ID, and no note text."""
    other = _with([NOTE[0], NOTE[2]], 1, "note_text", "CHEST XRAY: left lower lobe opacity.")[1]
    root = write_omop(tmp_path / "o", fmt, upper=True, note_parts=2, note=[*NOTE, other])
    result = cli("data", "check", str(root), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    message = " ".join(result.stderr.split())
    assert "column NOTE_ID: NOTE_ID 2 in" in message and "appears again with different content" in message
    assert f"part-0{suffix} data row(s) 2" in message and f"part-1{suffix} data row(s) 4" in message
    assert "XRAY" not in result.stderr and "opacity" not in result.stderr  # never note text
