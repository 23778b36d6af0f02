"""Out-of-fold predictions in meds-evaluation's schema, so that the MEDS tools score clinpred's runs.

A binary task (mortality, readmission, an ACES task) keeps one row per unit with the patient, the
moment its features end (``prediction_time``), the label and the pooled out-of-fold probability. The
run writes them per task and backend as ``predictions/<task>/<backend>.parquet`` with exactly the
columns meds-evaluation reads: ``subject_id`` int64, ``prediction_time`` timestamp[us],
``boolean_value``, ``predicted_boolean_value`` and ``predicted_boolean_probability`` (float32).
``predicted_boolean_value`` is the probability thresholded at 0.5 (``p >= 0.5``): clinpred's metrics
(AUROC, AUPRC, Brier) do not use a threshold; the column is there for meds-evaluation's accuracy and F1.

The table is typed and validated by meds-evaluation's own ``PredictionSchema`` (an extension of the
``meds`` package's ``LabelSchema``), the schema its ``evaluate_binary_classification`` checks. It is an
optional dependency (``clinpred[aces]``); without it the same columns are typed from ``meds.LabelSchema``
(a core dependency) and the two prediction columns as meds-evaluation 0.0.6 declares them.
The probability is stored as float32, as the schema requires: two probabilities closer than float32
resolves (about 1e-7) would then tie, so meds-evaluation's AUROC can differ from clinpred's in the
seventh decimal in the worst case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

THRESHOLD = 0.5  # predicted_boolean_value = probability >= THRESHOLD
COLUMNS = ("subject_id", "prediction_time", "p", "y")  # what a task's units need to be written


def _schema() -> pa.Schema:
    """The five columns and their types: meds-evaluation's PredictionSchema where it is installed."""
    try:
        from meds_evaluation.schema import PredictionSchema as S
    except ImportError:
        from meds import LabelSchema as S

        return pa.schema(
            [
                (S.subject_id_name, S.subject_id_dtype),
                (S.prediction_time_name, S.prediction_time_dtype),
                (S.boolean_value_name, S.boolean_value_dtype),
                ("predicted_boolean_value", pa.bool_()),
                ("predicted_boolean_probability", pa.float32()),
            ]
        )
    return pa.schema(
        [
            (S.subject_id_name, S.subject_id_dtype),
            (S.prediction_time_name, S.prediction_time_dtype),
            (S.boolean_value_name, S.boolean_value_dtype),
            (S.predicted_boolean_value_name, S.predicted_boolean_value_dtype),
            (S.predicted_boolean_probability_name, S.predicted_boolean_probability_dtype),
        ]
    )


def prediction_table(units: pd.DataFrame) -> pa.Table | None:
    """A task's per-unit outputs as a meds-evaluation prediction table; None for a task that has no
    single probability and prediction time per unit (recall, diagnosis, survival, geometry)."""
    if not set(COLUMNS) <= set(units.columns):
        return None
    schema = _schema()
    p = units["p"].to_numpy(dtype=float)
    time = pd.to_datetime(units["prediction_time"]).to_numpy(dtype="datetime64[us]")
    table = pa.Table.from_arrays(
        [
            pa.array(units["subject_id"].to_numpy(dtype=np.int64), pa.int64()),
            pa.array(time, pa.timestamp("us")),
            pa.array(units["y"].to_numpy(dtype=bool), pa.bool_()),
            pa.array(p >= THRESHOLD, pa.bool_()),
            pa.array(p.astype(np.float32), pa.float32()),
        ],
        schema=schema,
    )
    try:
        from meds_evaluation.schema import PredictionSchema
    except ImportError:
        return table
    PredictionSchema.validate(table)  # a bug (a null, a wrong type) fails here, not in someone's scorer
    return table
