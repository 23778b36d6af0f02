"""The membership-inference audit (issue 29, part 3): it catches an overfit model, passes an untrained one,
writes its figures into the record and the card's Privacy section, and refuses folders it cannot audit.

Run as a user would: the installed `clinpred`, on the tiny synthetic cohort and the bundled MiniLM.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mimic_files import write_mimic3

from clinpred.privacy.audit import audit_metrics, bootstrap_audit, tpr_at_fpr
from clinpred.tasks.result import BootstrapScheme, bootstrap_metrics

# many passes over a handful of patients' pairs: memorised, so members must stand out
OVERFIT = """
epochs = 5
learning_rate = 2e-4
batch_size = 16
max_seq_length = 64
warmup_ratio = 0.0
save_steps = 1000
[pairs]
max_pairs_per_patient = 3
"""


def assert_exit_2(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_tpr_at_1pct_fpr_counts_members_above_the_allowed_false_positives():
    member = np.array([True] * 4 + [False] * 200)
    # two non-members (1% of 200) may score above the threshold: the third-highest non-member is it
    score = np.r_[[10.0, 5.0, 2.5, 0.5], np.linspace(0, 1, 198), [3.0, 6.0]]
    assert tpr_at_fpr(member, score) == pytest.approx(0.75)  # 10, 5 and 2.5 are above 1.0; 0.5 is not
    few = np.array([True, True, False, False])
    assert tpr_at_fpr(few, np.array([3.0, 1.0, 2.0, 0.0])) == pytest.approx(0.5)  # above every non-member
    assert np.isnan(tpr_at_fpr(np.array([True, True]), np.array([1.0, 2.0])))


def test_vectorised_bootstrap_gives_clinpreds_patient_bootstrap_intervals():
    rng = np.random.default_rng(3)
    units = pd.DataFrame(
        {
            "subject_id": np.arange(150) * 7,
            "member": rng.random(150) < 0.4,
            "score": np.round(rng.normal(size=150), 1),  # ties, as a mean of few pairs can give
        }
    )
    units.loc[units["member"], "score"] += 0.3
    scheme = BootstrapScheme(n_resamples=300, seed=5)
    fast, reference = bootstrap_audit(units, scheme), bootstrap_metrics(units, audit_metrics, scheme)
    for key in ("auroc", "tpr_at_1pct_fpr"):
        assert fast[key].value == pytest.approx(reference[key].value)
        assert (fast[key].low, fast[key].high) == pytest.approx((reference[key].low, reference[key].high))


@pytest.mark.slow
def test_overfit_model_is_caught_and_its_card_says_so(cli, tmp_path, minilm_path):
    config = tmp_path / "overfit.toml"
    config.write_text(OVERFIT)
    out = tmp_path / "model"
    env = {"CLINPRED_CACHE": str(tmp_path / "cache")}
    result = cli(
        "finetune", "--synthetic", "tiny", "--base", str(minilm_path), "--config", str(config),
        "--out", str(out), "--quiet", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "membership audit: AUROC" in result.stdout, result.stdout

    audit = json.loads((out / "clinpred-finetune.json").read_text())["audit"]
    assert audit["status"] == "done"
    assert audit["members"] == audit["members_available"] > 10  # the tiny cohort: no sampling
    assert audit["non_members"] == audit["non_members_available"] > 10
    assert audit["auroc"]["value"] > 0.8, audit
    assert audit["auroc"]["low"] > 0.6, audit  # clearly above chance, interval and all
    assert audit["mean_score"]["members"] > audit["mean_score"]["non_members"]
    assert audit["tpr_note"] and "0 false positives" in audit["tpr_note"]  # under 100 non-members
    assert "above 0.5" in audit["meaning"]

    card = (out / "README.md").read_text()
    privacy = card.split("## Privacy", 1)[1]
    assert (
        f"{audit['auroc']['value']:.3f} [{audit['auroc']['low']:.3f}, {audit['auroc']['high']:.3f}]"
        in privacy
    )
    assert "cos_fine-tuned(t, t+1) - cos_base(t, t+1)" in privacy
    assert "TPR at 1% FPR" in privacy and "89% of full names" in privacy and "data use agreement" in privacy


@pytest.mark.slow
def test_untrained_model_passes_and_audit_rewrites_record_and_card(cli, tmp_path, minilm_path):
    env = {"CLINPRED_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "model"
    # one step whose learning rate is still 0 (warm-up): the weights are the base's
    result = cli(
        "finetune", "--synthetic", "tiny", "--base", str(minilm_path), "--max-steps", "1",
        "--learning-rate", "1e-9", "--max-seq-length", "64", "--out", str(out), "--quiet", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((out / "clinpred-finetune.json").read_text())
    auroc = record["audit"]["auroc"]
    assert auroc["low"] <= 0.5 <= auroc["high"], auroc
    assert "contains 0.5" in record["audit"]["meaning"]

    (out / "README.md").write_text("stale card\n")
    result = cli(
        "audit", "--model", str(out), "--synthetic", "tiny", "--max-patients", "8", "--quiet", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 members, 8 non-members, sampled from" in result.stdout, result.stdout
    audit = json.loads((out / "clinpred-finetune.json").read_text())["audit"]
    assert (audit["members"], audit["non_members"]) == (8, 8)
    assert audit["auroc"]["low"] <= 0.5 <= audit["auroc"]["high"]
    card = (out / "README.md").read_text()
    assert "## Privacy" in card and "8 fine-tuning patients" in card and "stale" not in card

    # other data than the model was trained on: refused, the record untouched
    before = (out / "clinpred-finetune.json").read_text()
    result = cli("audit", "--model", str(out), "--data", str(write_mimic3(tmp_path / "m3")), env=env)
    assert_exit_2(result, "not fine-tuned on these patients")
    assert (out / "clinpred-finetune.json").read_text() == before


def test_audit_refuses_a_folder_without_a_record(cli, tmp_path, minilm_path):
    result = cli("audit", "--model", str(minilm_path), "--synthetic", "tiny")
    assert_exit_2(result, "no clinpred-finetune.json", "give a fine-tuned model folder")
    assert_exit_2(cli("audit", "--model", str(tmp_path / "nothing"), "--synthetic", "tiny"), "no such model")


def test_pairs_file_model_has_no_audit_and_says_why(cli, tmp_path, minilm_path):
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"anchor": ["a b", "c d", "e f"], "positive": ["b c", "d e", "f g"]}).to_csv(
        pairs, index=False
    )
    out = tmp_path / "model"
    result = cli(
        "finetune", "--pairs", str(pairs), "--base", str(minilm_path), "--max-steps", "1", "--out", str(out),
        "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "membership audit: not run (trained on a pairs file" in result.stdout, result.stdout
    assert "No membership-inference audit: trained on a pairs file" in (out / "README.md").read_text()
    assert_exit_2(cli("audit", "--model", str(out), "--synthetic", "tiny"), "trained on a pairs file")
