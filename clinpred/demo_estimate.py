"""The line `clinpred demo` prints before it starts: its stages, and about how long they take.

An estimate, not a promise: each stage's seconds as measured on this project's 2-core CPU machines, one
table per kind of CPU and demo size. The kinds are told apart where the measured machines differed most:
AMX's bf16 matrix units (OpenVINO embeds in bf16 there, and torch trained twice as fast) or not; the fixed costs of loading models,
bootstraps and fine-tuning steps dominate the tiny cohort, so a size's time is not the other's scaled by
its notes. A fine-tune whose model is reused costs nothing; OpenAI, where a key is set, depends on its
API and is not estimated. The table the demo prints at its end (clinpred.stage_times) gives the run's
own seconds, to compare.
"""

from __future__ import annotations

from pathlib import Path

# Seconds per stage, measured, by kind of CPU. A MiniLM backend is the base or a fine-tune (same size).
REFERENCE: dict[str, dict[str, dict[str, float]]] = {
    "amx": {
        # `make demo` from a fresh clone on an idle 2-core Intel Xeon with AMX (bf16 matrix units), issue
        # 26: 9 min 41 s with set-up (71 s), the demo's own table 510 s: fine-tunes 120 and 110 s (57 steps
        # at ~1.55 s), each MiniLM embedding ~30 s (OpenVINO bf16, its one-time export 2-3 s included),
        # tasks 53, 33 and 34 s (the first backend pays numba's compile of UMAP), TF-IDF 3 + 29 s, report
        # 36 s; the cohort was in the cache there (0.5 s), so its generation is an earlier run's ~10 s.
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
    },
    "other": {
        # `clinpred demo` from nothing (fresh cache) on an idle 2-core AMD EPYC with AVX2 and no bf16
        # (OpenVINO runs f32: 1.42x torch's notes/s there, not AMX's 2.55x), at 87a68b5: 19 min 5 s, the
        # demo's own table 1,134 s: fine-tunes 232 and 245 s (57 steps at ~3.1 s), MiniLM embedding 142,
        # 147 and 141 s, tasks 58, 40 and 40 s, TF-IDF 4.5 + 35 s, report 45 s, cohort generated 5 s.
        "demo": {
            "cohort": 5.0,
            "fine-tune seed": 232.0,
            "fine-tune clinical": 245.0,
            "minilm: embedding": 143.0,
            "minilm: tasks": 46.0,
            "tfidf: embedding": 4.5,
            "tfidf: tasks": 35.0,
            "report": 45.0,
        },
        # `clinpred demo --size tiny` from nothing on the same machine, idle, at the same commit: 127 s,
        # its own table 116 s (the minilm rows are the means of three)
        "tiny": {
            "cohort": 0.6,
            "fine-tune seed": 11.0,
            "fine-tune clinical": 10.0,
            "minilm: embedding": 13.0,
            "minilm: tasks": 9.0,
            "tfidf: embedding": 0.3,
            "tfidf: tasks": 8.5,
            "report": 19.0,
        },
    },
}
# Which machine each table was measured on, as the estimate line says it.
MEASURED_ON = {
    "amx": "an Intel Xeon with AMX, like this CPU",
    "other": "an AMD EPYC with AVX2 and no AMX, like this CPU (one with AVX-512-BF16 is faster)",
    "unknown": "an AMD EPYC with AVX2 and no AMX, the slower of two measured; this CPU's kind is unknown",
}
TABLE_OF = {"amx": "amx", "other": "other", "unknown": "other"}


def cpu_kind(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``amx`` where the CPU reports AMX's bf16 tiles (``amx_bf16`` in Linux's flags), ``other`` where it
    reports flags without them, ``unknown`` where there are none to read (the slower table is then the
    safer estimate)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return "unknown"
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx" if "amx_bf16" in line.split(":", 1)[-1].split() else "other"
    return "unknown"


def estimate_seconds(size: str, train: list[str], minilm_backends: int, cpu: str) -> float:
    """The demo's seconds on the reference machine of this kind of CPU: the cohort, the fine-tunes to
    train (not those reused), each MiniLM backend and TF-IDF (embedding and tasks), and the report."""
    ref = REFERENCE[TABLE_OF[cpu]][size]
    return (
        ref["cohort"]
        + sum(ref[f"fine-tune {recipe}"] for recipe in train)
        + minilm_backends * (ref["minilm: embedding"] + ref["minilm: tasks"])
        + ref["tfidf: embedding"]
        + ref["tfidf: tasks"]
        + ref["report"]
    )


def estimate_line(
    size: str, train: list[str], reuse: list[str], labels: list[str], cpu: str | None = None
) -> str:
    """One line: the stages in order, and the estimate with what it rests on (``cpu``: this CPU's kind)."""
    cpu = cpu or cpu_kind()
    minilm = [label for label in labels if label.startswith("minilm")]
    evaluated = [label for label in labels if label != "openai"]
    stages = ["cohort", *(f"fine-tune {r}" for r in train)]
    stages += [f"embedding and tasks of {', '.join(evaluated)}", "report"]
    reused = f"; fine-tune {', '.join(reuse)} reused" if reuse else ""
    seconds = estimate_seconds(size, train, len(minilm), cpu)
    about = f"{round(seconds / 60)} min" if seconds >= 90 else f"{round(seconds, -1):.0f} s"
    return (
        f"demo stages: {', '.join(stages)}{reused}. Estimate: about {about} "
        f"(stage times measured on a 2-core CPU machine, {MEASURED_ON[cpu]}; "
        f"less with more cores, a GPU or embeddings already cached; "
        f"OpenAI, where a key is set, not included). "
        f"The table at the end gives this run's."
    )
