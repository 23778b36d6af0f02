"""Where an ACES task's labels come from: an ACES task YAML run on a MEDS dataset, or a ready label folder.

Labels are MEDS label rows (``meds.LabelSchema``: ``subject_id``, ``prediction_time``,
``boolean_value``). An ACES config is run by the ``es-aces`` library itself, through its Python API:
``aces.config.TaskExtractorConfig.load`` parses the YAML, ``aces.predicates.get_predicates_df`` reads a
MEDS shard into predicate counts (with ``standard: meds``, the same data config its CLI builds), and
``aces.query.query`` applies the trigger and windows; ``aces.run.get_and_validate_label_schema`` turns
its rows into MEDS labels (``index_timestamp`` -> ``prediction_time``, the label count -> a boolean),
as ``aces-cli`` does. clinpred re-implements none of its window logic. Shards are queried one at a
time, as ACES's own sharded mode does: MEDS keeps all of a subject's events in one shard, so the
windows see every event, and memory stays bounded by a shard. A label folder (``--labels DIR``) is
read with pyarrow and checked against ``meds.LabelSchema``.

Both are read once per run (``extract``, memoised by file hash and dataset), before any embedding:
a broken YAML, a dataset that is not MEDS or a label file that breaks the schema ends the command
with one message (exit 2). Error messages never quote the data (a library's message about a shard
could hold note text); they name the file and what to do.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinpred.errors import InputError

EXPORT_HINT = (
    "ACES reads a MEDS dataset (data/**/*.parquet). Convert this source first: "
    "`clinpred export meds --data SOURCE --out MEDS_DIR`, then `clinpred run --data MEDS_DIR --aces ...`."
)
INSTALL_HINT = "ACES tasks need the es-aces package: pip install 'clinpred[aces]'."


@dataclass
class LabelSet:
    """One task's label rows (subject_id int64, prediction_time datetime64[us], boolean_value bool)."""

    labels: pd.DataFrame
    source: dict[str, Any]  # what the result's definition records: kind, file name, sha256, versions
    counts: dict[str, int] = field(default_factory=dict)  # rows dropped by a stated rule, and why


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def meds_shards(root: Path | None) -> list[Path]:
    """The data shards of a MEDS root (``data/**/*.parquet``), sorted; a user error when there are none."""
    if root is None:
        raise InputError(f"the synthetic cohort is not a MEDS dataset. {EXPORT_HINT}")
    shards = sorted((Path(root) / "data").rglob("*.parquet")) if (Path(root) / "data").is_dir() else []
    if not shards:
        raise InputError(f"{root}: not a MEDS dataset (no data/**/*.parquet). {EXPORT_HINT}")
    return shards


def load_aces_config(path: Path) -> Any:
    """The YAML parsed by es-aces; a user error naming the file when it is missing or not a task config."""
    try:
        from aces.config import TaskExtractorConfig
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--aces {path}: no such file.")
    if path.suffix != ".yaml":
        raise InputError(f"--aces {path}: es-aces reads task configs from '.yaml' files only.")
    try:
        with _quiet_aces():
            return TaskExtractorConfig.load(config_path=path)
    except Exception as exc:  # ruamel, KeyError, ValueError, TypeError: all say what is wrong in the YAML
        detail = str(exc).strip().strip("'\"").splitlines()
        reason = f"{type(exc).__name__}: {detail[0] if detail else ''}".rstrip(": ")
        raise InputError(
            f"--aces {path}: not a valid ACES task config ({reason}). See the es-aces documentation "
            "for predicates, trigger and windows."
        ) from None


class _quiet_aces:
    """es-aces logs every step (and warns on sharded directories): keep the run's output to clinpred's."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("aces")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *_: object) -> None:
        self._logger.setLevel(self._level)


def _to_labels(table: Any) -> pd.DataFrame:
    """MEDS label rows (a pyarrow table) as a pandas frame with clinpred's dtypes."""
    frame = table.select(["subject_id", "prediction_time", "boolean_value"]).to_pandas()
    return pd.DataFrame(
        {
            "subject_id": frame["subject_id"].to_numpy(dtype=np.int64),
            "prediction_time": pd.to_datetime(frame["prediction_time"]).astype("datetime64[us]"),
            "boolean_value": frame["boolean_value"].to_numpy(dtype=bool),
        }
    )


def aces_labels(yaml_path: Path, root: Path) -> LabelSet:
    """Run an ACES task config on a MEDS dataset, shard by shard, through es-aces' Python API."""
    from importlib.metadata import version

    import pyarrow as pa
    from aces import predicates, query
    from aces.run import get_and_validate_label_schema
    from meds import LabelSchema
    from omegaconf import DictConfig

    shards = meds_shards(root)
    cfg = load_aces_config(yaml_path)
    if not cfg.index_timestamp_window:
        raise InputError(
            f"--aces {yaml_path}: no window sets index_timestamp, so ACES gives no prediction time; set "
            "index_timestamp: end on the input window."
        )
    if not cfg.label_window:
        raise InputError(f"--aces {yaml_path}: no window sets a label; clinpred scores a binary label.")
    parts = []
    for shard in shards:
        # a fresh config per shard: query() adds to the window tree's offsets in place, so a second query
        # on one config object shifts every window (es-aces 0.7.3, ACES issue #211)
        shard_cfg = load_aces_config(yaml_path)
        try:
            with _quiet_aces():
                data = DictConfig({"path": str(shard), "standard": "meds"})
                result = query.query(shard_cfg, predicates.get_predicates_df(shard_cfg, data))
        except Exception as exc:  # the library's message may quote the shard's values: reworded
            raise InputError(
                f"--aces {yaml_path}: es-aces could not extract labels from {shard} ({type(exc).__name__}). "
                "Check that the file is a MEDS shard (clinpred data check) and that the predicates' "
                "codes match the dataset's."
            ) from None
        if result.is_empty():
            continue
        renamed = result.select("subject_id", "index_timestamp", "label").rename(
            {"index_timestamp": "prediction_time", "label": "boolean_value"}
        )
        parts.append(_to_labels(get_and_validate_label_schema(renamed)))
    empty = pa.table({"subject_id": pa.array([], pa.int64()), "prediction_time": pa.array([], pa.timestamp("us")),
                      "boolean_value": pa.array([], pa.bool_())})  # fmt: skip
    labels = pd.concat(parts, ignore_index=True) if parts else _to_labels(LabelSchema.align(empty))
    source = {
        "kind": "ACES task config",
        "config": Path(yaml_path).name,
        "config_sha256": file_sha256(Path(yaml_path)),
        "es_aces_version": version("es-aces"),
        "label": f"ACES's label (the count of predicate '{cfg.windows[cfg.label_window].label}' in "
        f"window '{cfg.label_window}') > 0",
        "prediction_time": f"ACES's index_timestamp: the {cfg.windows[cfg.index_timestamp_window].index_timestamp} "
        f"of window '{cfg.index_timestamp_window}'",
    }
    return _checked(labels, source, where=f"--aces {yaml_path}")


def folder_labels(folder: Path) -> LabelSet:
    """A ready label folder (``DIR/**/*.parquet`` in MEDS's LabelSchema), e.g. written by aces-cli."""
    import pyarrow.parquet as pq
    from meds import LabelSchema

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--labels {folder}: not a directory; give the folder of label parquet files.")
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise InputError(f"--labels {folder}: no .parquet file in it (MEDS label files: subject_id, "
                         "prediction_time, boolean_value).")  # fmt: skip
    parts, digest = [], hashlib.sha256()
    for path in files:
        try:
            table = LabelSchema.align(pq.read_table(path))
        except Exception as exc:
            detail = str(exc).strip().splitlines()
            raise InputError(
                f"--labels {path}: not a MEDS label file ({type(exc).__name__}: "
                f"{detail[0] if detail else 'unreadable'}). Columns: subject_id int64, prediction_time "
                "timestamp[us], boolean_value bool."
            ) from None
        if LabelSchema.boolean_value_name not in table.column_names:
            raise InputError(
                f"--labels {path}: no boolean_value column; clinpred scores binary labels "
                "(integer, float and categorical labels are not supported)."
            )
        for column in ("subject_id", "prediction_time", "boolean_value"):
            nulls = table.column(column).null_count
            if nulls:
                raise InputError(f"--labels {path}: column {column} has {nulls} empty values.")
        parts.append(_to_labels(table))
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + file_sha256(path).encode())
    source = {
        "kind": "MEDS label folder",
        "labels": folder.name,
        "labels_sha256": digest.hexdigest(),  # the files' names and contents
        "files": len(files),
        "label": "boolean_value as given",
        "prediction_time": "prediction_time as given",
    }
    return _checked(pd.concat(parts, ignore_index=True), source, where=f"--labels {folder}")


def _checked(labels: pd.DataFrame, source: dict[str, Any], *, where: str) -> LabelSet:
    """Repeated rows dropped by a stated rule (counted); one subject and time with both labels refused."""
    labels = labels.sort_values(["subject_id", "prediction_time"], kind="stable").reset_index(drop=True)
    key = ["subject_id", "prediction_time"]
    repeated = labels.duplicated()
    conflicting = labels[~repeated].duplicated(key, keep=False)
    if conflicting.any():
        rows = labels[~repeated][conflicting].head(3)
        listing = ", ".join(
            f"subject {s} at {t}" for s, t in zip(rows["subject_id"], rows["prediction_time"], strict=True)
        )
        raise InputError(
            f"{where}: {int(conflicting.sum())} label rows give one subject and prediction time both "
            f"labels ({listing}); each (subject_id, prediction_time) needs one label."
        )
    counts = {"repeated_label_rows_dropped": int(repeated.sum())}
    return LabelSet(labels[~repeated].reset_index(drop=True), source, counts)


_MEMO: dict[tuple[str, str, str], LabelSet] = {}


def extract(kind: str, path: Path, root: Path | None) -> LabelSet:
    """The labels of one ACES config (``kind="aces"``, on the MEDS ``root``) or label folder, read once
    per run: memoised by the file's hash and the dataset's path."""
    path = Path(path)
    if kind == "aces":
        meds_shards(root)  # not MEDS: the export hint, before the YAML is even read
        stamp = file_sha256(path) if path.is_file() else "missing"
    else:
        stamp = (
            str(sorted((p.name, p.stat().st_mtime_ns) for p in path.rglob("*.parquet")))
            if path.is_dir()
            else ""
        )
    key = (kind, f"{path.resolve()}|{stamp}", str(Path(root).resolve()) if root is not None else "")
    if key not in _MEMO:
        _MEMO[key] = aces_labels(path, Path(root)) if kind == "aces" else folder_labels(path)
    found = _MEMO[key]
    return LabelSet(found.labels.copy(), dict(found.source), dict(found.counts))
