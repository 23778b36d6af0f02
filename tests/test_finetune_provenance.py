"""A fine-tuned model's training patients are checked and recorded (issue 13, defect 4): a
gemma-finetuned model without clinpred-finetune.json is warned about in the run and in RESULTS.md, and
results.json records the training-patient hash of every fine-tuned backend."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from clinpred.data.splits import ids_sha256, split_patients
from clinpred.pipeline import BackendRun, RunResults, _finetune_provenance
from clinpred.report.markdown import results_markdown

SPLIT = split_patients(list(range(1, 41)))


def backend(name: str, path) -> SimpleNamespace:
    return SimpleNamespace(name=name, resolved=SimpleNamespace(path=path))


def write_record(path, train, validation) -> None:
    data = {
        "train_subject_ids_sha256": ids_sha256(train),
        "validation_subject_ids_sha256": ids_sha256(validation),
    }
    (path / "clinpred-finetune.json").write_text(json.dumps({"data": data}))


def test_a_finetuned_model_without_its_record_is_warned_about(tmp_path):
    warnings, provenance = _finetune_provenance(backend("gemma-finetuned", tmp_path), SPLIT)
    assert len(warnings) == 1 and "no clinpred-finetune.json" in warnings[0] and "rule 2" in warnings[0]
    assert provenance == {"record": None, "train_patients_sha256": None, "matches_this_run": None}


def test_a_base_model_without_a_record_is_not(tmp_path):
    assert _finetune_provenance(backend("sentence-transformers", tmp_path), SPLIT) == ([], {})


@pytest.mark.parametrize("name", ["gemma-finetuned", "sentence-transformers"])
def test_the_record_is_checked_against_the_split_and_its_hash_kept(tmp_path, name):
    write_record(tmp_path, SPLIT.finetune, SPLIT.validation)
    warnings, provenance = _finetune_provenance(backend(name, tmp_path), SPLIT)
    assert warnings == [] and provenance["matches_this_run"] is True
    assert provenance["train_patients_sha256"] == ids_sha256(SPLIT.finetune)
    write_record(tmp_path, SPLIT.evaluation, SPLIT.validation)  # trained on this run's evaluation patients
    warnings, provenance = _finetune_provenance(backend(name, tmp_path), SPLIT)
    assert "other than this run's" in warnings[0] and provenance["matches_this_run"] is False
    assert provenance["train_patients_sha256"] == ids_sha256(SPLIT.evaluation)


def test_results_md_shows_the_warning_and_who_the_model_was_trained_on(tmp_path):
    warnings, provenance = _finetune_provenance(backend("gemma-finetuned", tmp_path), SPLIT)
    runs = [
        BackendRun(label="ft", name="gemma-finetuned", status="ok", warnings=warnings, provenance=provenance),
        BackendRun(
            label="ft2",
            name="sentence-transformers",
            status="ok",
            provenance={"train_patients_sha256": "ab" * 32, "matches_this_run": True},
        ),
    ]
    results = RunResults(
        clinpred_version="test",
        created="now",
        data="test",
        cohort={},
        split={"evaluation_patients": 20, "finetune_patients": 18, "validation_patients": 2},
        evaluation={"notes": 100},
        allow_external_api=False,
        versions={},
        config={},
        backends=runs,
    )
    md = results_markdown(results)
    assert "**ft**: no clinpred-finetune.json" in md
    assert "fine-tuned on unknown patients" in md
    assert "fine-tuned on patients with sha256 `abababababab`: this run's fine-tuning patients" in md
    assert json.loads(results.model_dump_json())["backends"][0]["provenance"]["record"] is None
