"""Re-ranking of retrieved candidates: remove seen, diversify (MMR), explore, explain.

The steps, in order:

1. **Remove seen.** Candidates the user already had (or the request excludes) go.
2. **Exploration slots.** ``k * exploration`` slots (the fractional part drawn at random)
   go to items from an exploration pool: new items (no interactions yet) and items the
   service has shown least, sampled with weights that favour the least exposed. Without
   them exposure collapses onto what is already popular, and new items never collect the
   interactions a model needs to learn them. Slot positions and picks come from a seeded
   :class:`numpy.random.Generator`, so a seed reproduces an answer exactly. The first slot
   always stays with the most relevant candidate.
3. **Diversity.** The other slots are filled greedily by maximal marginal relevance:
   ``(1 - w) * relevance - w * max cosine similarity to the items already picked``, with
   relevance min-max scaled to [0, 1] over the candidates so that ``w`` means the same at
   every score scale.
4. **Reasons.** Each item names the item in the user's recent history whose vector is most
   similar to its own ("because you watched X"); exploration items say ``"new"`` or
   ``"explore"``; without any history the reason is ``"trending"``.

Examples
--------
>>> import numpy as np
>>> vectors = np.array([[1, 0], [0.99, 0.1], [0, 1]], dtype=np.float32)
>>> [r.item_id for r in rerank(["a", "b", "c"], np.array([0.9, 0.89, 0.5]), vectors, k=2,
...                            diversity=0.0)]
['a', 'b']
>>> [r.item_id for r in rerank(["a", "b", "c"], np.array([0.9, 0.89, 0.5]), vectors, k=2,
...                            diversity=0.7)]            # b is too close to a
['a', 'c']
>>> rerank(["a"], np.array([1.0]), vectors[:1], k=1, diversity=0.0, history_ids=["h"],
...        history_vectors=np.array([[1.0, 0.0]], dtype=np.float32))[0].reason
'h'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

TRENDING, NEW, EXPLORE = "trending", "new", "explore"


@dataclass(frozen=True, slots=True)
class Ranked:
    item_id: str
    score: float
    reason: str


@dataclass
class ExplorePool:
    """Items eligible for exploration slots, aligned arrays."""

    ids: Sequence[str]
    scores: np.ndarray                 # relevance to this user, reported as the item's score
    weights: np.ndarray                # sampling weights (higher: less exposed so far)
    new: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # no interactions yet

    def __len__(self) -> int:
        return len(self.ids)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Indices of ``k`` candidates chosen greedily by maximal marginal relevance.

    ``relevance`` is (n,), ``vectors`` (n, dim); ``diversity`` in [0, 1].
    """
    n = len(relevance)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    rel = np.asarray(relevance, dtype=np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones(n)
    if diversity <= 0:
        return np.argsort(-rel, kind="stable")[:k]
    unit = _unit_rows(vectors)
    max_sim = np.full(n, -np.inf)
    chosen = np.zeros(n, dtype=bool)
    picks = np.empty(k, dtype=np.int64)
    for step in range(k):
        # Before the first pick no similarity applies: start with the most relevant item.
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = (1.0 - diversity) * rel - diversity * penalty
        value[chosen] = -np.inf
        j = int(np.argmax(value))
        picks[step], chosen[j] = j, True
        max_sim = np.maximum(max_sim, unit @ unit[j])
    return picks


def exploration_slots(k: int, rate: float, rng: np.random.Generator) -> int:
    """How many of ``k`` slots explore: ``k * rate`` with the fraction drawn at random."""
    if k <= 1 or rate <= 0:
        return 0
    expected = k * min(rate, 1.0)
    whole = int(expected)
    slots = whole + int(rng.random() < expected - whole)
    return min(slots, k - 1)   # the first slot always stays with relevance


def supporting_items(vectors: np.ndarray, history_ids: Sequence[str],
                     history_vectors: np.ndarray) -> list[str | None]:
    """For each row of ``vectors``, the history item most similar to it (None without history)."""
    if len(history_ids) == 0 or len(vectors) == 0:
        return [None] * len(vectors)
    sims = _unit_rows(vectors) @ _unit_rows(history_vectors).T
    return [history_ids[j] for j in np.argmax(sims, axis=1)]


def rerank(candidate_ids: Sequence[str], relevance: np.ndarray, candidate_vectors: np.ndarray, *,
           k: int, diversity: float, exploration: float = 0.0, seed: int = 0,
           exclude: set[str] | frozenset[str] = frozenset(), history_ids: Sequence[str] = (),
           history_vectors: np.ndarray | None = None,
           explore_pool: ExplorePool | None = None) -> list[Ranked]:
    """Re-rank retrieved candidates into at most ``k`` explained recommendations."""
    relevance = np.asarray(relevance, dtype=np.float64)
    rng = np.random.default_rng(seed)
    has_pool = explore_pool is not None and len(explore_pool) > 0
    n_explore = exploration_slots(k, exploration, rng) if has_pool else 0
    explored = _draw_exploration(explore_pool, n_explore, set(exclude), rng) if n_explore else []
    taken = set(exclude) | {r.item_id for r in explored}
    keep = np.fromiter((c not in taken for c in candidate_ids), dtype=bool, count=len(candidate_ids))
    ids = [c for c, kept in zip(candidate_ids, keep) if kept]
    relevance, vectors = relevance[keep], np.asarray(candidate_vectors)[keep]
    picks = mmr(relevance, vectors, k - len(explored), diversity)
    reasons = supporting_items(vectors[picks], history_ids,
                               history_vectors if history_vectors is not None else np.zeros((0, 1)))
    ranked = [Ranked(ids[j], float(relevance[j]), r or TRENDING) for j, r in zip(picks, reasons)]
    if has_pool and len(ranked) + len(explored) < k:   # too few candidates: explore more instead
        explored += _draw_exploration(explore_pool, k - len(ranked) - len(explored),
                                      taken | {r.item_id for r in ranked}, rng)
    if not explored:
        return ranked
    # Exploration items take seeded positions after the first, so users see them mixed in.
    total = len(ranked) + len(explored)
    if ranked:
        positions = set((1 + rng.choice(total - 1, size=len(explored), replace=False)).tolist())
    else:
        positions = set(range(total))
    out, main_iter, explore_iter = [], iter(ranked), iter(explored)
    for pos in range(total):
        out.append(next(explore_iter) if pos in positions else next(main_iter))
    return out


def _draw_exploration(pool: ExplorePool, n: int, exclude: set[str],
                      rng: np.random.Generator) -> list[Ranked]:
    if n <= 0 or len(pool) == 0:
        return []
    eligible = np.fromiter((i not in exclude for i in pool.ids), dtype=bool, count=len(pool))
    weights = np.where(eligible, np.asarray(pool.weights, dtype=np.float64), 0.0)
    total = weights.sum()
    if total <= 0:
        return []
    n = min(n, int(np.count_nonzero(weights)))
    chosen = rng.choice(len(pool), size=n, replace=False, p=weights / total)
    new = pool.new if len(pool.new) == len(pool) else np.zeros(len(pool), dtype=bool)
    return [Ranked(pool.ids[j], float(pool.scores[j]), NEW if new[j] else EXPLORE) for j in chosen]
