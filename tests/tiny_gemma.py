"""EmbeddingGemma's architecture with random weights, built offline (a tiny one in well under a second).

It has the architecture of EmbeddingGemma (a Gemma3 text encoder with bidirectional attention, mean
pooling, two Dense projections, Normalize, and EmbeddingGemma's prompts) at toy size, so tests run the
real Gemma code path of the sentence-transformers backend without a model hub. Its vectors mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# EmbeddingGemma's prompts, as its config_sentence_transformers.json ships them.
GEMMA_PROMPTS = {
    "query": "task: search result | query: ",
    "document": "title: none | text: ",
    "STS": "task: sentence similarity | query: ",
}

_WORDS = (
    "patient admitted with chest pain shortness of breath fever cough sepsis pneumonia heart failure "
    "renal insufficiency diabetes hypertension atrial fibrillation stroke seizure bleeding anemia "
    "discharged home stable improved worsening intubated extubated icu floor nursing radiology "
    "impression findings no acute process effusion consolidation edema cardiomegaly title none text "
    "task search result query sentence similarity the a of and to with on in was is for"
).split()


# The toy backbone's layer and attention sizes (benchmarks/gpu.py's --tiny architecture uses them too).
TINY_SHAPE: dict[str, int] = {
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "max_position_embeddings": 512,
    "sliding_window": 64,
    "query_pre_attn_scalar": 16,
}


def _training_texts(n: int = 300) -> list[str]:
    """A few hundred short note-like texts, deterministic, to train the toy tokenizer on."""
    texts = []
    for i in range(n):
        words = [_WORDS[(i * 7 + j * 13) % len(_WORDS)] for j in range(8 + i % 12)]
        texts.append(" ".join(words) + f" day {i % 31} dose {i % 17} mg.")
    return texts


def build_gemma(
    directory: Path,
    *,
    texts: list[str],
    tokenizer_vocab: int,
    max_seq_length: int,
    dense_size: int,
    output_dim: int,
    name: str,
    vocab_size: int | None = None,
    device: str = "cpu",
    **gemma3: Any,
) -> Path:
    """Write EmbeddingGemma's architecture with random weights as a sentence-transformers folder.

    A WordPiece tokenizer of ``tokenizer_vocab`` entries is trained on ``texts``; the Gemma3 text
    encoder (``gemma3``: Gemma3TextConfig sizes, bidirectional attention) has ``vocab_size`` embedding
    rows (default: the tokenizer's), is initialised on ``device``, then mean pooling, Dense to
    ``dense_size``, Dense to ``output_dim``, Normalize, and EmbeddingGemma's prompts. The tests build it
    at toy size; ``benchmarks/gpu.py`` at EmbeddingGemma-300m's size (random weights cost what trained
    ones do).
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Gemma3TextConfig, Gemma3TextModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    directory = Path(directory)
    backbone_dir = directory / "_backbone"
    backbone_dir.mkdir(parents=True, exist_ok=True)

    special = ["<pad>", "<eos>", "<bos>", "<unk>"]
    raw = Tokenizer(models.WordPiece(unk_token="<unk>"))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(
        texts,
        trainers.WordPieceTrainer(vocab_size=tokenizer_vocab, special_tokens=special, show_progress=False),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    tokenizer.model_max_length = max_seq_length
    tokenizer.save_pretrained(backbone_dir)

    config = Gemma3TextConfig(
        vocab_size=vocab_size or raw.get_vocab_size(),
        use_bidirectional_attention=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        **gemma3,
    )
    with torch.device(device):  # random initialisation where it is quick (300M parameters at full size)
        Gemma3TextModel(config).save_pretrained(backbone_dir)

    hidden_size = config.hidden_size
    modules = [
        Transformer(str(backbone_dir), max_seq_length=max_seq_length),
        Pooling(hidden_size, pooling_mode="mean"),
        Dense(hidden_size, dense_size, bias=False, activation_function=None),
        Dense(dense_size, output_dim, bias=False, activation_function=None),
        Normalize(),
    ]
    out = directory / name
    SentenceTransformer(modules=modules, prompts=dict(GEMMA_PROMPTS), device="cpu").save(str(out))
    # The saved config carries the model type the backend checks; make sure it says gemma3_text.
    assert json.loads((out / "config.json").read_text())["model_type"] == "gemma3_text"
    return out


def build_tiny_gemma(directory: Path, *, hidden_size: int = 32, output_dim: int = 48) -> Path:
    """Write a sentence-transformers directory holding a toy EmbeddingGemma and return its path."""
    return build_gemma(
        directory,
        texts=_training_texts(),
        tokenizer_vocab=400,
        max_seq_length=256,
        dense_size=hidden_size * 4,
        output_dim=output_dim,
        name="tiny-embeddinggemma",
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        **TINY_SHAPE,
    )
