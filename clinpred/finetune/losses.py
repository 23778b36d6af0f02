"""The label-aware loss and the distillation regulariser, both on top of sentence-transformers' MNRL.

``ClinicalLoss`` embeds the columns once (anchor, positive, optional style-matched negative) and adds:

- label-aware targets: MNRL's target for anchor i is one-hot on its own positive; here every other
  pair's positive j gets weight ``label_weight * jaccard(phenotypes_i, phenotypes_j)`` before the row is
  normalised, so two patients with the same conditions are not pushed apart as hard as two unrelated
  ones (soft targets in the spirit of a hierarchical loss). Hard negatives keep target 0. With
  ``label_weight = 0`` this is MNRL exactly.
- distillation: ``distill_weight * (1 - cos(anchor embedding, base model's embedding of the anchor))``,
  the base embeddings computed once before training; keeps the fine-tune near the base model.

The per-pair values travel in the dataset's ``label`` column, one float vector per pair: the
phenotype indicators (``label_dim`` of them, label-aware only) then the base embedding (distillation).
Phenotypes come from fine-tuning patients only (``clinpred.finetune.pairs.phenotype_labels``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer import losses
from torch import Tensor, nn


def soft_targets(phenotypes: Tensor, n_columns: int, label_weight: float) -> Tensor:
    """(B, n_columns) targets: 1 on the own positive, label_weight * Jaccard on the other positives, rows
    normalised; columns past B (hard negatives) get 0."""
    y = phenotypes.float()
    inter = y @ y.T
    sizes = y.sum(dim=1)
    union = sizes[:, None] + sizes[None, :] - inter
    jaccard = torch.where(union > 0, inter / union.clamp(min=1.0), torch.zeros_like(inter))
    b = y.shape[0]
    targets = torch.zeros(b, n_columns, dtype=y.dtype, device=y.device)
    targets[:, :b] = label_weight * jaccard
    targets[torch.arange(b), torch.arange(b)] = 1.0
    return targets / targets.sum(dim=1, keepdim=True)


class ClinicalLoss(nn.Module):
    """MNRL (anchor, positive[, negative]) with optional soft label targets and a distillation term."""

    def __init__(
        self,
        model: Any,
        *,
        scale: float = 20.0,
        label_dim: int = 0,
        label_weight: float = 0.0,
        distill_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.mnrl = losses.MultipleNegativesRankingLoss(model, scale=scale)
        self.scale = scale
        self.label_dim = label_dim
        self.label_weight = label_weight
        self.distill_weight = distill_weight

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        if self.label_dim:
            queries, docs = embeddings[0], torch.cat(embeddings[1:], dim=0)
            logits = self.mnrl.similarity_fct(queries, docs) * self.scale
            targets = soft_targets(labels[:, : self.label_dim], docs.shape[0], self.label_weight)
            loss = -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
        else:
            loss = self.mnrl.compute_loss_from_embeddings(embeddings, None)
        if self.distill_weight > 0:
            teacher = labels[:, self.label_dim :].to(embeddings[0].dtype)
            cos = torch.nn.functional.cosine_similarity(embeddings[0], teacher, dim=1)
            loss = loss + self.distill_weight * (1.0 - cos).mean()
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "label_dim": self.label_dim,
            "label_weight": self.label_weight,
            "distill_weight": self.distill_weight,
        }
