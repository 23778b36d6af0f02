"""transformers' load report: the benign position_ids table is hidden, every other report still shows."""

from __future__ import annotations

import logging

import pytest
from transformers.utils.loading_report import LoadStateDictInfo, log_state_dict_report

from clinpred.backends.load_report import hide_benign_load_reports


def _report(caplog: pytest.LogCaptureFixture, **keys: set) -> str:
    """What transformers' own report function logs for a load with these keys, with the filter installed."""
    hide_benign_load_reports()
    info = LoadStateDictInfo(
        missing_keys=keys.get("missing", set()),
        unexpected_keys=keys.get("unexpected", set()),
        mismatched_keys=set(),
        error_msgs=[],
        conversion_errors={},
    )
    logger = logging.getLogger("transformers.modeling_utils")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transformers.modeling_utils"):
        log_state_dict_report(object(), "some/model", False, info, logger=logger)
    return caplog.text


def test_only_unexpected_position_ids_is_hidden(caplog):
    assert _report(caplog, unexpected={"embeddings.position_ids"}) == ""


@pytest.mark.parametrize(
    "keys",
    [
        {"missing": {"encoder.layer.0.attention.self.query.weight"}},
        {"unexpected": {"embeddings.position_ids", "pooler.dense.weight"}},
        {"unexpected": {"embeddings.position_ids"}, "missing": {"pooler.dense.bias"}},
    ],
)
def test_any_other_report_is_shown(caplog, keys):
    assert "LOAD REPORT" in _report(caplog, **keys)


def test_the_bundled_minilm_loads_without_the_table(cli, tmp_path, minilm_path):
    proc = cli(
        "run", "--synthetic", "tiny", "-t", "recall", "--out", str(tmp_path / "run"), "--quiet",
        "-b", f"sentence-transformers:model={minilm_path},max_seq_length=32",  # the load, not the length
        env={"CLINPRED_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "LOAD REPORT" not in proc.stderr
