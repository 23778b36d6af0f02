"""A fine-tuned model's training patients are checked and recorded (issue 13, defect 4): a
gemma-finetuned model without clinpred-finetune.json is warned about in the run and in RESULTS.md, and
results.json records the training-patient hash of every fine-tuned backend."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from clinpred.data.splits import ids_sha256, split_patients
from clinpred.pipeline import BackendRun, RunResults, _finetune_provenance
from clinpred.report.html import _run_summary
from clinpred.report.markdown import results_markdown

SPLIT = split_patients(list(range(1, 41)))


def backend(name: str, path) -> SimpleNamespace:
    return SimpleNamespace(name=name, resolved=SimpleNamespace(path=path))


def one_run_results(runs: list[BackendRun]) -> RunResults:
    """A run of 20 evaluation patients holding ``runs``: what RESULTS.md is written from."""
    return RunResults(
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
    results = one_run_results(runs)
    md = results_markdown(results)
    assert "**ft**: no clinpred-finetune.json" in md
    assert "fine-tuned on unknown patients" in md
    assert "fine-tuned on patients with sha256 `abababababab`: this run's fine-tuning patients" in md
    assert json.loads(results.model_dump_json())["backends"][0]["provenance"]["record"] is None


def test_the_models_membership_audit_is_carried_into_results_and_results_md(tmp_path):
    """Issue 29: a row per fine-tuned model says how much it reveals about who it was trained on."""
    write_record(tmp_path, SPLIT.finetune, SPLIT.validation)
    record = json.loads((tmp_path / "clinpred-finetune.json").read_text())
    record["audit"] = {
        "status": "done",
        "auroc": {"value": 0.734, "low": 0.66, "high": 0.81},
        "tpr_at_1pct_fpr": {"value": 0.05, "low": 0.0, "high": 0.12},
        "members": 100,
        "non_members": 90,
        "meaning": "not carried",
    }
    (tmp_path / "clinpred-finetune.json").write_text(json.dumps(record))
    _, provenance = _finetune_provenance(backend("sentence-transformers", tmp_path), SPLIT)
    assert (
        provenance["membership_audit"]["members"] == 100 and "meaning" not in provenance["membership_audit"]
    )
    run = BackendRun(label="ft", name="sentence-transformers", status="ok", provenance=provenance)
    md = results_markdown(one_run_results([run]))
    figures = "AUROC 0.734 [0.660, 0.810], TPR at 1% FPR 0.050 [0.000, 0.120] (100 members, 90 non-members)"
    assert figures in md
    row = _run_summary(tmp_path, one_run_results([run, BackendRun(label="b", name="tfidf", status="ok")]))
    assert figures in row["backends"][0]["audit"] and row["backends"][1]["audit"] == ""  # report.html's row
    record["audit"] = {"status": "not run", "reason": "trained on a pairs file"}
    (tmp_path / "clinpred-finetune.json").write_text(json.dumps(record))
    _, provenance = _finetune_provenance(backend("sentence-transformers", tmp_path), SPLIT)
    assert _audit_clause(provenance) == "; membership audit not run (trained on a pairs file)"


def _audit_clause(provenance: dict) -> str:
    from clinpred.report.markdown import _audit

    return _audit(provenance["membership_audit"])
