"""Applying decoded events to user state: the one routine the streams worker and serving share.

Both read the ``events`` topic, decode it with :func:`~streamrec.contracts.events.decode_message`
and must then update every user's :class:`~streamrec.state.user_state.UserState` identically
(same positions, event semantics, half-life and limits), or serving's replica would drift from the
changelog the streams worker writes. This module is that update; what each process does
around it differs (the streams worker encodes the states it changed for its changelog,
serving feeds trending, co-occurrence and online quality).

Events are grouped by user, keeping source order within each user, so each user's state is
fetched and updated (one vectorised step in :meth:`UserState.apply`) once per call.

Examples
--------
>>> from streamrec.contracts.events import Event
>>> from streamrec.settings import Settings
>>> from streamrec.state.item_vectors import ItemVectors
>>> s = Settings(vector_dim=8)
>>> states = {}
>>> get = lambda u: states.setdefault(u, UserState.empty(s.vector_dim))
>>> located = [(Event("u", "i", "click", 1.0), (0, 7, 0)), (Event("v", "j", "click", 2.0), (0, 7, 1)),
...            (Event("u", "k", "click", 3.0), (0, 7, 2))]
>>> [(r.user_id, r.applied) for r in apply_located(located, get, ItemVectors(8), s)]
[('u', [0, 2]), ('v', [1])]
>>> [r.replayed for r in apply_located(located, get, ItemVectors(8), s)]   # the same positions again
[[0, 2], [1]]
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

from streamrec.contracts.events import Event
from streamrec.settings import Settings
from streamrec.state.item_vectors import ItemVectors
from streamrec.state.user_state import UserState

#: An event with its source position (partition, offset, index among the message's valid events).
Located = tuple[Event, tuple[int, int, int]]


@dataclass
class UserApplied:
    """What one call did to one user. Indices are into the ``located`` list given.

    ``unique`` are the events that are not ``event_id`` duplicates (applied now, or at or
    below the state's watermark: applied before), ``applied`` those applied by this call.
    """

    user_id: str
    state: UserState
    indices: list[int]    # this user's events, in source order
    applied: list[int]
    unique: list[int]

    @property
    def duplicates(self) -> list[int]:
        unique = set(self.unique)
        return [k for k in self.indices if k not in unique]

    @property
    def replayed(self) -> list[int]:
        applied = set(self.applied)
        return [k for k in self.unique if k not in applied]


def apply_located(located: Sequence[Located], state_of: Callable[[str], UserState],
                  item_vectors: ItemVectors, settings: Settings) -> list[UserApplied]:
    """Apply ``located`` events (in consumption order) to their users' states, once each.

    ``state_of(user_id)`` returns the state to update in place (the caller decides where a
    new user's empty state lives). Returns one :class:`UserApplied` per user, in order of
    each user's first event.
    """
    s = settings
    vectors = item_vectors.lookup([ev.item_id for ev, _ in located])
    by_user: dict[str, list[int]] = defaultdict(list)
    for k, (ev, _) in enumerate(located):
        by_user[ev.user_id].append(k)
    out = []
    for user_id, ks in by_user.items():
        state = state_of(user_id)
        result = state.apply([located[k][0] for k in ks], vectors[ks], [located[k][1] for k in ks],
                             semantics=s.semantics, half_life=s.user_vector_half_life_s,
                             recent_limit=s.recent_items, dedup_limit=s.dedup_ids, seen_limit=s.seen_items)
        out.append(UserApplied(user_id, state, ks, [ks[j] for j in result.applied],
                               [ks[j] for j in result.unique]))
    return out
