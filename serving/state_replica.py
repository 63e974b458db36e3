"""Serving's read replica of every user's state, the catalogue and trending.

How state reaches serving
-------------------------
The streams worker owns user state (Faust table ``user_state``, changelog
``streamrec-streams-user_state-changelog``). Serving keeps a *full replica* of it, fed by two
sources at once, and applies events with the streams worker's own routine
(:func:`streamrec.state.apply.apply_located`):

* the **changelog**, read from the beginning with manual partition assignment (no consumer
  group), bootstraps the replica: a record replaces the replica's state for its user only if
  its watermark is at least the replica's on every partition the replica has seen, so an
  older record can never roll a user back;
* the **events topic** itself, also read from the beginning, is applied on top with
  :func:`~streamrec.contracts.events.decode_message` (the one input rule: what it rejects or finds on
  the wrong partition is not applied here) and :func:`~streamrec.state.apply.apply_located`
  at the same (partition, offset, index among valid events) positions, event semantics, half-life and
  limits as the streams worker. The per-partition watermark in each state makes this
  idempotent: an event the changelog state already holds is skipped.

So an acknowledged event is visible to the next request after one broker-to-serving fetch
(milliseconds), without waiting for the streams worker to process it and write its changelog,
and the two sources converge whatever order they arrive in. The user vector uses
:class:`~streamrec.state.item_vectors.ItemVectors` exactly as the streams worker does (a
deterministic vector per id until a model arrives, then the model's item vectors).

Trending (:class:`streamrec.state.popularity.DecayedPopularity`) is computed here from the
same events: serving reads every event anyway, so trending is as fresh as the user state.
Each offset is consumed once per process (manual assignment, no re-delivery), so nothing is
counted twice; a restart recomputes it from the retained events, which loses nothing that
matters because old events have decayed to nothing anyway. So is item-to-item
co-occurrence (:class:`streamrec.state.cooccurrence.Cooccurrence`, unless
``cooccurrence_weight`` is 0), which recommendations blend with the model's scores: it
learns every event trending counts, in each user's order, so a state adopted from the
changelog hides no pair from it. The catalogue
(:class:`streamrec.state.catalogue.Catalogue`) comes from the compacted ``items`` topic:
titles, tags and attributes for reasons, filters and ``/items``, and which items may not be served
(retired by a tombstone, unavailable, expired), which every answer excludes.

This class is pure state: the Kafka consumers that feed it are in :mod:`serving.replica_feeds`.

Examples
--------
>>> from streamrec.settings import Settings
>>> replica = StateReplica(Settings(vector_dim=8))
>>> replica.apply_events(0, 7, b'{"user_id": "u1", "item_id": "i9", "event_type": "click",'
...                      b' "timestamp": 1.0e9}')
1
>>> replica.apply_events(0, 7, b'{"user_id": "u1", "item_id": "i9", "event_type": "click",'
...                      b' "timestamp": 1.0e9}')   # the same position again: skipped
0
>>> replica.users["u1"].recent
[('i9', 'click', 1000000000.0)]
"""
from __future__ import annotations

import logging

import numpy as np

from serving.applied_positions import AppliedPositions
from serving import metrics
from streamrec.contracts.events import Event, decode_message
from streamrec.contracts.items import InvalidItem, Item, decode_item_message
from streamrec.contracts.semantics import popularity_weights
from streamrec.observability.arm_quality import QualityByArm
from streamrec.observability.online_metrics import OnlineQuality
from streamrec.settings import Settings
from streamrec.state.apply import Located, apply_located
from streamrec.state.catalogue import Catalogue
from streamrec.state.cooccurrence import Cooccurrence
from streamrec.state.item_vectors import ItemVectors
from streamrec.state.popularity import DecayedPopularity
from streamrec.state.user_state import UserState, decode_state

log = logging.getLogger(__name__)


def _not_older(record: UserState, current: UserState) -> bool:
    """True when ``record`` has applied at least what ``current`` has, on every partition."""
    for partition, mark in current.watermarks.items():
        theirs = record.watermarks.get(partition)
        if theirs is None or tuple(theirs) < tuple(mark):
            return False
    return True


class StateReplica:
    """Every user's :class:`UserState`, the catalogue and trending, as serving sees them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.semantics = settings.semantics
        self.users: dict[str, UserState] = {}
        self.item_vectors = ItemVectors(settings.vector_dim)
        self.catalogue = Catalogue()
        self.trending = DecayedPopularity(settings.popularity_half_life_s)
        self.quality = OnlineQuality(k=10)
        self.quality.bind(hit_rate=metrics.ONLINE_HIT_RATE, ndcg=metrics.ONLINE_NDCG,
                          entropy=metrics.EXPOSURE_ENTROPY, gini=metrics.EXPOSURE_GINI,
                          coverage=metrics.CATALOGUE_COVERAGE)
        self.arm_quality = QualityByArm(k=10)   # the same, per live experiment arm (serving.experiments)
        self.cooccurrence = Cooccurrence.from_settings(settings) if settings.cooccurrence_weight > 0 else None
        self.events_applied = 0
        self.applied = AppliedPositions()   # how far the events feed got, for read-your-writes
        self.rejected = 0
        self.misrouted = 0
        # user -> (partition, offset) of the newest deletion met on events: no record or event
        # of that user from before it may bring them back (user ids only, rebuilt on each start)
        self.deleted: dict[str, tuple[int, int]] = {}

    # --- the events topic -------------------------------------------------------------------
    def apply_events(self, partition: int, offset: int, raw: bytes | None) -> int:
        """Apply one ``events`` message (one event or a packed batch); returns events applied."""
        message = decode_message(raw, partition, offset, self.settings)
        self.rejected += len(message.rejections)
        # A misrouted event is applied where the streams worker re-publishes it, not here.
        if message.misrouted:
            self.misrouted += len(message.misrouted)
            metrics.REPLICA_RECORDS.labels("events", "misrouted").inc(len(message.misrouted))
        for deletion, position in message.deletions:
            self.apply_deletion(deletion.user_id, position)
        if not message.events:
            return 0
        return self.apply_parsed(message.events)

    def apply_deletion(self, user_id: str, position: tuple[int, int]) -> bool:
        """Forget a user deleted at ``position`` of ``events``; True if a state was removed.

        The state goes unless it holds an event written after the deletion
        (:meth:`UserState.deleted_by`: a state adopted from the changelog after the user came
        back). What this process learnt from the user's earlier events goes in any case: the
        recent items co-occurrence pairs their next item with, and the served list waiting
        for their next event. From now on no changelog record and no event from before the
        deletion is applied for them (a feed that reads ``events`` again meets the same order).
        """
        if self.cooccurrence is not None:
            self.cooccurrence.forget_user(user_id)
        self.quality.forget(user_id)
        if self.deleted.get(user_id, (-1, -1)) < position:
            self.deleted[user_id] = position
        state = self.users.get(user_id)
        if state is None or not state.deleted_by(*position):
            metrics.USERS_DELETED.labels("absent" if state is None else "outlived").inc()
            return False
        del self.users[user_id]
        metrics.USERS_DELETED.labels("removed").inc()
        log.info("a user deleted at events %d/%d removed from the replica", *position)   # no user id in logs
        return True

    def _before_deletion(self, user_id: str, partition: int, offset: int) -> bool:
        """Whether this position of ``events`` precedes the user's deletion (so it is deleted too)."""
        deleted = self.deleted.get(user_id)
        return deleted is not None and deleted[0] == partition and offset < deleted[1]

    def apply_parsed(self, located: list[Located]) -> int:
        """Apply validated events with their source positions, grouped per user in order."""
        if self.deleted:   # read again (a feed restarted): what came before a deletion stays deleted
            located = [(ev, pos) for ev, pos in located if not self._before_deletion(ev.user_id, pos[0], pos[1])]
        counted: list[int] = []
        fresh: list[int] = []
        for user in apply_located(located, self._state_of, self.item_vectors, self.settings):
            # Trending counts every event that is not an event_id duplicate, including
            # ones a changelog state already held: trending is computed here, not there.
            counted.extend(user.unique)
            fresh.extend(user.applied)
        if counted:
            self.learn_item_side([located[k][0] for k in counted])
        # Each user's next event scores the list served to them before it; a negative event is
        # no such request (as in the evaluation), so the list waits for the next other one.
        wanted = [located[k][0] for k in fresh if not self.semantics.negative(located[k][0])]
        if wanted:
            users, items = [ev.user_id for ev in wanted], [ev.item_id for ev in wanted]
            self.quality.observe(users, items)
            self.arm_quality.observe(users, items)
        self.events_applied += len(fresh)
        return len(fresh)

    def _state_of(self, user_id: str) -> UserState:
        state = self.users.get(user_id)
        if state is None:
            state = self.users[user_id] = UserState.empty(self.settings.vector_dim)
        return state

    def learn_item_side(self, events: list[Event]) -> None:
        """Learn trending and co-occurrence from events that are not ``event_id`` duplicates.

        Item-side state is learned from every event on every instance: a sharded instance
        calls this for the events of users it does not keep as well (:mod:`serving.item_side`).
        """
        self.trending.add([ev.item_id for ev in events], (ev.timestamp for ev in events),
                          popularity_weights(events, self.semantics))
        self._learn_cooccurrence(events)

    def _learn_cooccurrence(self, events: list[Event]) -> None:
        if self.cooccurrence is None:
            return
        for ev in events:
            self.cooccurrence.learn_event(ev, self.semantics)

    # --- the user_state changelog --------------------------------------------------------------
    def apply_user_record(self, key: bytes | str | None, raw: bytes | None) -> bool:
        """Adopt a changelog record if it is not older than the replica's; True if adopted."""
        if key is None:
            return False
        user_id = key.decode() if isinstance(key, bytes) else key
        if raw is None:   # tombstone: the streams worker deleted the user
            return self._apply_tombstone(user_id)
        try:
            record = decode_state(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("undecodable user_state record for %r: %s", user_id[:64], exc)
            metrics.REPLICA_RECORDS.labels("user_state", "invalid").inc()
            return False
        if record.vector.shape != (self.settings.vector_dim,):
            metrics.REPLICA_RECORDS.labels("user_state", "invalid").inc()
            return False
        current = self.users.get(user_id)
        deleted = self.deleted.get(user_id)
        if deleted is not None and record.deleted_by(*deleted):   # the state of before the deletion
            metrics.REPLICA_RECORDS.labels("user_state", "deleted").inc()
            return False
        if current is not None and not _not_older(record, current):
            metrics.REPLICA_RECORDS.labels("user_state", "older").inc()
            return False
        self.users[user_id] = record
        metrics.REPLICA_RECORDS.labels("user_state", "adopted").inc()
        return True

    def _apply_tombstone(self, user_id: str) -> bool:
        """Drop the user, unless their state outlived the deletion this tombstone stands for.

        The events feed may be ahead of the changelog: it applied the deletion and then
        events of the user who came back, which the tombstone written for that deletion
        must not remove.
        """
        current, deleted = self.users.get(user_id), self.deleted.get(user_id)
        if current is not None and deleted is not None and not current.deleted_by(*deleted):
            return False
        return self.users.pop(user_id, None) is not None

    # --- the items topic -----------------------------------------------------------------------
    def apply_item(self, key: bytes | None, raw: bytes | None) -> Item | None:
        """Add or replace a catalogue item, or retire one (a tombstone); returns the item added.

        An invalid message is counted and skipped: the streams worker dead-letters it to
        ``items-dlq`` (one copy, however many serving processes read the topic).
        """
        try:
            message = decode_item_message(key, raw, max_id_length=self.settings.max_id_length)
        except InvalidItem as exc:
            log.debug("ignoring invalid item (dead-lettered by the streams worker): %s", exc)
            metrics.REPLICA_RECORDS.labels("items", "invalid").inc()
            return None
        self.catalogue.apply(message.item_id, message.item)
        if message.item is None:
            metrics.REPLICA_RECORDS.labels("items", "retired").inc()
            return None
        self.item_vectors.rows([message.item_id])   # pre-model: retrievable with its deterministic vector
        metrics.REPLICA_RECORDS.labels("items", "adopted").inc()
        return message.item

    # --- reads ---------------------------------------------------------------------------------
    def title(self, item_id: str) -> str | None:
        item = self.catalogue.get(item_id)
        return item.title if item is not None and item.title else None

    def tags(self, item_id: str) -> tuple[str, ...]:
        item = self.catalogue.get(item_id)
        return item.tags if item is not None else ()

    def with_title(self, entry: dict, item_id: str) -> dict:
        """``entry`` with the item's ``title`` when the catalogue has one: absent, never invented or null."""
        title = self.title(item_id)
        if title:
            entry["title"] = title
        return entry

    def user_view(self, user_id: str) -> dict | None:
        """What ``GET /users/{user_id}`` shows: the state an answer for this user is built from."""
        state = self.users.get(user_id)
        if state is None:
            return None
        recent = [self.with_title({"item_id": i, "event_type": t, "timestamp": ts}, i)
                  for i, t, ts in reversed(state.recent)]
        return {"user_id": user_id, "recent": recent, "last_event_time": state.last_event_time or None,
                "counts": dict(state.counts), "events_applied": state.applied,
                "vector_norm": float(np.linalg.norm(state.vector)),
                "watermarks": {str(p): list(m) for p, m in state.watermarks.items()},
                "rejected": list(reversed(state.rejected))}   # newest first, never recommended to the user
