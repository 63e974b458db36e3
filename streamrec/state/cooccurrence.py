"""Online item-to-item co-occurrence, and its blend with the model's scores.

Two items co-occur when one user had both within ``window`` consecutive distinct items
(:class:`~streamrec.state.recent_items.RecentItems`). :class:`Cooccurrence` keeps the pair
counts ``C`` and per-item counts ``n`` online, optionally decayed in event time with a
half-life (as the streams worker's popularity is), and scores a user by the cosine
similarities ``C[i, j] / sqrt(n[i] n[j])`` of their ``history`` most recent items, the
``j``-th newest weighted ``recency_decay ** j``.

Where the counts live (:mod:`streamrec.state.pair_counts`): an exact dense matrix while the
catalogue has at most ``max_dense_items`` items; when it grows past that, each item's
``neighbours`` strongest pairs are carried over into bounded lists (Filtered Space-Saving),
so memory per item is constant, an event costs the same at any catalogue size, and the
signal stays on. The lists are approximate where an item has more partners than it keeps;
what that costs on MovieLens is measured in docs/evaluation.md. Either way
:meth:`Cooccurrence.neighbour_scores` returns only the items with evidence: the candidates
co-occurrence adds to a request.

Why it is part of the system: the two-tower model learns from mini-batches once per cycle,
while co-occurrence counts are current after every event; in the prequential evaluation
each alone is behind their blend, so the two are complementary (see :func:`blend`,
``harness.evaluation.system_variants``, and the numbers in docs/evaluation.md).

Decay is implemented without touching every count per event: an increment at event time
``t`` is scaled by ``2 ** ((t - t_ref) / half_life)`` and everything is rescaled when that
factor grows large. Cosine similarity is scale-free, so only relative weights matter.

Where it runs. Serving's state replica (:class:`serving.state_replica.StateReplica`)
learns it from every event it reads from the ``events`` topic (the same events trending
counts), and the one ranking pipeline (:func:`streamrec.ranking.pipeline.relevance`, which
calls :func:`blend`) mixes it into the model's scores before re-ranking, for serving and for
the evaluation's system variants alike. Its per-user memory of recent items is its own
rather than the user's state, because a state adopted from a changelog already holds events
whose pairs were never counted by this process.

Examples
--------
>>> co = Cooccurrence(window=10)
>>> co.learn("u1", "a", 1.0); co.learn("u1", "b", 2.0)   # u1 had a, then b
>>> co.learn("u2", "c", 2.0); co.learn("u2", "a", 3.0)   # u2 had c, then a
>>> rows, scores = co.neighbour_scores(["a"])            # a co-occurred with b and c
>>> sorted(co.item_ids[r] for r in rows), co.bounded
(['b', 'c'], False)
>>> small = Cooccurrence(max_dense_items=2, neighbours=1)
>>> small.rows(["a", "b", "c"]).tolist(), small.bounded  # the third item moves it to lists
([0, 1, 2], True)
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from streamrec.contracts.events import Event
from streamrec.contracts.semantics import EventSemantics
from streamrec.settings import Settings
from streamrec.state.item_rows import ItemRows, grow_rows
from streamrec.state.pair_counts import DensePairs, TopKPairs
from streamrec.state.recent_items import RecentItems

log = logging.getLogger(__name__)

RESCALE_AT = 1e6


class Cooccurrence:
    """Decayed item-item co-occurrence counts over users' recent items.

    Parameters
    ----------
    window
        Pairs are formed between a new item and at most this many of the user's most recent
        earlier distinct items.
    history
        How many of the user's most recent distinct items score a recommendation.
    recency_decay
        Weight of the ``j``-th most recent history item is ``recency_decay ** j``.
    half_life_s
        Half-life of a count in event time (0: no decay).
    max_dense_items
        Largest catalogue counted exactly in a dense matrix; beyond it, bounded lists.
    neighbours
        Pairs kept per item in the bounded lists.
    """

    def __init__(self, window: int = 50, history: int = 20, recency_decay: float = 0.8,
                 half_life_s: float = 0.0, max_dense_items: int = 10_000, neighbours: int = 100,
                 capacity: int = 1024):
        self.window, self.history, self.recency_decay = window, history, recency_decay
        self.half_life_s, self.max_dense_items, self.neighbours = half_life_s, max_dense_items, neighbours
        self.catalogue_rows = ItemRows()
        self.item_ids, self.item_index = self.catalogue_rows.ids, self.catalogue_rows.index   # grow in place
        capacity = min(capacity, max(max_dense_items, 1))
        self.store: DensePairs | TopKPairs = DensePairs(capacity) if max_dense_items > 0 \
            else TopKPairs(neighbours, capacity)
        self.counts = np.zeros(capacity, dtype=np.float64)
        self.t_ref: float | None = None
        self.recent = RecentItems(window)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Cooccurrence":
        """The scorer ``settings`` describe (the ``cooccurrence_*`` settings)."""
        s = settings
        return cls(s.cooccurrence_window, s.cooccurrence_history, s.cooccurrence_recency_decay,
                   s.cooccurrence_half_life_s, s.cooccurrence_max_dense_items, s.cooccurrence_neighbours)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def bounded(self) -> bool:
        """Whether pairs are kept in bounded per-item lists (the catalogue outgrew the matrix)."""
        return isinstance(self.store, TopKPairs)

    def memory_bytes(self) -> int:
        """Bytes the counts of the current catalogue take."""
        n = len(self.item_ids)
        return self.store.memory_bytes(n) + n * self.counts.itemsize

    # -- catalogue ---------------------------------------------------------------------------
    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``item_ids``, adding unknown items (catalogue growth needs no restart)."""
        out = self.catalogue_rows.rows(item_ids)
        n = len(self.item_ids)
        if not self.bounded and n > self.max_dense_items:
            before = len(self.counts)
            self.store = TopKPairs.from_dense(self.store, min(before, n), self.neighbours)
            log.warning("co-occurrence: %d items exceed the dense matrix's %d; each item now keeps its "
                        "%d strongest pairs", n, self.max_dense_items, self.neighbours)
        self.store.grow(n)
        self.counts = grow_rows(self.counts, n)
        return out

    # -- learning ----------------------------------------------------------------------------
    def _scale(self, timestamp: float) -> float:
        if self.half_life_s <= 0:
            return 1.0
        if self.t_ref is None:
            self.t_ref = timestamp
        scale = 2.0 ** ((timestamp - self.t_ref) / self.half_life_s)
        if scale > RESCALE_AT:   # keep magnitudes bounded: everything is relative anyway
            n = len(self.item_ids)
            self.store.rescale(n, scale)
            self.counts[:n] /= scale
            self.t_ref, scale = timestamp, 1.0
        return max(scale, 1e-12)

    def learn(self, user_id: str, item_id: str, timestamp: float, weight: float = 1.0) -> None:
        """Learn one event of ``user_id`` against the items this scorer saw them have before.

        The new item pairs once with each of the user's ``window`` most recent distinct items;
        an item already among them adds no pair and no count (as in item-kNN).
        """
        row = int(self.rows([item_id])[0])
        earlier = self.recent.push(user_id, row)
        if earlier is None:
            return
        w = weight * self._scale(timestamp)
        if len(earlier):
            self.store.add(row, earlier, w)
        self.counts[row] += w

    def learn_event(self, event: Event, semantics: EventSemantics) -> None:
        """Learn one event at its weight under ``semantics``; a negative event is not counted
        (a disliked item is evidence of nothing the user wants, so it reinforces no pair)."""
        weight = semantics.weight_of(event)
        if weight >= 0:
            self.learn(event.user_id, event.item_id, event.timestamp, weight)

    # -- scoring -----------------------------------------------------------------------------
    def forget_user(self, user_id: str) -> None:
        """Drop the user's recent items (a user deletion).

        The pair and item counts are sums over every user with no user in them, so what the
        user added to them stays (decaying with the half-life when one is set).
        """
        self.recent.forget(user_id)

    def _weighted_history(self, history: Sequence[str], norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        recent = [i for i in dict.fromkeys(reversed(history)) if i in self.item_index][: self.history]
        rows = np.fromiter((self.item_index[i] for i in recent), np.int64, len(recent))
        return rows, self.recency_decay ** np.arange(len(rows), dtype=np.float64) / norms[rows]

    def neighbour_scores(self, history: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scores)`` of every item with a positive score for ``history`` (ids, oldest first).

        These are the candidates co-occurrence adds to a request; every other item scores 0.
        """
        norms = np.maximum(np.sqrt(self.counts), 1e-6)
        rows, weights = self._weighted_history(history, norms)
        if not len(rows):
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        found, sums = self.store.neighbour_sums(rows, weights)
        keep = found < len(self.item_ids)
        return found[keep], sums[keep] / norms[found[keep]]

    def scores(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """``(len(histories), len(self))`` scores; each history is item ids, oldest first.

        ``sum_i w_i C[i, j] / (norm_i norm_j)`` is computed as one weighted row sum divided
        by ``norm_j``. An item never counted has no pairs, so its score is 0 either way.
        """
        n = len(self.item_ids)
        norms = np.maximum(np.sqrt(self.counts[:n]), 1e-6)
        out = np.zeros((len(histories), n), dtype=np.float64)
        for r, history in enumerate(histories):
            if self.bounded:
                rows, scores = self.neighbour_scores(history)
                out[r, rows] = scores
                continue
            rows, weights = self._weighted_history(history, norms)
            if len(rows):
                out[r] = self.store.row_sums(rows, weights, n) / norms
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
