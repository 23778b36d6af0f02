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
    # The committed demo, results/synthetic (2,000 patients; 23 min 7 s from nothing, idle machine, torch
    # float32 embedding): embedding and tasks per backend are the means of its results.json timings
    # (embed 133.2, 127.7, 147.6 s; tasks 67.7, 64.1, 65.9 s; TF-IDF's 59.2 s); the fine-tunes are
    # results/README.md's and README.md's (seed: 57 steps in 171.1 s and a 17.3 s audit; clinical: 114
    # steps at ~3.4 s and its audit; both ~10 min), the paired comparisons and report ~2 min; the
    # cohort (generate 12,232 notes and read them) ~0.4 ms per note in
    # benchmarks/results/scale-2cpu-amd-epyc.json; TF-IDF's fit there takes seconds. Together 23.3 min.
    # Since the demo embeds with engine=auto (OpenVINO bf16 here): 136 s / 2.55 (README: benchmarks/
    # embed.py, OpenVINO against torch float32) plus the one-time export (3-6 s per model in the
    # regenerated results/synthetic's log) is about 60 s. Together about 19 min. Since clinical trains one
    # epoch at lr 4e-5 (57 steps, as seed: issue 26's schedule by evidence), its fine-tune is seed's.
    "demo": {
        "cohort": 10.0,
        "fine-tune seed": 190.0,
        "fine-tune clinical": 200.0,
        "minilm: embedding": 60.0,
        "minilm: tasks": 66.0,
        "tfidf: embedding": 5.0,
        "tfidf: tasks": 59.0,
        "report": 120.0,
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
        f"(stage times measured on a 2-core CPU machine; less with more cores, a GPU, the OpenVINO "
        f"engine or embeddings already cached; OpenAI, where a key is set, not included). "
        f"The table at the end gives this run's."
    )
