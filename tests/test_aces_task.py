"""ACES task configs and MEDS label folders as clinpred tasks, on a MEDS dataset the test writes.

The fixture: 60 subjects with one 5-day admission each (every third dies at discharge) and 4 more whose
stay ends after 24 h (ACES's gap window drops them). Each 5-day stay has four notes around the
prediction time (admission + 48 h): one at +1 h and one a second before (features), one exactly at it
and one a second after (never features).
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli

LONG = list(range(1, 61))  # 5-day stays
SHORT = [61, 62, 63, 64]  # discharged alive after 24 h: no label (ACES's gap window)
DIES = {s for s in LONG if s % 3 == 0}  # 20 deaths, at discharge
T0 = datetime(2150, 3, 1, 8, 0, 0)
SICK = "hypotensive on pressors lactate rising oliguric intubated worsening shock"
WELL = "ambulating tolerating diet pain controlled stable vitals plan discharge home"

MORTALITY_YAML = """\
description: in-hospital mortality, predicted 48 h after admission (test copy)
predicates:
  admission:
    code: {regex: "^HOSPITAL_ADMISSION//.*"}
  discharge:
    code: {regex: "^HOSPITAL_DISCHARGE//.*"}
  death:
    code: MEDS_DEATH
  discharge_or_death:
    expr: or(discharge, death)
trigger: admission
windows:
  input:
    start: NULL
    end: trigger + 48h
    start_inclusive: True
    end_inclusive: True
    index_timestamp: end
  gap:
    start: trigger
    end: start + 48h
    start_inclusive: False
    end_inclusive: True
    has:
      discharge_or_death: (None, 0)
  target:
    start: gap.end
    end: start -> discharge_or_death
    start_inclusive: False
    end_inclusive: True
    label: death
"""
FAST = (  # the dataset's split: held_out (even subject ids) are the evaluation patients
    '[split]\nsource = "dataset"\n'
    "[tasks.aces]\nn_folds = 2\nmin_positives = 2\nmin_train_positives = 1\ninner_folds = 2\n"
    "[tasks.aces.bootstrap]\nn_resamples = 50\n"
)


def admit_time(subject: int) -> datetime:
    return T0 + timedelta(days=subject)


def prediction_time(subject: int) -> datetime:
    return admit_time(subject) + timedelta(hours=48)


def _events(subject: int) -> list[dict]:
    admit = admit_time(subject)
    hadm = 1000 + subject
    stay = timedelta(days=5) if subject in LONG else timedelta(hours=24)
    died = subject in DIES
    text = SICK if died else WELL
    rows = [
        {"time": admit - timedelta(days=20000), "code": "MEDS_BIRTH"},
        {"time": None, "code": "GENDER//F" if subject % 2 else "GENDER//M"},
        {"time": admit, "code": "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", "hadm_id": hadm},
    ]
    if subject in LONG:
        cut = prediction_time(subject)
        for n, (when, words) in enumerate(
            [
                (admit + timedelta(hours=1), f"{text} admission note"),
                (cut - timedelta(seconds=1), f"{text} evening note"),
                (cut, "note charted at the prediction time"),
                (cut + timedelta(seconds=1), "note charted after the prediction time"),
            ]
        ):
            rows.append(
                {"time": when, "code": "NOTE//NURSING_OTHER", "text_value": f"subject {subject}: {words}",
                 "hadm_id": hadm, "note_id": f"{subject}-{n}"}
            )  # fmt: skip
    rows.append(
        {"time": admit + stay, "code": f"HOSPITAL_DISCHARGE//{'DIED' if died else 'HOME'}", "hadm_id": hadm}
    )
    if died:
        rows.append({"time": admit + stay, "code": "MEDS_DEATH"})
    rows.append({"time": admit + stay, "code": "DIAGNOSIS//ICD//9//4280", "hadm_id": hadm})
    return [{"subject_id": subject, **r} for r in rows]


def write_meds(root: Path) -> Path:
    """A MEDS root: two shards (a subject's rows in one shard, in time order), the metadata files."""
    schema = pa.schema(
        [
            ("subject_id", pa.int64()),
            ("time", pa.timestamp("us")),
            ("code", pa.string()),
            ("numeric_value", pa.float32()),
            ("text_value", pa.large_string()),
            ("hadm_id", pa.int64()),
            ("note_id", pa.string()),
        ]
    )
    subjects = LONG + SHORT
    for shard, part in enumerate((subjects[::2], subjects[1::2])):
        rows = [e for s in part for e in _events(s)]
        rows.sort(key=lambda r: (r["subject_id"], r["time"] is not None, r["time"] or T0))
        table = pa.Table.from_pylist(rows, schema=schema)
        (root / "data").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "data" / f"{shard}.parquet")
    (root / "metadata").mkdir(exist_ok=True)
    (root / "metadata" / "dataset.json").write_text(
        json.dumps({"dataset_name": "aces-fixture", "dataset_version": "1", "etl_name": "test", "etl_version": "1",
                    "meds_version": "0.4.1"})
    )  # fmt: skip
    pq.write_table(
        pa.table({"code": pa.array([], pa.string()), "description": pa.array([], pa.string()),
                  "parent_codes": pa.array([], pa.list_(pa.string()))}),
        root / "metadata" / "codes.parquet",
    )  # fmt: skip
    pq.write_table(
        pa.table(
            {
                "subject_id": pa.array(subjects, pa.int64()),
                "split": ["held_out" if s % 2 == 0 else "tuning" if s < 5 else "train" for s in subjects],
            }
        ),
        root / "metadata" / "subject_splits.parquet",
    )
    return root


def evaluation_subjects() -> set[int]:
    """The run's evaluation patients: the dataset's held_out split ([split] source = "dataset")."""
    return {s for s in LONG + SHORT if s % 2 == 0}


@pytest.fixture(scope="module")
def meds_root(tmp_path_factory) -> Path:
    return write_meds(tmp_path_factory.mktemp("meds") / "root")


# ---- in-process: the label extraction and the before-prediction-time rule ------------------------------


def test_aces_extracts_hand_counted_labels(meds_root, tmp_path):
    from clinpred.tasks.aces_labels import aces_labels

    (tmp_path / "mortality.yaml").write_text(MORTALITY_YAML)
    found = aces_labels(tmp_path / "mortality.yaml", meds_root)
    labels = found.labels
    assert sorted(labels["subject_id"]) == LONG  # the 24-h stays fail the gap window
    assert set(labels.loc[labels["boolean_value"], "subject_id"]) == DIES
    want = [np.datetime64(prediction_time(s), "us") for s in labels["subject_id"]]
    assert (labels["prediction_time"].to_numpy() == np.array(want)).all()
    assert found.source["config"] == "mortality.yaml" and len(found.source["config_sha256"]) == 64


def test_shipped_configs_on_clinpred_codes(meds_root):
    """The configs clinpred ships: mortality as the test's YAML; readmission predicts at each discharge
    alive (the 40 surviving 5-day stays and the 4 short ones), none readmitted in the fixture."""
    from clinpred.tasks.aces import AcesConfig
    from clinpred.tasks.aces_labels import aces_labels

    shipped = AcesConfig(configs=["inhospital_mortality", "readmission_30d"]).configs
    mortality = aces_labels(shipped[0], meds_root).labels
    assert sorted(mortality["subject_id"]) == LONG
    assert set(mortality.loc[mortality["boolean_value"], "subject_id"]) == DIES
    readmission = aces_labels(shipped[1], meds_root).labels
    alive = sorted(set(LONG + SHORT) - DIES)
    assert sorted(readmission["subject_id"]) == alive and not readmission["boolean_value"].any()
    stay = {s: timedelta(days=5) if s in LONG else timedelta(hours=24) for s in alive}
    want = [np.datetime64(admit_time(s) + stay[s], "us") for s in readmission["subject_id"]]
    assert (readmission["prediction_time"].to_numpy() == np.array(want)).all()  # at discharge


def test_shipped_readmission_config_counts_a_return_within_30_days(tmp_path):
    """Subject 1 returns after 10 days (a readmission), subject 2 after 40 (none); subject 3 dies in
    hospital (no index admission)."""
    from clinpred.tasks.aces import AcesConfig
    from clinpred.tasks.aces_labels import aces_labels

    day = timedelta(days=1)
    stays = {1: [(T0, T0 + 3 * day), (T0 + 13 * day, T0 + 15 * day)],
             2: [(T0, T0 + 3 * day), (T0 + 43 * day, T0 + 45 * day)], 3: [(T0, T0 + 2 * day)]}  # fmt: skip
    rows = []
    for subject, spans in stays.items():
        for admit, disch in spans:
            rows += [
                {
                    "subject_id": subject,
                    "time": admit,
                    "code": "HOSPITAL_ADMISSION//URGENT//TRANSFER FROM HOSPITAL",
                },
                {"subject_id": subject, "time": disch, "code": "HOSPITAL_DISCHARGE//HOME"},
            ]
    rows.append({"subject_id": 3, "time": T0 + 2 * day, "code": "MEDS_DEATH"})
    (tmp_path / "data").mkdir()
    schema = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "data" / "0.parquet")
    labels = aces_labels(AcesConfig(configs=["readmission_30d"]).configs[0], tmp_path).labels
    got = [(s, t.to_pydatetime(), y) for s, t, y in labels.itertuples(index=False)]
    assert got == [
        (1, T0 + 3 * day, True),
        (1, T0 + 15 * day, False),
        (2, T0 + 3 * day, False),
        (2, T0 + 45 * day, False),
    ]


def test_features_are_notes_strictly_before_the_prediction_time():
    from clinpred.tasks.aces import features_before

    t = pd.Timestamp("2150-01-03 08:00:00")
    second = pd.Timedelta(seconds=1)
    notes = pd.DataFrame(
        {
            "subject_id": [1, 1, 1, 1, 1, 1, 2],
            "time": [t - pd.Timedelta(days=1), t - pd.Timedelta(hours=8), t - second, t, t + second,
                     t.normalize(), t - second],
            "time_is_date": [True, True, False, False, False, True, False],
            "category": ["Nursing", "Nursing", "Nursing", "Nursing", "Nursing", "Nursing", "Discharge summary"],
        }
    ).sort_values(["subject_id", "time"], kind="stable").reset_index(drop=True)  # fmt: skip
    units = pd.DataFrame({"subject_id": [1, 2], "label_id": [0, 1], "prediction_time": [t, t]})
    rows, unit_of, counts = features_before(notes, units, include_discharge_summary=False)
    used = notes.iloc[rows]
    # subject 1: the date-only note of the day before and the note a second before; not the date-only
    # notes of the prediction day (08:00 and 00:00), nor the notes at and after the time
    assert list(used["time"]) == [t - pd.Timedelta(days=1), t - second] and list(unit_of) == [0, 0]
    assert counts["date_only_notes_on_the_prediction_day_unused"] == 2
    assert counts["discharge_summaries_before_prediction_time_unused"] == 1  # subject 2's
    rows, unit_of, _ = features_before(notes, units, include_discharge_summary=True)
    assert list(unit_of) == [0, 0, 1]


# ---- through the CLI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aces_run(meds_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("aces-run")
    (root / "inhospital_mortality.yaml").write_text(MORTALITY_YAML)
    (root / "fast.toml").write_text(FAST)
    out = root / "run"
    env = {"CLINPRED_CACHE": str(root / "cache")}
    proc = run_cli(
        "run", "--config", str(root / "fast.toml"), "--data", str(meds_root), "--aces",
        str(root / "inhospital_mortality.yaml"), "-b", "tfidf", "-b", "tfidf:max_features=200,label=tfidf-200",
        "--out", str(out), "-q", env={**env, "CLINPRED_SHARE_WITH_GROUP": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, root, env


def test_aces_task_counts_and_definition(aces_run):
    out, root, _ = aces_run
    results = json.loads((out / "results.json").read_text())
    result = next(b for b in results["backends"] if b["label"] == "tfidf")["results"][
        "aces.inhospital_mortality"
    ]
    evaluation = evaluation_subjects()
    labelled = evaluation & set(LONG)
    counts = result["counts"]
    assert counts["labels_in_source"] == 60 and counts["subjects_in_source"] == 60
    assert counts["positives_in_source"] == 20
    assert counts["excluded_not_evaluation_patients"] == len(set(LONG) - evaluation)
    assert counts["labels"] == len(labelled) and counts["labels_without_feature_notes"] == 0
    assert counts["positives"] == len(labelled & DIES) and counts["patients"] == len(labelled)
    # two notes before each prediction time: the one at it and the one a second after are never used
    assert counts["notes_used"] == 2 * len(labelled)
    definition = result["definition"]
    import hashlib

    sha = hashlib.sha256((root / "inhospital_mortality.yaml").read_bytes()).hexdigest()
    assert definition["task"] == "aces.inhospital_mortality" and definition["config_sha256"] == sha
    assert definition["kind"] == "ACES task config" and "strictly before" in definition["features"]
    assert result["folds"]["grouped_by"] == "subject_id"
    auroc = result["metrics"]["auroc"]
    assert auroc["low"] is not None and auroc["low"] <= auroc["value"] <= auroc["high"]
    assert auroc["value"] > 0.9  # the notes before the time say who is dying


def test_aces_predictions_follow_meds_evaluation_and_are_owner_only(aces_run):
    from meds_evaluation.schema import PredictionSchema

    out, _, _ = aces_run
    for label in ("tfidf", "tfidf-200"):
        path = out / "predictions" / "aces.inhospital_mortality" / f"{label}.parquet"
        table = pq.read_table(path)
        PredictionSchema.validate(table)
        frame = table.to_pandas()
        want = frame["subject_id"].map(lambda s: np.datetime64(prediction_time(s), "us"))
        assert (frame["prediction_time"].to_numpy() == want.to_numpy(dtype="datetime64[us]")).all()
        assert set(frame.loc[frame["boolean_value"], "subject_id"]) == DIES & evaluation_subjects()
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0  # credentialed: owner-only


def test_paired_differences_in_report(aces_run, tmp_path):
    out, _, env = aces_run
    proc = run_cli("report", str(out), "--out", str(tmp_path / "report"), env=env)
    assert proc.returncode == 0, proc.stderr
    comparison = json.loads((tmp_path / "report" / "comparison.json").read_text())
    tasks = {d["task"] for d in comparison["differences"]}
    assert "aces.inhospital_mortality" in tasks
    assert "aces.inhospital_mortality" in (out / "RESULTS.md").read_text()


def test_label_folder_as_a_task(meds_root, tmp_path):
    """--labels: a MEDS label folder; a repeated row is dropped and counted, outsiders left out."""
    folder = tmp_path / "died_48h"
    folder.mkdir()
    subjects = LONG[:40]
    rows = {
        "subject_id": pa.array([*subjects, subjects[0]], pa.int64()),
        "prediction_time": pa.array([prediction_time(s) for s in [*subjects, subjects[0]]], pa.timestamp("us")),
        "boolean_value": pa.array([s in DIES for s in [*subjects, subjects[0]]], pa.bool_()),
    }  # fmt: skip
    pq.write_table(pa.table(rows), folder / "part-0.parquet")
    (tmp_path / "fast.toml").write_text(FAST)
    out = tmp_path / "run"
    proc = run_cli(
        "run", "--config", str(tmp_path / "fast.toml"), "--data", str(meds_root), "--labels", str(folder),
        "-b", "tfidf", "--out", str(out), "-q", env={"CLINPRED_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "results.json").read_text())["backends"][0]["results"]["labels.died_48h"]
    counts = result["counts"]
    assert counts["labels_in_source"] == 40 and counts["repeated_label_rows_dropped"] == 1
    assert counts["excluded_not_evaluation_patients"] == len(set(subjects) - evaluation_subjects())
    assert counts["labels"] == len(set(subjects) & evaluation_subjects())
    assert (
        result["definition"]["kind"] == "MEDS label folder"
        and len(result["definition"]["labels_sha256"]) == 64
    )
    assert (out / "predictions" / "labels.died_48h" / "tfidf.parquet").is_file()


def test_a_broken_yaml_is_one_message(meds_root, tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text(MORTALITY_YAML.replace("label: death", "label: dead_or_alive"))
    proc = run_cli(
        "run", "--data", str(meds_root), "--aces", str(bad), "-b", "tfidf", "--out", str(tmp_path / "r")
    )
    assert proc.returncode == 2
    assert "not a valid ACES task config" in proc.stderr and "broken.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3
    assert not (tmp_path / "r").exists()


def test_aces_needs_a_meds_dataset(tmp_path):
    (tmp_path / "m.yaml").write_text(MORTALITY_YAML)
    proc = run_cli(
        "run", "--synthetic", "tiny", "--aces", str(tmp_path / "m.yaml"), "-b", "tfidf", "--out", str(tmp_path / "r"),
        env={"CLINPRED_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert proc.returncode == 2 and "clinpred export meds" in proc.stderr and "Traceback" not in proc.stderr
