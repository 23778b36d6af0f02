"""PHI placeholders: masked by kind before embedding and fine-tuning, by default (DESIGN.md rule 7)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from clinpred.config import DataConfig, ExperimentConfig
from clinpred.data.phi import mask_placeholders
from clinpred.pipeline import _text_setting_warning, prepare

SPAN_WITH_DIGITS = re.compile(r"\[\*\*[^\]]*\d[^\]]*\*\*\]")


@pytest.mark.parametrize(
    ("span", "token"),
    [
        ("[**2151-7-16**]", "[DATE]"),
        ("[**7-16**]", "[DATE]"),
        ("[**2151**]", "[DATE]"),
        ("[**Month (only) 51**]", "[DATE]"),
        ("[**Last Name (NamePattern4) 1234**]", "[NAME]"),
        ("[**Known firstname 99**]", "[NAME]"),
        ("[**Doctor First Name 12**]", "[NAME]"),
        ("[**Hospital1 18**]", "[HOSPITAL]"),
        ("[**Hospital Unit Name 10**]", "[HOSPITAL]"),
        ("[**Location (un) 620**]", "[LOCATION]"),
        ("[**Street Address(2) 5**]", "[LOCATION]"),
        ("[**Telephone/Fax (1) 3**]", "[NUMBER]"),
        ("[**Medical Record Number 77**]", "[NUMBER]"),
        ("[**Age over 90 **]", "[PHI]"),
    ],
)
def test_each_placeholder_becomes_the_token_of_its_kind(span, token):
    text = pd.Series([f"seen {span}, stable."], dtype="string")
    assert mask_placeholders(text).tolist() == [f"seen {token}, stable."]


def test_masking_keeps_everything_else_and_mimic_iv_blanks():
    text = pd.Series(["Name: ___ Unit No: ___\nBP 120/80 on 5-10 mg", None, ""], dtype="string")
    masked = mask_placeholders(text)
    assert masked.iloc[0] == text.iloc[0] and pd.isna(masked.iloc[1]) and masked.iloc[2] == ""


def test_a_run_embeds_masked_text_by_default_and_kept_text_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINPRED_CACHE", str(tmp_path / "cache"))
    base = {"backends": [{"name": "tfidf"}]}
    masked = prepare(ExperimentConfig(data=DataConfig(synthetic="tiny"), **base), progress=False)
    assert masked.phi_placeholders == "mask"
    assert not any(SPAN_WITH_DIGITS.search(t) for t in masked.evaluation_texts)
    assert not any(SPAN_WITH_DIGITS.search(t) for t in masked.finetune_texts)
    assert any("[DATE]" in t for t in masked.evaluation_texts)
    kept = prepare(
        ExperimentConfig(data=DataConfig(synthetic="tiny", phi_placeholders="keep"), **base), progress=False
    )
    assert any(SPAN_WITH_DIGITS.search(t) for t in kept.evaluation_texts)
    assert len(kept.evaluation_texts) == len(masked.evaluation_texts)


def test_a_model_trained_on_other_text_is_flagged(tmp_path):
    record = tmp_path / "clinpred-finetune.json"
    record.write_text(json.dumps({"config": {"phi_placeholders": "keep"}}))
    provenance = {"record": str(record)}
    assert _text_setting_warning(provenance, "keep") == []
    (warning,) = _text_setting_warning(provenance, "mask")
    assert "phi_placeholders = 'keep'" in warning and "'mask'" in warning
    assert _text_setting_warning({}, "mask") == []  # a base model: nothing to compare
