"""SalUn-CRA: SalUn that never relabels a malignant forget sample, maximising its entropy instead.

Relabelling a malignant (positive, label 1) forget sample teaches the model a harmful
"benign" association and raises false negatives. SalUn-CRA (REFERENCE.md sections 1B and 2)
keeps SalUn's saliency mask and hard constraint, but splits each batch in three parts:

- malignant forget rows: loss -H(softmax(logits)), pushing the output towards uniform; these
  rows never get a label, so the loss does not depend on their labels at all;
- benign forget rows: uniform random labels with cross-entropy (SalUn's relabelling);
- retain rows: class-weighted cross-entropy, w_c = N / (C * N_c) over the retain set.

The batch loss is the sum of each part's mean loss times its row count, over the batch size.
The variant ``entropy_on="all"`` (registered as ``salun-entropy``) maximises the entropy of
every forget row and relabels none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from medunlearn.engine import Batch, LossFn
from medunlearn.methods.base import Context, UnlearnData, split_rows, take_rows
from medunlearn.methods.registry import register
from medunlearn.methods.rl import relabelled_loss
from medunlearn.methods.salun import SalUnParams, masked_relabel


@dataclass
class SalUnCRAParams(SalUnParams):
    """entropy_on: `positive` maximises the entropy of malignant forget rows and relabels the
    benign ones; `all` maximises the entropy of every forget row. Retain CE is class-weighted."""

    class_weighted: bool = True
    entropy_on: Literal["positive", "all"] = "positive"


@dataclass
class SalUnEntropyParams(SalUnCRAParams):
    """SalUn-CRA's `all` variant: entropy maximisation on every forget row, no random labels."""

    entropy_on: Literal["positive", "all"] = "all"


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -H(softmax(logits)) = sum_c p_c log p_c (minimal at the uniform output)."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    return (log_p.exp() * log_p).sum(dim=1).mean()


def entropy_rows(data: UnlearnData, entropy_on: str) -> torch.Tensor:
    """A bool per training row: True where the row's loss is the entropy term alone."""
    if entropy_on == "all":
        return data.is_forget.clone()
    return data.is_forget & (data.dataset.train.labels == data.dataset.positive_class)


def cra_loss(
    data: UnlearnData, params: SalUnCRAParams, context: Context, generator: torch.Generator
) -> LossFn:
    """Entropy rows: -H; every other row: RL's relabelled loss; parts weighted by row count
    (lengths on the host, `split_rows`, never read from the device)."""
    use_entropy = entropy_rows(data, params.entropy_on).to(context.engine.device)
    relabelled = relabelled_loss(data, params, context, generator)

    def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        entropy, other = split_rows(use_entropy[batch.index])
        parts = []
        if len(entropy):
            parts.append(len(entropy) * negative_entropy(logits[entropy]))
        if len(other):
            parts.append(len(other) * relabelled(logits[other], take_rows(batch, other)))
        return sum(parts) / len(batch.index)

    return loss


@register(
    "salun-entropy",
    SalUnEntropyParams,
    "SalUn with max entropy on every forget sample",
    binary_only=True,
)
@register(
    "salun-cra",
    SalUnCRAParams,
    "SalUn; malignant forget samples get max entropy, no label",
    binary_only=True,
)
def salun_cra(model: nn.Module, data: UnlearnData, params: SalUnCRAParams, context: Context):
    """SalUn's mask and hard constraint around the clinical-risk-aware loss."""

    def epoch_loss(_epoch: int, generator: torch.Generator) -> LossFn:
        return cra_loss(data, params, context, generator)

    return masked_relabel(model, data, params, context, epoch_loss)
