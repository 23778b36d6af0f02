"""The contrastive trainer: sentence-transformers' own trainer with a patient-aware batch sampler.

``finetune`` splits patients, mines pairs from the fine-tuning patients and measures next-note recall on
the validation slice; ``finetune_pairs`` trains on a team's own pairs. The model folder is one a user
uploads as it is (issue 26): the trainer's checkpoints go beside it (``<out>.checkpoints/``, marked as
clinpred's, found there by ``--resume``) and are removed at the end unless kept; the record and card name
the base model by its hub id where known (clinpred.finetune.model_names), never a path of this machine. Training never reads an evaluation
patient; once the model is saved, ``finetune`` ends with the membership-inference audit
(clinpred.privacy.audit), whose non-members are evaluation patients. The trainer's data parallelism is
untouched, so the same code runs under ``torchrun`` or ``accelerate launch``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from clinpred.atomic import atomic_path, write_text
from clinpred.data.cohort import Cohort
from clinpred.data.identity import apply_identity_setting
from clinpred.data.phi import apply_phi_setting
from clinpred.data.splits import ids_sha256, split_cohort
from clinpred.errors import InputError
from clinpred.finetune.config import FinetuneConfig
from clinpred.finetune.evaluator import NextNoteRecallEvaluator, RecallSet, recall_set
from clinpred.finetune.model_names import shareable_name
from clinpred.finetune.output import (
    RUN_FILE,
    model_card,
    move_into,
    record_config,
    versions,
    weights_sha256,
    write_json_atomic,
)
from clinpred.finetune.pairs import training_data
from clinpred.run_folder import RESUME_HINT, check_output_folder, read_mark, write_mark

CHECKPOINTS = "checkpoints"  # inside the model folder: where clinpred before issue 26 kept them
CHECKPOINTS_SUFFIX = ".checkpoints"  # <out>.checkpoints: beside the model folder, never inside it
# Opt-in evidence of what each process trained on (see ``BatchTrace``): a folder, or unset.
TRACE_ENV = "CLINPRED_TRACE_BATCHES"
TRACE_COLUMN = "clinpred_trace_group"
logger = logging.getLogger(__name__)


class FinetuneReport(BaseModel):
    """What a run did, as returned to the caller and saved (with the config) in clinpred-finetune.json."""

    out: str
    pairs: int
    steps: int
    epochs: float
    wall_time_s: float
    counts: dict[str, int]
    recall_before: dict[str, float] | None = None
    recall_after: dict[str, float] | None = None
    loss_curve: list[dict[str, float]]
    recall_curve: list[dict[str, float]]
    resumed_from: str | None = None
    checkpoints: str | None = None  # where they were kept (--keep-checkpoints); None: removed
    # the membership-inference audit written into the record (clinpred.privacy.audit), or why none ran
    audit: dict[str, Any] | None = None


def finetune(
    cohort: Cohort,
    config: FinetuneConfig,
    out: Path,
    *,
    progress: bool = True,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    keep_checkpoints: bool = False,
) -> FinetuneReport:
    """Fine-tune on (note t, note t+1) pairs of ``split.finetune`` patients; watch recall on ``split.validation``."""
    split = split_cohort(cohort, config.split)
    whole = cohort  # the audit's non-members are evaluation patients: read only after training is over
    cohort, pairs, counts = training_data(cohort, split, config)
    if pairs.empty:
        raise InputError(
            f"no training pairs: {counts['patients']} fine-tuning patients gave "
            f"{counts['notes_in_categories']} notes in the chosen categories and "
            f"{counts['consecutive_pairs']} consecutive pairs, {counts['pairs_within_gap']} within the time "
            "gap. Relax pairs.categories / pairs.max_gap_hours or use more patients."
        )
    validation = recall_set(
        cohort, split.validation, config.pairs, max_queries=config.eval_max_queries, seed=config.seed
    )
    data = {
        "phi_placeholders": config.phi_placeholders,
        "identity_details": config.identity_details,
        "source": cohort.source,
        "synthetic": cohort.synthetic,
        "pairs": len(pairs),
        "counts": counts,
        "train_patients": len(split.finetune),
        "validation_patients": len(split.validation),
        "evaluation_patients_held_out": len(split.evaluation),
        "train_subject_ids_sha256": ids_sha256(split.finetune),
        "validation_subject_ids_sha256": ids_sha256(split.validation),
        "validation_queries": len(validation.query),
        "validation_pool": validation.pool_size,
        "split": config.split.model_dump(),
    }

    def audit(folder: Path, record: dict[str, Any]) -> dict[str, Any]:
        from clinpred.privacy.audit import membership_audit

        return membership_audit(whole, record, folder, progress=progress)

    return _train(
        pairs, config, Path(out), validation, data, progress, resume, callbacks, audit, keep_checkpoints
    )


def finetune_pairs(
    pairs: pd.DataFrame,
    config: FinetuneConfig,
    out: Path,
    *,
    progress: bool = True,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    keep_checkpoints: bool = False,
) -> FinetuneReport:
    """Fine-tune on a team's own pairs: columns anchor, positive and optionally group (e.g. a patient id).

    Without ``group`` every pair is its own group, so batches are only shuffled.
    """
    from clinpred.finetune.pairs import check_pairs_frame

    check_pairs_frame(pairs, config)
    text_columns = ["anchor", "positive"] + (["negative"] if "negative" in pairs.columns else [])
    frame = pd.DataFrame(
        {
            **{
                c: apply_identity_setting(
                    apply_phi_setting(pairs[c].astype("string").fillna(""), config.phi_placeholders),
                    config.identity_details,
                )
                for c in text_columns
            },
            "group": pairs["group"].astype(str)
            if "group" in pairs.columns
            else np.arange(len(pairs)).astype(str),
        }
    )
    usable = np.logical_and.reduce(
        [(frame[c].str.strip().str.len() > 0).to_numpy(dtype=bool) for c in text_columns]
    )
    frame = frame[usable].reset_index(drop=True)
    if frame.empty:
        raise InputError(
            f"pairs: none of the {len(pairs)} rows has a non-empty anchor and positive; nothing to train on."
        )
    codes = pd.factorize(frame["group"])[0].astype(np.int64)
    frame = frame.assign(group=codes)
    counts = {"rows": len(pairs), "pairs": len(frame), "groups": int(codes.max()) + 1}
    data = {
        "source": "pairs",
        "phi_placeholders": config.phi_placeholders,
        "identity_details": config.identity_details,
        "pairs": len(frame),
        "counts": counts,
        "groups": counts["groups"],
        "group_column": "group" in pairs.columns,
        "group_ids_sha256": _strings_sha256(pairs["group"].astype(str).unique())
        if "group" in pairs.columns
        else None,
    }
    return _train(
        frame,
        config,
        Path(out),
        None,
        data,
        progress,
        resume,
        callbacks,
        _no_patients_to_audit,
        keep_checkpoints,
    )


def _no_patients_to_audit(_folder: Path, _record: dict[str, Any]) -> dict[str, Any]:
    """A pairs file has groups, not patients of a dataset: no members and non-members to compare."""
    from clinpred.privacy.audit import PAIRS_FILE_REASON, not_run

    return not_run(PAIRS_FILE_REASON)


def _strings_sha256(values: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(sorted(values)).encode()).hexdigest()


def checkpoints_folder(out: Path) -> Path:
    """Where a fine-tune into ``out`` keeps its checkpoints: ``<out>.checkpoints``, beside the model."""
    out = Path(os.path.abspath(out))
    return out.with_name(out.name + CHECKPOINTS_SUFFIX)


def _check_checkpoints_folder(ckpt_dir: Path, resume: bool) -> None:
    """The checkpoints folder must be clinpred's (or new); without --resume a stale one is cleared."""
    if ckpt_dir.exists() and not ckpt_dir.is_dir():
        raise InputError(
            f"{ckpt_dir}: exists and is not a directory; fine-tuning keeps its checkpoints there, beside "
            "--out. Move it away or choose another --out."
        )
    if not ckpt_dir.is_dir() or not any(ckpt_dir.iterdir()):
        return
    if read_mark(ckpt_dir) is None:
        raise InputError(
            f"{ckpt_dir}: holds files that clinpred did not write; fine-tuning keeps its checkpoints there, "
            "beside --out, and never writes into someone's folder. Move it away or choose another --out."
        )
    if not resume:  # checkpoints of a fine-tune cut off before, not asked to continue: out of date
        shutil.rmtree(ckpt_dir)


def _remove_checkpoints(out: Path, ckpt_dir: Path) -> None:
    """The finished model needs no checkpoints: remove clinpred's, beside it and (older runs) inside it."""
    if ckpt_dir.is_dir() and read_mark(ckpt_dir) is not None:
        shutil.rmtree(ckpt_dir)
    legacy = out / CHECKPOINTS
    if legacy.is_dir() and any(legacy.glob("checkpoint-*/trainer_state.json")):
        shutil.rmtree(legacy)


def _check_out(out: Path, resume: bool) -> str | None:
    """Refuse to overwrite a finished or foreign folder; find the checkpoint to resume from (beside the
    model folder, or inside it where a fine-tune of an older clinpred was cut off)."""
    from transformers.trainer_utils import get_last_checkpoint

    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory. Choose a new --out folder.")
    first_process = os.environ.get("RANK", "0") == "0"  # torchrun: others may see rank 0's files
    if first_process and out.is_dir() and any(out.iterdir()):  # someone's folder: refused, --resume or not
        check_output_folder(out, "finetune", hint=RESUME_HINT)
    if first_process and out.is_dir() and any(out.iterdir()) and not resume:
        raise InputError(
            f"{out}: folder is not empty. Choose a new --out folder, or pass --resume to continue an "
            "interrupted run from its last checkpoint."
        )
    ckpt_dir = checkpoints_folder(out)
    # checkpoints beside a model folder that clinpred never started (removed since) are not its own
    resume = resume and read_mark(out) is not None
    if first_process:
        _check_checkpoints_folder(ckpt_dir, resume)
    if not resume:
        return None
    for folder in (ckpt_dir, out / CHECKPOINTS):
        found = get_last_checkpoint(str(folder)) if folder.is_dir() else None
        if found:
            return found
    return None


def load_base_model(name: str) -> tuple[Any, dict[str, Any]]:
    """The base SentenceTransformer from a local folder or the local Hugging Face cache, and its fingerprint."""
    from sentence_transformers import SentenceTransformer

    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise InputError(f"{path}: not a model folder (no modules.json or config.json).")
        model = SentenceTransformer(str(path), local_files_only=True)
        return model, {
            "id": shareable_name(name),  # a hub id where known, never this machine's path
            "path": str(path.resolve()),  # for this process's audit only: not written to the record
            "weights_sha256": weights_sha256(path),
        }
    try:
        model = SentenceTransformer(name, local_files_only=True)
    except Exception:
        raise InputError(
            f"base model {name!r}: not a local folder and not in the local Hugging Face cache (no model hub "
            "is reached). Download it on a connected machine (huggingface-cli download) or pass a folder."
        ) from None
    fingerprint: dict[str, Any] = {"id": name, "path": None, "weights_sha256": None}
    try:
        from huggingface_hub import snapshot_download

        snap = Path(snapshot_download(name, local_files_only=True))
        fingerprint.update(path=str(snap), revision=snap.name, weights_sha256=weights_sha256(snap))
    except Exception:  # a cache layout we cannot read: the id alone identifies it less well
        logger.warning("could not locate %s in the local cache to hash its weights", name)
    return model, fingerprint


def _is_gemma3(model: Any) -> bool:
    first = model[0]
    auto = getattr(first, "auto_model", None)
    model_type = str(getattr(getattr(auto, "config", None), "model_type", ""))
    return model_type.startswith("gemma3")


def _prompts(model: Any, mode: str) -> tuple[str, str]:
    """(anchor prompt, positive prompt) from the model's own prompts."""
    prompts = getattr(model, "prompts", {}) or {}
    document = prompts.get("document", "") or ""
    query = prompts.get("query", "") or ""
    if mode == "none":
        return "", ""
    if mode == "query_document":
        return query, document
    return document, document


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _cpu_processes() -> bool:
    """Several processes (torchrun / accelerate launch) and no CUDA or XPU device: gloo on the CPU.

    The trainer starts gloo data parallelism on the CPU only when asked (``use_cpu``); without it each
    process of ``torchrun --nproc_per_node 2`` on a CPU machine trained alone on the same batches and
    wrote the model twice (caught by tests/test_finetune_torchrun.py).
    """
    import torch

    xpu = getattr(torch, "xpu", None)
    accelerator = torch.cuda.is_available() or bool(xpu is not None and xpu.is_available())
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not accelerator


def _precision(config: FinetuneConfig, model: Any) -> tuple[bool, bool]:
    import torch

    if config.fp16 and _is_gemma3(model):
        raise InputError(
            "fp16 is not supported for Gemma3 models (their activations overflow float16): set bf16 = true "
            "on a GPU that supports it, or leave both off for float32."
        )
    bf16 = config.bf16
    if bf16 is None:
        bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(bf16), config.fp16


class BatchTrace:
    """Opt-in record of the patient ids of every batch each process trains on (``$CLINPRED_TRACE_BATCHES``).

    Why: that the R batches trained at one step under ``torchrun`` are patient-disjoint is a property of
    the sampler together with accelerate's sharding, which a unit test of the sampler alone cannot show.
    With ``CLINPRED_TRACE_BATCHES=DIR`` the training set carries one more column (the pair's group, a
    patient id; never text), this collator moves it out of the rows before the real collator sees them,
    and the trainer's ``compute_loss`` appends ``{"step", "rank", "groups"}`` to ``DIR/rank-<r>.jsonl``
    for each batch, so the batches of the real run can be compared across ranks
    (tests/test_finetune_torchrun.py). Unset, nothing changes. ``step`` is the optimizer step the batch
    counts toward, numbered from 1 as in the loss curve.
    """

    def __init__(self, collator: Any, folder: Path, rank: int) -> None:
        self.collator = collator
        self.path = Path(folder) / f"rank-{rank}.jsonl"
        self.rank = rank
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __getattr__(self, name: str) -> Any:  # valid_label_columns and the like: the real collator's
        if name == "collator":  # not yet set (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.collator, name)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        groups = [f.pop(TRACE_COLUMN) for f in features]
        batch = self.collator(features)
        batch[TRACE_COLUMN] = groups
        return batch

    def write(self, step: int, groups: list[Any]) -> None:
        line = json.dumps({"step": step, "rank": self.rank, "groups": [int(g) for g in groups]})
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def _make_trainer(model, args, dataset, loss, evaluator, groups, callbacks, trace_dir=None):
    from sentence_transformers import SentenceTransformerTrainer

    from clinpred.finetune.sampler import PatientBatchSampler

    class PatientTrainer(SentenceTransformerTrainer):
        """The stock trainer with the patient-aware sampler and no data-derived model card."""

        trace: BatchTrace | None = None

        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            # The stock card copies training rows (note text) into README.md as examples: skip it.
            return None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            traced = inputs.pop(TRACE_COLUMN, None)
            if traced is not None and self.trace is not None and model.training:
                self.trace.write(self.state.global_step + 1, traced)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def get_batch_sampler(
            self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0
        ):
            if len(dataset) != len(groups):  # not the training set
                return super().get_batch_sampler(
                    dataset, batch_size, drop_last, valid_label_columns, generator, seed
                )
            return PatientBatchSampler(
                dataset,
                batch_size,
                drop_last,
                valid_label_columns,
                generator,
                seed,
                groups=groups,
                num_replicas=self.accelerator.num_processes,
            )

    trainer = PatientTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=list(callbacks),
    )
    if trace_dir is not None:
        trainer.trace = BatchTrace(trainer.data_collator, trace_dir, trainer.accelerator.process_index)
        trainer.data_collator = trainer.trace
    return trainer


def _make_loss(model: Any, config: FinetuneConfig, pairs: pd.DataFrame) -> Any:
    """sentence-transformers' MNRL / cached MNRL (which take an optional negative column themselves), or
    ClinicalLoss for the label-aware targets and the distillation term."""
    from sentence_transformers.sentence_transformer import losses

    if config.loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(
            model,
            scale=config.scale,
            mini_batch_size=config.mini_batch_size,
            gather_across_devices=config.gather_across_devices,
        )
    if config.loss == "mnrl" and config.regulariser == "none" and config.negative_weights == "uniform":
        return losses.MultipleNegativesRankingLoss(
            model, scale=config.scale, gather_across_devices=config.gather_across_devices
        )
    if config.gather_across_devices:
        raise InputError("gather_across_devices works with loss mnrl or cached_mnrl without a regulariser.")
    from clinpred.finetune.losses import ClinicalLoss

    return ClinicalLoss(
        model,
        scale=config.scale,
        layout=label_layout(config, pairs),
        label_weight=config.label_weight if config.loss == "label_aware" else 0.0,
        temporal_weight=0.0 if config.loss == "supervised" else 1.0,
        supervised_weight={"supervised": 1.0, "mixed": config.supervised_weight}.get(config.loss, 0.0),
        supervised_level=config.supervised_level,
        supervised_positives=config.supervised_positives,
        hierarchy_strength=config.hierarchy_strength if config.negative_weights == "hierarchy" else 0.0,
        distill_weight=config.distill_weight if config.regulariser == "distill" else 0.0,
        head_weight=config.head_weight if config.loss == "phenotype_head" else 0.0,
    )


HEAD_FILE = "phenotype_head.pt"  # in each checkpoint: the phenotype head is the loss's, not the model's


def _head_learning_rate(config: FinetuneConfig) -> dict[str, float]:
    """The phenotype head's own learning rate (sentence-transformers' learning_rate_mapping, by parameter
    name in the loss module); the encoder keeps ``learning_rate``."""
    return {r"^phenotype_head\.": config.head_learning_rate} if config.loss == "phenotype_head" else {}


def _keep_the_head_with_checkpoints(trainer: Any, loss: Any, checkpoint: str | None) -> None:
    """A checkpoint holds the model and the optimiser, not the loss's own parameters: the phenotype head is
    saved beside them and, on --resume, read back, so a resumed fine-tune trains the head it had."""
    head = getattr(loss, "phenotype_head", None)
    if head is None:
        return
    import torch
    from transformers import TrainerCallback

    if checkpoint is not None:
        saved = Path(checkpoint) / HEAD_FILE
        if not saved.is_file():  # cut off between the trainer's files and this one
            raise InputError(
                f"{checkpoint}: this checkpoint has no {HEAD_FILE} (the fine-tune stopped while saving it). "
                "Remove this checkpoint folder to resume from the one before, or start again without --resume."
            )
        head.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))

    class SaveHead(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                with atomic_path(folder / HEAD_FILE) as tmp:
                    torch.save(head.state_dict(), tmp)

    trainer.add_callback(SaveHead())


def label_layout(config: FinetuneConfig, pairs: pd.DataFrame) -> Any:
    """How the pairs' code columns are laid out in the trainer's ``label`` vector (LabelLayout)."""
    from clinpred.finetune.losses import LabelLayout

    def width(column: str) -> int:
        return len(pairs[column].iloc[0]) if column in pairs and len(pairs) else 0

    return LabelLayout(
        phenotypes=width("phenotypes"), ccs_single=width("ccs_single"), chapters=width("chapters")
    )


def _curves(log_history: list[dict[str, Any]], name: str) -> tuple[list[dict], list[dict]]:
    loss = [
        {"step": float(e["step"]), "epoch": float(e.get("epoch", 0.0)), "loss": float(e["loss"])}
        for e in log_history
        if "loss" in e and "step" in e
    ]
    prefix = f"eval_{name}_"
    recall = [
        {
            "step": float(e["step"]),
            **{k[len(prefix) :]: float(v) for k, v in e.items() if k.startswith(prefix)},
        }
        for e in log_history
        if any(k.startswith(prefix) for k in e)
    ]
    return loss, recall


def _train(
    pairs: pd.DataFrame,
    config: FinetuneConfig,
    out: Path,
    validation: RecallSet | None,
    data: dict[str, Any],
    progress: bool,
    resume: bool,
    callbacks: Sequence[Any],
    audit: Callable[[Path, dict[str, Any]], dict[str, Any]],
    keep_checkpoints: bool = False,
) -> FinetuneReport:
    started = time.perf_counter()
    checkpoint = _check_out(out, resume)
    ckpt_dir = checkpoints_folder(out)
    model, base_fp = load_base_model(config.base_model)
    bf16, fp16 = _precision(config, model)

    import transformers
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    transformers.logging.set_verbosity_error()
    model.max_seq_length = config.max_seq_length
    anchor_prompt, positive_prompt = _prompts(model, config.prompts)
    prompts = {k: v for k, v in {"anchor": anchor_prompt, "positive": positive_prompt}.items() if v}

    if "negative" in pairs.columns:
        prompts["negative"] = prompts.get("positive", "") or None
        prompts = {k: v for k, v in prompts.items() if v}
    loss = _make_loss(model, config, pairs)
    columns: dict[str, list] = {
        c: pairs[c].tolist() for c in ("anchor", "positive", "negative") if c in pairs
    }
    label_parts = [
        np.stack(pairs[c].to_list()).astype(np.float32)
        for c in ("phenotypes", "ccs_single", "chapters")  # LabelLayout's order
        if c in pairs
    ]
    if config.regulariser == "distill":  # the base model's embedding of each anchor, before any step
        label_parts.append(
            model.encode(
                pairs["anchor"].tolist(),
                prompt=anchor_prompt or None,
                batch_size=config.eval_batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32)
        )
    if label_parts:
        columns["label"] = np.concatenate(label_parts, axis=1).tolist()
    trace_dir = os.environ.get(TRACE_ENV) or None
    if trace_dir:
        columns[TRACE_COLUMN] = pairs["group"].astype(np.int64).tolist()

    evaluator = None
    if validation is not None and len(validation.query):
        evaluator = NextNoteRecallEvaluator(
            validation,
            ks=config.recall_k,
            query_prompt=anchor_prompt,
            document_prompt=positive_prompt,
            batch_size=config.eval_batch_size,
        )
    dataset = Dataset.from_dict(columns)
    steps_per_epoch = math.ceil(len(pairs) / config.batch_size)  # at least; a huge patient adds batches
    eval_steps = config.eval_steps if evaluator is not None and config.eval_steps else None
    out.mkdir(parents=True, exist_ok=True)
    if os.environ.get("RANK", "0") == "0" and read_mark(out) is None:
        write_mark(out, "finetune")  # from the first step on, an interrupted fine-tune here is clinpred's
    if os.environ.get("RANK", "0") == "0" and read_mark(ckpt_dir) is None:
        write_mark(ckpt_dir, "finetune", command="finetune checkpoints")  # so --resume may use it
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=float(config.warmup_ratio),
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        fp16=fp16,
        **({"gradient_checkpointing": True} if config.gradient_checkpointing else {}),
        dataloader_pin_memory=_cuda(),
        **({"use_cpu": True} if _cpu_processes() else {}),
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_drop_last=False,
        prompts=prompts or None,
        log_level="error",
        learning_rate_mapping=_head_learning_rate(config),
    )
    trainer = _make_trainer(
        model, args, dataset, loss, evaluator, pairs["group"].to_numpy(), callbacks, trace_dir
    )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if trainer.accelerator.num_processes != world:  # a bug, not a user error: never train R copies alone
        raise RuntimeError(
            f"{world} processes launched but the trainer sees {trainer.accelerator.num_processes}"
        )
    if not progress:
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)

    _keep_the_head_with_checkpoints(trainer, loss, checkpoint)
    recall_before = evaluator.compute(model) if evaluator is not None else None
    trainer.train(resume_from_checkpoint=checkpoint)
    recall_after = evaluator.compute(model) if evaluator is not None else None

    loss_curve, recall_curve = _curves(trainer.state.log_history, "next_note")
    if recall_before:
        recall_curve.insert(0, {"step": 0.0, **recall_before})
    if recall_after and (not recall_curve or recall_curve[-1]["step"] != trainer.state.global_step):
        recall_curve.append({"step": float(trainer.state.global_step), **recall_after})

    wall = time.perf_counter() - started
    report = FinetuneReport(
        out=str(out),
        pairs=len(pairs),
        steps=int(trainer.state.global_step),
        epochs=float(trainer.state.epoch or 0.0),
        wall_time_s=round(wall, 2),
        counts=data["counts"],
        recall_before=recall_before,
        recall_after=recall_after,
        loss_curve=loss_curve,
        recall_curve=recall_curve,
        resumed_from=Path(checkpoint).name if checkpoint else None,
    )
    if not trainer.is_world_process_zero():  # under torchrun only the first process writes
        return report
    record = {
        "kind": "clinpred-finetune",
        "config": record_config(config),  # the base model by its hub id where known: no path here
        "supervision": config.supervision(),  # DESIGN.md rule 10
        "base_model": {k: v for k, v in base_fp.items() if k != "path"},
        "data": data,
        "steps_per_epoch": steps_per_epoch,
        "prompts": {"anchor": anchor_prompt, "positive": positive_prompt},
        "precision": "bf16" if bf16 else "fp16" if fp16 else "fp32",
        "world_size": int(trainer.accelerator.num_processes),
        **report.model_dump(exclude={"counts", "out", "audit"}),
        "versions": versions(),
    }
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".final-"))
    try:
        model.save_pretrained(str(staging), create_model_card=False)
        move_into(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    # the saved model against its base on members and non-members (the base read where it was just
    # read from: the record names it portably); the card and record then carry it
    record["audit"] = report.audit = audit(out, {**record, "base_model": base_fp})
    write_text(out / "README.md", model_card(record, config.recall_k))
    write_json_atomic(out / RUN_FILE, record)  # last: its presence marks a finished run
    if keep_checkpoints:
        report.checkpoints = str(ckpt_dir)
    else:
        _remove_checkpoints(out, ckpt_dir)
    return report
