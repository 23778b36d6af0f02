"""What a fine-tuning run leaves behind: clinpred-finetune.json, the model card, and fingerprints.

Nothing here ever holds note text: the data are described by counts and a hash of the patient ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinpred.errors import InputError

RUN_FILE = "clinpred-finetune.json"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # ORG/NAME, as the Hugging Face hub spells a model
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weights_sha256(model_dir: Path) -> str | None:
    """sha256 over every weight file of a local model directory (relative name + bytes), or None."""
    files = sorted(p for p in Path(model_dir).rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(model_dir)).encode())
        with path.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Versions of the libraries that shape the trained weights."""
    import sentence_transformers
    import torch
    import transformers

    import clinpred

    return {
        "clinpred": getattr(clinpred, "__version__", "0.1.0"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename: the file appears whole or not at all."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, default=str)
            fh.write("\n")
        from clinpred.privacy.modes import current_umask

        # the mode a plain open() gives, as for every other file in the folder: mkstemp's 0600 follows
        # no setting. Owner-only (or 0640 with share_with_group) when the source is credentialed, since
        # clinpred.privacy.modes narrowed the umask; the user's usual mode for the synthetic cohort.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_config(config: Any) -> dict[str, Any]:
    """A FinetuneConfig as the record keeps it: the base model named as it travels (its hub id where
    known, clinpred.finetune.model_names), never a folder of the machine that trained it."""
    from clinpred.finetune.model_names import shareable_name

    dumped = config.model_dump(mode="json")
    dumped["base_model"] = shareable_name(str(config.base_model))
    return dumped


def same_config(recorded: Any, config: Any) -> bool:
    """Whether a model's record was written for ``config`` (a record of an older clinpred kept the base
    model's path as given, and still matches). A record written before a setting existed matches with the
    setting at its default: every new FinetuneConfig field defaults to what clinpred did before it."""
    if recorded in (record_config(config), config.model_dump(mode="json")):
        return True
    if not isinstance(recorded, dict):
        return False
    try:
        filled = type(config).model_validate(recorded)
    except Exception:  # a record this clinpred cannot read as a config: not the same
        return False
    return record_config(filled) == record_config(config)


def move_into(staging: Path, out: Path) -> None:
    """Move every entry of a finished staging folder into ``out``, each by one rename."""
    for entry in sorted(Path(staging).iterdir()):
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
    Path(staging).rmdir()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def model_card(record: dict[str, Any], ks: Sequence[int]) -> str:
    """A README for the model folder: what it is, how it was trained, what it scored, how to load it."""
    cfg = record["config"]
    data = record["data"]
    before, after = record.get("recall_before") or {}, record.get("recall_after") or {}
    rows = "\n".join(
        f"| recall@{k} | {_fmt(before.get(f'recall@{k}'))} | {_fmt(after.get(f'recall@{k}'))} |" for k in ks
    )
    recall = (
        f"Next-note recall on {data.get('validation_patients', 0)} fine-tuning-validation patients "
        f"(query = note t, target = note t+1, pool = every validation note but the query; "
        f"{int(after.get('queries', 0))} queries, pool {int(after.get('pool', 0))}). These patients are a "
        "slice of the fine-tuning patients: use `clinpred` tasks on evaluation patients for reported "
        "numbers.\n\n| metric | base | fine-tuned |\n|---|---|---|\n" + rows
        if after
        else "No validation patients: no recall measured during fine-tuning."
    )
    supervised = bool(supervision_of(record).get("supervised"))
    base = str(record["base_model"]["id"])
    # the hub's metadata field takes a hub id; a local folder clinpred cannot name is left out of it
    hub_line = f"base_model: {base}\n" if _HUB_ID.fullmatch(base) else ""
    return f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags:
- sentence-transformers
- clinpred
- temporal-contrastive
{"- supervised" + chr(10) if supervised else ""}{hub_line}---

# {"Supervised" if supervised else "Temporal"} contrastive fine-tune of `{record["base_model"]["id"]}`

Trained by `clinpred finetune` on pairs of a patient's note at time t and a later note of the same
patient (in-batch negatives from other patients only: no batch holds two pairs of one patient).

{supervision_line(record)}

- recipe: preset {cfg.get("preset")}, PHI placeholders {cfg.get("phi_placeholders", "keep")}, identity
  details {cfg.get("identity_details", "keep")}, positives
  {cfg["pairs"].get("positives", "next")}, negatives {cfg["pairs"].get("negatives", "in_batch")}, regulariser
  {cfg.get("regulariser", "none")}
- loss: {loss_words(cfg)} (scale {cfg["scale"]}), batch size {cfg["batch_size"]}, learning rate {cfg["learning_rate"]},
  warm-up ratio {cfg["warmup_ratio"]}, max sequence length {cfg["max_seq_length"]}, seed {cfg["seed"]}
- pairs: {data.get("pairs")} from {data.get("train_patients")} patients; steps: {record["steps"]};
  wall time {record["wall_time_s"]:.0f} s
- prompts: {cfg["prompts"]}

{training_data_section(data)}

## Validation

{recall}

{privacy_section(record)}

The full configuration, the data fingerprint (counts and a hash of the patient ids; no note text), the
loss curve and the validation recall curve are in `{RUN_FILE}`.

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("path/to/this/folder")
```
"""


def supervision_of(record: dict[str, Any]) -> dict[str, Any]:
    """A model record's ``supervision`` (DESIGN.md rule 10); a record written before it existed is judged
    by its config as this clinpred reads it, or, where it cannot, by its loss (label_aware read codes)."""
    if isinstance(record.get("supervision"), dict):
        return record["supervision"]
    from clinpred.finetune.config import FinetuneConfig

    cfg = record.get("config") or {}
    try:
        return FinetuneConfig.model_validate(cfg).supervision()
    except Exception:  # an older or foreign config this clinpred cannot validate
        supervised = cfg.get("loss") == "label_aware"
        return {"supervised": supervised, "reads": ["notes of the fine-tuning patients"]}


def codes_read(supervision: dict[str, Any]) -> str:
    """What a supervised recipe read besides the notes, in words."""
    return ", ".join(supervision.get("reads", [])[1:]) or "diagnosis codes"


def supervision_line(record: dict[str, Any]) -> str:
    """Self-supervised or supervised, and what a supervised recipe read (DESIGN.md rule 10)."""
    supervision = supervision_of(record)
    if not supervision.get("supervised"):
        return "Self-supervised: it read the fine-tuning patients' notes and nothing else."
    reads = codes_read(supervision)
    return (
        f"**Supervised**: besides the notes it read the fine-tuning patients' {reads} (training patients "
        "only, never an evaluation patient's). Compare it with self-supervised models as a different kind."
    )


def loss_words(cfg: dict[str, Any]) -> str:
    """The loss and its supervised settings, as the card states them."""
    loss = str(cfg["loss"])
    if loss == "mixed":
        loss += (
            f" (temporal MNRL + {cfg.get('supervised_weight')} x supervised, on {cfg.get('supervised_level')}, "
            f"positives by {cfg.get('supervised_positives', 'jaccard')})"
        )
    elif loss == "supervised":
        loss += (
            f" (supervised contrastive on {cfg.get('supervised_level')}, positives by "
            f"{cfg.get('supervised_positives', 'jaccard')})"
        )
    elif loss == "label_aware":
        loss += f" (label weight {cfg.get('label_weight')})"
    elif loss == "phenotype_head":
        loss += (
            f" (temporal MNRL + {cfg.get('head_weight')} x binary cross-entropy of a linear phenotype head on "
            f"each note's embedding, head learning rate {cfg.get('head_learning_rate')}; the head is not saved)"
        )
    if cfg.get("negative_weights", "uniform") == "hierarchy":
        loss += f", hierarchy-weighted negatives (strength {cfg.get('hierarchy_strength')})"
    return loss


SOURCE_NAMES = {
    "mimic3": "MIMIC-III clinical notes",
    "mimic4": "MIMIC-IV-Note",
    "meds": "a MEDS dataset",
    "omop": "an OMOP CDM database",
    "pairs": "a pairs file given to `clinpred finetune --pairs`",
}


def credentialed(data: dict[str, Any]) -> bool:
    """Whether the training data was credentialed: anything but clinpred's synthetic cohort (a pairs
    file counts as credentialed: clinpred cannot tell where its text came from)."""
    return not data.get("synthetic")


def training_data_section(data: dict[str, Any]) -> str:
    """The card's Training data section: source, synthetic or credentialed, and counts (never text)."""
    source = str(data.get("source", "unknown"))
    what = SOURCE_NAMES.get(source, source)
    if data.get("synthetic"):
        kind = f"clinpred's synthetic cohort (`{data['synthetic']}`, generated text in the shape of {what})"
    elif source == "pairs":
        kind = f"{what}, treated as credentialed (clinpred cannot tell where its text came from)"
    else:
        kind = f"{what}, credentialed data"
    if source == "pairs":
        counts = f"{data.get('pairs')} pairs in {data.get('groups')} groups" + (
            " (the file's group column)" if data.get("group_column") else " (one per pair: no group column)"
        )
    else:
        counts = (
            f"{data.get('pairs')} (note t, note t+1) pairs from {data.get('train_patients')} fine-tuning "
            f"patients; {data.get('validation_patients')} validation patients; "
            f"{data.get('evaluation_patients_held_out')} evaluation patients held out, never seen"
        )
    return (
        "## Training data\n\n"
        f"- source: {kind}\n"
        f"- counts: {counts}\n"
        f"- text settings: PHI placeholders {data.get('phi_placeholders', 'keep')}, identity details "
        f"{data.get('identity_details', 'keep')}\n"
        "- no note text is stored with this model: its record holds counts and hashes of patient ids only"
    )


def estimate_text(entry: dict[str, Any] | None) -> str:
    """An Estimate as written in a record, "0.612 [0.550, 0.671]", or n/a."""
    entry = entry or {}
    value, low, high = entry.get("value"), entry.get("low"), entry.get("high")
    if value is None or value != value:  # absent or NaN
        return "n/a"
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def privacy_section(record: dict[str, Any]) -> str:
    """The card's Privacy section: the membership audit (clinpred.privacy.audit), what embeddings reveal,
    and what the data use agreement asks of a model derived from credentialed notes."""
    audit = record.get("audit")
    if audit and audit.get("status") == "done":
        sampled = (
            f" (a seeded sample of at most {audit['max_patients']} per side, from "
            f"{audit['members_available']} and {audit['non_members_available']})"
            if (audit["members"], audit["non_members"])
            != (audit["members_available"], audit["non_members_available"])
            else ""
        )
        figures = (
            "Membership-inference audit (a reference-model attack, Carlini et al. 2022): per patient, "
            f"`{audit['score']}`; members are {audit['members']} fine-tuning patients the model trained on, "
            f"non-members {audit['non_members']} evaluation patients it never saw{sampled}, their pairs mined "
            "as fine-tuning mined its own, under the same text settings.\n\n"
            "| figure | value |\n|---|---|\n"
            f"| AUROC, members vs non-members (patient-bootstrap 95% CI) | {estimate_text(audit['auroc'])} |\n"
            f"| TPR at 1% FPR | {estimate_text(audit.get('tpr_at_1pct_fpr'))} |\n"
            f"| members / non-members | {audit['members']} / {audit['non_members']} |\n\n"
            + audit["meaning"]
            + (f" TPR at 1% FPR: {audit['tpr_note']}." if audit.get("tpr_note") else "")
        )
    elif audit:
        figures = f"No membership-inference audit: {audit.get('reason', 'not run')}."
    else:
        figures = (
            "No membership-inference audit in this model's record: run `clinpred audit --model THIS_FOLDER "
            "--data SOURCE` with the data it was fine-tuned on."
        )
    data = record.get("data") or {}
    dua = (
        "This model was trained on clinpred's synthetic cohort, which no data use agreement covers; "
        "a model trained on credentialed notes (MIMIC) is derived data of them: "
        if not credentialed(data)
        else "This model was trained on credentialed notes: a model trained on MIMIC notes may reproduce "
        "them (text a model memorised can be extracted from it), and it falls under PhysioNet's terms for "
        "sharing. PhysioNet's credentialed data use agreement forbids sharing credentialed data, and this "
        "model is derived data of them: do not upload it to a public hub; "
    )
    return (
        "## Privacy\n\n"
        + figures
        + "\n\nEmbeddings of notes are as sensitive as the notes: embedding inversion recovered 89% of full "
        'names from embeddings of MIMIC-III notes (Morris et al., EMNLP 2023, "Text Embeddings Reveal '
        '(Almost) As Much As Text"). '
        + dua
        + "share it, and any vectors it computed, only as the data use agreement allows."
    )


def check_models_generator(models: Path) -> None:
    """Fine-tunes in ``models`` were trained on this generator's synthetic cohort (stamped beside them).

    ``clinpred demo`` and ``clinpred ablate`` reuse a model whose record has the recipe's settings; a
    model of an older cohort has the same settings (and the same patient ids), so without the stamp it
    would be reused and scored on text it never saw. Writes the stamp where there is none yet.
    """
    from clinpred.atomic import write_text
    from clinpred.data.synthetic.generate import GENERATOR_VERSION

    stamp = models / "generator.json"
    if stamp.is_file():
        trained_on = json.loads(stamp.read_text()).get("generator")
        if trained_on != GENERATOR_VERSION:
            raise InputError(
                f"{models} holds models fine-tuned on the synthetic cohort of generator {trained_on}, not "
                f"{GENERATOR_VERSION}: remove it or use another --out."
            )
    elif models.is_dir() and any(models.iterdir()):
        raise InputError(
            f"{models} holds models of an unknown synthetic cohort (no generator.json): remove it or use "
            "another --out."
        )
    models.mkdir(parents=True, exist_ok=True)
    write_text(stamp, json.dumps({"generator": GENERATOR_VERSION}) + "\n")
