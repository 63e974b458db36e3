"""Time-decayed item popularity ("trending"): the one implementation.

Serving ranks its trending and cold-start lists by it (:class:`serving.state_replica.StateReplica`
feeds it every event it applies) and the ``decayed-popular`` baseline
(:class:`streamrec.baselines.decayed_popular.DecayedPopular`) is a thin recommender over it.

The decay is kept without touching every item on every event: an event of weight ``w`` at
time ``t`` adds ``w * 2**((t - anchor) / half_life)`` to its item's mass. The popularity at
time ``now`` is ``mass * 2**((anchor - now) / half_life)``, the same factor for every item,
so ranking needs no decay at all and late events (``t`` below the newest time) are handled
exactly: they simply carry a smaller weight. The anchor moves forward when exponents grow
large, to stay far from float overflow.

Examples
--------
>>> t = DecayedPopularity(half_life=10.0)
>>> t.add(["a", "b", "a"], [0.0, 10.0, 10.0], [1.0, 1.0, 1.0])
>>> [(i, round(s, 2)) for i, s in t.top(2)]
[('a', 1.5), ('b', 1.0)]
>>> t.count("a"), t.count("zzz")
(2, 0)
>>> [(i, round(s, 2)) for i, s in t.top_among(["zzz", "b"], 2)]     # "zzz": never counted
[('b', 1.0), ('zzz', 0.0)]
>>> [round(float(s), 3) for s in t.at(20.0)]      # one more half-life later
[0.75, 0.5]
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from streamrec.state.item_rows import RowIndexed, grow_rows

# Move the anchor before 2**exponent comes near float64's limit (2**1023).
_REBASE_EXPONENT = 512.0


class DecayedPopularity(RowIndexed):
    """Decayed event weight per item, ranked on demand with one vectorised pass.

    Items get rows in the order they are first seen (:meth:`rows`), so a caller that
    registers its own catalogue first can index :attr:`mass` by its catalogue rows.

    Parameters
    ----------
    half_life
        Event-time seconds after which an event counts half.
    capacity
        Rows allocated up front (the arrays double when they fill).
    """

    def __init__(self, half_life: float, capacity: int = 1024):
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self.half_life = float(half_life)
        self.anchor: float | None = None   # event time at which ``mass`` is expressed
        self.newest_time = 0.0
        self._reset_rows()
        self._mass = np.zeros(capacity, dtype=np.float64)
        self._counts = np.zeros(capacity, dtype=np.int64)

    @property
    def mass(self) -> np.ndarray:
        """Per row, the decayed weight expressed at :attr:`anchor`: ranks like the popularity."""
        return self._mass[: len(self._ids)]

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``item_ids``, giving ids never seen the next free rows, in order."""
        rows = self._rows.rows(item_ids)
        self._mass = grow_rows(self._mass, len(self._ids))
        self._counts = grow_rows(self._counts, len(self._ids))
        return rows

    def add(self, item_ids: Sequence[str], times: Iterable[float], weights: Iterable[float]) -> None:
        """Count events: one (item, event time, weight) triple per event."""
        if not item_ids:
            return
        rows = self.rows(item_ids)
        t = np.fromiter(times, dtype=np.float64, count=len(item_ids))
        w = np.fromiter(weights, dtype=np.float64, count=len(item_ids))
        if self.anchor is None:
            self.anchor = float(t.min())
        if (t.max() - self.anchor) / self.half_life > _REBASE_EXPONENT:
            new_anchor = float(t.max())
            self._mass *= 2.0 ** ((self.anchor - new_anchor) / self.half_life)
            self.anchor = new_anchor
        np.add.at(self._mass, rows, w * np.exp2((t - self.anchor) / self.half_life))
        np.add.at(self._counts, rows, 1)
        self.newest_time = max(self.newest_time, float(t.max()))

    def at(self, now: float) -> np.ndarray:
        """Per row, the popularity decayed to event time ``now``."""
        if self.anchor is None:
            return self.mass.copy()
        return self.mass * 2.0 ** ((self.anchor - now) / self.half_life)

    def count(self, item_id: str) -> int:
        """Events counted for ``item_id`` (undecayed)."""
        row = self._index.get(item_id)
        return 0 if row is None else int(self._counts[row])

    def counts(self, item_ids: Sequence[str]) -> np.ndarray:
        row_of, counts = self._index, self._counts
        return np.fromiter((counts[row_of[i]] if i in row_of else 0 for i in item_ids),
                           dtype=np.int64, count=len(item_ids))

    def top(self, k: int, exclude: set[str] | frozenset[str] = frozenset(),
            now: float | None = None) -> list[tuple[str, float]]:
        """The ``k`` most popular items not in ``exclude``, with their decayed score at ``now``.

        Equal popularity ranks the first-seen item first.
        """
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        now = self.newest_time if now is None else now
        mass = self._mass[:n]
        fetch = min(n, k + len(exclude))
        if fetch < n:
            # Every item at least as popular as the fetch-th, so items tied with it are all
            # candidates: argpartition alone would keep an arbitrary subset of such a tie.
            threshold = -np.partition(-mass, fetch - 1)[fetch - 1]
            top = np.flatnonzero(mass >= threshold)
        else:
            top = np.arange(n)
        # Equal mass: first-seen item first (argpartition's order is numpy's implementation detail).
        top = top[np.lexsort((top, -mass[top]))]
        scale = 2.0 ** ((self.anchor - now) / self.half_life)
        out = []
        for row in top:
            item_id = self._ids[row]
            if item_id not in exclude:
                out.append((item_id, float(mass[row] * scale)))
                if len(out) == k:
                    break
        return out

    def top_among(self, item_ids: Sequence[str], k: int, exclude: set[str] | frozenset[str] = frozenset(),
                  now: float | None = None) -> list[tuple[str, float]]:
        """:meth:`top` of ``item_ids`` only (a filter's matching items); ids never counted score 0.

        Equal popularity keeps the order of ``item_ids``.
        """
        ids = [i for i in item_ids if i not in exclude]
        if not ids or k <= 0:
            return []
        row_of, mass = self._index, self._mass
        scores = np.fromiter((mass[row_of[i]] if i in row_of else 0.0 for i in ids), dtype=np.float64, count=len(ids))
        if self.anchor is not None:
            scores *= 2.0 ** ((self.anchor - (self.newest_time if now is None else now)) / self.half_life)
        best = np.lexsort((np.arange(len(ids)), -scores))[:k]
        return [(ids[j], float(scores[j])) for j in best]
