"""Ranking losses for the two-tower model (all take user vectors and the item matrix).

``softmax``
    Cross-entropy over the full catalogue: exact, and cheap while the catalogue fits a
    (batch x items) matrix (MovieLens: 256 x 1,682).
``sampled``
    In-batch softmax: the other targets of the batch are the negatives, with the logQ
    correction (subtract log of each item's sampling probability, estimated from its
    count) so popular items are not over-penalised; duplicate targets are masked.
``bpr``
    Bayesian personalised ranking against one uniformly drawn negative per example.

Examples
--------
>>> import torch
>>> u, v = torch.randn(4, 8), torch.randn(10, 8)
>>> t = torch.tensor([1, 2, 3, 1])
>>> float(ranking_loss("softmax", u, v, t)) > 0
True
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("softmax", "sampled", "bpr")


def ranking_loss(kind: str, users: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                 item_log_prob: torch.Tensor | None = None,
                 rng: np.random.Generator | None = None) -> torch.Tensor:
    if kind == "softmax":
        return F.cross_entropy(users @ items.T, targets)
    if kind == "sampled":
        positives = items.index_select(0, targets)
        logits = users @ positives.T
        if item_log_prob is not None:
            logits = logits - item_log_prob.index_select(0, targets).unsqueeze(0)
        same = targets.unsqueeze(0) == targets.unsqueeze(1)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(targets)))
    if kind == "bpr":
        rng = rng or np.random.default_rng(0)
        negatives = torch.from_numpy(rng.integers(0, len(items), len(targets)))
        margin = (users * (items.index_select(0, targets) - items.index_select(0, negatives))).sum(-1)
        return -F.logsigmoid(margin).mean()
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
