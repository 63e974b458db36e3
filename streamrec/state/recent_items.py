"""Each user's most recent *distinct* items, as catalogue rows: what item-item pairs are formed with.

Item-to-item co-occurrence (the system's :class:`~streamrec.state.cooccurrence.Cooccurrence`
and the item-kNN baseline) pairs a user's new item with the items that user had before; a
repeat forms no pair and just becomes the newest. :class:`RecentItems` is that memory, kept
once for both: per user an ``array('i')`` of rows, oldest first, at most ``limit`` long
(``None``: every item the user ever had, as classic item-kNN pairs).

It is not the user's event history (:attr:`streamrec.state.user_state.UserState.recent`, with
event types, times and repeats, persisted in the changelog): a scorer keeps its own list
because a state adopted from a changelog holds events whose pairs this scorer never counted.

Examples
--------
>>> recent = RecentItems(limit=2)
>>> recent.push("u", 7).tolist(), recent.push("u", 8).tolist()   # rows the new item pairs with
([], [7])
>>> recent.push("u", 7) is None                                  # a repeat: no pairs
True
>>> recent.push("u", 9).tolist(), recent.rows("u").tolist()      # 8 fell out of the window
([8, 7], [7, 9])
"""
from __future__ import annotations

from array import array

import numpy as np


class RecentItems:
    """Per user, the last ``limit`` distinct item rows (all of them with ``limit=None``), oldest first."""

    def __init__(self, limit: int | None):
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 or None, got {limit}")
        self.limit = limit
        self._by_user: dict[str, array] = {}

    def __len__(self) -> int:
        return len(self._by_user)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._by_user

    def push(self, user_id: str, row: int) -> np.ndarray | None:
        """Make ``row`` the user's newest item; the rows it pairs with (a copy), or None for a repeat."""
        rows = self._by_user.get(user_id)
        if rows is None:
            rows = self._by_user[user_id] = array("i")
        if row in rows:
            rows.remove(row)
            rows.append(row)
            return None
        earlier = np.array(rows, dtype=np.int64)
        rows.append(row)
        if self.limit is not None and len(rows) > self.limit:
            del rows[0]
        return earlier

    def forget(self, user_id: str) -> bool:
        """Drop the user's items (a user deletion): a later item of theirs pairs with nothing before it."""
        return self._by_user.pop(user_id, None) is not None

    def rows(self, user_id: str) -> np.ndarray:
        """The user's rows, oldest first (empty for an unknown user)."""
        return np.array(self._by_user.get(user_id, ()), dtype=np.int64)


__all__ = ["RecentItems"]
