"""Supervised recipes (issue 24): the supervised contrastive term, hierarchy-weighted negatives and the
mixed objective, checked on what they compute; their labels come from fine-tuning patients only; and a
supervised model is marked so wherever its numbers appear (DESIGN.md rule 10), run as a user would."""

from __future__ import annotations

import html
import json
from dataclasses import replace

import numpy as np
import pytest

from clinpred.data.labels import ccs_chapters, code_levels
from clinpred.data.mimic3 import read_mimic3
from clinpred.data.splits import split_patients
from clinpred.data.synthetic import generate_cohort
from clinpred.errors import InputError
from clinpred.finetune import FinetuneConfig
from clinpred.finetune.pairs import training_data

torch = pytest.importorskip("torch")
from clinpred.finetune.losses import ClinicalLoss, LabelLayout, jaccard, supervised_contrastive  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return read_mimic3(
        generate_cohort(tmp_path_factory.mktemp("tiny") / "cohort", size="tiny", progress=False)
    )


@pytest.fixture(scope="module")
def split(tiny):
    return split_patients(tiny.subject_ids, FinetuneConfig().split)


def unit(rows: list[list[float]]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


class Model(torch.nn.Module):
    """Stands in for the SentenceTransformer only where a loss needs one to hold (never called here)."""


def loss_of(**kw) -> ClinicalLoss:
    return ClinicalLoss(Model(), scale=20.0, **kw)


def test_jaccard_of_indicator_sets():
    y = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    j = jaccard(y)
    assert j[0, 1] == 0.5 and j[0, 2] == 0 and j[3, 3] == 0 and j[2, 2] == 1


def test_the_supervised_term_pulls_patients_who_share_phenotypes_together():
    labels = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.float32)  # patients 0,1 and 2,3 alike
    clustered = unit([[1, 0.1], [1, -0.1], [-0.1, 1], [0.1, 1]])
    scattered = unit([[1, 0.1], [-0.1, 1], [1, -0.1], [0.1, 1]])
    eye = torch.eye(4, dtype=torch.bool)
    weights = jaccard(labels)
    assert supervised_contrastive(clustered, weights, eye, 20.0) < 0.01
    assert supervised_contrastive(scattered, weights, eye, 20.0) > 5.0
    # no patient shares a phenotype with another: no positive, the term is 0 (and keeps its graph)
    none = supervised_contrastive(clustered.requires_grad_(), torch.zeros(4, 4), eye, 20.0)
    assert none.item() == 0.0 and none.requires_grad


def test_on_notes_the_patient_s_own_other_note_earns_nothing():
    """Patient 0's note t+1 turned from its note t's direction to another one that is as far from patient
    1's notes: the temporal term changes (it rewards the own note), the supervised term does not."""
    labels = torch.tensor([[1, 0], [1, 0]], dtype=torch.float32)
    anchors = unit([[0, 1, 0], [1, 0, 0]])
    same = unit([[0, 1, 0], [1, 0, 0]])
    turned = unit([[0, 0, 1], [1, 0, 0]])  # patient 0's positive: still orthogonal to patient 1's notes
    term = loss_of(layout=LabelLayout(phenotypes=2), temporal_weight=0.0, supervised_weight=1.0)
    assert torch.isclose(term._supervised(anchors, same, labels), term._supervised(anchors, turned, labels))
    none = labels[:, :0]
    temporal = loss_of()
    assert temporal._temporal([anchors, same], none, none, none) < temporal._temporal(
        [anchors, turned], none, none, none
    )
    # on patients (the mean of the two notes) each patient is one point: the same labels, one value
    patients = loss_of(layout=LabelLayout(phenotypes=2), supervised_weight=1.0, supervised_level="patients")
    assert torch.isfinite(patients._supervised(anchors, turned, labels))


def test_hierarchy_weights_scale_each_negative_by_how_alike_the_two_patients_codes_are():
    anchors = unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    positives = unit([[1, 0.9, 0], [0.9, 1, 0], [0, 0.5, 1]])  # negatives that compete
    single = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float32)
    chapters = torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.float32)
    empty = single[:, :0]
    strength = 0.6
    weighted = loss_of(hierarchy_strength=strength)._temporal([anchors, positives], empty, single, chapters)
    logits = anchors @ positives.T * 20.0
    similarity = 0.5 * (jaccard(single) + jaccard(chapters))  # patients 0 and 1: 1.0; others 0
    down = 1 - strength * similarity
    down.fill_diagonal_(1.0)
    expected = torch.nn.functional.cross_entropy(logits + torch.log(down), torch.arange(3))
    assert torch.isclose(weighted, expected, atol=1e-5)
    plain = loss_of(hierarchy_strength=0.0)._temporal([anchors, positives], empty, single, chapters)
    assert torch.isclose(plain, torch.nn.functional.cross_entropy(logits, torch.arange(3)), atol=1e-5)
    assert weighted < plain  # a same-disease negative pushes less


def three_pairs(minilm_path):
    """The bundled MiniLM, three (anchor, positive) pairs tokenized, their patients' two phenotypes, and
    the stock MNRL on them: what the supervised terms are compared with."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = SentenceTransformer(str(minilm_path), local_files_only=True)
    texts = [["fever and cough", "chest pain", "renal failure"], ["pneumonia", "angina", "dialysis"]]
    features = [model.tokenize(t) for t in texts]
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with torch.no_grad():
        stock = MultipleNegativesRankingLoss(model)(features, None)
    return model, features, labels, LabelLayout(phenotypes=2), stock


def test_mixed_at_zero_supervised_weight_is_sentence_transformers_mnrl(minilm_path):
    model, features, labels, layout, stock = three_pairs(minilm_path)
    with torch.no_grad():
        zero = ClinicalLoss(model, layout=layout, supervised_weight=0.0)(features, labels)
        mixed = ClinicalLoss(model, layout=layout, supervised_weight=1.0)(features, labels)
    assert torch.allclose(zero, stock, atol=1e-5) and mixed > stock


def test_the_phenotype_head_starts_at_zero_and_then_teaches_the_encoder(minilm_path):
    """At zero the head predicts 1/2 for every phenotype (its term is log 2, the encoder gets nothing from
    it); once it has learnt something, its gradient reaches the encoder: what predicts the phenotypes."""
    import math

    model, features, labels, layout, stock = three_pairs(minilm_path)
    with torch.no_grad():
        mixed = ClinicalLoss(model, layout=layout, head_weight=2.0)(features, labels)
    assert torch.isclose(mixed, stock + 2.0 * math.log(2.0), atol=1e-5)

    head_only = ClinicalLoss(model, layout=layout, temporal_weight=0.0, head_weight=1.0)
    encoder = next(p for n, p in model.named_parameters() if "layer.5" in n and n.endswith("weight"))

    def encoder_gradient() -> float:
        model.zero_grad()
        head_only.zero_grad()
        head_only(features, labels).backward()
        return 0.0 if encoder.grad is None else float(encoder.grad.abs().sum())

    assert encoder_gradient() == 0.0 and float(head_only.phenotype_head.weight.grad.abs().sum()) > 0
    with torch.no_grad():
        head_only.phenotype_head.weight.normal_(generator=torch.Generator().manual_seed(0))
    assert encoder_gradient() > 0
    assert ClinicalLoss(model, layout=layout).phenotype_head is None  # no head unless asked


def test_every_used_ccs_category_has_a_chapter():
    from clinpred.data.labels import icd9_table, icd10_table

    chapters = ccs_chapters()
    used = set(icd9_table()["ccs_single"]) | set(icd10_table()["ccs_single"])
    assert used <= set(chapters) and set(chapters.values()) == set(range(1, 19))
    assert chapters[98] == chapters[108] == 7  # essential hypertension, heart failure: circulatory
    assert chapters[122] == 8 and chapters[157] == 10  # pneumonia: respiratory; acute renal failure


def test_supervised_recipes_read_only_the_training_patients_codes(tiny, split):
    config = FinetuneConfig(loss="mixed", negative_weights="hierarchy", supervised_level="patients")
    _, pairs, counts = training_data(tiny, split, config)
    assert counts["pairs_with_a_phenotype"] > 0 and counts["pairs_with_a_ccs_code"] > 0
    assert set(pairs["group"]) <= set(split.finetune)
    # a training patient's vectors are its own codes
    levels = code_levels(tiny.diagnoses, list(split.finetune))
    first = int(pairs["group"].iloc[0])
    assert np.array_equal(pairs["chapters"].iloc[0], levels["chapter"].loc[first].to_numpy(dtype=np.float32))
    # every evaluation and validation patient's codes replaced, or removed: nothing a pair carries changes
    dx = tiny.diagnoses.copy()
    held_out = dx["subject_id"].isin(split.evaluation + split.validation)
    dx.loc[held_out, "icd_code"] = "4280"
    for diagnoses in (dx, dx[~held_out]):
        _, other, _ = training_data(replace(tiny, diagnoses=diagnoses), split, config)
        for column in ("phenotypes", "ccs_single", "chapters"):
            assert np.array_equal(np.stack(other[column]), np.stack(pairs[column])), column


def test_which_recipes_are_supervised_and_what_is_refused():
    assert not FinetuneConfig(base_model="m").supervised
    for settings in (
        {"loss": "supervised"},
        {"loss": "mixed"},
        {"loss": "phenotype_head"},
        {"negative_weights": "hierarchy"},
    ):
        assert FinetuneConfig(base_model="m", **settings).supervised, settings
    head = FinetuneConfig(base_model="m", loss="phenotype_head").supervision()
    assert head["reads"][1] == "CCS benchmark phenotypes (25) from ICD codes"
    with pytest.raises(InputError, match="negative_weights"):
        FinetuneConfig.from_values({"loss": "supervised", "negative_weights": "hierarchy"})
    with pytest.raises(InputError, match="negative_weights"):
        FinetuneConfig.from_values({"loss": "cached_mnrl", "negative_weights": "hierarchy"})


@pytest.fixture(scope="module")
def supervised_run(tmp_path_factory, minilm_path):
    """`clinpred finetune --synthetic tiny --loss mixed` (patients, hierarchy), then `clinpred run` on it."""
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("supervised")
    config = root / "ft.toml"
    config.write_text(
        'supervised_level = "patients"\nnegative_weights = "hierarchy"\nsupervised_weight = 0.5\n'
        "save_steps = 10\neval_max_queries = 20\n"
    )
    env = {"CLINPRED_CACHE": str(root / "cache")}
    common = ["--base", str(minilm_path), "--max-steps", "2", "--batch-size", "8", "--max-seq-length", "32"]
    proc = run_cli(
        "finetune", "--synthetic", "tiny", "--loss", "mixed", "--config", str(config), *common,
        "--out", str(root / "model"), "--quiet", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_config = root / "run.toml"
    run_config.write_text("[tasks.recall.bootstrap]\nn_resamples = 50\n")
    proc = run_cli(
        "run", "--config", str(run_config), "--synthetic", "tiny", "-t", "recall", "--out", "run", "--quiet",
        "-b", "sentence-transformers:model=model,label=supervised,max_seq_length=32",
        cwd=root, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return root


def test_a_supervised_model_says_so_in_its_record_card_results_and_report(supervised_run):
    root = supervised_run
    record = json.loads((root / "model" / "clinpred-finetune.json").read_text())
    assert record["supervision"]["supervised"] is True
    assert any("CCS chapters" in r for r in record["supervision"]["reads"])
    assert record["config"]["loss"] == "mixed" and record["config"]["supervised_level"] == "patients"
    card = (root / "model" / "README.md").read_text()
    assert "**Supervised**" in card and "- supervised" in card and "hierarchy-weighted negatives" in card
    results = json.loads((root / "run" / "results.json").read_text())
    (tuned,) = results["backends"]
    assert tuned["provenance"]["supervision"]["supervised"] is True
    markdown = (root / "run" / "RESULTS.md").read_text()
    assert "Supervised fine-tunes" in markdown and "supervised: read the fine-tuning patients'" in markdown
    page = html.unescape((root / "run" / "report.html").read_text())
    assert "supervised: read the fine-tuning patients'" in page


def test_a_pairs_file_cannot_feed_a_supervised_recipe(cli, tmp_path, minilm_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive,group\nfever,cough,1\nchest pain,angina,2\n")
    proc = cli(
        "finetune", "--pairs", str(pairs), "--base", str(minilm_path), "--loss", "supervised",
        "--out", str(tmp_path / "m"), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "diagnosis codes" in proc.stderr and not (tmp_path / "m").exists()


def test_per_label_weights_count_each_shared_phenotype_once_among_those_who_have_it():
    from clinpred.finetune.losses import per_label_weights

    # label 0: patients 0,1,2; label 1 (rare): patients 0 and 3
    y = torch.tensor([[1, 1], [1, 0], [1, 0], [0, 1]], dtype=torch.float32)
    w = per_label_weights(y)
    assert torch.allclose(
        w[0], torch.tensor([1 / 2 + 1 / 1, 1 / 2, 1 / 2, 1 / 1])
    )  # the diagonal: left out later
    assert w[0, 3] > w[0, 1]  # the rare shared label weighs more than the common one
    assert w[3, 1] == 0 and w[1, 3] == 0


def test_a_model_recorded_before_a_setting_existed_is_reused_with_the_setting_at_its_default():
    from clinpred.finetune.output import record_config, same_config

    config = FinetuneConfig(base_model="m", loss="supervised")
    older = record_config(config)
    del older["supervised_positives"], older["negative_weights"]  # settings newer than the record
    assert same_config(older, config)
    assert not same_config(older, config.model_copy(update={"supervised_positives": "per_label"}))
    assert not same_config({**older, "loss": "mnrl"}, config)
    assert not same_config({"loss": "no such loss"}, config)
