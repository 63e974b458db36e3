"""The one recommender contract that baselines and the system's variants share.

A :class:`Recommender` learns from a stream of :class:`~streamrec.contracts.events.Event` one at a
time (River style) and answers top-k requests over the *full catalogue* (implicit style).
The evaluation harness drives every method through exactly these calls, in the same order:

1. :meth:`Recommender.set_catalogue` once, with every item id the run knows about. Items
   that later appear in events without being in the catalogue are appended on first sight.
2. For each request, :meth:`Recommender.recommend_many` (or :meth:`Recommender.recommend`)
   with the items to leave out. The harness excludes what the user already had; the
   recommender itself never hides items on its own, so that every method plays by the
   same rules. Unknown users (cold start) must get a list, never an error.
3. Then :meth:`Recommender.learn_one` / :meth:`Recommender.learn_many` with the event.

Subclasses implement :meth:`learn_one` and either :meth:`score_many` (a dense score per
catalogue item; the base class then does exclusion and top-k selection, vectorised) or
override :meth:`recommend_rows` themselves when they cannot score the whole catalogue.

Exclusions may be given as any collection of item ids, or — the fast path the harness
uses — as an integer ``numpy`` array of catalogue rows (positions in :attr:`item_ids`).

Examples
--------
>>> from streamrec.contracts.events import Event
>>> class MostRecent(Recommender):
...     name = "most-recent"
...     def _on_catalogue(self):
...         self.last = np.zeros(len(self.item_ids))
...     def learn_one(self, event):
...         row = self.row(event.item_id)
...         self.last[row] = event.timestamp
...     def score_many(self, user_ids):
...         return np.broadcast_to(self.last, (len(user_ids), len(self.last)))
>>> rec = MostRecent()
>>> rec.set_catalogue(["a", "b", "c"])
>>> rec.learn_many([Event("u", "b", "click", 1.0), Event("u", "c", "click", 2.0)])
>>> rec.recommend("u", k=2, exclude={"c"})
['b', 'a']
"""
from __future__ import annotations

from typing import Collection, Iterable, Sequence

import numpy as np

from streamrec.contracts.events import Event
from streamrec.contracts.items import Item
from streamrec.state.item_rows import ItemRows


def top_k_rows(scores: np.ndarray, k: int) -> list[np.ndarray]:
    """Per row of ``scores``, the column indices of the ``k`` best finite scores, best first.

    Ties are broken towards the lower column, so results are reproducible. Columns scored
    ``-inf`` (excluded) are never returned, so a row may yield fewer than ``k`` columns.
    """
    n, m = scores.shape
    k = min(k, m)
    if k <= 0:
        return [np.empty(0, dtype=np.int64) for _ in range(n)]
    if k < m:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(m), (n, m))
    picked = np.take_along_axis(scores, part, axis=1)
    # lexsort: last key is primary -> score descending, then column ascending.
    order = np.lexsort((part, -picked), axis=1)
    cols = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(picked, order, axis=1)
    return [c[np.isfinite(v)] for c, v in zip(cols, vals)]


class Recommender:
    """Base class: learn from events one at a time, recommend over the full catalogue.

    Attributes
    ----------
    name : str
        Short name used in result tables.
    item_ids : list of str
        The catalogue, in row order.
    item_index : dict
        ``item_id`` -> row.
    items : dict
        ``item_id`` -> :class:`~streamrec.contracts.items.Item`, when the caller supplied them.
    repeatable : bool
        Whether two identical requests with no learning in between get the same answer.
    """

    name = "recommender"
    #: True when :meth:`learn_one` understands negative events (a weight below zero under the
    #: deployment's :mod:`~streamrec.contracts.semantics`); the harness gives the others only the
    #: events that are not negative, so a dislike is no interaction to them.
    learns_negative_events = False
    #: False when answers depend on earlier requests (e.g. exploration weighted by exposure),
    #: so two identical requests in a row may differ.
    repeatable = True

    def __init__(self) -> None:
        self.catalogue_rows = ItemRows()
        # Aliases of the registry's own list and dict (they only grow in place).
        self.item_ids: list[str] = self.catalogue_rows.ids
        self.item_index: dict[str, int] = self.catalogue_rows.index
        self.items: dict[str, Item] = {}

    # --- catalogue -----------------------------------------------------------------------
    def set_catalogue(self, item_ids: Iterable[str], items: Sequence[Item] | None = None) -> None:
        """Make every item in ``item_ids`` recommendable (before any learning).

        ``items`` optionally carries the :class:`~streamrec.contracts.items.Item` records (title, tags,
        embedding) for methods that use content; collaborative methods ignore it.
        """
        self.items = {it.item_id: it for it in items} if items is not None else getattr(self, "items", {})
        for item_id in item_ids:
            self.catalogue_rows.add(item_id)
        self._on_catalogue()

    def row(self, item_id: str) -> int:
        """The catalogue row of ``item_id``, appending it when it is new."""
        row = self.item_index.get(item_id)
        if row is None:
            row = self.catalogue_rows.add(item_id)
            self._on_catalogue()
        return row

    def _on_catalogue(self) -> None:
        """Hook: the catalogue grew to ``len(self.item_ids)``; size per-item arrays to it."""

    # --- learning ------------------------------------------------------------------------
    def learn_one(self, event: Event) -> None:
        raise NotImplementedError

    def learn_many(self, events: Sequence[Event]) -> None:
        """Learn events in order; override when a batch update is equivalent and faster."""
        for event in events:
            self.learn_one(event)

    # --- recommending --------------------------------------------------------------------
    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        """Scores of shape ``(len(user_ids), len(self.item_ids))``; higher is better."""
        raise NotImplementedError

    def exclusion_rows(self, exclude: Collection[str] | np.ndarray) -> np.ndarray:
        if isinstance(exclude, np.ndarray):
            return exclude.astype(np.int64, copy=False)
        index = self.item_index
        return np.fromiter((index[i] for i in exclude if i in index), dtype=np.int64)

    def recommend_rows(self, user_ids: Sequence[str], k: int,
                       excludes: Sequence[Collection[str] | np.ndarray]) -> list[np.ndarray]:
        """Like :meth:`recommend_many` but returns catalogue rows (the harness's fast path)."""
        scores = np.array(self.score_many(user_ids), dtype=np.float64)
        for r, exclude in enumerate(excludes):
            rows = self.exclusion_rows(exclude)
            if len(rows):
                scores[r, rows] = -np.inf
        return top_k_rows(scores, k)

    def recommend_many(self, user_ids: Sequence[str], k: int,
                       excludes: Sequence[Collection[str] | np.ndarray] | None = None) -> list[list[str]]:
        """Top-``k`` item ids for each user, leaving out that user's ``excludes`` entry."""
        excludes = [()] * len(user_ids) if excludes is None else excludes
        ids = self.item_ids
        return [[ids[j] for j in rows] for rows in self.recommend_rows(user_ids, k, excludes)]

    def recommend(self, user_id: str, k: int = 10,
                  exclude: Collection[str] | np.ndarray = frozenset()) -> list[str]:
        """Top-``k`` item ids for one user, best first, none of them in ``exclude``."""
        return self.recommend_many([user_id], k, [exclude])[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, items={len(self.item_ids)})"
