"""The training loss: cross-entropy against a class, or its expectation under a
probabilistic label (noise-aware training on LABEL's ``probs``), times a per-row weight.

A batch's loss is the *sum* of its rows' losses divided by the batch's row count, so
micro-batches (GPipe) and per-worker slices (data-parallel) add up to exactly the loss of
the whole batch.

>>> import torch
>>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
>>> hard = row_losses(logits, torch.tensor([0, 0]), None)
>>> soft = row_losses(logits, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), None)
>>> torch.allclose(hard, soft), round(float(hard[0]), 4)
(True, 0.1269)
>>> float(row_losses(logits, torch.tensor([0, 0]), torch.tensor([0.0, 1.0]))[0])
0.0
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def row_losses(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Per-row loss: cross-entropy for class ids; for probabilities (rows of ``target`` summing
    to 1) the expected cross-entropy under them; multiplied by ``weight`` when given."""
    if target.is_floating_point():
        losses = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
    else:
        losses = F.cross_entropy(logits, target, reduction="none")
    return losses * weight if weight is not None else losses


def batch_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, rows: int) -> torch.Tensor:
    """The sum of the rows' losses divided by ``rows`` (the whole batch's row count)."""
    return row_losses(logits, target, weight).sum() / rows
