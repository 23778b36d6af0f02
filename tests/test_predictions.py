"""Binary tasks write their out-of-fold predictions in meds-evaluation's schema, and meds-evaluation's own
scorer gives clinpred's AUROC on them (mortality and readmission on the tiny synthetic cohort)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from meds_evaluation.evaluate import evaluate_binary_classification
from meds_evaluation.schema import PredictionSchema

from tests.conftest import run_cli

COLUMNS = [
    "subject_id",
    "prediction_time",
    "boolean_value",
    "predicted_boolean_value",
    "predicted_boolean_probability",
]
# the tiny cohort has 4 in-hospital deaths and 2 readmissions among evaluation admissions: small folds
FAST = "n_folds = 2\nmin_positives = 2\nmin_train_positives = 1\ninner_folds = 2\n"


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predictions")
    config = root / "binary.toml"
    config.write_text(
        '[tasks]\nrun = ["mortality", "readmission", "recall"]\n'
        + "".join(
            f"[tasks.{t}]\n{FAST}[tasks.{t}.bootstrap]\nn_resamples = 50\n"
            for t in ("mortality", "readmission")
        )
    )
    out = root / "run"
    env = {"CLINPRED_CACHE": str(root / "cache")}
    proc = run_cli(
        "run", "--config", str(config), "--synthetic", "tiny", "-b", "tfidf", "-b",
        "tfidf:max_features=500,label=tfidf-500", "--out", str(out), "-q", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, env


def test_every_binary_task_and_backend_has_a_predictions_file(binary_run):
    out, _ = binary_run
    files = sorted(p.relative_to(out / "predictions").as_posix() for p in (out / "predictions").rglob("*"))
    assert files == [
        "mortality",
        "mortality/tfidf-500.parquet",
        "mortality/tfidf.parquet",
        "readmission",
        "readmission/tfidf-500.parquet",
        "readmission/tfidf.parquet",
    ]  # recall has no probability per unit: no predictions file


@pytest.mark.parametrize("task", ["mortality", "readmission"])
@pytest.mark.parametrize("label", ["tfidf", "tfidf-500"])
def test_predictions_follow_meds_evaluation_schema_and_score_the_same(binary_run, task, label):
    out, _ = binary_run
    table = pq.read_table(out / "predictions" / task / f"{label}.parquet")
    PredictionSchema.validate(table)  # meds-evaluation's own schema: exact types, no extra column
    assert table.column_names == COLUMNS
    frame = table.to_pandas()
    units = pd.read_parquet(out / "units" / label / f"{task}.parquet")
    assert len(frame) == len(units) and frame["subject_id"].tolist() == units["subject_id"].tolist()
    assert (frame["boolean_value"] == units["y"]).all()
    assert (frame["predicted_boolean_value"] == (units["p"] >= 0.5)).all()  # the stated threshold
    assert np.allclose(frame["predicted_boolean_probability"], units["p"], atol=1e-7)
    assert (frame["prediction_time"] == units["prediction_time"]).all()
    scored = evaluate_binary_classification(pl.from_arrow(table))["samples_equally_weighted"]
    results = json.loads((out / "results.json").read_text())
    backend = next(b for b in results["backends"] if b["label"] == label)
    ours = backend["results"][task]["metrics"]
    assert abs(scored["roc_auc_score"] - ours["auroc"]["value"]) <= 1e-9
    assert abs(scored["brier_score"] - ours["brier"]["value"]) <= 1e-6  # float32 probabilities


def test_prediction_times_are_when_the_features_end(binary_run, monkeypatch):
    """Mortality predicts 48 h after admission, readmission at discharge (the synthetic ADMISSIONS)."""
    from clinpred.pipeline import synthetic_cohort_dir

    out, env = binary_run
    monkeypatch.setenv("CLINPRED_CACHE", env["CLINPRED_CACHE"])
    folder = synthetic_cohort_dir("tiny", 0)
    adm = pd.read_csv(next(folder.glob("ADMISSIONS.csv*")), parse_dates=["ADMITTIME", "DISCHTIME"])
    adm = adm.set_index("HADM_ID")
    for task, expected in (
        ("mortality", adm["ADMITTIME"] + pd.Timedelta(hours=48)),
        ("readmission", adm["DISCHTIME"]),
    ):
        units = pd.read_parquet(out / "units" / "tfidf" / f"{task}.parquet")
        preds = pq.read_table(out / "predictions" / task / "tfidf.parquet").to_pandas()
        want = units["hadm_id"].map(expected).to_numpy(dtype="datetime64[us]")
        assert (preds["prediction_time"].to_numpy(dtype="datetime64[us]") == want).all(), task
