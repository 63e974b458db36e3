"""Online item-to-item co-occurrence, and its blend with the model's scores.

Two items co-occur when one user had both within ``window`` consecutive distinct items
(the recent-items list the streams state already keeps). :class:`Cooccurrence` keeps the
pair counts ``C`` and per-item counts ``n`` online, optionally decayed in event time with a
half-life (as the streams worker's popularity is), and scores a user by the cosine
similarities ``C[i, j] / sqrt(n[i] n[j])`` of their ``history`` most recent items, the
``j``-th newest weighted ``recency_decay ** j``.

Why it is part of the system: the two-tower model learns from mini-batches once per cycle,
while co-occurrence counts are exact and current after every event; in the prequential
evaluation each alone is behind their blend, so the two are complementary (see
:func:`blend`, ``harness.evaluation.system_variants``, and the numbers in docs/evaluation.md).

Decay is implemented without touching the whole matrix per event: an increment at event
time ``t`` is scaled by ``2 ** ((t - t_ref) / half_life)`` and everything is rescaled when
that factor grows large. Cosine similarity is scale-free, so only relative weights matter.

``C`` is a dense float32 matrix: fine to ``max_items`` (10,000 items: 400 MB); larger
catalogues are refused rather than silently swapping.

Where it runs. Serving's state replica (:class:`serving.state_replica.StateReplica`)
learns it from every event it reads from the ``events`` topic (the same events trending
counts, so a user state adopted from the streams changelog does not hide any), and
the one ranking pipeline (:func:`streamrec.ranking.pipeline.relevance`, which calls
:func:`blend`) mixes it into the model's scores before re-ranking, for serving and for the
evaluation's system variants alike; both learn it with :meth:`Cooccurrence.learn`. Each user's last ``window``
distinct items are kept here (as rows, about 4 bytes each) rather than read from the user's
state, because a state adopted from a changelog already holds events whose pairs were never
counted by this process.

Examples
--------
>>> co = Cooccurrence(window=10)
>>> co.learn("u1", "a", 1.0); co.learn("u1", "b", 2.0)   # u1 had a, then b
>>> co.learn("u2", "c", 2.0); co.learn("u2", "a", 3.0)   # u2 had c, then a
>>> rows = co.rows(["a", "b", "c"])
>>> s = co.scores([["a"]])[0]            # a co-occurred with b and c
>>> bool(s[rows[1]] > 0 and s[rows[2]] > 0)
True
"""
from __future__ import annotations

from array import array
from typing import Sequence

import numpy as np

from streamrec.state.item_rows import ItemRows

RESCALE_AT = 1e6


class Cooccurrence:
    """Decayed item-item co-occurrence counts over users' recent items.

    Parameters
    ----------
    window
        Pairs are formed between a new item and at most this many of the user's most recent
        earlier items.
    history
        How many of the user's most recent distinct items score a recommendation.
    recency_decay
        Weight of the ``j``-th most recent history item is ``recency_decay ** j``.
    half_life_s
        Half-life of a count in event time (0: no decay).
    max_items
        Largest catalogue the dense matrix accepts.
    """

    def __init__(self, window: int = 50, history: int = 20, recency_decay: float = 0.8,
                 half_life_s: float = 0.0, max_items: int = 10_000, capacity: int = 1024):
        self.window, self.history, self.recency_decay = window, history, recency_decay
        self.half_life_s, self.max_items = half_life_s, max_items
        self.catalogue_rows = ItemRows()
        self.item_ids, self.item_index = self.catalogue_rows.ids, self.catalogue_rows.index   # grow in place
        self.pairs = np.zeros((capacity, capacity), dtype=np.float32)
        self.counts = np.zeros(capacity, dtype=np.float64)
        self.t_ref: float | None = None
        self.user_recent: dict[str, array] = {}   # user -> last ``window`` distinct rows, oldest first

    def __len__(self) -> int:
        return len(self.item_ids)

    # -- catalogue ---------------------------------------------------------------------------
    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``item_ids``, adding unknown items (catalogue growth needs no restart)."""
        out = self.catalogue_rows.rows(item_ids)
        n = len(self.item_ids)
        if n > self.max_items:
            raise ValueError(f"Cooccurrence keeps a dense {n}x{n} matrix; catalogue exceeds max_items={self.max_items}")
        if n > len(self.counts):
            size = min(max(n, 2 * len(self.counts)), self.max_items)
            pairs = np.zeros((size, size), dtype=np.float32)
            pairs[: len(self.pairs), : len(self.pairs)] = self.pairs
            self.pairs = pairs
            self.counts = np.concatenate([self.counts, np.zeros(size - len(self.counts))])
        return out

    # -- learning ----------------------------------------------------------------------------
    def _scale(self, timestamp: float) -> float:
        if self.half_life_s <= 0:
            return 1.0
        if self.t_ref is None:
            self.t_ref = timestamp
        scale = 2.0 ** ((timestamp - self.t_ref) / self.half_life_s)
        if scale > RESCALE_AT:   # keep magnitudes bounded: everything is relative anyway
            self.pairs /= np.float32(scale)
            self.counts /= scale
            self.t_ref, scale = timestamp, 1.0
        return max(scale, 1e-12)

    def learn(self, user_id: str, item_id: str, timestamp: float, weight: float = 1.0) -> None:
        """Learn one event of ``user_id`` against the items this scorer saw them have before.

        The new item pairs once with each of the user's ``window`` most recent distinct items;
        an item already among them adds no pair and no count (as in item-kNN).
        """
        row = int(self.rows([item_id])[0])
        recent = self.user_recent.get(user_id)
        if recent is None:
            recent = self.user_recent[user_id] = array("i")
        if row in recent:             # a repeat: no pair, no count; it just becomes the newest
            recent.remove(row)
        else:
            self._add(row, np.frombuffer(recent, dtype=np.int32), timestamp, weight)
        recent.append(row)
        if len(recent) > self.window:
            del recent[0]

    def _add(self, row: int, hist: np.ndarray, timestamp: float, weight: float) -> None:
        w = weight * self._scale(timestamp)
        if len(hist):
            self.pairs[row, hist] += np.float32(w)
            self.pairs[hist, row] += np.float32(w)
        self.counts[row] += w

    # -- scoring -----------------------------------------------------------------------------
    def scores(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """``(len(histories), len(self))`` scores; each history is item ids, oldest first.

        ``sum_i w_i C[i, j] / (norm_i norm_j)`` is computed as one weighted row sum divided
        by ``norm_j`` (serving calls this per request: no ``history x catalogue`` temporary).
        An item never counted has no pairs, so its score is 0 either way.
        """
        n = len(self.item_ids)
        norms = np.maximum(np.sqrt(self.counts[:n]), 1e-6)
        out = np.zeros((len(histories), n), dtype=np.float64)
        for r, history in enumerate(histories):
            recent = [i for i in dict.fromkeys(reversed(history)) if i in self.item_index][: self.history]
            if not recent:
                continue
            rows = np.fromiter((self.item_index[i] for i in recent), np.int64, len(recent))
            weights = self.recency_decay ** np.arange(len(rows), dtype=np.float64) / norms[rows]
            out[r] = (weights.astype(np.float32) @ self.pairs[rows, :n]) / norms
        return out


def blend(model_scores: np.ndarray, cooccurrence_scores: np.ndarray, weight: float) -> np.ndarray:
    """``z(model) + weight * cooccurrence / std(cooccurrence)``, per row.

    Each row of model scores is standardised over the catalogue and the co-occurrence row is
    divided by its own standard deviation, so ``weight`` means the same for every user and
    at every score scale; a row without co-occurrence evidence keeps the model's order.
    ``weight=0`` is the model alone.

    >>> blend(np.array([[1.0, 2.0, 3.0]]), np.array([[3.0, 0.0, 0.0]]), 0.0).argmax().item()
    2
    >>> blend(np.array([[1.0, 2.0, 3.0]]), np.array([[3.0, 0.0, 0.0]]), 5.0).argmax().item()
    0
    """
    model_scores = np.asarray(model_scores, dtype=np.float64)
    z = (model_scores - model_scores.mean(axis=1, keepdims=True)) / \
        np.maximum(model_scores.std(axis=1, keepdims=True), 1e-12)
    if weight <= 0:
        return z
    co = np.asarray(cooccurrence_scores, dtype=np.float64)
    return z + weight * co / np.maximum(co.std(axis=1, keepdims=True), 1e-12)


__all__ = ["Cooccurrence", "blend"]
