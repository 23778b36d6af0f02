"""Every setting of a fine-tuning run, in one pydantic model that is saved next to the model.

``PairConfig`` says which (note t, note t+1) pairs are mined; ``FinetuneConfig`` holds it, the patient
split, and the training settings. A TOML file's keys are these fields; CLI flags override them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clinpred.bounds import (
    MAX_BATCH,
    MAX_COUNT,
    MAX_EPOCHS,
    MAX_HOURS,
    MAX_ITERATIONS,
    MAX_LEARNING_RATE,
    MAX_POOL,
    MAX_SEED,
    MAX_SEQUENCE,
    MAX_WEIGHT,
)
from clinpred.data.identity import IdentityMode
from clinpred.data.phi import PhiMode
from clinpred.data.splits import SplitConfig
from clinpred.errors import InputError


class PairConfig(BaseModel):
    """Which consecutive-note pairs become training examples."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    categories: list[str] | None = None  # note categories kept before pairing; None keeps all
    # largest time between note t and t+1; None: no limit
    max_gap_hours: float | None = Field(None, gt=0, le=MAX_HOURS)
    # seeded sample of k pairs per patient
    max_pairs_per_patient: int | None = Field(None, ge=1, le=MAX_COUNT)
    symmetric: bool = False  # also add (t+1, t)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    # which later note of the patient is the positive: the next one (t+1); the next one of another
    # category (style cannot be what matches); or a seeded random later one within window_hours
    positives: PositiveMode = "next"
    window_hours: float = Field(72.0, gt=0, le=MAX_HOURS)  # positives = "window" only
    # in_batch: every other pair's positive is a negative; style_matched: each pair also gets a note of
    # another fine-tuning patient with the positive's category (and caregiver, where one is known)
    negatives: NegativeMode = "in_batch"


PositiveMode = Literal["next", "next_other_category", "window"]
NegativeMode = Literal["in_batch", "style_matched"]
LossName = Literal["mnrl", "cached_mnrl", "label_aware", "supervised", "mixed", "phenotype_head"]
NegativeWeights = Literal["uniform", "hierarchy"]
SupervisedLevel = Literal["notes", "patients"]
SupervisedPositives = Literal["jaccard", "per_label"]
CODE_LOSSES = (
    "label_aware",
    "supervised",
    "mixed",
    "phenotype_head",
)  # the losses that read fine-tuning patients' phenotypes
RegulariserName = Literal["none", "distill"]
PresetName = Literal["seed", "clinical"]
PromptMode = Literal["document", "query_document", "none"]


class FinetuneConfig(BaseModel):
    """A fine-tuning run: the data it sees, the loss, the optimiser, evaluation and checkpoints."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # bounds: clinpred.bounds

    # the named recipe these settings start from (PRESETS; default: clinical); a setting given explicitly
    # wins over the preset's; None: no preset, only the field defaults below
    preset: PresetName | None = "clinical"
    base_model: str = "google/embeddinggemma-300m"  # a local directory or a model id in the local HF cache
    # de-identification placeholders in the note text before pairs are mined: masked by kind, or kept
    phi_placeholders: PhiMode = "mask"
    # carried-forward personal details (ages, allergy lists, social history) in the fine-tuning text:
    # kept, or masked so that matching them cannot be how a pair is found (clinpred.data.identity)
    identity_details: IdentityMode = "keep"
    pairs: PairConfig = Field(default_factory=PairConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)

    # mnrl: MultipleNegativesRankingLoss; cached_mnrl: GradCache, big batches, little memory;
    # label_aware: MNRL whose other in-batch pairs get soft targets by the phenotypes the two patients
    # share (CCS benchmark labels of fine-tuning patients only);
    # supervised: a supervised contrastive term alone (SupCon with weighted positives): every in-batch note
    # of ANOTHER patient is a positive in proportion to the Jaccard overlap of the two patients'
    # phenotypes (the same patient's other note is left out, so identity earns nothing); mixed: MNRL's
    # temporal term plus supervised_weight times that term. Both read fine-tuning patients' codes only.
    # phenotype_head: MNRL's temporal term plus head_weight times the binary cross-entropy of a linear
    # classifier that predicts the patient's 25 phenotypes from each note's embedding (the supervised head
    # of note-based phenotyping, trained with the encoder and discarded after: only the encoder is saved)
    loss: LossName = "mnrl"
    # label_aware: target weight of a pair sharing all phenotypes
    label_weight: float = Field(0.5, ge=0, le=MAX_WEIGHT)
    supervised_weight: float = Field(1.0, ge=0, le=MAX_WEIGHT)  # mixed only: weight of the supervised term
    head_weight: float = Field(1.0, ge=0, le=MAX_WEIGHT)  # phenotype_head only: weight of the head's term
    # phenotype_head only: the head starts from zero and learns at its own rate, as SetFit's heads do
    head_learning_rate: float = Field(1e-2, gt=0, le=MAX_LEARNING_RATE)  # SetFit's head default
    # the supervised term compares notes, or patients (the mean of each patient's two notes in the batch)
    supervised_level: SupervisedLevel = "notes"
    # how other patients' notes are positives: by the Jaccard overlap of the phenotype sets, or label by
    # label (each phenotype counts once, shared among the batch's patients who have it: rare ones weigh more)
    supervised_positives: SupervisedPositives = "jaccard"
    # the temporal term's in-batch negatives: uniform, or hierarchy: each negative's share of the softmax
    # scaled by 1 - hierarchy_strength * (how alike the two patients' codes are: the mean of the Jaccard
    # overlaps of their CCS chapters and of their single-level CCS categories), so a patient with the same
    # disease is pushed away less hard than one without
    negative_weights: NegativeWeights = "uniform"
    hierarchy_strength: float = Field(0.5, ge=0, le=0.95)
    # keep the base model's general knowledge: none, or a distillation term pulling each anchor's
    # embedding toward the base model's embedding of the same text (1 - cosine, times distill_weight)
    regulariser: RegulariserName = "none"
    distill_weight: float = Field(1.0, ge=0, le=MAX_WEIGHT)
    mini_batch_size: int = Field(16, ge=1, le=MAX_BATCH)  # cached_mnrl only: texts per forward/backward chunk
    scale: float = Field(20.0, gt=0, le=MAX_WEIGHT)  # inverse temperature of the in-batch softmax
    gather_across_devices: bool = False  # multi-GPU: negatives from every process's batch

    epochs: float = Field(1.0, gt=0, le=MAX_EPOCHS)
    max_steps: int | None = Field(None, ge=1, le=MAX_ITERATIONS)  # overrides epochs when set
    learning_rate: float = Field(2e-5, gt=0, le=MAX_LEARNING_RATE)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=MAX_WEIGHT)
    # pairs per batch (per process); in-batch negatives = batch_size - 1
    batch_size: int = Field(32, ge=2, le=MAX_BATCH)
    max_seq_length: int = Field(256, ge=8, le=MAX_SEQUENCE)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    bf16: bool | None = None  # None: bf16 where a CUDA GPU supports it, else float32
    fp16: bool = False  # refused for Gemma3 models (their activations overflow float16)
    gradient_checkpointing: bool = False

    prompts: PromptMode = "document"  # which of the model's prompts each side gets (Gemma-style models)

    # validation next-note recall every N steps; None: at the end
    eval_steps: int | None = Field(None, ge=1, le=MAX_ITERATIONS)
    # seeded sample of validation queries, bounds eval time
    eval_max_queries: int | None = Field(2000, ge=1, le=MAX_POOL)
    eval_batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    recall_k: list[Annotated[int, Field(ge=1, le=MAX_COUNT)]] = Field(
        default_factory=lambda: [1, 5, 10], min_length=1, max_length=100
    )

    save_steps: int = Field(500, ge=1, le=MAX_ITERATIONS)  # checkpoint under out/checkpoints every N steps
    save_total_limit: int | None = Field(2, ge=1, le=MAX_COUNT)
    logging_steps: int = Field(10, ge=1, le=MAX_ITERATIONS)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """A preset's settings under the ones given: ``preset = "seed"`` plus any field to change."""
        if isinstance(data, dict) and data.get("preset", "clinical") is not None:
            name = data.get("preset", "clinical")
            if name not in PRESETS:
                raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
            from clinpred.config import merge  # the experiment config's table-by-table merge

            data = merge(PRESETS[name], data)
        return data

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.bf16 and self.fp16:
            raise ValueError("bf16 and fp16 are exclusive: choose one")
        if self.loss == "cached_mnrl" and self.regulariser != "none":
            raise ValueError(
                "the distillation regulariser works with loss mnrl or label_aware, not cached_mnrl"
            )
        if self.loss == "cached_mnrl" and self.negative_weights != "uniform":
            raise ValueError("negative_weights = hierarchy works with loss mnrl, label_aware or mixed")
        if self.loss == "supervised" and self.negative_weights != "uniform":
            raise ValueError(
                "negative_weights weighs the temporal term's negatives: loss supervised has none"
            )
        if 5 not in self.recall_k:
            self.recall_k = sorted({*self.recall_k, 5})
        return self

    @property
    def supervised(self) -> bool:
        """Whether this recipe reads the fine-tuning patients' diagnosis codes (DESIGN.md rule 10)."""
        return self.loss in CODE_LOSSES or self.negative_weights == "hierarchy"

    def supervision(self) -> dict[str, Any]:
        """What the record, the card, results.json and every table say about the recipe's kind: whether it
        is supervised and what it reads of the fine-tuning patients, in words."""
        reads = ["notes of the fine-tuning patients"]
        if self.loss in CODE_LOSSES:
            reads.append("CCS benchmark phenotypes (25) from ICD codes")
        if self.negative_weights == "hierarchy":
            reads.append("single-level CCS categories and multi-level CCS chapters from ICD codes")
        if not self.supervised:
            return {"supervised": False, "reads": reads}
        return {
            "supervised": True,
            "reads": reads,
            "patients": "fine-tuning (training) patients only; never an evaluation or validation patient",
        }

    @classmethod
    def demo(cls, base_model: str = "google/embeddinggemma-300m", preset: str = "seed") -> FinetuneConfig:
        """What `clinpred demo` uses on the `demo` synthetic cohort with the bundled MiniLM.

        Sized for a few minutes on 2 idle CPU cores (the demo lowers the pairs to one per patient): at
        most 6 pairs from each training patient, one epoch at 128 tokens, batches of 16, and validation recall measured before and after
        only (each pass embeds the whole validation pool). The recipe is the named preset; the learning
        rate and epochs are the preset's demo schedule (DEMO_SCHEDULES). The patient split is left at its
        default so that the evaluation patients match the pipeline's.
        """
        return cls.model_validate(
            {
                "preset": preset,
                "base_model": base_model,
                "pairs": {"max_pairs_per_patient": 6},
                "epochs": 1,
                "warmup_ratio": 0.1,
                "batch_size": 16,
                "max_seq_length": 128,
                "eval_steps": None,
                "save_steps": 50,
                "logging_steps": 10,
                **DEMO_SCHEDULES.get(preset, {}),
            }
        )

    @classmethod
    def from_preset(
        cls, name: str, base_model: str = "google/embeddinggemma-300m", **settings: Any
    ) -> FinetuneConfig:
        """A named recipe (``seed`` or ``clinical``) with the default schedule; ``settings`` change any field."""
        return cls.model_validate({"preset": name, "base_model": base_model, **settings})

    @classmethod
    def from_toml(cls, path: Path, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
        """Read a TOML file whose keys are the fields above, then apply the CLI's overrides."""
        from clinpred.config import read_toml  # one reader, one set of messages, for every config file

        return cls.from_values(read_toml(Path(path)), overrides, source=str(path))

    @classmethod
    def from_values(
        cls, data: dict[str, Any], overrides: dict[str, Any] | None = None, *, source: str = "config"
    ) -> FinetuneConfig:
        """Validate settings, naming the offending key in a user error."""
        merged = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise InputError(f"{source}: setting {where!r}: {first['msg']}.") from None


# Named recipes: the settings each one fixes; every other field keeps its default (or the user's value).
PRESETS: dict[str, dict[str, Any]] = {
    # the published recipe: (note t, note t+1) pairs, in-batch negatives, text as written, plain MNRL
    "seed": {
        "phi_placeholders": "keep",
        "pairs": {"positives": "next", "negatives": "in_batch"},
        "loss": "mnrl",
        "regulariser": "none",
    },
    # placeholders masked before mining (issue 15: three quarters of seed's recall gain was matching the
    # per-patient shifted dates, and masking alone lifted the fine-tune's diagnosis AUROC 0.647 -> 0.751 on
    # the generator-1 demo cohort). Identity details stay as written: on the generator-2.1 demo
    # (examples/ablation-identity.toml) masking ages, allergies and social histories turned diagnosis
    # from -0.007 to +0.018 macro-AUROC against the base but survival C from +0.081 to -0.026 (age is
    # the patient's identity and the death hazard's strongest term); masking only the histories, or
    # also rounding ages to their decade, changed neither; no recipe there meets all three of issue
    # 15's targets (results/README.md)
    "clinical": {
        "phi_placeholders": "mask",
        "pairs": {"positives": "next", "negatives": "in_batch"},
        "loss": "mnrl",
        "regulariser": "none",
    },
}

# The demo cohort's schedule per preset, on top of FinetuneConfig.demo's sizes. clinical: one epoch at lr
# 4e-5 (57 steps). Issue 15 had chosen the gentler lr 2e-5 over two epochs (114 steps) against lr 1e-4;
# issue 26 asked whether half the steps at twice the rate give the same model on generator 2.3
# (examples/ablation-schedule-temperature.toml, results/README.md): every headline metric landed inside
# the two-epoch model's 95% interval (recall@5 0.124 vs 0.125, diagnosis 0.638 vs 0.639, survival C
# 0.613 vs 0.616, mortality 0.634 vs 0.636), for 40% of the fine-tuning time.
DEMO_SCHEDULES: dict[str, dict[str, Any]] = {
    "seed": {"learning_rate": 1e-4},
    "clinical": {"learning_rate": 4e-5, "epochs": 1},
}
