"""A task's definition, folds and counts in plain sentences, for RESULTS.md and report.html.

The tasks already describe their choices in words inside ``definition`` (pool, target, features,
censoring, leakage guards); this module orders those sentences, turns the remaining scalar settings
into one line, and keeps long lists and per-fold detail out (they stay whole in results.json). It
reads any task's definition, so a task added later is described without changes here.
"""

from __future__ import annotations

from typing import Any

from clinpred.tasks.result import TaskResult

# Descriptive entries shown first, in this order, where a task has them; any other text entry follows.
LEAD = (
    "unit",
    "query",
    "target",
    "pool_description",
    "similarity",
    "rank",
    "identical_pairs_rule",
    "features",
    "model_detail",
    "patient_embedding",
    "time_origin",
    "event",
    "censoring",
    "exclusions",
    "label",
    "intervals",
)
SKIP = {"relaxations", "bootstrap"}  # said in their own sentences
NAMES = {
    "pool_description": "pool",
    "identical_pairs_rule": "identical pairs",
    "model_detail": "model",
    "knn_agreement": "kNN agreement",
    "knn_chance": "kNN chance",
    "umap_method": "UMAP",
}


def _words(key: str) -> str:
    return NAMES.get(key, key.replace("_", " "))


def _capital(text: str) -> str:
    return text if text[1:2].isupper() else text[:1].upper() + text[1:]


def _is_sentence(value: Any) -> bool:
    return isinstance(value, str) and " " in value.strip()


def _scalar(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and not _is_sentence(value))
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def definition_sentences(result: TaskResult) -> list[str]:
    """The task's own words first, then its scalar settings, leakage relaxations, folds and intervals."""
    d = result.definition
    keys = [k for k in LEAD if _is_sentence(d.get(k))]
    keys += [k for k, v in d.items() if k not in keys and k not in SKIP and _is_sentence(v)]
    out = [f"{_capital(_words(k))}: {str(d[k]).rstrip('.')}." for k in keys]
    settings = [
        f"{_words(k)} {_fmt(v)}" for k, v in d.items() if k not in keys and k not in SKIP and _scalar(v)
    ]
    if settings:
        out.append("Settings: " + ", ".join(settings) + ".")
    lists = [f"{len(v)} {_words(k)}" for k, v in d.items() if k not in SKIP and isinstance(v, list) and v]
    if lists:
        out.append("Lists in results.json: " + ", ".join(lists) + ".")
    if "relaxations" in d:
        relaxed = d["relaxations"]
        out.append(
            "Leakage-safe defaults relaxed: " + ", ".join(map(str, relaxed)) + "."
            if relaxed
            else "Leakage-safe defaults: none relaxed."
        )
    folds = folds_sentence(result.folds)
    if folds:
        out.append(folds)
    b = result.bootstrap
    out.append(
        f"Bootstrap: {b.confidence:.0%} intervals from {b.n_resamples} resamples of patients "
        f"with replacement, seed {b.seed}."
    )
    return out


def folds_sentence(folds: dict[str, Any]) -> str | None:
    """'5 folds grouped by subject_id, stratified by event, seed 0 (45, 45, 44, 44, 44 patients).'"""
    if not folds:
        return None
    text = f"Cross-validation: {folds.get('n_splits', '?')} folds grouped by {folds.get('grouped_by', '?')}"
    if folds.get("stratified_by"):
        text += f", stratified by {folds['stratified_by']}"
    if "seed" in folds:
        text += f", seed {folds['seed']}"
    sizes = folds.get("patients_per_fold")
    if sizes:
        text += f" ({', '.join(map(str, sizes))} patients)"
    return text + "."


def sampled_recall_clause(result: TaskResult) -> str | None:
    """'recall scored on a seeded, patient-stratified sample of 20,000 of 512,345 queries against the full
    pool (intervals include the sampling error)' where recall sampled its queries; None for an exact run
    (whose text stays as it was) and for any other task."""
    from clinpred.tasks.recall import SAMPLED

    if result.definition.get("method") != SAMPLED:
        return None
    scored, total = result.counts.get("queries"), result.counts.get("queries_before_sampling")
    of = f"{scored:,} of {total:,}" if isinstance(scored, int) and isinstance(total, int) else "some of the"
    return (
        f"recall scored on a seeded, patient-stratified sample of {of} queries against the full pool "
        "(intervals include the sampling error)"
    )


def scalar_counts(counts: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) of every count that is a single number or word, in the task's order."""
    out = []
    for key, value in counts.items():
        if isinstance(value, bool | int | float | str):
            out.append(
                (
                    _words(key),
                    f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _fmt(value),
                )
            )
    return out


def nested_counts(counts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Counts that are tables of their own (notes by category, positives per label)."""
    return {_words(k): v for k, v in counts.items() if isinstance(v, dict)}


def counts_sentence(counts: dict[str, Any]) -> str:
    """One line: 'patients 225, notes 3,753, ...; notes by category: 15 entries in results.json'."""
    text = ", ".join(f"{k} {v}" for k, v in scalar_counts(counts))
    nested = [f"{k} ({len(v)} entries)" for k, v in nested_counts(counts).items()]
    if nested:
        text += "; in results.json: " + ", ".join(nested)
    return text


def audit_sentence(audit: dict | None) -> str:
    """A fine-tuned model's membership-inference audit (clinpred.privacy.audit), as its run records it:
    how much the model reveals about who was in its training set."""
    from clinpred.finetune.output import estimate_text

    if not audit:
        return "no membership audit in its record (`clinpred audit --model DIR --data SRC`)"
    if audit.get("status") != "done":
        return f"membership audit not run ({audit.get('reason') or audit.get('status')})"
    return (
        f"membership audit (members vs non-members, 0.5 = chance): AUROC {estimate_text(audit['auroc'])}, "
        f"TPR at 1% FPR {estimate_text(audit['tpr_at_1pct_fpr'])} "
        f"({audit['members']} members, {audit['non_members']} non-members)"
    )


def supervision_sentence(provenance: dict) -> str:
    """A fine-tuned model's kind: supervised (what it read besides notes) or self-supervised (rule 10)."""
    supervision = provenance.get("supervision") or {}
    if not supervision:
        return ""
    if not supervision.get("supervised"):
        return "self-supervised (fine-tuning patients' notes only)"
    from clinpred.finetune.output import codes_read

    return f"supervised: read the fine-tuning patients' {codes_read(supervision)}"


def supervised_labels(backends: list) -> list[str]:
    """The labels of the fine-tuned backends whose recipe was supervised."""
    return [b.label for b in backends if ((b.provenance or {}).get("supervision") or {}).get("supervised")]
