"""Most popular so far: every user gets the items with the most events up to now.

The simplest non-personalised baseline, and a strong one on MovieLens, whose ratings are
concentrated on a few hundred films. Each event adds 1 to its item's count (or, given event
semantics, its popularity weight); ties are broken towards the lower catalogue row.

Examples
--------
>>> from streamrec.contracts.events import Event
>>> rec = MostPopular()
>>> rec.set_catalogue(["a", "b", "c"])
>>> rec.learn_many([Event("u", "b", "click", 1.0), Event("v", "b", "click", 2.0),
...                 Event("v", "c", "click", 3.0)])
>>> rec.recommend("w", k=2)
['b', 'c']
>>> rec.recommend("v", k=2, exclude={"b", "c"})
['a']
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from streamrec.contracts.events import Event
from streamrec.contracts.semantics import EventSemantics, popularity_weights
from streamrec.ranking.recommender import Recommender
from streamrec.state.item_rows import grow_rows


class MostPopular(Recommender):
    """Rank items by their (weighted) event count so far; the same list for everyone.

    Parameters
    ----------
    semantics
        What each event adds (:func:`~streamrec.contracts.semantics.popularity_weights`: its
        weight, nothing when negative); None: every event adds 1.
    """

    name = "popular"

    def __init__(self, semantics: EventSemantics | None = None, seed: int | None = None):
        super().__init__()
        self.semantics = semantics
        self.counts = np.zeros(0, dtype=np.float64)

    def _on_catalogue(self) -> None:
        self.counts = grow_rows(self.counts, len(self.item_ids))

    def learn_one(self, event: Event) -> None:
        self.learn_many([event])

    def learn_many(self, events: Sequence[Event]) -> None:
        rows = np.fromiter((self.row(e.item_id) for e in events), dtype=np.int64, count=len(events))
        np.add.at(self.counts, rows, popularity_weights(events, self.semantics))

    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        n = len(self.item_ids)
        return np.broadcast_to(self.counts[:n], (len(user_ids), n))
