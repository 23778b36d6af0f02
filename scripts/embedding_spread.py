"""How spread out a model's note embeddings are: the mean cosine between every pair of a sample of notes.

A contrastive term that collapses the embeddings (every note at nearly one point) shows as a mean
cosine near 1 with a tiny spread; the base MiniLM sits near 0.4 on the demo cohort. Issue 24 read the
supervised recipes' collapse, and whether a higher temperature undid it, from this figure
(results/README.md). The notes are a seeded sample of a cohort ``clinpred synth`` wrote (its
NOTEEVENTS table), read at the length the models were fine-tuned at; nothing of the text is printed.

    .venv/bin/clinpred synth --size demo --out /tmp/demo-cohort
    .venv/bin/python scripts/embedding_spread.py --cohort /tmp/demo-cohort \
        --model base=bundled-minilm --model clinical=runs/ablation-supervised/models/clinical
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def sample_notes(cohort: Path, n: int, seed: int) -> list[str]:
    """``n`` notes of the cohort's NOTEEVENTS table, drawn uniformly with ``seed``."""
    table = next(cohort.glob("NOTEEVENTS.csv*"), None)
    if table is None:
        raise SystemExit(f"{cohort}: no NOTEEVENTS table (a folder `clinpred synth` wrote)")
    notes = pd.read_csv(table, usecols=["TEXT"])["TEXT"].dropna()
    return notes.sample(min(n, len(notes)), random_state=seed).tolist()


def spread(vectors: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation of the cosine over every distinct pair of rows (rows L2-normalised)."""
    cos = vectors @ vectors.T
    pairs = cos[np.triu_indices(len(vectors), 1)]
    return {"mean_cosine": round(float(pairs.mean()), 3), "sd": round(float(pairs.std()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohort", type=Path, required=True, help="a folder `clinpred synth` wrote")
    parser.add_argument(
        "--model", action="append", required=True, help="LABEL=PATH (bundled-minilm: the package's)"
    )
    parser.add_argument("--notes", type=int, default=400)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from clinpred.demo import bundled_minilm

    notes = sample_notes(args.cohort, args.notes, args.seed)
    out = {}
    for item in args.model:
        label, _, path = item.partition("=")
        folder = bundled_minilm() if path == "bundled-minilm" else Path(path)
        model = SentenceTransformer(str(folder), device="cpu")
        model.max_seq_length = args.max_seq_length
        out[label] = spread(model.encode(notes, batch_size=32, normalize_embeddings=True))
        print(
            f"{label:<28} mean cosine {out[label]['mean_cosine']:.3f} (sd {out[label]['sd']:.3f})", flush=True
        )
    print(json.dumps({"notes": len(notes), "seed": args.seed, "max_seq_length": args.max_seq_length, **out}))


if __name__ == "__main__":
    main()
