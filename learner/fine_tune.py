"""The trainer's torch steps over example batches: tensors from examples, fine-tuning a
candidate for a cycle's mini-batches, and the rank of each example's target under a model.

They hold no state of their own: :class:`learner.trainer.ContinualTrainer` owns the model,
the buffer and the lock, and calls these with what they need.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch

from learner.gate import target_ranks
from learner.model import TwoTower
from learner.ranking_loss import ranking_loss

# (users, seen counts) of a chunk of examples -> the (example row, item row) pairs to exclude
Exclusions = Callable[[np.ndarray, np.ndarray], object]


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The user tower's inputs and the targets of a batch of examples."""
    ages = batch["timestamp"][:, None] - batch["hist_times"]
    return {"hist_items": torch.from_numpy(batch["hist_items"].astype(np.int64)),
            "hist_types": torch.from_numpy(batch["hist_types"].astype(np.int64)),
            "ages": torch.from_numpy(np.where(batch["hist_items"] >= 0, ages, 0.0).astype(np.float32)),
            "lengths": torch.from_numpy(batch["length"].astype(np.int64)),
            "target": torch.from_numpy(batch["target"].astype(np.int64))}


def target_ranks_under(model: TwoTower, examples: dict[str, np.ndarray], matrix: torch.Tensor,
                       exclusions: Exclusions, chunk: int = 256) -> np.ndarray:
    """Rank of each example's target under ``model`` (seen items excluded), in bounded chunks."""
    out = []
    for start in range(0, len(examples["target"]), chunk):
        part = {k: v[start:start + chunk] for k, v in examples.items()}
        with torch.no_grad():
            t = to_torch(part)
            users = model.user_vectors(matrix, t["hist_items"], t["hist_types"], t["ages"], t["lengths"])
            scores = (users @ matrix.T).numpy()
        out.append(target_ranks(scores, part["target"].astype(np.int64),
                                exclusions(part["user"], part["seen_count"])))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def fine_tune(model: TwoTower, optimizer_state: dict, batches: list, n_items: int, log_prob: torch.Tensor,
              rng: np.random.Generator, *, loss: str, learning_rate: float, id_dropout: float) -> list[float]:
    """Train ``model`` on ``batches`` from ``optimizer_state`` (updated in place); the losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    pad_optimizer_state(optimizer_state, list(model.parameters()))
    optimizer.load_state_dict(optimizer_state)
    losses = []
    model.train()
    dropout = id_dropout if (model.items.text_dim or model.items.ext_dim) else 0.0
    for batch in batches:
        t = to_torch(batch)
        keep = torch.from_numpy((rng.random(n_items) >= dropout).astype(np.float32)) if dropout > 0 else None
        matrix = model.items.all(n_items, keep)
        users = model.user_vectors(matrix, t["hist_items"], t["hist_types"], t["ages"], t["lengths"])
        value = ranking_loss(loss, users, matrix, t["target"], log_prob, rng)
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        losses.append(float(value.detach()))
    model.eval()
    optimizer_state.clear()
    optimizer_state.update(copy.deepcopy(optimizer.state_dict()))
    return losses


def pad_optimizer_state(state_dict: dict, params: list[torch.Tensor]) -> None:
    """Grow Adam moments of parameters whose first axis grew (new items), with zeros."""
    for index, param in enumerate(params):
        st = state_dict.get("state", {}).get(index)
        if not st:
            continue
        for key in ("exp_avg", "exp_avg_sq"):
            value = st.get(key)
            if value is not None and value.shape != param.shape and value.shape[1:] == param.shape[1:]:
                st[key] = torch.cat([value, value.new_zeros(param.shape[0] - value.shape[0], *value.shape[1:])])
