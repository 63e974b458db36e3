"""What one simulated round measured: utility, exposure concentration and homogenisation.

Exposure metrics (coverage, Gini, entropy, intra-list diversity) are the evaluation
harness's own (:mod:`harness.evaluation.metrics`), applied to the lists served in one
round. Missing there, and defined here:

*Homogenisation* is the mean Jaccard overlap ``|A ∩ B| / |A ∪ B|`` between the lists ``A``
and ``B`` served to two different users in the same round, over all user pairs (or a seeded
sample of pairs when there are many users). 0: no two users see a common item; 1: everyone
sees the same list. A filter bubble that converges on blockbusters shows up as this rising.

Examples
--------
>>> lists = np.array([[0, 1, 2], [0, 1, 3], [4, 5, 6]])
>>> round(jaccard_overlap(lists, 7), 4)   # pairs: 2/4, 0, 0
0.1667
>>> sample_pairs(3, 10, np.random.default_rng(0)).tolist()   # few users: every pair
[[0, 1], [0, 2], [1, 2]]
"""
from __future__ import annotations

from typing import Any

import numpy as np

from harness.evaluation.metrics import coverage, entropy, exposure, gini, intra_list_diversity


def sample_pairs(n_users: int, max_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct unordered user pairs ``(a < b)``: all of them, or ``max_pairs`` drawn without replacement."""
    total = n_users * (n_users - 1) // 2
    if total <= max_pairs:
        a, b = np.triu_indices(n_users, k=1)
        return np.stack([a, b], axis=1)
    chosen = np.sort(rng.choice(total, size=max_pairs, replace=False))
    a, b = np.triu_indices(n_users, k=1)   # n_users is bounded by the simulation: affordable
    return np.stack([a[chosen], b[chosen]], axis=1)


def jaccard_overlap(lists: np.ndarray, n_items: int, pairs: np.ndarray | None = None) -> float:
    """Mean Jaccard overlap of the item sets of pairs of rows (padding ``-1`` ignored)."""
    lists = np.asarray(lists)
    n = len(lists)
    if pairs is None:
        a, b = np.triu_indices(n, k=1)
        pairs = np.stack([a, b], axis=1)
    if len(pairs) == 0:
        return float("nan")
    member = np.zeros((n, n_items + 1), dtype=np.float32)   # last column soaks up the padding
    member[np.repeat(np.arange(n), lists.shape[1]), np.where(lists >= 0, lists, n_items).ravel()] = 1.0
    member = member[:, :n_items]
    sizes = member.sum(axis=1)
    inter = np.einsum("pj,pj->p", member[pairs[:, 0]], member[pairs[:, 1]])
    union = sizes[pairs[:, 0]] + sizes[pairs[:, 1]] - inter
    return float(np.mean(np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)))


def round_summary(lists: np.ndarray, list_utilities: np.ndarray, chosen: np.ndarray, n_items: int,
                  pairs: np.ndarray | None = None, oracle_utility: np.ndarray | None = None,
                  item_vectors: np.ndarray | None = None) -> dict[str, Any]:
    """Every per-round number, JSON-ready.

    Parameters
    ----------
    lists
        ``(users, k)`` catalogue rows served this round, ``-1`` padded.
    list_utilities
        ``(users, k)`` true utility of each served item, NaN on padding.
    chosen
        ``(users,)`` chosen position or ``-1`` (the outside option).
    oracle_utility
        ``(users,)`` mean true utility of each user's best ``k`` not-yet-consumed items: what a
        recommender that knew the true preferences would serve (a reference, not a target).
    item_vectors
        Vectors for intra-list diversity (the simulation passes the true item factors:
        diversity in taste space, not in the recommender's own embedding).
    """
    counts = exposure(lists, n_items)
    took = chosen >= 0
    picked = list_utilities[np.flatnonzero(took), chosen[took]] if took.any() else np.array([])
    out: dict[str, Any] = {
        "users": int(len(lists)),
        "choice_rate": float(took.mean()) if len(took) else float("nan"),
        "utility_chosen": float(picked.mean()) if len(picked) else float("nan"),
        "utility_list": float(np.nanmean(list_utilities)) if np.isfinite(list_utilities).any() else float("nan"),
        "coverage": coverage(lists, n_items),
        "gini": gini(counts),
        "entropy": entropy(counts),
        "jaccard": jaccard_overlap(lists, n_items, pairs),
        "served_per_list": float((lists >= 0).sum(axis=1).mean()) if len(lists) else 0.0,
    }
    if oracle_utility is not None:
        out["utility_oracle"] = float(np.mean(oracle_utility))
    if item_vectors is not None:
        out["ild"] = intra_list_diversity(lists, item_vectors)
    return out
