"""Membership-inference audit of a fine-tuned model: can its similarities tell who it was trained on?

A reference-model attack in the spirit of Carlini et al. 2022 ("Membership Inference Attacks From First
Principles", LiRA): the fine-tuned model's score on a patient is calibrated by the base model's score on
the same text, so that what is easy for any model (a patient whose notes repeat themselves) cancels and
what the fine-tune learned about this patient remains. Per patient p with pairs P(p):

    s(p) = mean over (t, t+1) in P(p) of  [ cos_tuned(note t, note t+1) - cos_base(note t, note t+1) ]

the training objective (note t retrieves note t+1) measured after minus before fine-tuning. Members are
the fine-tuning patients whose pairs the model trained on, the pairs mined exactly as fine-tuning mined
them (same categories, gap, per-patient cap and seed, same PHI-placeholder and identity-details
settings, same prompts and max_seq_length); non-members are the evaluation patients of the same split,
never seen by fine-tuning, their pairs mined the same way. Validation patients are neither.

Reported: AUROC of s between members and non-members (0.5: nothing revealed) with a patient-bootstrap 95%
interval, and the true-positive rate at 1% false-positive rate (the share of members flagged when at
most 1% of non-members are), the figure this literature reports. Up to ``max_patients`` of each side
are scored (a seeded sample), which bounds the audit's cost whatever the cohort.

Base-model vectors go through the embedding cache, so evaluation notes a run already embedded with the
base model (same text, prompts and length) are not embedded again. The fine-tuned model is embedded
without the cache: its fingerprint hashes the model folder, clinpred-finetune.json included, which the
audit is about to (re)write, so cached vectors would be filed under a fingerprint that then disappears.
Nothing here holds note text beyond the call: the result is scores and counts.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinpred.data.cohort import Cohort
from clinpred.data.splits import ids_sha256, split_cohort
from clinpred.errors import InputError

# per side: the demo's 900 members and 999 non-members are sampled to 100 each; its seed fine-tune (57
# steps) took 171.1 s and the audit 17.3 s (10.1%) on a 2-core machine. 100 non-members: TPR at 1% FPR
# allows one false positive
AUDIT_MAX_PATIENTS = 100
TARGET_FPR = 0.01
TPR_KEY = "tpr_at_1pct_fpr"
METHOD = (
    "reference-model membership inference (Carlini et al. 2022, LiRA-style calibration by the base model)"
)
SCORE = (
    "s(patient) = mean over the patient's (note t, note t+1) pairs of "
    "cos_fine-tuned(t, t+1) - cos_base(t, t+1)"
)
PAIRS_FILE_REASON = (
    "trained on a pairs file: its groups are not patients of a dataset clinpred can read, so there are no "
    "members and non-members of one split to compare"
)


def not_run(reason: str) -> dict[str, Any]:
    """The record's audit entry where no audit could be run, with the reason."""
    return {"status": "not run", "reason": reason}


def read_record(model_dir: Path) -> dict[str, Any]:
    """The model folder's clinpred-finetune.json; a folder without one is refused (exit 2)."""
    from clinpred.finetune.output import RUN_FILE

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"--model {model_dir}: no such model folder.")
    path = model_dir / RUN_FILE
    if not path.is_file():
        raise InputError(
            f"--model {model_dir}: no {RUN_FILE}, so not a model folder that `clinpred finetune` finished. The "
            "audit needs that record (training patients, base model, text settings): give a fine-tuned model "
            "folder."
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as JSON ({type(exc).__name__}).") from None
    if not isinstance(record, dict) or record.get("kind") != "clinpred-finetune" or "config" not in record:
        raise InputError(f"{path}: not a clinpred fine-tuning record (no kind 'clinpred-finetune').")
    return record


def tpr_at_fpr(member: np.ndarray, score: np.ndarray, fpr: float = TARGET_FPR) -> float:
    """Share of members scored above a threshold that at most ``fpr`` of the non-members exceed.

    The threshold is the (k+1)-th highest non-member score with k = floor(fpr * non-members), so fewer
    than 100 non-members allow no false positive at all: the figure is then the share of members above
    every non-member. NaN without both groups.
    """
    member = np.asarray(member, dtype=bool)
    score = np.asarray(score, dtype=float)
    negatives = np.sort(score[~member])[::-1]
    if not len(negatives) or not member.any():
        return float("nan")
    threshold = negatives[math.floor(fpr * len(negatives) + 1e-9)]
    return float(np.mean(score[member] > threshold))


def audit_metrics(units: pd.DataFrame) -> dict[str, float]:
    """AUROC and TPR at 1% FPR of the per-patient scores (``member``, ``score``): the bootstrap's metric."""
    from clinpred.tasks.diagnosis_metrics import auroc_columns

    member = units["member"].to_numpy(dtype=bool)
    score = units["score"].to_numpy(dtype=float)
    if not len(units):
        return {"auroc": float("nan"), TPR_KEY: float("nan")}
    return {
        "auroc": float(auroc_columns(member[:, None], score[:, None])[0]),
        TPR_KEY: tpr_at_fpr(member, score),
    }


def bootstrap_audit(units: pd.DataFrame, scheme: Any) -> dict[str, Any]:
    """``audit_metrics`` with patient-bootstrap intervals, every resample scored at once.

    The units are one row per patient, so a resample is a row draw: the same draws (``_draw_patients``)
    and intervals (``_estimates``) as clinpred's ``bootstrap_metrics``, with AUROC and TPR computed for
    all resamples in a few array operations instead of 1,000 calls (whose process pool alone cost more
    than the audit's budget allows on the demo).
    """
    from clinpred.tasks.diagnosis_metrics import auroc_columns
    from clinpred.tasks.result import _draw_patients, _estimates

    point = audit_metrics(units)
    picks = _draw_patients(len(units), scheme)
    if not picks:
        return _estimates(point, [], scheme.confidence)
    index = np.stack(picks, axis=1)  # patients x resamples
    member = units["member"].to_numpy(dtype=bool)[index]
    score = units["score"].to_numpy(dtype=float)[index]
    auroc = auroc_columns(member, score)
    negatives = np.sort(np.where(member, -np.inf, score), axis=0)[::-1]  # non-members first, highest first
    n_negative = (~member).sum(axis=0)
    k = np.minimum(np.floor(TARGET_FPR * n_negative + 1e-9).astype(np.int64), np.maximum(n_negative - 1, 0))
    threshold = negatives[k, np.arange(index.shape[1])]
    n_member = member.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = (member & (score > threshold)).sum(axis=0) / n_member
    tpr = np.where((n_member > 0) & (n_negative > 0), tpr, np.nan)
    draws = [{"auroc": float(a), TPR_KEY: float(t)} for a, t in zip(auroc, tpr, strict=True)]
    return _estimates(point, draws, scheme.confidence)


def _mined(cohort: Cohort, subject_ids: list[int], config: Any) -> pd.DataFrame:
    """The given patients' pairs, mined as fine-tuning mines them (text under the recipe's settings)."""
    from clinpred.finetune.pairs import fine_tuning_cohort, mine_pairs

    sub = fine_tuning_cohort(cohort, subject_ids, config.phi_placeholders, config.identity_details)
    pairs, _ = mine_pairs(sub, subject_ids, config.pairs)
    return pairs[["anchor", "positive", "group"]]


def _sample(ids: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(ids, size=n, replace=False)) if len(ids) > n else np.sort(ids)


def _backend(model: str, max_seq_length: int, prompts: dict[str, str]) -> Any:
    """A sentence-transformers backend that embeds as training did: its prompts, its length."""
    from clinpred.backends.sentence_transformers_backend import (
        SentenceTransformerBackend,
        SentenceTransformerSettings,
    )

    anchor, positive = prompts.get("anchor", ""), prompts.get("positive", "")
    settings = SentenceTransformerSettings(
        model=model,
        max_seq_length=max_seq_length,
        document_prompt=positive,
        # the same prompt on both sides (the default recipe): the query prompt stays the model's own, so
        # that the fingerprint, and so the cache, is the one a run with this model uses
        query_prompt=anchor if anchor != positive else None,
    )
    return SentenceTransformerBackend(settings, name="membership-audit")


def _embed(backend: Any, texts: pd.Series, role: str) -> np.ndarray:
    """One row per text; each distinct text embedded once."""
    texts = texts.astype(str)
    unique = pd.unique(texts)
    vectors = backend.embed(list(unique), role=role)
    return vectors[pd.Index(unique).get_indexer(texts)]


def _pair_cosines(backend: Any, pairs: pd.DataFrame, anchor_role: str) -> np.ndarray:
    """cos(anchor, positive) per pair (unit rows: the dot product)."""
    n = len(pairs)
    if anchor_role == "document":  # one call: note t+1 of one pair is often note t of the next
        both = _embed(backend, pd.concat([pairs["anchor"], pairs["positive"]], ignore_index=True), "document")
        anchors, positives = both[:n], both[n:]
    else:
        anchors = _embed(backend, pairs["anchor"], anchor_role)
        positives = _embed(backend, pairs["positive"], "document")
    return np.sum(anchors * positives, axis=1)


def membership_audit(
    cohort: Cohort,
    record: dict[str, Any],
    model_dir: Path,
    *,
    max_patients: int = AUDIT_MAX_PATIENTS,
    progress: bool = True,
    check_base: bool = False,
) -> dict[str, Any]:
    """The audit entry for ``record`` (a finished fine-tune of ``model_dir``) on the cohort it came from.

    ``check_base``: refuse a base model folder whose weights are not the recorded ones (``clinpred
    audit``; right after training the base is the one just read).
    """
    from clinpred.backends import CachedBackend, EmbeddingCache, default_cache_root
    from clinpred.finetune.config import FinetuneConfig
    from clinpred.tasks.result import BootstrapScheme

    started = time.perf_counter()
    data = record.get("data") or {}
    if data.get("source") == "pairs":
        return not_run(PAIRS_FILE_REASON)
    try:
        config = FinetuneConfig.model_validate(record["config"])
    except Exception:
        raise InputError(
            f"{model_dir}: the record's config is not one this clinpred reads; re-run the fine-tune with it."
        ) from None
    split = split_cohort(cohort, config.split)
    recorded = data.get("train_subject_ids_sha256")
    if recorded is not None and recorded != ids_sha256(split.finetune):
        raise InputError(
            f"{model_dir} was not fine-tuned on these patients (the training patients' hash in its record "
            "differs from this data's split): give the --data or --synthetic the model was trained with."
        )
    members_pairs = _mined(cohort, split.finetune, config)
    if data.get("pairs") is not None and len(members_pairs) != int(data["pairs"]):
        raise InputError(
            f"{model_dir} was trained on {data['pairs']} pairs, but these notes give {len(members_pairs)} for "
            "the same patients and settings: the notes changed since; give the data the model was trained on."
        )
    others = _mined(cohort, split.evaluation, config)
    member_ids = np.unique(members_pairs["group"].to_numpy(dtype=np.int64))
    other_ids = np.unique(others["group"].to_numpy(dtype=np.int64))
    if not len(member_ids) or not len(other_ids):
        return not_run(
            f"{len(member_ids)} members and {len(other_ids)} evaluation patients with a pair: both are needed"
        )
    rng = np.random.default_rng([config.seed, 29])
    members = _sample(member_ids, max_patients, rng)
    non_members = _sample(other_ids, max_patients, rng)
    pairs = pd.concat(
        [members_pairs[members_pairs["group"].isin(members)], others[others["group"].isin(non_members)]],
        ignore_index=True,
    )

    base_fp = record.get("base_model") or {}
    from clinpred.finetune.model_names import local_copy, shareable_name

    # where this machine has the base: the path just trained from, or the record's portable name
    base = str(base_fp.get("path") or local_copy(str(base_fp.get("id") or config.base_model)))
    if check_base:
        _check_base(base, base_fp)
    prompts = record.get("prompts") or {}
    anchor_role = "document" if prompts.get("anchor", "") == prompts.get("positive", "") else "query"
    tuned = _backend(str(model_dir), config.max_seq_length, prompts)
    from clinpred.pipeline import source_record

    reference = CachedBackend(
        _backend(base, config.max_seq_length, prompts),
        EmbeddingCache(default_cache_root()),
        progress=progress,
        source=source_record(cohort),  # so that `cache clear --source` finds these vectors too
    )
    difference = _pair_cosines(tuned, pairs, anchor_role) - _pair_cosines(reference, pairs, anchor_role)
    tuned.close()
    per_patient = pd.Series(difference).groupby(pairs["group"].to_numpy()).mean()
    units = pd.DataFrame(
        {
            "subject_id": per_patient.index.to_numpy(dtype=np.int64),
            "member": np.isin(per_patient.index.to_numpy(), members),
            "score": per_patient.to_numpy(dtype=float),
        }
    )
    scheme = BootstrapScheme()
    estimates = bootstrap_audit(units, scheme)
    auroc = estimates["auroc"]
    n_non = len(non_members)
    return {
        "status": "done",
        "method": METHOD,
        "score": SCORE,
        "members": len(members),
        "non_members": n_non,
        "members_available": len(member_ids),
        "non_members_available": len(other_ids),
        "max_patients": max_patients,
        "sample_seed": [config.seed, 29],
        "member_pairs": int(pairs["group"].isin(members).sum()),
        "non_member_pairs": int((~pairs["group"].isin(members)).sum()),
        "members_subject_ids_sha256": ids_sha256(members),
        "non_members_subject_ids_sha256": ids_sha256(non_members),
        "auroc": auroc.model_dump(),
        TPR_KEY: estimates[TPR_KEY].model_dump(),
        "tpr_note": tpr_note(n_non),
        "mean_score": {
            "members": float(units.loc[units["member"], "score"].mean()),
            "non_members": float(units.loc[~units["member"], "score"].mean()),
        },
        "bootstrap": {"unit": "patient", **scheme.model_dump()},
        "base_model": shareable_name(base),  # the record travels with the model: no path of this machine
        "text": {
            "phi_placeholders": config.phi_placeholders,
            "identity_details": config.identity_details,
            "max_seq_length": config.max_seq_length,
            "prompts": prompts,
        },
        "meaning": meaning(auroc.value, auroc.low, auroc.high),
        "wall_time_s": round(time.perf_counter() - started, 2),
    }


def tpr_note(non_members: int) -> str | None:
    """What TPR at 1% FPR can mean with this many non-members (None when it is what it says)."""
    if non_members >= 100:
        return None
    return (
        f"only {non_members} non-members: 1% of them is less than one patient, so this is the TPR at 0 false "
        "positives (members above every non-member), not a 1% FPR figure; more evaluation patients are needed"
    )


def meaning(value: float, low: float | None, high: float | None) -> str:
    """One sentence on what the AUROC says about this model."""
    if low is None or high is None:
        return (
            f"AUROC {value:.3f} without an interval (too few patients to resample): 0.5 would mean the model "
            "tells its training patients from unseen ones no better than chance."
        )
    if low <= 0.5 <= high:
        return (
            "The interval contains 0.5: the model's similarities tell its training patients from unseen ones no "
            "better than chance, as far as this audit can see (it bounds one attack, it does not prove privacy)."
        )
    if low > 0.5:
        return (
            "The interval lies above 0.5: the model's similarities reveal, better than chance, which patients "
            "were in its training set; treat the model as being as sensitive as the notes it was trained on."
        )
    return (
        "The interval lies below 0.5: unseen patients' pairs gained more than the training patients', which an "
        "attack cannot use to find members; the fine-tune generalised rather than memorised here."
    )


def _check_base(base: str, fingerprint: dict[str, Any]) -> None:
    from clinpred.finetune.output import weights_sha256

    recorded = fingerprint.get("weights_sha256")
    path = Path(base).expanduser()
    if recorded is None or not path.is_dir():
        return
    if weights_sha256(path) != recorded:
        raise InputError(
            f"base model {path}: its weights are not those the model was fine-tuned from (the record's "
            "weights_sha256 differs); the audit calibrates by the exact base: restore it."
        )


def audit_line(audit: dict[str, Any] | None) -> str:
    """The audit in one terminal line (figures and counts, never text)."""
    from clinpred.finetune.output import estimate_text

    if not audit:
        return "membership audit: none in this model's record"
    if audit.get("status") != "done":
        return f"membership audit: not run ({audit.get('reason', 'no reason recorded')})"
    auroc, tpr = audit["auroc"], audit[TPR_KEY]
    sampled = (
        f", sampled from {audit['members_available']} / {audit['non_members_available']}"
        if (audit["members"], audit["non_members"])
        != (audit["members_available"], audit["non_members_available"])
        else ""
    )
    note = (
        "; below 100 non-members TPR@1%FPR is the TPR at 0 false positives" if audit.get("tpr_note") else ""
    )
    return (
        f"membership audit: AUROC {estimate_text(auroc)} (0.5 = chance), TPR@1%FPR {estimate_text(tpr)} "
        f"({audit['members']} members, {audit['non_members']} non-members{sampled}{note}; "
        f"{audit['wall_time_s']:.1f} s)"
    )


def write_audit(model_dir: Path, record: dict[str, Any]) -> None:
    """Rewrite the model card, then the record (the record last: it marks the folder finished)."""
    from clinpred.atomic import write_text
    from clinpred.finetune.output import RUN_FILE, model_card, write_json_atomic

    write_text(
        Path(model_dir) / "README.md", model_card(record, record["config"].get("recall_k", [1, 5, 10]))
    )
    write_json_atomic(Path(model_dir) / RUN_FILE, record)


def audit_model_folder(
    model_dir: Path,
    *,
    data: Path | None,
    synthetic: str | None,
    max_patients: int = AUDIT_MAX_PATIENTS,
    progress: bool = True,
) -> dict[str, Any]:
    """`clinpred audit`: run the audit on a finished fine-tune and write it into its record and card."""
    from clinpred.config import DataConfig
    from clinpred.finetune.command import SYNTHETIC_SIZES
    from clinpred.pipeline import build_cohort

    given = [name for name, v in (("--data", data), ("--synthetic", synthetic)) if v]
    if len(given) != 1:
        raise InputError(
            "give exactly one of --data PATH or --synthetic SIZE: the data the model was fine-tuned on"
            + (" (got both)." if given else ".")
        )
    if synthetic is not None and synthetic not in SYNTHETIC_SIZES:
        raise InputError(f"--synthetic {synthetic!r}: choose one of {', '.join(SYNTHETIC_SIZES)}.")
    if max_patients < 2:
        raise InputError(f"--max-patients {max_patients}: give at least 2 patients per side.")
    record = read_record(model_dir)
    if (record.get("data") or {}).get("source") == "pairs":
        raise InputError(f"--model {model_dir}: {PAIRS_FILE_REASON}.")
    cohort = build_cohort(DataConfig(path=data, synthetic=synthetic), progress=progress)
    audit = membership_audit(
        cohort, record, Path(model_dir), max_patients=max_patients, progress=progress, check_base=True
    )
    record["audit"] = audit
    write_audit(Path(model_dir), record)
    return audit
