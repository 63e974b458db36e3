"""The one ``event_id`` rule: a bounded per-user window of recent idempotency keys.

A producer that retries may write the same event twice at different offsets. Every consumer
of ``events`` (the streams worker's user state, serving's replica, the learner) drops such a
duplicate with the same rule, so the three never disagree about which events happened:

* each user keeps the ``event_id`` values of their last ``limit`` applied events that
  carried one, each with the position (partition, offset, index among the message's valid
  events) it was applied at, trimmed after every insertion so the window does not depend on
  how messages were batched;
* an event whose ``event_id`` is in its user's window *at another position* is a duplicate;
  the same position read again (a replay after a restart) is not: offsets and watermarks
  decide that.

Examples
--------
>>> window = {}
>>> is_duplicate(window, "e1", (0, 5, 0)), remember(window, "e1", (0, 5, 0), limit=2)
(False, None)
>>> is_duplicate(window, "e1", (0, 9, 0)), is_duplicate(window, "e1", (0, 5, 0))
(True, False)
>>> remember(window, "e2", (0, 6, 0), limit=2); remember(window, "e3", (0, 7, 0), limit=2)
>>> is_duplicate(window, "e1", (0, 9, 0))   # pushed out of the window of 2
False
>>> index = DedupIndex(limit=2)
>>> index.keep("u", "e1", (0, 1, 0)), index.keep("u", "e1", (0, 2, 0)), index.keep("u", None, (0, 3, 0))
(True, False, True)
"""
from __future__ import annotations

Position = tuple[int, int, int]


def is_duplicate(window: dict[str, Position], event_id: str | None, position: Position) -> bool:
    """True when ``event_id`` was applied at another position within the window."""
    if event_id is None:
        return False
    first = window.get(event_id)
    return first is not None and tuple(first) != tuple(position)


def remember(window: dict[str, Position], event_id: str | None, position: Position, limit: int) -> None:
    """Record an applied event's ``event_id``, dropping the oldest beyond ``limit``."""
    if event_id is None:
        return
    window.pop(event_id, None)
    window[event_id] = position
    while len(window) > max(0, limit):
        del window[next(iter(window))]


class DedupIndex:
    """Per-user windows for a consumer that keeps no per-user state of its own (the learner)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.windows: dict[str, dict[str, Position]] = {}

    def keep(self, user_id: str, event_id: str | None, position: Position) -> bool:
        """True if the event is to be applied; remembers its ``event_id`` when it is."""
        if event_id is None:
            return True
        window = self.windows.get(user_id)
        if window is None:
            window = self.windows[user_id] = {}
        if is_duplicate(window, event_id, position):
            return False
        remember(window, event_id, position, self.limit)
        return True

    def forget(self, user_id: str) -> None:
        """Drop the user's window (a user deletion)."""
        self.windows.pop(user_id, None)

    def state(self) -> dict:
        """JSON-ready form, for checkpoints (only users that ever sent an ``event_id``)."""
        return {user: [[eid, list(pos)] for eid, pos in window.items()] for user, window in self.windows.items()}

    @classmethod
    def from_state(cls, state: dict, limit: int) -> "DedupIndex":
        index = cls(limit)
        index.windows = {user: {eid: (int(p[0]), int(p[1]), int(p[2])) for eid, p in entries}
                         for user, entries in state.items()}
        return index
