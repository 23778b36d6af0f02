"""Every setting of a fine-tuning run, in one pydantic model that is saved next to the model.

``PairConfig`` says which (note t, note t+1) pairs are mined; ``FinetuneConfig`` holds it, the patient
split, and the training settings. A TOML file's keys are these fields; CLI flags override them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clinpred.data.splits import SplitConfig
from clinpred.errors import InputError


class PairConfig(BaseModel):
    """Which consecutive-note pairs become training examples."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = None  # note categories kept before pairing; None keeps all
    max_gap_hours: float | None = Field(None, gt=0)  # largest time between note t and t+1; None: no limit
    max_pairs_per_patient: int | None = Field(None, ge=1)  # seeded sample of k pairs per patient
    symmetric: bool = False  # also add (t+1, t)
    seed: int = Field(0, ge=0)


LossName = Literal["mnrl", "cached_mnrl"]
PromptMode = Literal["document", "query_document", "none"]


class FinetuneConfig(BaseModel):
    """A fine-tuning run: the data it sees, the loss, the optimiser, evaluation and checkpoints."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = "google/embeddinggemma-300m"  # a local directory or a model id in the local HF cache
    pairs: PairConfig = Field(default_factory=PairConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)

    loss: LossName = (
        "mnrl"  # MultipleNegativesRankingLoss; cached_mnrl: GradCache, big batches, little memory
    )
    mini_batch_size: int = Field(16, ge=1)  # cached_mnrl only: texts per forward/backward chunk
    scale: float = Field(20.0, gt=0)  # inverse temperature of the in-batch softmax
    gather_across_devices: bool = False  # multi-GPU: negatives from every process's batch

    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs when set
    learning_rate: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(32, ge=2)  # pairs per batch (per process); in-batch negatives = batch_size - 1
    max_seq_length: int = Field(256, ge=8)
    seed: int = Field(0, ge=0)
    bf16: bool | None = None  # None: bf16 where a CUDA GPU supports it, else float32
    fp16: bool = False  # refused for Gemma3 models (their activations overflow float16)
    gradient_checkpointing: bool = False

    prompts: PromptMode = "document"  # which of the model's prompts each side gets (Gemma-style models)

    eval_steps: int | None = Field(None, ge=1)  # validation next-note recall every N steps; None: at the end
    eval_max_queries: int | None = Field(2000, ge=1)  # seeded sample of validation queries, bounds eval time
    eval_batch_size: int = Field(64, ge=1)
    recall_k: list[int] = Field(default_factory=lambda: [1, 5, 10])

    save_steps: int = Field(500, ge=1)  # checkpoint under out/checkpoints every N steps
    save_total_limit: int | None = Field(2, ge=1)
    logging_steps: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.bf16 and self.fp16:
            raise ValueError("bf16 and fp16 are exclusive: choose one")
        if 5 not in self.recall_k:
            self.recall_k = sorted({*self.recall_k, 5})
        return self

    @classmethod
    def demo(cls, base_model: str = "google/embeddinggemma-300m") -> FinetuneConfig:
        """What `clinpred demo` uses on the `demo` synthetic cohort (450 patients) with the bundled MiniLM.

        Sized for about 3-4 minutes on 2 idle CPU cores: at most 6 pairs from each of the ~200 training
        patients, one epoch of ~75 steps at 128 tokens, a learning rate high enough to move a small
        model that fast, and validation recall measured before and after only (each pass embeds the
        whole validation pool). The patient split is left at its default so that the evaluation
        patients match the pipeline's.
        """
        return cls(
            base_model=base_model,
            pairs=PairConfig(max_pairs_per_patient=6),
            epochs=1,
            learning_rate=1e-4,
            warmup_ratio=0.1,
            batch_size=16,
            max_seq_length=128,
            eval_steps=None,
            save_steps=50,
            logging_steps=10,
        )

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
