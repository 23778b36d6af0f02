"""Temporal contrastive fine-tuning: (note t, note t+1) pairs from fine-tuning patients.

Heavy libraries (torch, sentence-transformers) load only when training starts, so importing the
package to read a config or mine pairs stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clinpred.finetune.config import FinetuneConfig, PairConfig
from clinpred.finetune.pairs import mine_pairs

if TYPE_CHECKING:
    from clinpred.finetune.train import FinetuneReport, finetune, finetune_pairs

__all__ = ["FinetuneConfig", "FinetuneReport", "PairConfig", "finetune", "finetune_pairs", "mine_pairs"]


def __getattr__(name: str) -> Any:
    if name in {"finetune", "finetune_pairs", "FinetuneReport"}:
        from clinpred.finetune import train

        return getattr(train, name)
    raise AttributeError(name)
