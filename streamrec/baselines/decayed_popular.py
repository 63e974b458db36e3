"""Time-decayed popularity ("trending") as a baseline: recent events count more than old ones.

A thin :class:`~streamrec.ranking.recommender.Recommender` over the one decayed popularity,
:class:`streamrec.state.popularity.DecayedPopularity` (the same one serving's trending list
uses): it registers the catalogue in row order, so the popularity's rows are the catalogue's
rows, and scores every user by the decayed event weight of each item.

Examples
--------
>>> from streamrec.contracts.events import Event
>>> rec = DecayedPopular(half_life_s=10.0)
>>> rec.set_catalogue(["old", "new"])
>>> rec.learn_many([Event("u", "old", "click", 0.0), Event("v", "old", "click", 0.0),
...                 Event("w", "new", "click", 30.0)])
>>> rec.recommend("x", k=2)    # 2 events 3 half-lives ago weigh 0.25 < 1
['new', 'old']
>>> round(float(rec.decayed_scores(30.0)[0]), 3)
0.25
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from streamrec.contracts.events import Event
from streamrec.contracts.semantics import EventSemantics, popularity_weights
from streamrec.ranking.recommender import Recommender
from streamrec.state.popularity import DecayedPopularity


class DecayedPopular(Recommender):
    """Rank items by exponentially time-decayed event weight (event time, not arrival).

    Parameters
    ----------
    half_life_s
        Event-time seconds after which an event counts half.
    semantics
        What each event adds (:func:`~streamrec.contracts.semantics.popularity_weights`: its
        weight, nothing when negative); None: every event adds 1.
    """

    name = "decayed-popular"

    def __init__(self, half_life_s: float = 3 * 86400.0, semantics: EventSemantics | None = None,
                 seed: int | None = None):
        super().__init__()
        if half_life_s <= 0:
            raise ValueError("half_life_s must be positive")
        self.half_life_s = float(half_life_s)
        self.semantics = semantics
        self.popularity = DecayedPopularity(self.half_life_s)

    def _on_catalogue(self) -> None:
        # Catalogue rows are appended only, so registering the new tail keeps rows equal.
        self.popularity.rows(self.item_ids[len(self.popularity):])

    @property
    def scores(self) -> np.ndarray:
        """Per catalogue row, the decayed weight at the popularity's anchor (ranks as at any time)."""
        return self.popularity.mass

    def learn_one(self, event: Event) -> None:
        self.learn_many([event])

    def learn_many(self, events: Sequence[Event]) -> None:
        if not events:
            return
        item_ids = [e.item_id for e in events]
        for item_id in item_ids:
            self.row(item_id)   # an item new to the catalogue gets its row here first
        self.popularity.add(item_ids, (e.timestamp for e in events),
                            popularity_weights(events, self.semantics))

    def decayed_scores(self, now: float) -> np.ndarray:
        """Scores in event weight decayed to time ``now`` (for inspection; ranking ignores it)."""
        return self.popularity.at(now)

    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        return np.broadcast_to(self.scores, (len(user_ids), len(self.item_ids)))
