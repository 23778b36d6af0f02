"""The supervised, hierarchy-aware and label-aware terms, the phenotype head and the distillation
regulariser, on top of sentence-transformers' MNRL.

``ClinicalLoss`` embeds the columns once (anchor, positive, optional style-matched negative) and combines:

- the temporal term: MNRL (anchor i's target is its own positive), weight ``temporal_weight`` (0 for the
  supervised recipe alone);
- supervised contrastive (``supervised_weight``; Khosla et al. 2020, with weighted positives as in
  multi-label SupCon): over the batch's 2B notes, note k's positives are the notes of every OTHER patient
  in the batch, each weighted by the Jaccard overlap of the two patients' phenotype sets; the same
  patient's other note is left out of the softmax altogether, so recognising the patient earns nothing.
  ``supervised_positives = "per_label"`` weighs them label by label instead (each of k's phenotypes counts
  once, shared among the batch's other patients who have it: a rare shared phenotype weighs more than a
  common one; Zhang et al.'s multi-label SupCon). With ``supervised_level = "patients"`` the same is done on B patient embeddings (the normalised mean of
  each patient's anchor and positive). Neither sentence-transformers (its label losses take one class
  per text: BatchAllTripletLoss, SoftmaxLoss) nor pytorch-metric-learning's SupConLoss (one integer
  label per embedding) takes a set of phenotypes per patient, hence this term is written here;
- hierarchy-aware negatives (``hierarchy_strength``): in the temporal term's softmax, each other
  patient's positive counts ``1 - strength * similarity`` times, similarity being the mean of the
  Jaccard overlaps of the two patients' CCS chapters and single-level CCS categories (a log-weight added
  to the logit; the own positive and style-matched hard negatives are not reweighted);

- label-aware targets: MNRL's target for anchor i is one-hot on its own positive; here every other
  pair's positive j gets weight ``label_weight * jaccard(phenotypes_i, phenotypes_j)`` before the row is
  normalised, so two patients with the same conditions are not pushed apart as hard as two unrelated
  ones (soft targets in the spirit of a hierarchical loss). Hard negatives keep target 0. With
  ``label_weight = 0`` this is MNRL exactly.
- phenotype head (``head_weight``): a linear classifier from each note's normalised embedding (anchor and
  positive) to its patient's 25 phenotypes, binary cross-entropy; the supervised head of note-based
  phenotyping, whose gradient moves what predicts the phenotypes into the embedding. It starts at zero
  (deterministic, and the encoder's first steps are the temporal term's alone), is trained with the
  encoder at its own learning rate, and is not part of the saved model;
- distillation: ``distill_weight * (1 - cos(anchor embedding, base model's embedding of the anchor))``,
  the base embeddings computed once before training; keeps the fine-tune near the base model.

The per-pair values travel in the dataset's ``label`` column, one float vector per pair, in the order of
``LabelLayout``: the phenotype indicators, the single-level CCS and chapter indicators, then the base
embedding (distillation). Codes come from fine-tuning patients only (``clinpred.finetune.pairs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer import losses
from torch import Tensor, nn


@dataclass(frozen=True)
class LabelLayout:
    """How many columns of the ``label`` vector each part takes, in this order."""

    phenotypes: int = 0
    ccs_single: int = 0
    chapters: int = 0

    def parts(self, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(phenotypes, single-level CCS, chapters, the rest: the teacher embedding) of a label batch."""
        a = self.phenotypes
        b = a + self.ccs_single
        c = b + self.chapters
        return labels[:, :a], labels[:, a:b], labels[:, b:c], labels[:, c:]


def jaccard(y: Tensor) -> Tensor:
    """(B, B) Jaccard overlap of the rows' indicator sets; 0 where both are empty."""
    y = y.float()
    inter = y @ y.T
    sizes = y.sum(dim=1)
    union = sizes[:, None] + sizes[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1.0), torch.zeros_like(inter))


def per_label_weights(y: Tensor) -> Tensor:
    """(B, B) positive weights of multi-label SupCon taken label by label: row k's labels each count once,
    shared among the other rows that have it (``sum_c y_kc y_lc / n_kc``, n_kc = other rows with label c),
    so a rare shared phenotype weighs more than a common one. Normalised per row by the caller, this is
    the mean over k's labels of SupCon's mean over that label's positives."""
    y = y.float()
    others = y.sum(dim=0, keepdim=True) - y  # for row k: how many other rows have each label
    return (y / others.clamp(min=1.0)) @ y.T


def supervised_contrastive(embeddings: Tensor, weights: Tensor, exclude: Tensor, scale: float) -> Tensor:
    """Mean over rows with a positive of ``-sum_l w_kl log softmax_l(scale * cos(e_k, e_l))``.

    ``weights`` (N, N): how much row l is a positive of row k (normalised per row here); ``exclude`` (N, N,
    bool): pairs left out of the softmax (the row itself, and the same patient's other note). Rows whose
    weights are all zero have no positive in the batch and do not count; with none at all the term is 0
    (still attached to the graph)."""
    e = torch.nn.functional.normalize(embeddings, dim=1)
    logits = (e @ e.T * scale).masked_fill(exclude, float("-inf"))
    weights = weights.masked_fill(exclude, 0.0)
    total = weights.sum(dim=1)
    has = total > 0
    if not bool(has.any()):
        return embeddings.sum() * 0.0
    log_prob = torch.log_softmax(logits[has], dim=1).masked_fill(exclude[has], 0.0)
    return -((weights[has] / total[has, None]) * log_prob).sum(dim=1).mean()


def soft_targets(phenotypes: Tensor, n_columns: int, label_weight: float) -> Tensor:
    """(B, n_columns) targets: 1 on the own positive, label_weight * Jaccard on the other positives, rows
    normalised; columns past B (hard negatives) get 0."""
    y = phenotypes.float()
    b = y.shape[0]
    targets = torch.zeros(b, n_columns, dtype=y.dtype, device=y.device)
    targets[:, :b] = label_weight * jaccard(y)
    targets[torch.arange(b), torch.arange(b)] = 1.0
    return targets / targets.sum(dim=1, keepdim=True)


class ClinicalLoss(nn.Module):
    """MNRL (anchor, positive[, negative]) with optional soft label targets, hierarchy-weighted negatives, a
    supervised contrastive term and a distillation term."""

    def __init__(
        self,
        model: Any,
        *,
        scale: float = 20.0,
        layout: LabelLayout | None = None,
        label_weight: float = 0.0,
        temporal_weight: float = 1.0,
        supervised_weight: float = 0.0,
        supervised_level: str = "notes",
        supervised_positives: str = "jaccard",
        hierarchy_strength: float = 0.0,
        distill_weight: float = 0.0,
        head_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.mnrl = losses.MultipleNegativesRankingLoss(model, scale=scale)
        self.scale = scale
        self.layout = layout or LabelLayout()
        self.label_weight = label_weight
        self.temporal_weight = temporal_weight
        self.supervised_weight = supervised_weight
        self.supervised_level = supervised_level
        self.supervised_positives = supervised_positives
        self.hierarchy_strength = hierarchy_strength
        self.distill_weight = distill_weight
        self.head_weight = head_weight
        self.phenotype_head: nn.Linear | None = None
        if head_weight > 0:
            dimension = model.get_embedding_dimension()
            self.phenotype_head = nn.Linear(dimension, self.layout.phenotypes)
            nn.init.zeros_(self.phenotype_head.weight)
            nn.init.zeros_(self.phenotype_head.bias)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        empty = torch.zeros(len(embeddings[0]), 0, device=embeddings[0].device)
        phenotypes, single, chapters, teacher = self.layout.parts(labels if labels is not None else empty)
        loss = embeddings[0].sum() * 0.0
        if self.temporal_weight > 0:
            loss = loss + self.temporal_weight * self._temporal(embeddings, phenotypes, single, chapters)
        if self.supervised_weight > 0:
            loss = loss + self.supervised_weight * self._supervised(embeddings[0], embeddings[1], phenotypes)
        if self.phenotype_head is not None:
            loss = loss + self.head_weight * self._head(embeddings[0], embeddings[1], phenotypes)
        if self.distill_weight > 0:
            cos = torch.nn.functional.cosine_similarity(embeddings[0], teacher.to(embeddings[0].dtype), dim=1)
            loss = loss + self.distill_weight * (1.0 - cos).mean()
        return loss

    def _temporal(
        self, embeddings: list[Tensor], phenotypes: Tensor, single: Tensor, chapters: Tensor
    ) -> Tensor:
        """MNRL, with soft label targets and/or hierarchy-weighted negatives where asked; MNRL itself else."""
        soft = self.label_weight > 0 and phenotypes.shape[1] > 0
        weighted = self.hierarchy_strength > 0 and chapters.shape[1] > 0
        if not soft and not weighted:
            return self.mnrl.compute_loss_from_embeddings(embeddings, None)
        queries, docs = embeddings[0], torch.cat(embeddings[1:], dim=0)
        logits = self.mnrl.similarity_fct(queries, docs) * self.scale
        b = queries.shape[0]
        if weighted:
            similarity = 0.5 * (jaccard(single) + jaccard(chapters)) if single.shape[1] else jaccard(chapters)
            down = (1.0 - self.hierarchy_strength * similarity).clamp(min=1e-6)
            down.fill_diagonal_(1.0)  # the own positive keeps its full weight
            logits = torch.cat([logits[:, :b] + torch.log(down).to(logits.dtype), logits[:, b:]], dim=1)
        if soft:
            targets = soft_targets(phenotypes, docs.shape[0], self.label_weight)
        else:
            targets = torch.zeros_like(logits)
            targets[torch.arange(b), torch.arange(b)] = 1.0
        return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()

    def _supervised(self, anchors: Tensor, positives: Tensor, phenotypes: Tensor) -> Tensor:
        """The supervised contrastive term over notes (2B, the patient's own other note left out) or over
        patients (B, the mean of each patient's two notes). One pair per patient per batch: the sampler's."""
        b = anchors.shape[0]
        overlap = (
            per_label_weights(phenotypes) if self.supervised_positives == "per_label" else jaccard(phenotypes)
        )
        if self.supervised_level == "patients":
            patients = torch.nn.functional.normalize(anchors, dim=1) + torch.nn.functional.normalize(
                positives, dim=1
            )
            exclude = torch.eye(b, dtype=torch.bool, device=anchors.device)
            return supervised_contrastive(patients, overlap, exclude, self.scale)
        notes = torch.cat([anchors, positives], dim=0)
        patient = torch.arange(b, device=anchors.device).repeat(2)
        exclude = patient[:, None] == patient[None, :]  # itself and the same patient's other note
        return supervised_contrastive(notes, overlap.repeat(2, 2), exclude, self.scale)

    def _head(self, anchors: Tensor, positives: Tensor, phenotypes: Tensor) -> Tensor:
        """Binary cross-entropy of the phenotype head on both notes of each pair (each note is asked for
        its patient's phenotypes), averaged over notes and phenotypes."""
        notes = torch.nn.functional.normalize(torch.cat([anchors, positives], dim=0), dim=1)
        logits = self.phenotype_head(notes.to(self.phenotype_head.weight.dtype))
        targets = phenotypes.float().repeat(2, 1).to(logits.dtype)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "layout": asdict(self.layout),
            "label_weight": self.label_weight,
            "temporal_weight": self.temporal_weight,
            "supervised_weight": self.supervised_weight,
            "supervised_level": self.supervised_level,
            "supervised_positives": self.supervised_positives,
            "hierarchy_strength": self.hierarchy_strength,
            "distill_weight": self.distill_weight,
            "head_weight": self.head_weight,
        }
