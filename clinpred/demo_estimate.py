"""The line `clinpred demo` prints before it starts: its stages, and about how long they take.

An estimate, not a promise: each stage's seconds as measured on this project's 2-core CPU machine, one
table per demo size (the fixed costs of loading models, bootstraps and fine-tuning steps dominate the
tiny cohort, so a size's time is not the other's scaled by its notes). A fine-tune whose model is
reused costs nothing; OpenAI, where a key is set, depends on its API and is not estimated. The table
the demo prints at its end (clinpred.stage_times) gives the run's own seconds, to compare.
"""

from __future__ import annotations

# Seconds per stage, measured. A MiniLM backend is the base or a fine-tune (the same model size).
REFERENCE: dict[str, dict[str, float]] = {
    # `make demo` from a fresh clone on an idle 2-core Intel Xeon with AMX (bf16 matrix units), issue 26:
    # 9 min 41 s with set-up (71 s), the demo's own table 510 s: fine-tunes 120 and 110 s (57 steps at
    # ~1.55 s), each MiniLM embedding ~30 s (OpenVINO bf16, its one-time export 2-3 s included), tasks
    # 53, 33 and 34 s (the first backend pays numba's compile of UMAP), TF-IDF 3 + 29 s, report 36 s;
    # the cohort was in the cache there (0.5 s), so its generation is the earlier measurement's ~10 s.
    # A 2-core AMD EPYC with AVX-512-BF16 (stops 31-32) took about twice as long to fine-tune (~3.3 s a
    # step) and twice as long to embed: about 16 min for the same demo (which of the two CPUs' differences
    # does it, bf16 matrix units or clock and memory, was not separated).
    "demo": {
        "cohort": 10.0,
        "fine-tune seed": 120.0,
        "fine-tune clinical": 110.0,
        "minilm: embedding": 30.0,
        "minilm: tasks": 40.0,
        "tfidf: embedding": 3.0,
        "tfidf: tasks": 29.0,
        "report": 36.0,
    },
    # `clinpred demo --size tiny` (40 patients, 392 evaluation notes) from nothing, this module's table
    # on the same machine while other jobs ran (200 s in all; the minilm rows are the means of three)
    "tiny": {
        "cohort": 1.0,
        "fine-tune seed": 36.0,
        "fine-tune clinical": 55.0,
        "minilm: embedding": 16.0,
        "minilm: tasks": 9.0,
        "tfidf: embedding": 1.0,
        "tfidf: tasks": 8.0,
        "report": 24.0,
    },
}


def estimate_seconds(size: str, train: list[str], minilm_backends: int) -> float:
    """The demo's seconds on the reference machine: the cohort, the fine-tunes to train (not those
    reused), each MiniLM backend and TF-IDF (embedding and tasks), and the report."""
    ref = REFERENCE[size]
    return (
        ref["cohort"]
        + sum(ref[f"fine-tune {recipe}"] for recipe in train)
        + minilm_backends * (ref["minilm: embedding"] + ref["minilm: tasks"])
        + ref["tfidf: embedding"]
        + ref["tfidf: tasks"]
        + ref["report"]
    )


def estimate_line(size: str, train: list[str], reuse: list[str], labels: list[str]) -> str:
    """One line: the stages in order, and the estimate with what it rests on."""
    minilm = [label for label in labels if label.startswith("minilm")]
    evaluated = [label for label in labels if label != "openai"]
    stages = ["cohort", *(f"fine-tune {r}" for r in train)]
    stages += [f"embedding and tasks of {', '.join(evaluated)}", "report"]
    reused = f"; fine-tune {', '.join(reuse)} reused" if reuse else ""
    seconds = estimate_seconds(size, train, len(minilm))
    about = f"{round(seconds / 60)} min" if seconds >= 90 else f"{round(seconds, -1):.0f} s"
    return (
        f"demo stages: {', '.join(stages)}{reused}. Estimate: about {about} "
        f"(stage times measured on a 2-core CPU machine, an Intel Xeon with AMX; about twice as long on "
        f"a 2-core AMD EPYC; less with more cores, a GPU or embeddings already cached; "
        f"OpenAI, where a key is set, not included). "
        f"The table at the end gives this run's."
    )
