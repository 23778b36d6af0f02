"""MEDS in and out: the reader's counts on a hand-built dataset, bad shards, the dataset's split, and
export -> read back -> the same numbers."""

from __future__ import annotations

import json

import meds
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clinpred.data.categories import is_discharge_summary
from clinpred.data.load import detect_layout, load_cohort
from clinpred.data.meds_read import read_meds
from tests.meds_files import SHARD_0, SHARD_1, ev, table, write_meds

ENV = {"OPENAI_API_KEY": ""}


def env(tmp_path):
    return {**ENV, "CLINPRED_CACHE": str(tmp_path / "cache")}


# ---- reading: counted by hand from tests/meds_files.py -----------------------------------------------


def test_reader_counts_match_the_hand_count(tmp_path):
    root = write_meds(tmp_path / "meds")
    assert detect_layout(root) == "meds"
    cohort = load_cohort(root)
    assert cohort.source == "meds" and not cohort.synthetic  # not sealed by clinpred: credentialed
    assert cohort.patients["subject_id"].tolist() == [1, 2, 3]
    assert cohort.patients["gender"].tolist() == ["F", "M", "F"]
    assert cohort.patients["dob"].dt.strftime("%Y-%m-%d").tolist() == [
        "2080-01-01",
        "2070-06-01",
        "2090-02-02",
    ]
    # deaths: subjects 2 and 3; the date of death is the day of MEDS_DEATH
    assert cohort.patients["dod"].dt.strftime("%Y-%m-%d").fillna("-").tolist() == [
        "-",
        "2152-03-01",
        "2160-01-01",
    ]
    adm = cohort.admissions.set_index("hadm_id")
    assert sorted(adm.index) == [100, 101, 200, 300]
    assert adm.loc[100, "admission_type"] == "EMERGENCY" and adm.loc[100, "race"] == "WHITE"
    assert adm.loc[300, "insurance"] == "Private"
    assert str(adm.loc[101, "dischtime"]) == "2151-03-03 09:00:00"
    # one in-hospital death: stay 200 (MEDS_DEATH inside it, discharge DIED); 3 died after discharge
    assert adm["hospital_expire_flag"].to_dict() == {100: 0, 101: 0, 200: 1, 300: 0}
    assert str(adm.loc[200, "deathtime"]) == "2152-03-01 05:00:00"
    assert adm["deathtime"].notna().sum() == 1
    # diagnoses: 3 ICD-9, 2 ICD-10 (I48.91 without its dot; I5023 linked by its discharge time)
    dx = cohort.diagnoses
    assert dx["icd_version"].value_counts().to_dict() == {9: 3, 10: 2}
    assert dx[["hadm_id", "icd_code"]].values.tolist() == [
        [100, "4280"],
        [100, "5849"],
        [101, "I5023"],
        [200, "486"],
        [300, "I4891"],
    ]
    # notes: 7 note events, one without text (dropped and counted); categories from the codes
    notes = cohort.notes
    assert notes["category"].value_counts().to_dict() == {
        "Discharge summary": 2,
        "Nursing/other": 1,
        "Radiology": 1,
        "Respiratory": 1,
        "Echo": 1,
    }
    assert notes["hadm_id"].isna().sum() == 1  # the outpatient radiology report
    assert cohort.counts["note_events_without_text_dropped"] == 1
    assert cohort.counts["meds_events_read"] == len(SHARD_0) + len(SHARD_1) == 31
    assert cohort.counts["meds_note_events"] == 7
    assert cohort.counts["meds_diagnosis_events"] == 5
    assert cohort.counts["meds_admission_events"] == 4
    assert cohort.counts["meds_events_ignored"] == 3  # two LAB events, one ICD-11 code


def test_the_discharge_summary_guard_finds_note_discharge(tmp_path):
    """NOTE//DISCHARGE (MIMIC-IV-Note's name) and NOTE//DISCHARGE_SUMMARY are discharge summaries."""
    cohort = load_cohort(write_meds(tmp_path / "meds"))
    found = is_discharge_summary(cohort.notes["category"])
    assert found.sum() == 2
    assert sorted(cohort.notes.loc[found, "text"]) == ["Discharge Diagnosis: CHF", "Expired."]
    assert len(cohort.without_categories(["Discharge summary"]).notes) == 4


def test_filters_by_category_and_subject(tmp_path):
    root = write_meds(tmp_path / "meds")
    only = read_meds(root, categories=["discharge SUMMARY"], subject_ids=[1, 3])
    assert only.patients["subject_id"].tolist() == [1, 3]
    assert only.notes["category"].tolist() == ["Discharge summary"]
    assert sorted(only.admissions["hadm_id"]) == [100, 101, 300]


def test_without_hadm_id_stays_are_paired_in_time_order(tmp_path):
    """No hadm_id column: admission closed by the next discharge; an admission left open kept without a
    discharge time, a discharge that closes nothing dropped, both counted; notes linked by time."""
    rows = [
        ev(7, None, "GENDER//M"),
        ev(7, "2150-01-01 10:00", "HOSPITAL_ADMISSION//EMERGENCY//UNK"),
        ev(7, "2150-01-02 10:00", "NOTE//NURSING", text_value="stable"),
        ev(7, "2150-01-03 10:00", "HOSPITAL_DISCHARGE//HOME"),
        ev(7, "2150-01-03 10:00", "DIAGNOSIS//ICD//9//4280"),  # linked: discharged at this time
        ev(7, "2150-02-01 10:00", "HOSPITAL_DISCHARGE//HOME"),  # closes nothing
        ev(7, "2150-03-01 10:00", "HOSPITAL_ADMISSION//URGENT//UNK"),  # never discharged
        ev(7, "2150-03-05 10:00", "DIAGNOSIS//ICD//9//486"),  # no stay discharged then: dropped
    ]
    cohort = load_cohort(write_meds(tmp_path / "meds", {"0.parquet": rows}))
    adm = cohort.admissions
    assert adm["admission_type"].tolist() == ["EMERGENCY", "URGENT"]
    assert adm["hadm_id"].tolist() == [1, 2]
    assert adm["dischtime"].isna().tolist() == [False, True]
    assert cohort.counts["admissions_without_discharge_event"] == 1
    assert cohort.counts["discharge_events_without_admission_dropped"] == 1
    assert cohort.counts["diagnoses_without_admission_dropped"] == 1
    assert cohort.diagnoses["icd_code"].tolist() == ["4280"]
    assert cohort.notes["hadm_id"].tolist() == [1]


def test_data_check_reports_meds_counts(cli, tmp_path):
    root = write_meds(tmp_path / "meds")
    proc = cli("data", "check", str(root), env=env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert f"{root}: meds layout" in text
    assert "patients 3" in text and "admissions 4" in text and "diagnosis rows 5" in text
    assert "deaths: 2 patients with a date of death, 1 admissions ending in death" in text
    assert "MEDS events read: 31 in 2 shard(s)" in text
    assert "matched as note 7, diagnosis 5, admission 4, discharge 4" in text
    assert "ignored (other codes) 3" in text
    assert "note events without text dropped: 1" in text


# ---- bad input: one message naming the file and column, exit 2 --------------------------------------


def _bad_shard(tmp_path, shard: pa.Table):
    root = write_meds(tmp_path / "meds", {"train/0.parquet": SHARD_0, "held_out/0.parquet": shard})
    return root, root / "data" / "held_out" / "0.parquet"


def test_a_shard_without_code_is_refused(cli, tmp_path):
    root, bad = _bad_shard(tmp_path, table(SHARD_1).drop_columns(["code"]))
    proc = cli("data", "check", str(root), env=env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}: column code is missing" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def test_time_as_text_is_refused(cli, tmp_path):
    good = table(SHARD_1)
    as_text = good.set_column(1, "time", pa.array([str(t) if t else None for t in good["time"].to_pylist()]))
    root, bad = _bad_shard(tmp_path, as_text)
    proc = cli("data", "check", str(root), env=env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    said = " ".join(proc.stderr.split())
    assert f"{bad}: column time is string; the MEDS DataSchema wants timestamp[us]" in said


def test_subject_id_of_the_wrong_type_is_refused(cli, tmp_path):
    good = table(SHARD_1)
    root, bad = _bad_shard(tmp_path, good.set_column(0, "subject_id", good["subject_id"].cast(pa.int32())))
    proc = cli("data", "check", str(root), env=env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}: column subject_id is int32" in " ".join(proc.stderr.split())


def test_no_metadata_is_refused(cli, tmp_path):
    root = write_meds(tmp_path / "meds", dataset=None)
    proc = cli("data", "check", str(root), env=env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert f"{root / 'metadata' / 'dataset.json'}: no such file" in " ".join(proc.stderr.split())


def test_a_note_id_repeated_with_other_text_is_refused(cli, tmp_path):
    rows = [*SHARD_0[:4], ev(1, "2150-01-01 12:00", "NOTE//NURSING", text_value="other", hadm_id=100)]
    rows[3] = {**rows[3], "note_id": "n1"}
    rows[4] = {**rows[4], "note_id": "n1"}
    root = write_meds(tmp_path / "meds", {"0.parquet": rows})
    proc = cli("data", "check", str(root), env=env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    said = " ".join(proc.stderr.split())
    assert "column note_id: n1 appears again with different content" in said
    assert "Pt arrived" not in proc.stderr and "other" not in said.split("content")[0]  # never note text


def test_shards_are_read_with_their_text_as_written(tmp_path):
    """MEDS 0.3 wrote text_value as string, not large_string: the same values, accepted."""
    old = table(SHARD_1, {"text_value": pa.string()})
    root, _ = _bad_shard(tmp_path, old)
    assert pq.read_schema(root / "data" / "held_out" / "0.parquet").field("text_value").type == pa.string()
    assert len(load_cohort(root).notes) == 6
    assert json.loads((root / "metadata" / "dataset.json").read_text())["dataset_name"] == "hand-built"


# ---- [split] source = "dataset" --------------------------------------------------------------------


def test_the_dataset_split_is_used_and_what_it_leaves_out_counted(tmp_path):
    from clinpred.data.splits import SplitConfig, split_cohort

    root = write_meds(tmp_path / "meds", splits={1: "train", 3: "held_out", 9: "tuning"})
    cohort = load_cohort(root)
    split = split_cohort(cohort, SplitConfig(source="dataset"))
    assert (split.finetune, split.validation, split.evaluation) == ([1], [], [3])
    # subject 2 is not in the file; subject 9 is in the file but not in the data
    assert split.left_out == {"patients_not_in_split_file": 1, "split_file_patients_not_in_cohort": 1}
    seeded = split_cohort(cohort, SplitConfig())
    assert seeded == split_cohort(cohort, SplitConfig(seed=0))  # the default: seeded, as before
    assert sorted(seeded.finetune + seeded.validation + seeded.evaluation) == [1, 2, 3]


def test_the_dataset_split_is_refused_for_a_source_without_one(cli, tmp_path):
    from tests.mimic_files import write_mimic3

    data = write_mimic3(tmp_path / "mimic3")
    config = tmp_path / "run.toml"
    config.write_text('[split]\nsource = "dataset"\n')
    proc = cli(
        "run", "--data", str(data), "--config", str(config), "-b", "tfidf", "--out", str(tmp_path / "run")
    )
    assert proc.returncode == 2, proc.stderr
    said = " ".join(proc.stderr.split())
    assert f'[split] source = "dataset": {data} has no metadata/subject_splits.parquet' in said
    assert not (tmp_path / "run").exists()


# ---- export: MEDS out, and back in ------------------------------------------------------------------


def _numbers(results: dict) -> dict:
    """What a run measured: per backend and task its metrics, counts and definition; the split."""
    out = {"split": {k: v for k, v in results["split"].items() if k != "source"}}
    cohort = results["cohort"]
    out["cohort"] = {
        k: cohort[k] for k in ("patients", "admissions", "diagnosis_rows", "notes", "notes_by_category")
    }
    for b in results["backends"]:
        for task, r in b["results"].items():
            out[(b["label"], task)] = {k: r[k] for k in ("metrics", "counts", "definition") if k in r}
    return out


@pytest.mark.slow
def test_export_of_the_tiny_cohort_reads_back_to_the_same_numbers(cli, tmp_path):
    e = env(tmp_path)
    export = tmp_path / "meds"
    proc = cli("export", "meds", "--synthetic", "tiny", "--out", str(export), "-q", env=e)
    assert proc.returncode == 0, proc.stderr
    assert "40 subjects" in proc.stdout and "note 750" in proc.stdout  # the tiny cohort, generator 2.3
    for name in ("data/0.parquet", "metadata/dataset.json", "metadata/codes.parquet"):
        assert (export / name).is_file()
    record = json.loads((export / "metadata" / "dataset.json").read_text())
    assert record["etl_name"] == "clinpred" and record["meds_version"] == meds.__version__
    meds.DataSchema.validate(pq.read_table(export / "data" / "0.parquet"))  # the written shard, as read
    # data check: the same counts as the synthetic source
    checks = [cli("data", "check", str(p), env=e) for p in (export, cli_synthetic_dir(tmp_path, e))]
    assert all(c.returncode == 0 for c in checks), [c.stderr for c in checks]
    for key in ("patients", "admissions", "diagnosis rows", "notes"):
        assert _line(checks[0].stdout, key) == _line(checks[1].stdout, key)
    # runs: the same labels and metrics; the MEDS run with the dataset's split (= the seeded one)
    config = tmp_path / "dataset-split.toml"
    config.write_text('[split]\nsource = "dataset"\n')
    runs = {}
    for name, source in (("synthetic", ["--synthetic", "tiny"]), ("meds", ["--data", str(export)])):
        extra = ["--config", str(config)] if name == "meds" else []
        args = ["run", *source, *extra, "-b", "tfidf", "-t", "diagnosis", "-t", "mortality", "-q"]
        proc = cli(*args, "--out", str(tmp_path / f"run-{name}"), env=e)
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads((tmp_path / f"run-{name}" / "results.json").read_text())
    assert runs["meds"]["split"]["source"] == "dataset" and runs["synthetic"]["split"]["source"] == "seeded"
    assert runs["meds"]["cohort"]["source"] == "meds"
    assert _numbers(runs["meds"]) == _numbers(runs["synthetic"])


def cli_synthetic_dir(tmp_path, e):
    """The synthetic tiny cohort's folder in this test's cache (written by the export above)."""
    found = sorted((tmp_path / "cache" / "synthetic").glob("tiny-seed0-*"))
    assert found
    return found[0]


def _line(text: str, key: str) -> str:
    return next(line.split()[-1] for line in text.splitlines() if line.strip().startswith(key + " "))


def test_export_of_a_mimic4_fixture_round_trips(cli, tmp_path):
    from tests.mimic_files import write_mimic4

    source = write_mimic4(tmp_path / "mimic4")
    export = tmp_path / "meds"
    proc = cli(
        "export",
        "meds",
        "--data",
        str(source),
        "--out",
        str(export),
        "--subjects-per-shard",
        "1",
        env=env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 shard(s)" in proc.stdout and "owner-only" in proc.stdout
    assert (export / "data" / "1.parquet").stat().st_mode & 0o077 == 0  # credentialed: owner-only
    before, after = load_cohort(source), load_cohort(export)
    assert not after.synthetic
    for name in ("patients", "admissions", "diagnoses", "notes"):
        pd.testing.assert_frame_equal(getattr(before, name), getattr(after, name), check_like=False)
    # again: an earlier export is replaced; a folder of someone's files is refused
    again = cli("export", "meds", "--data", str(source), "--out", str(export), "-q", env=env(tmp_path))
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (export / "data").iterdir()) == ["0.parquet"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    refused = cli("export", "meds", "--data", str(source), "--out", str(mine), env=env(tmp_path))
    assert refused.returncode == 2 and "holds files that clinpred did not write" in refused.stderr
    assert (mine / "notes.txt").read_text() == "keep"
