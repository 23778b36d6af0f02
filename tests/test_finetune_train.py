"""Training end to end with real models: outputs, resume, Gemma3 guard, and recall that goes up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinpred.data.splits import ids_sha256
from clinpred.errors import InputError
from clinpred.finetune import FinetuneConfig, PairConfig, finetune, finetune_pairs

WORDS = "fever cough sepsis insulin heparin stroke renal liver cardiac wound pain lungs bowel anemia".split()


def toy_pairs(n_groups: int = 12, per_group: int = 3, seed: int = 0) -> pd.DataFrame:
    """Pairs whose anchor and positive share a patient-specific pair of words."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        a, b = rng.choice(WORDS, size=2, replace=False)
        for j in range(per_group):
            rows.append(
                {
                    "anchor": f"note {j} patient {g}: {a} and {b}",
                    "positive": f"note {j + 1}: {b}, {a}",
                    "group": g,
                }
            )
    return pd.DataFrame(rows)


def small_config(base: Path | str, **kw) -> FinetuneConfig:
    settings = dict(
        base_model=str(base), batch_size=4, max_seq_length=16, max_steps=4, learning_rate=1e-4,
        save_steps=2, logging_steps=1, seed=0,
    )  # fmt: skip
    settings.update(kw)
    return FinetuneConfig(**settings)


def all_file_text(folder: Path) -> str:
    """Every text-like file under a folder, concatenated (weights skipped)."""
    parts = []
    for p in folder.rglob("*"):
        if p.is_file() and p.suffix in {".json", ".md", ".txt", ".toml", ".csv"}:
            parts.append(p.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def test_pairs_run_writes_a_loadable_model_and_a_text_free_record(minilm_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    pairs = toy_pairs()
    out = tmp_path / "model"
    report = finetune_pairs(pairs, small_config(minilm_path), out, progress=False)
    assert report.steps == 4 and report.pairs == len(pairs)

    model = SentenceTransformer(str(out))
    vec = model.encode(["fever and cough"], normalize_embeddings=True)
    assert vec.shape == (1, 384) and np.isclose(np.linalg.norm(vec), 1.0, atol=1e-5)
    assert model.max_seq_length == 16
    base = SentenceTransformer(str(minilm_path)).encode(["fever and cough"], normalize_embeddings=True)
    assert not np.allclose(vec, base, atol=1e-4)  # the weights moved

    record = json.loads((out / "clinpred-finetune.json").read_text())
    assert record["config"]["batch_size"] == 4  # the bundled MiniLM by its hub id, not this machine's path
    assert (
        record["config"]["base_model"]
        == record["base_model"]["id"]
        == "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert record["base_model"]["weights_sha256"] and len(record["base_model"]["weights_sha256"]) == 64
    assert record["data"]["pairs"] == len(pairs) and record["data"]["groups"] == 12
    assert [p["step"] for p in record["loss_curve"]] == [1.0, 2.0, 3.0, 4.0]
    assert record["steps"] == 4 and record["wall_time_s"] > 0
    assert {"torch", "transformers", "sentence_transformers"} <= set(record["versions"])
    assert "Temporal contrastive fine-tune" in (out / "README.md").read_text()

    text = all_file_text(out)  # model folder, checkpoints, card and record
    for t in [*pairs["anchor"], *pairs["positive"]]:
        assert t not in text
    # no staging or temporary file left behind: the one hidden entry is the mark that clinpred wrote it
    assert [p.name for p in out.glob(".*")] == [".clinpred-run"]


@pytest.mark.parametrize("loss", ["mnrl", "phenotype_head"])
def test_resume_after_interruption_gives_the_uninterrupted_weights(minilm_path, tmp_path, loss):
    """phenotype_head: the head is the loss's, not the model's; its checkpoints keep it beside the
    trainer's files, and the resumed fine-tune trains the head it had (else the weights would differ)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt  # after checkpoint-2 was written, like a killed job

    config = small_config(minilm_path, loss=loss)
    if loss == "mnrl":
        pairs = toy_pairs()

        def train(out, **kw):
            return finetune_pairs(pairs, config, out, progress=False, **kw)
    else:  # the patients' codes come from a cohort: the tiny synthetic one, one pair per patient
        from clinpred.data.mimic3 import read_mimic3
        from clinpred.data.synthetic import generate_cohort

        cohort = read_mimic3(generate_cohort(tmp_path / "tiny", size="tiny", seed=0, progress=False))
        config = small_config(
            minilm_path, loss=loss, pairs=PairConfig(max_pairs_per_patient=1), eval_max_queries=8
        )

        def train(out, **kw):
            return finetune(cohort, config, out, progress=False, **kw)

    whole = train(tmp_path / "whole")
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(out, callbacks=[Interrupt()])
    ckpts = tmp_path / "resumed.checkpoints"  # beside the model folder, not inside it
    assert (ckpts / "checkpoint-2").is_dir() and not (out / "clinpred-finetune.json").exists()
    assert (ckpts / "checkpoint-2" / "phenotype_head.pt").is_file() == (loss == "phenotype_head")
    assert not (out / "checkpoints").exists()
    with pytest.raises(InputError, match="--resume"):
        train(out)
    resumed = train(out, resume=True)
    assert resumed.resumed_from == "checkpoint-2" and resumed.steps == 4
    assert not ckpts.exists() and not (tmp_path / "whole.checkpoints").exists()  # removed once finished
    a = SentenceTransformer(str(tmp_path / "whole")).state_dict()
    b = SentenceTransformer(str(out)).state_dict()
    assert set(a) == set(b) == set(SentenceTransformer(str(minilm_path)).state_dict())  # no head saved
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert [p["loss"] for p in resumed.loss_curve] == pytest.approx(
        [p["loss"] for p in whole.loss_curve], rel=1e-4
    )


def tiny_gemma3(path: Path) -> Path:
    """A randomly initialised Gemma3 embedding model in EmbeddingGemma's shape, built in a second."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Gemma3TextConfig, Gemma3TextModel, PreTrainedTokenizerFast

    texts = [*toy_pairs()["anchor"], *toy_pairs()["positive"]] * 5
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )
    cfg = Gemma3TextConfig(
        vocab_size=fast.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=128,
        use_bidirectional_attention=True, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    Gemma3TextModel(cfg).save_pretrained(path / "backbone")
    fast.save_pretrained(path / "backbone")
    modules = [
        Transformer(str(path / "backbone"), max_seq_length=64),
        Pooling(32, pooling_mode="mean"),
        Dense(32, 64, bias=False, activation_function=torch.nn.Identity()),
        Dense(64, 32, bias=False, activation_function=torch.nn.Identity()),
        Normalize(),
    ]
    prompts = {"query": "task: search result | query: ", "document": "title: none | text: "}
    SentenceTransformer(modules=modules, prompts=prompts).save(str(path / "model"))
    return path / "model"


def test_gemma3_refuses_fp16_and_trains_with_its_document_prompt(tmp_path):
    base = tiny_gemma3(tmp_path / "gemma")
    with pytest.raises(InputError, match="fp16 is not supported for Gemma3"):
        finetune_pairs(toy_pairs(), small_config(base, fp16=True), tmp_path / "fp16", progress=False)
    out = tmp_path / "model"
    finetune_pairs(toy_pairs(), small_config(base, max_steps=2), out, progress=False)
    record = json.loads((out / "clinpred-finetune.json").read_text())
    assert record["prompts"] == {"anchor": "title: none | text: ", "positive": "title: none | text: "}
    assert record["precision"] == "fp32"


@pytest.mark.slow
def test_tiny_cohort_finetune_raises_validation_recall_at_5(minilm_path, tmp_path):
    """A short CPU fine-tune on the tiny synthetic cohort beats the base model on held-out validation patients."""
    from clinpred.data.mimic3 import read_mimic3
    from clinpred.data.splits import SplitConfig, split_patients
    from clinpred.data.synthetic import generate_cohort

    cohort = read_mimic3(generate_cohort(tmp_path / "tiny", size="tiny", seed=0))
    split_cfg = SplitConfig(evaluation_fraction=0.25, validation_fraction=0.3, seed=0)
    config = FinetuneConfig(
        base_model=str(minilm_path), split=split_cfg, pairs=PairConfig(max_pairs_per_patient=10),
        batch_size=16, max_seq_length=128, max_steps=8, learning_rate=1e-4, save_steps=100, logging_steps=2,
    )  # fmt: skip
    out = tmp_path / "model"
    report = finetune(cohort, config, out, progress=False)
    before, after = report.recall_before, report.recall_after
    assert before is not None and after is not None
    assert after["recall@5"] > before["recall@5"], (before, after)
    assert after["recall@5"] > after["chance@5"]

    split = split_patients(cohort.subject_ids, split_cfg)
    record = json.loads((out / "clinpred-finetune.json").read_text())
    data = record["data"]
    assert data["train_subject_ids_sha256"] == ids_sha256(split.finetune)
    assert data["validation_subject_ids_sha256"] == ids_sha256(split.validation)
    assert data["counts"]["patients"] == len(split.finetune)
    assert data["evaluation_patients_held_out"] == len(split.evaluation)
    val_notes = cohort.notes[cohort.notes["subject_id"].isin(split.validation)]
    assert data["validation_pool"] == len(val_notes)  # the pool is the validation notes, nothing else
    assert record["recall_curve"][0]["step"] == 0 and record["recall_curve"][-1]["step"] == 8
    text = all_file_text(out)
    assert not any(t[:60] in text for t in cohort.notes["text"].astype(str))
