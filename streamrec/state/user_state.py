"""Per-user state, its idempotent update, and its codec.

The streams worker keeps one :class:`UserState` per user in a changelog-backed Faust
table; serving and the learner decode the same bytes with :func:`decode_state`.

Exactly-once application on an at-least-once stream
----------------------------------------------------
Faust commits offsets after processing, so a crash replays the uncommitted tail while
the table (restored from its changelog) may already contain some of those events. Every
state therefore carries a *watermark* per source partition: the (offset, index within a
packed message) of the last event applied. All of a user's events come from one
partition in offset order, so an event at or below the watermark has been applied and is
skipped. The watermark is written in the same changelog record as the state it guards, so
the two can never disagree. Separately, the user's window of recent ``event_id`` values
(:mod:`streamrec.state.dedup`, the rule every consumer of ``events`` shares) drops duplicates that
a producer sent twice at different offsets (a replay of the *same* position is not a
duplicate, it is the watermark's job).

Examples
--------
>>> from streamrec.contracts.events import Event
>>> from streamrec.contracts.semantics import event_semantics
>>> s = UserState.empty(dim=4)
>>> ev = Event("u", "i", "click", 100.0)
>>> vec = np.ones((1, 4), dtype=np.float32)
>>> kw = dict(semantics=event_semantics("click=1,dislike=-1"), half_life=60.0, recent_limit=10, dedup_limit=10)
>>> s.apply([ev], vec, [(0, 5, 0)], **kw).applied
[0]
>>> s.apply([ev], vec, [(0, 5, 0)], **kw).applied   # the same offset again: skipped
[]
>>> _ = s.apply([Event("u", "j", "dislike", 101.0)], -vec, [(0, 6, 0)], **kw)
>>> decode_state(s.encode()).counts, list(s.rejected)   # j is never recommended to u again
({'click': 1, 'dislike': 1}, ['j'])

Negative events
---------------
An event whose weight (:meth:`streamrec.contracts.semantics.EventSemantics.weight`) is below
zero pushes its item away: it enters the user vector's mean with its negative weight (the
mean is normalised by the sum of the weights' magnitudes, so the vector moves away from
the item rather than flipping sign), and the item joins ``rejected``, which every answer
excludes. A later positive event on the item takes it out again: the newest reaction wins.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from streamrec.state.dedup import is_duplicate, remember
from streamrec.contracts.events import Event
from streamrec.contracts.semantics import EventSemantics

CODEC_VERSION = 1


class Applied(NamedTuple):
    applied: list[int]   # indices applied by this call
    unique: list[int]    # indices that are not event_id duplicates (applied now or earlier)


@dataclass
class UserState:
    # (item_id, event_type, timestamp), oldest first, at most recent_limit entries.
    recent: list[tuple[str, str, float]]
    counts: dict[str, int]
    last_event_time: float
    vector: np.ndarray          # float32, decayed event-type-weighted mean of item vectors
    weight: float               # total decayed weight behind ``vector``
    vector_time: float          # event time the vector's decay is anchored at
    watermarks: dict[int, tuple[int, int]] = field(default_factory=dict)
    # event_id -> the position it was first applied at (insertion-ordered, bounded)
    event_ids: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    applied: int = 0            # events applied, for idempotency checks
    # Every item the user had (insertion-ordered, bounded): what serving never recommends again
    # unless repeats are allowed.
    seen: dict[str, None] = field(default_factory=dict)
    # Items whose newest event was negative (insertion-ordered, bounded): never recommended to the user.
    rejected: dict[str, None] = field(default_factory=dict)

    @classmethod
    def empty(cls, dim: int) -> "UserState":
        return cls([], {}, 0.0, np.zeros(dim, dtype=np.float32), 0.0, 0.0)

    def apply(self, events: Sequence[Event], item_vectors: np.ndarray,
              positions: Sequence[tuple[int, int, int]], *, semantics: EventSemantics,
              half_life: float, recent_limit: int, dedup_limit: int, seen_limit: int = 5000) -> Applied:
        """Apply events (in source order) once each.

        ``positions[k]`` is (partition, offset, index within the packed message) of
        ``events[k]``; ``item_vectors[k]`` is the current vector of its item; ``semantics``
        weighs each event (``seen_limit`` also bounds the rejected items). Returns the
        indices applied now and the indices that are not duplicates at all (applied now or
        before), which other idempotent aggregates (popularity) count against their own
        watermarks.
        """
        applied: list[int] = []
        unique: list[int] = []
        for k, (ev, pos) in enumerate(zip(events, positions)):
            partition, offset, index = pos
            if is_duplicate(self.event_ids, ev.event_id, pos):
                continue  # the same event_id seen at another position: a duplicate
            unique.append(k)
            mark = self.watermarks.get(partition)
            if mark is not None and (offset, index) <= mark:
                continue  # at or below the watermark: applied before a restart
            self.watermarks[partition] = (offset, index)
            remember(self.event_ids, ev.event_id, (partition, offset, index), dedup_limit)
            applied.append(k)
        if not applied:
            return Applied(applied, unique)
        evs = [events[k] for k in applied]
        weights = semantics.weights_of(evs)
        for ev, weight in zip(evs, weights):
            self.counts[ev.event_type] = self.counts.get(ev.event_type, 0) + 1
            note_reaction(self.rejected, ev.item_id, weight, seen_limit)
        self.recent.extend((ev.item_id, ev.event_type, ev.timestamp) for ev in evs)
        for ev in evs:
            self.seen.pop(ev.item_id, None)  # re-insert: the oldest-touched item is evicted first
            self.seen[ev.item_id] = None
        while len(self.seen) > seen_limit:
            del self.seen[next(iter(self.seen))]
        if len(self.recent) > recent_limit:
            del self.recent[: len(self.recent) - recent_limit]
        times = np.fromiter((ev.timestamp for ev in evs), dtype=np.float64, count=len(evs))
        anchor = max(float(times.max()), self.vector_time)
        w = weights * np.exp2((times - anchor) / half_life)
        old = self.weight * 2.0 ** ((self.vector_time - anchor) / half_life)
        total = old + float(np.abs(w).sum())   # a negative weight moves the mean away from its item
        if total > 0:
            mixed = old * self.vector + w @ np.asarray(item_vectors, dtype=np.float64)[applied]
            self.vector = (mixed / total).astype(np.float32)
        self.weight, self.vector_time = total, anchor
        self.last_event_time = max(self.last_event_time, float(times.max()))
        self.applied += len(evs)
        return Applied(applied, unique)

    def deleted_by(self, partition: int, offset: int) -> bool:
        """Whether a user deletion at ``offset`` of ``partition`` of ``events`` removes this state.

        It does, unless the state holds an event of that partition written after the
        deletion: then the deletion was applied before (this is a replay), the user came
        back since, and the state is who they are now. A deletion is a message of its own,
        so no event shares its offset. Every consumer that keeps user state decides with
        this rule, so none keeps a user another one deleted.

        >>> s = UserState.empty(2)
        >>> s.watermarks[0] = (9, 0)
        >>> s.deleted_by(0, 12), s.deleted_by(0, 5)
        (True, False)
        """
        mark = self.watermarks.get(partition)
        return mark is None or mark[0] < offset

    def encode(self) -> bytes:
        return json.dumps({
            "v": CODEC_VERSION, "recent": self.recent, "counts": self.counts,
            "last": self.last_event_time, "vec": base64.b64encode(self.vector.tobytes()).decode(),
            "w": self.weight, "vt": self.vector_time,
            "wm": {str(p): list(m) for p, m in self.watermarks.items()},
            "ids": self.event_ids, "n": self.applied, "seen": list(self.seen),
            # Written only when there is one, so a deployment without negative events writes what it always did.
            **({"rejected": list(self.rejected)} if self.rejected else {}),
        }, separators=(",", ":")).encode()


def decode_state(raw: bytes) -> UserState:
    d = json.loads(raw)
    if d.get("v") != CODEC_VERSION:
        raise ValueError(f"unknown user-state codec version {d.get('v')}")
    return UserState(
        recent=[(str(i), str(t), float(ts)) for i, t, ts in d["recent"]], counts=dict(d["counts"]),
        last_event_time=float(d["last"]),
        vector=np.frombuffer(base64.b64decode(d["vec"]), dtype=np.float32).copy(),
        weight=float(d["w"]), vector_time=float(d["vt"]),
        watermarks={int(p): (int(m[0]), int(m[1])) for p, m in d["wm"].items()},
        event_ids={k: tuple(v) for k, v in d["ids"].items()}, applied=int(d["n"]),
        seen=dict.fromkeys(d.get("seen", ())), rejected=dict.fromkeys(d.get("rejected", ())))


def note_reaction(rejected: dict[str, None], item_id: str, weight: float, limit: int) -> None:
    """Keep a user's ``rejected`` items current after an event of ``weight`` on ``item_id``.

    A negative event makes the item the newest rejected one (the oldest beyond ``limit`` is
    forgotten); a positive one takes it out; a zero weight changes nothing.

    >>> rejected = {}
    >>> note_reaction(rejected, "a", -1.0, 2); note_reaction(rejected, "b", -1.0, 2)
    >>> note_reaction(rejected, "c", -0.5, 2); list(rejected)
    ['b', 'c']
    >>> note_reaction(rejected, "b", 1.0, 2); list(rejected)
    ['c']
    """
    if weight < 0:
        rejected.pop(item_id, None)
        rejected[item_id] = None
        while len(rejected) > limit:
            del rejected[next(iter(rejected))]
    elif weight > 0:
        rejected.pop(item_id, None)
