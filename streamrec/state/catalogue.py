"""The catalogue as the ``items`` topic says it is now: live items, retired ids, what may be served.

Serving's replica and the learner each keep one, fed with
:func:`streamrec.contracts.items.decode_item_message` from the compacted ``items`` topic.
Whether an item may be served is :meth:`streamrec.contracts.items.Item.servable_at`; this
class adds what a single item cannot know: a tombstone retired it. It also keeps the live
items' attributes by attribute (:class:`~streamrec.state.item_attributes.ItemAttributes`),
which request filters query. Items only events named
(never in the catalogue) are servable: nothing says otherwise.

:meth:`Catalogue.blocked` is the set of ids not servable at a given time. Callers exclude it
from every answer, so it must be cheap per request: retired and unavailable ids are kept as
they arrive, and expiry times sit in a heap, so an item leaves the answers when its
``expires_at`` passes, without any new message and without a scan of the catalogue.

Examples
--------
>>> from streamrec.contracts.items import Item
>>> c = Catalogue()
>>> c.apply("a", Item("a", "Heat")); c.apply("b", Item("b", "Up", expires_at=100.0))
>>> c.apply("c", Item("c", "Big", available=False)); c.apply("d", None)      # d: a tombstone
>>> sorted(c.blocked(now=50.0)), sorted(c.blocked(now=100.0))
(['c', 'd'], ['b', 'c', 'd'])
>>> c.status("b", now=100.0), c.status("d", now=0.0), c.status("zz", now=0.0)
('expired', 'retired', None)
>>> c.apply("c", Item("c", "Big")); c.servable("c", now=100.0)            # available again
True
"""
from __future__ import annotations

import heapq
from typing import Iterator, Sequence

import numpy as np

from streamrec.contracts.items import CATALOGUE, EXPIRED, RETIRED, UNAVAILABLE, Item
from streamrec.state.item_attributes import ItemAttributes


class Catalogue:
    """Live items by id, the ids retired by a tombstone, and the ids not servable now."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.retired: set[str] = set()
        self._unavailable: set[str] = set()
        self._expired: set[str] = set()
        self._expiries: list[tuple[float, str]] = []   # heap of (expires_at, item_id); stale entries allowed
        self._blocked: frozenset[str] = frozenset()
        self._stale = False
        #: The live items' attributes, by attribute (what request filters query).
        self.attributes = ItemAttributes()
        #: Bumped whenever :meth:`blocked` may have changed, so callers can cache what they derive from it.
        self.version = 0

    # --- updates ------------------------------------------------------------------------------
    def apply(self, item_id: str, item: Item | None) -> None:
        """An item (added or replaced) or a tombstone (``item`` None: the item is retired)."""
        self._expired.discard(item_id)
        self.attributes.set(item_id, item.attributes if item is not None else None)
        if item is None:
            self.items.pop(item_id, None)
            self._unavailable.discard(item_id)
            self.retired.add(item_id)
        else:
            self.items[item_id] = item
            self.retired.discard(item_id)
            (self._unavailable.add if not item.available else self._unavailable.discard)(item_id)
            if item.expires_at is not None:
                heapq.heappush(self._expiries, (item.expires_at, item_id))
                self._compact_expiries()
        self._changed()

    def _compact_expiries(self) -> None:
        # An item re-published with a new expiry leaves its old entry behind; rebuild when
        # those outnumber the live ones, so the heap stays proportional to the catalogue.
        if len(self._expiries) > 2 * len(self.items) + 1024:
            self._expiries = [(it.expires_at, i) for i, it in self.items.items() if it.expires_at is not None]
            heapq.heapify(self._expiries)

    def _changed(self) -> None:
        self._stale = True
        self.version += 1

    # --- reads ------------------------------------------------------------------------------
    def blocked(self, now: float) -> frozenset[str]:
        """Ids not servable at ``now`` (epoch seconds): retired, unavailable or expired.

        ``now`` is the wall clock and is expected not to go back: an item found expired stays
        so until a new message for it arrives.
        """
        heap = self._expiries
        while heap and heap[0][0] <= now:
            expires_at, item_id = heapq.heappop(heap)
            item = self.items.get(item_id)
            if item is not None and item.expires_at == expires_at:   # not a stale entry
                self._expired.add(item_id)
                self._changed()
        if self._stale:
            self._blocked = frozenset(self.retired | self._unavailable | self._expired)
            self._stale = False
        return self._blocked

    def servable(self, item_id: str, now: float) -> bool:
        """Whether ``item_id`` may appear in an answer at ``now``."""
        return item_id not in self.blocked(now)

    def servable_mask(self, item_ids: Sequence[str], now: float) -> np.ndarray:
        """Per id of ``item_ids``, :meth:`servable` at ``now``, as a boolean array."""
        blocked = self.blocked(now)
        return np.fromiter((i not in blocked for i in item_ids), dtype=bool, count=len(item_ids))

    def status(self, item_id: str, now: float) -> str | None:
        """``catalogue``, ``unavailable``, ``expired``, ``retired``, or None when the topic never named it."""
        item = self.items.get(item_id)
        if item is not None:
            return item.status_at(now)
        return RETIRED if item_id in self.retired else None

    def get(self, item_id: str) -> Item | None:
        return self.items.get(item_id)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)


__all__ = ["Catalogue", "CATALOGUE", "EXPIRED", "RETIRED", "UNAVAILABLE"]
