"""Sharded serving: what an instance learns from the events of users it does not keep.

Trending and co-occurrence are item-side state: an answer for any user blends the
co-occurrence counts of *every* user's events, and trending ranks items over all traffic.
An instance that read only its own partitions would learn them from its share of the events
(half of them with two instances), and two instances would rank the same user's candidates
differently depending on who answered. So every instance still reads every ``events``
partition; for the partitions another instance owns it takes this cheap path instead of
applying user state:

* decode with the one input rule (:func:`~streamrec.contracts.events.decode_message`, so the
  same events are valid and located as on the owner; rejections and misrouted events are the
  owner's to count);
* drop ``event_id`` duplicates with the one rule (:class:`~streamrec.state.dedup.DedupIndex`,
  per user, the window of ``dedup_ids``), as the owner's user state does;
* learn trending and co-occurrence (:meth:`StateReplica.learn_item_side`, the routine the
  owner's path ends in) and register the items' vectors (the pre-model index holds every item
  events name, on every instance).

What it saves is the user state itself (recent items, the seen set of up to ``seen_items``
ids, counts, vector, watermarks) and its update per event; the decode, the ``event_id``
windows and co-occurrence's own recent items per user are kept for every user. Measured by
``streamrec bench serving --instances 2`` (docs/benchmarks.md).

Examples
--------
>>> from serving.state_replica import StateReplica
>>> from streamrec.settings import Settings
>>> replica = StateReplica(Settings(vector_dim=8, partitions=1))
>>> feed = ItemSideFeed(replica)
>>> raw = b'{"user_id": "u1", "item_id": "i9", "event_type": "click", "timestamp": 1.0e9, "event_id": "e1"}'
>>> feed.apply_events(0, 7, raw), feed.apply_events(0, 8, raw)   # the same event_id again: a duplicate
(1, 0)
>>> replica.trending.count("i9"), "u1" in replica.users              # learned, but no user state kept
(1, False)
"""
from __future__ import annotations

from typing import Sequence

from serving.state_replica import StateReplica
from streamrec.contracts.events import decode_message
from streamrec.state.dedup import DedupIndex


class ItemSideFeed:
    """Item-side learning from the ``events`` partitions another instance owns."""

    def __init__(self, replica: StateReplica):
        self.replica = replica
        self.settings = replica.settings
        self.dedup = DedupIndex(self.settings.dedup_ids)
        self.events_learned = 0

    def apply_events(self, partition: int, offset: int, raw: bytes | None) -> int:
        """Learn one ``events`` message's valid, non-duplicate events; returns how many."""
        return self.apply_messages(partition, [(offset, raw)])

    def apply_messages(self, partition: int, messages: Sequence[tuple[int, bytes | None]]) -> int:
        """Learn a fetched batch of ``(offset, message)`` of one partition, in order; returns events learned.

        One call to the item-side routines per batch rather than per message: their cost is
        mostly per call, and a catch-up after a start fetches thousands of messages at a time.
        """
        keep = self.dedup.keep
        events = [ev for offset, raw in messages
                  for ev, position in decode_message(raw, partition, offset, self.settings).events
                  if keep(ev.user_id, ev.event_id, position)]
        if not events:
            return 0
        self.replica.item_vectors.rows([ev.item_id for ev in events])
        self.replica.learn_item_side(events)
        self.events_learned += len(events)
        return len(events)


__all__ = ["ItemSideFeed"]
