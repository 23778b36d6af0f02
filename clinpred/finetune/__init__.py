"""Temporal contrastive fine-tuning: (note t, note t+1) pairs from fine-tuning patients.

    clinpred finetune --synthetic demo --base PATH_OR_ID --out runs/ft        # one process
    torchrun --nproc_per_node 4 -m clinpred.cli finetune --data MIMIC --base google/embeddinggemma-300m --out runs/ft
    accelerate launch --num_processes 4 -m clinpred.cli finetune ...           # the same, via accelerate

Several GPUs use the trainer's own data parallelism: every process mines the same pairs and builds the
same patient-aware batches (same seed and epoch); accelerate gives batch i to process i mod R, and the
sampler makes each group of R batches trained at one step patient-disjoint as a whole, so the property
holds even with ``gather_across_devices = true``. ``batch_size`` is per process. Only the first process
writes the final model and clinpred-finetune.json. Resume with the same command plus ``--resume``.

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
