"""Time-decayed popularity ("trending"): recent events count more than old ones.

Each event adds ``weight * 2 ** ((t - t0) / half_life)`` to its item, where ``t`` is the
event time and ``t0`` an anchor. Decaying every item by the same factor never changes the
ranking, so instead of decaying all items on every event the new weight is *grown*
relative to the anchor; when the growth factor gets large the scores are rescaled and the
anchor moved (exactly equivalent, and O(1) per event). Late events (``t`` below the
newest time) simply carry a smaller weight, as in :mod:`streamrec.state.popularity`.

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

from typing import Mapping, Sequence

import numpy as np

from streamrec.contracts.events import Event
from streamrec.ranking.recommender import Recommender, grow_rows

# Rescale before 2**exponent can lose precision against older scores (float64: 2**1023).
_MAX_EXPONENT = 60.0


class DecayedPopular(Recommender):
    """Rank items by exponentially time-decayed event weight (event time, not arrival).

    Parameters
    ----------
    half_life_s
        Event-time seconds after which an event counts half.
    weights
        Event type -> weight; types not listed count 1.
    """

    name = "decayed-popular"

    def __init__(self, half_life_s: float = 3 * 86400.0, weights: Mapping[str, float] | None = None,
                 seed: int | None = None):
        super().__init__()
        if half_life_s <= 0:
            raise ValueError("half_life_s must be positive")
        self.half_life_s = float(half_life_s)
        self.weights = dict(weights or {})
        self.anchor: float | None = None   # event time at which ``scores`` are expressed
        self.scores = np.zeros(0, dtype=np.float64)

    def _on_catalogue(self) -> None:
        self.scores = grow_rows(self.scores, len(self.item_ids))

    def _rebase(self, t: float) -> None:
        if self.anchor is None:
            self.anchor = t
        elif (t - self.anchor) / self.half_life_s > _MAX_EXPONENT:
            self.scores *= 2.0 ** ((self.anchor - t) / self.half_life_s)
            self.anchor = t

    def learn_one(self, event: Event) -> None:
        self.learn_many([event])

    def learn_many(self, events: Sequence[Event]) -> None:
        if not events:
            return
        rows = np.fromiter((self.row(e.item_id) for e in events), dtype=np.int64, count=len(events))
        times = np.fromiter((e.timestamp for e in events), dtype=np.float64, count=len(events))
        w = np.fromiter((self.weights.get(e.event_type, 1.0) for e in events), dtype=np.float64,
                        count=len(events))
        self._rebase(float(times.max()))
        np.add.at(self.scores, rows, w * np.exp2((times - self.anchor) / self.half_life_s))

    def decayed_scores(self, now: float) -> np.ndarray:
        """Scores in event weight decayed to time ``now`` (for inspection; ranking ignores it)."""
        n = len(self.item_ids)
        if self.anchor is None:
            return self.scores[:n].copy()
        return self.scores[:n] * 2.0 ** ((self.anchor - now) / self.half_life_s)

    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        n = len(self.item_ids)
        return np.broadcast_to(self.scores[:n], (len(user_ids), n))
