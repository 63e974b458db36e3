"""What the learner remembers per user: the recent sequence and the set of items already had.

Each event becomes one training example: the user's recent items *before* the event (the
user tower's input), the event's item (the target) and enough to rebuild which items the
user already had at that moment (``seen_count``: a prefix of the user's append-only
list of distinct items), which evaluation excludes from the ranking.

Examples
--------
>>> log = InteractionLog(sequence_length=3)
>>> ex = log.record(["u", "u"], np.array([4, 7]), np.array([1, 1]), np.array([10.0, 20.0]))
>>> ex["hist_items"].tolist(), ex["length"].tolist(), ex["seen_count"].tolist()
([[-1, -1, -1], [4, -1, -1]], [0, 1], [0, 1])
>>> log.exclusions(ex["user"], ex["seen_count"])
(array([1]), array([4]))
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def example_columns(sequence_length: int) -> dict:
    """Column layout of a training example (for :class:`~learner.replay_buffer.ReplayBuffer`)."""
    L = sequence_length
    return {"hist_items": ((L,), np.int32), "hist_types": ((L,), np.int8), "hist_times": ((L,), np.float64),
            "length": ((), np.int16), "target": ((), np.int32), "event_type": ((), np.int8),
            "timestamp": ((), np.float64), "user": ((), np.int32), "seen_count": ((), np.int32)}


def no_exclusions(users: np.ndarray, seen_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`InteractionLog.exclusions` when repeats are allowed: nothing is excluded."""
    return np.empty(0, np.int64), np.empty(0, np.int64)


def without_users(examples: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """``examples`` less those of the users in ``rows`` (their log rows)."""
    keep = ~np.isin(examples["user"], rows)
    return examples if keep.all() else {k: v[keep] for k, v in examples.items()}


class InteractionLog:
    def __init__(self, sequence_length: int):
        self.sequence_length = sequence_length
        self.user_ids: list[str | None] = []   # None: a forgotten user's row (never reused)
        self.user_index: dict[str, int] = {}
        self.forgotten: set[int] = set()
        self.recent: list[list[tuple[int, int, float]]] = []   # (item row, type index, timestamp)
        self.seen: list[np.ndarray] = []                        # distinct item rows, first-seen order
        self.seen_count: list[int] = []
        self.seen_set: list[set[int]] = []

    def __len__(self) -> int:
        """Users known (forgotten ones not counted)."""
        return len(self.user_index)

    def _user(self, user_id: str) -> int:
        row = self.user_index.get(user_id)
        if row is None:
            row = self.user_index[user_id] = self._new_row(user_id)
        return row

    def _new_row(self, user_id: str | None) -> int:
        self.user_ids.append(user_id)
        self.recent.append([])
        self.seen.append(np.empty(8, dtype=np.int32))
        self.seen_count.append(0)
        self.seen_set.append(set())
        return len(self.user_ids) - 1

    def forget(self, user_id: str) -> int | None:
        """Forget a user (a deletion): their row is emptied and never reused; returns it (None: unknown).

        Examples elsewhere name users by row, so the caller drops the examples of that row;
        if the user comes back, they get a new row and start with no history.

        >>> log = InteractionLog(sequence_length=2)
        >>> _ = log.record(["u", "v"], np.array([4, 7]), np.array([1, 1]), np.array([1.0, 2.0]))
        >>> log.forget("u"), len(log), log.history_rows("u"), log.user_ids
        (0, 1, [], [None, 'v'])
        """
        row = self.user_index.pop(user_id, None)
        if row is None:
            return None
        self.user_ids[row] = None
        self.recent[row] = []
        self.seen[row] = np.empty(8, dtype=np.int32)
        self.seen_count[row] = 0
        self.seen_set[row] = set()
        self.forgotten.add(row)
        return row

    def record(self, user_ids: Sequence[str], items: np.ndarray, types: np.ndarray,
               times: np.ndarray) -> dict[str, np.ndarray]:
        """Turn events (in stream order) into examples, then remember them."""
        n, L = len(user_ids), self.sequence_length
        out = {"hist_items": np.full((n, L), -1, np.int32), "hist_types": np.zeros((n, L), np.int8),
               "hist_times": np.zeros((n, L), np.float64), "length": np.zeros(n, np.int16),
               "target": np.asarray(items, np.int32), "event_type": np.asarray(types, np.int8),
               "timestamp": np.asarray(times, np.float64), "user": np.zeros(n, np.int32),
               "seen_count": np.zeros(n, np.int32)}
        for k, user_id in enumerate(user_ids):
            u = self._user(user_id)
            out["user"][k] = u
            recent = self.recent[u]
            if recent:
                m = len(recent)
                out["length"][k] = m
                hist = np.array(recent, dtype=np.float64)
                out["hist_items"][k, :m] = hist[:, 0]
                out["hist_types"][k, :m] = hist[:, 1]
                out["hist_times"][k, :m] = hist[:, 2]
            out["seen_count"][k] = self.seen_count[u]
            item = int(items[k])
            recent.append((item, int(types[k]), float(times[k])))
            if len(recent) > L:
                del recent[0]
            if item not in self.seen_set[u]:
                self._remember(u, item)
        return out

    def _remember(self, u: int, item: int) -> None:
        self.seen_set[u].add(item)
        count, arr = self.seen_count[u], self.seen[u]
        if count == len(arr):
            arr = self.seen[u] = np.concatenate([arr, np.empty(len(arr), np.int32)])
        arr[count] = item
        self.seen_count[u] = count + 1

    def exclusions(self, users: np.ndarray, seen_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(example row, item row) pairs of items each example's user already had."""
        rows = [np.full(int(c), k, np.int64) for k, c in enumerate(seen_counts) if c]
        cols = [self.seen[int(u)][: int(c)] for u, c in zip(users, seen_counts) if c]
        if not rows:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(rows), np.concatenate(cols).astype(np.int64)

    def history_rows(self, user_id: str) -> list[tuple[int, int, float]]:
        u = self.user_index.get(user_id)
        return list(self.recent[u]) if u is not None else []

    # -- checkpointing ---------------------------------------------------------------------
    def state_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        lengths = np.array([len(r) for r in self.recent], np.int64)
        flat = np.array([e for r in self.recent for e in r], np.float64).reshape(-1, 3)
        counts = np.array(self.seen_count, np.int64)
        seen = (np.concatenate([s[:c] for s, c in zip(self.seen, self.seen_count)]) if self.seen
                else np.empty(0, np.int32))
        arrays = {"recent_lengths": lengths, "recent_items": flat[:, 0].astype(np.int64),
                  "recent_types": flat[:, 1].astype(np.int64), "recent_times": flat[:, 2],
                  "seen_counts": counts, "seen_items": seen.astype(np.int32)}
        return arrays, {"user_ids": self.user_ids, "sequence_length": self.sequence_length}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> "InteractionLog":
        log = cls(int(meta["sequence_length"]))
        starts = np.concatenate([[0], np.cumsum(arrays["recent_lengths"])])
        seen_starts = np.concatenate([[0], np.cumsum(arrays["seen_counts"])])
        items, types, times = arrays["recent_items"], arrays["recent_types"], arrays["recent_times"]
        for u, user_id in enumerate(meta["user_ids"]):
            log._new_row(user_id)
            if user_id is None:
                log.forgotten.add(u)
            else:
                log.user_index[user_id] = u
            a, b = starts[u], starts[u + 1]
            log.recent[u] = [(int(i), int(t), float(ts)) for i, t, ts in zip(items[a:b], types[a:b], times[a:b])]
            seen = arrays["seen_items"][seen_starts[u]:seen_starts[u + 1]]
            log.seen[u] = np.concatenate([seen, np.empty(max(8, len(seen)), np.int32)]).astype(np.int32)
            log.seen_count[u] = len(seen)
            log.seen_set[u] = set(seen.tolist())
        return log
