"""Fine-tuning recipes on the tiny synthetic cohort: each mechanism checked on what it mines or computes.

Positives (next, next_other_category, window), style-matched negatives, PHI-placeholder masking before
mining, the label-aware loss's labels (fine-tuning patients only), presets, and the record they leave.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinpred.data.mimic3 import read_mimic3
from clinpred.data.splits import split_patients
from clinpred.data.synthetic import generate_cohort
from clinpred.errors import InputError
from clinpred.finetune import FinetuneConfig, PairConfig, finetune, mine_pairs
from clinpred.finetune import pairs as pairs_module
from clinpred.finetune.config import PRESETS
from clinpred.finetune.pairs import fine_tuning_cohort, positive_index, training_data, usable_notes

PHI_WITH_DIGITS = re.compile(r"\[\*\*[^\]]*\d[^\]]*\*\*\]")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = generate_cohort(tmp_path_factory.mktemp("tiny") / "cohort", size="tiny", progress=False)
    return read_mimic3(path)


@pytest.fixture(scope="module")
def split(tiny):
    return split_patients(tiny.subject_ids, FinetuneConfig().split)


def test_style_matched_negatives_share_the_positives_category_and_come_from_other_finetuning_patients(
    tiny, split
):
    config = FinetuneConfig(pairs=PairConfig(negatives="style_matched"))
    _, pairs, counts = training_data(tiny, split, config)
    assert len(pairs) > 50 and "negative" in pairs
    assert (pairs["negative_category"] == pairs["positive_category"]).all()
    assert (pairs["negative_group"] != pairs["group"]).all()
    assert set(pairs["negative_group"]) <= set(split.finetune)  # never validation or evaluation patients
    assert counts["negatives_same_caregiver"] + counts["negatives_same_category"] == len(pairs)
    # the caregiver is matched where one is known: most negatives written by the positive's caregiver
    notes, _ = usable_notes(fine_tuning_cohort(tiny, split.finetune, "mask"), split.finetune, config.pairs)
    by_text = notes.drop_duplicates("text").set_index("text")["cgid"]
    pos_cg, neg_cg = (
        by_text.reindex(pairs["positive"]).to_numpy(),
        by_text.reindex(pairs["negative"]).to_numpy(),
    )
    known = ~pd.isna(pos_cg)
    same = np.array([a == b for a, b in zip(pos_cg[known], neg_cg[known], strict=True)])
    assert known.any() and same.mean() > 0.3
    # seeded: the same config mines the same negatives
    _, again, _ = training_data(tiny, split, config)
    assert again["negative"].tolist() == pairs["negative"].tolist()


def test_next_other_category_pairs_differ_in_category_and_are_the_first_such_later_note(tiny, split):
    config = PairConfig(positives="next_other_category")
    pairs, _counts = mine_pairs(tiny, split.finetune, config)
    assert len(pairs) > 50
    assert (pairs["anchor_category"] != pairs["positive_category"]).all()
    notes, _ = usable_notes(tiny, split.finetune, config)
    target = positive_index(notes, config)
    cat, subj = notes["category"].astype(str).to_numpy(), notes["subject_id"].to_numpy()
    for i in np.flatnonzero(target >= 0):
        j = target[i]
        assert subj[j] == subj[i] and j > i and cat[j] != cat[i]
        assert (cat[i + 1 : j] == cat[i]).all()  # nothing of another category in between
    for i in np.flatnonzero(target < 0):  # no positive: every later note of the patient is the same kind
        later = (subj == subj[i]) & (np.arange(len(subj)) > i)
        assert (cat[later] == cat[i]).all()


def test_window_positives_are_later_notes_of_the_patient_within_the_window_and_seeded(tiny, split):
    config = PairConfig(positives="window", window_hours=48, seed=3)
    notes, _ = usable_notes(tiny, split.finetune, config)
    target = positive_index(notes, config)
    have = np.flatnonzero(target >= 0)
    assert len(have) > 50
    subj, time = notes["subject_id"].to_numpy(), notes["time"].to_numpy()
    gap = (time[target[have]] - time[have]) / np.timedelta64(1, "h")
    assert (subj[target[have]] == subj[have]).all() and (target[have] > have).all()
    assert (gap <= 48).all() and (gap >= 0).all()
    assert (target[have] != have + 1).any()  # not always the next note
    assert (positive_index(notes, config) == target).all()
    assert (positive_index(notes, config.model_copy(update={"seed": 4})) != target).any()


def test_masking_leaves_no_placeholder_with_digits_in_any_mined_text(tiny, split):
    kept = FinetuneConfig(phi_placeholders="keep", pairs=PairConfig(negatives="style_matched"))
    _, raw, _ = training_data(tiny, split, kept)
    assert raw["anchor"].str.contains(PHI_WITH_DIGITS).any()  # the tiny cohort has dated placeholders
    masked = kept.model_copy(update={"phi_placeholders": "mask"})
    cohort, pairs, _ = training_data(tiny, split, masked)
    for column in ("anchor", "positive", "negative"):
        assert not pairs[column].str.contains(PHI_WITH_DIGITS).any(), column
    assert not cohort.notes["text"].str.contains(PHI_WITH_DIGITS).any()  # the validation pool as well
    assert pairs["anchor"].str.contains(r"\[DATE\]", regex=True).any()


def test_identity_masking_hides_ages_allergies_and_social_history_in_every_mined_text(tiny, split):
    age = re.compile(r"\b\d{1,3} ?(?:yo|y/o|year old)\b", re.IGNORECASE)
    kept = FinetuneConfig(pairs=PairConfig(negatives="style_matched"))
    _, raw, _ = training_data(tiny, split, kept)
    assert raw["anchor"].str.contains(age).any()  # the tiny cohort's notes open with the patient's age
    masked = kept.model_copy(update={"identity_details": "mask"})
    cohort, pairs, _ = training_data(tiny, split, masked)
    for column in ("anchor", "positive", "negative"):
        assert not pairs[column].str.contains(age).any(), column
    assert not cohort.notes["text"].str.contains(age).any()
    assert pairs["anchor"].str.contains(r"\[AGE\]", regex=True).any()
    # clinical content stays: the same medications and vitals are written in both versions
    assert raw["anchor"].str.count(r"\bmg\b").sum() == pairs["anchor"].str.count(r"\bmg\b").sum()


def test_label_aware_loss_reads_only_the_finetuning_patients_codes(tiny, split, monkeypatch):
    seen: list[set[int]] = []
    real = pairs_module.label_matrix

    def spy(diagnoses, subject_ids=None, **kw):
        seen.append(set(diagnoses["subject_id"].tolist()) | set(subject_ids or []))
        return real(diagnoses, subject_ids, **kw)

    monkeypatch.setattr(pairs_module, "label_matrix", spy)
    config = FinetuneConfig(loss="label_aware")
    _, pairs, counts = training_data(tiny, split, config)
    assert seen and all(s <= set(split.finetune) for s in seen)
    assert counts["pairs_with_a_phenotype"] > 0
    # and the labels do not change when every evaluation patient's codes are replaced or removed
    dx = tiny.diagnoses.copy()
    held_out = dx["subject_id"].isin(split.evaluation + split.validation)
    dx.loc[held_out, "icd_code"] = "4280"  # heart failure for all of them
    from dataclasses import replace

    _, poisoned, _ = training_data(replace(tiny, diagnoses=dx), split, config)
    _, removed, _ = training_data(replace(tiny, diagnoses=dx[~held_out]), split, config)
    for other in (poisoned, removed):
        assert np.array_equal(np.stack(other["phenotypes"]), np.stack(pairs["phenotypes"]))


def test_soft_targets_and_label_aware_loss_reduce_to_mnrl_without_label_weight():
    torch = pytest.importorskip("torch")
    from clinpred.finetune.losses import soft_targets

    y = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    t = soft_targets(y, 6, 0.5)
    assert torch.allclose(t.sum(dim=1), torch.ones(4))
    assert t[0, 1] > 0 and t[0, 2] == 0 and t[3, :4].tolist() == [0, 0, 0, 1]
    assert (t[:, 4:] == 0).all()  # hard negatives stay negatives
    assert torch.equal(soft_targets(y, 4, 0.0), torch.eye(4))


def test_label_aware_loss_equals_mnrl_at_zero_weight(minilm_path):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from clinpred.finetune.losses import ClinicalLoss, LabelLayout

    model = SentenceTransformer(str(minilm_path), local_files_only=True)
    texts = [["fever and cough", "chest pain", "renal failure"], ["pneumonia", "angina", "dialysis"]]
    features = [model.tokenize(t) for t in texts]
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with torch.no_grad():
        ours = ClinicalLoss(model, layout=LabelLayout(phenotypes=2), label_weight=0.0)(features, labels)
        stock = MultipleNegativesRankingLoss(model)(features, None)
        soft = ClinicalLoss(model, layout=LabelLayout(phenotypes=2), label_weight=1.0)(features, labels)
    assert torch.allclose(ours, stock, atol=1e-5)
    assert not torch.allclose(soft, stock)


def test_presets_and_their_overrides():
    seed = FinetuneConfig.from_preset("seed", "m")
    assert (seed.phi_placeholders, seed.pairs.positives, seed.pairs.negatives, seed.loss, seed.regulariser) == (
        "keep", "next", "in_batch", "mnrl", "none",
    )  # fmt: skip
    clinical = FinetuneConfig.from_preset("clinical", "m")
    default = FinetuneConfig(base_model="m")
    for key, value in PRESETS["clinical"].items():  # the clinical recipe is the default
        got = getattr(default, key)
        assert (got.model_dump() if hasattr(got, "model_dump") else got) == (
            {**PairConfig().model_dump(), **value} if key == "pairs" else value
        )
        got = getattr(clinical, key)
        assert (got.model_dump() if hasattr(got, "model_dump") else got) == (
            {**PairConfig().model_dump(), **value} if key == "pairs" else value
        )
    # an explicit setting wins over the preset's, table by table
    mixed = FinetuneConfig.model_validate(
        {"preset": "seed", "phi_placeholders": "mask", "pairs": {"seed": 5}}
    )
    assert mixed.phi_placeholders == "mask" and mixed.pairs.seed == 5 and mixed.pairs.positives == "next"
    with pytest.raises(InputError, match="preset"):
        FinetuneConfig.from_values({"preset": "best"})
    assert FinetuneConfig.demo("m", "seed").learning_rate > 0
    assert FinetuneConfig.demo("m", "clinical").preset == "clinical"


def test_recipe_settings_round_trip_through_the_record(tiny, minilm_path, tmp_path):
    config = FinetuneConfig.from_preset(
        "clinical",
        str(minilm_path),
        loss="label_aware",
        label_weight=0.25,
        identity_details="mask",
        regulariser="distill",
        distill_weight=0.5,
        pairs={"positives": "window", "window_hours": 96, "negatives": "style_matched", "max_pairs_per_patient": 2},
        batch_size=4, max_seq_length=16, max_steps=2, save_steps=100, eval_max_queries=10,
    )  # fmt: skip
    report = finetune(tiny, config, tmp_path / "m", progress=False)
    assert report.steps == 2 and all(np.isfinite(e["loss"]) for e in report.loss_curve)
    record = json.loads((tmp_path / "m" / "clinpred-finetune.json").read_text())
    assert record["config"]["phi_placeholders"] == "mask" and record["data"]["phi_placeholders"] == "mask"
    assert record["config"]["identity_details"] == record["data"]["identity_details"] == "mask"
    assert record["config"]["preset"] == "clinical"
    # the record names the bundled base by its hub id, never this machine's path (a model folder to share)
    assert record["config"]["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert FinetuneConfig.model_validate(record["config"]) == config.model_copy(
        update={"base_model": "sentence-transformers/all-MiniLM-L6-v2"}
    )
    assert record["counts"] if "counts" in record else record["data"]["counts"]["negatives_missing"] >= 0
    card = (tmp_path / "m" / "README.md").read_text()
    assert "positives\n  window" in card or "positives window" in card.replace("\n  ", " ")


def test_label_aware_needs_patients_not_a_pairs_file(minilm_path, tmp_path):
    from clinpred.finetune import finetune_pairs

    pairs = pd.DataFrame({"anchor": ["a b", "c d"], "positive": ["b a", "d c"]})
    with pytest.raises(InputError, match="label_aware"):
        finetune_pairs(pairs, FinetuneConfig(base_model=str(minilm_path), loss="label_aware"), tmp_path / "m")


def test_distillation_is_refused_with_cached_mnrl():
    with pytest.raises(InputError, match="distillation"):
        FinetuneConfig.from_values({"loss": "cached_mnrl", "regulariser": "distill"})


def test_preset_flag_and_config_file(tmp_path):
    from clinpred.finetune.command import build_config

    toml = tmp_path / "ft.toml"
    toml.write_text('preset = "clinical"\nloss = "label_aware"\n[pairs]\npositives = "next_other_category"\n')
    cfg = build_config(toml, {"preset": "seed"})  # the flag's preset, the file's explicit settings
    assert cfg.preset == "seed" and cfg.phi_placeholders == "keep"
    assert cfg.loss == "label_aware" and cfg.pairs.positives == "next_other_category"
    assert build_config(None, {"preset": "clinical"}) == FinetuneConfig(preset="clinical")


def test_ablation_config_is_checked_before_any_training(cli, tmp_path):
    bad = tmp_path / "ablation.toml"
    bad.write_text('[data]\nsynthetic = "tiny"\n[recipes.a]\npreset = "seed"\nlos = "mnrl"\n')
    result = cli("ablate", "--config", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "los" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    example = Path(__file__).resolve().parents[1] / "examples" / "ablation.toml"
    from clinpred.finetune.ablation import read_ablation_config

    config = read_ablation_config(example)
    assert {"seed", "clinical"} <= set(config.recipes) and config.data.synthetic == "demo"
