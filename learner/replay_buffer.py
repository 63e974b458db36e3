"""The learner's replay buffer: a uniform reservoir over all history plus a recent window.

Continual fine-tuning on new events alone forgets what the model knew; training on all of
history is too slow to keep up. The buffer keeps two stores of training examples with the
same columns: a reservoir (Algorithm R, seeded) that holds a uniform sample of every example
ever added, and a ring of the most recent examples. :meth:`ReplayBuffer.sample` mixes them
at a configurable ratio.

Examples are columnar: a mapping of column name to a numpy array whose first axis is the
example, so adding and sampling are vectorised and the whole buffer checkpoints as arrays
(:meth:`state_arrays` / :meth:`from_state`).

Examples
--------
>>> buf = ReplayBuffer({"x": ((), np.int64)}, reservoir_size=10, recent_size=4, seed=0)
>>> buf.add({"x": np.arange(100)})
>>> len(buf), sorted(buf.recent_rows()["x"].tolist())
(10, [96, 97, 98, 99])
>>> batch = buf.sample(8, recent_fraction=0.5)
>>> batch["x"].shape
(8,)
"""
from __future__ import annotations

import json
from typing import Mapping

import numpy as np

# column name -> (shape of one example, dtype)
Columns = Mapping[str, tuple[tuple[int, ...], type]]


class ReplayBuffer:
    def __init__(self, columns: Columns, reservoir_size: int, recent_size: int, seed: int = 0):
        if reservoir_size < 1 or recent_size < 1:
            raise ValueError("reservoir_size and recent_size must be positive")
        self.columns = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in columns.items()}
        self.reservoir_size, self.recent_size = reservoir_size, recent_size
        self.rng = np.random.default_rng(seed)
        self.seen = 0  # examples ever added: the reservoir's n
        self._held = 0         # reservoir slots in use: min(seen, size) until examples are dropped
        self._recent_next = 0  # ring position the next recent example goes to
        self._recent_held = 0
        self._reservoir = self._allocate(reservoir_size)
        self._recent = self._allocate(recent_size)

    def _allocate(self, n: int) -> dict[str, np.ndarray]:
        return {name: np.zeros((n, *shape), dtype=dtype) for name, (shape, dtype) in self.columns.items()}

    def __len__(self) -> int:
        return self._held

    @property
    def recent_count(self) -> int:
        return self._recent_held

    def add(self, batch: Mapping[str, np.ndarray]) -> None:
        """Add examples in arrival order (Algorithm R over the reservoir, a ring for the window)."""
        n = len(next(iter(batch.values())))
        if n == 0:
            return
        arrays = {name: np.asarray(batch[name], dtype=dtype) for name, (_, dtype) in self.columns.items()}
        # Reservoir: free slots are filled in order (while it fills, the k-th example overall
        # goes to slot k - 1); then the k-th replaces slot j ~ U{0..k-1} when j < size.
        # Slots freed by drop() are filled first, so an example dropped is replaced by the next.
        counts = self.seen + np.arange(1, n + 1, dtype=np.int64)
        draws = np.floor(self.rng.random(n) * counts).astype(np.int64)
        free = self.reservoir_size - self._held
        order = np.arange(n, dtype=np.int64)
        slots = np.where(order < free, self._held + order, draws)
        take = slots < self.reservoir_size
        src, dst = np.flatnonzero(take), slots[take]
        # Later examples overwrite earlier ones in the same slot, as the sequential algorithm does.
        _, last = np.unique(dst[::-1], return_index=True)
        src, dst = src[::-1][last], dst[::-1][last]
        for name, arr in arrays.items():
            self._reservoir[name][dst] = arr[src]
        self._held += min(max(free, 0), n)
        # Recent window: a ring.
        tail = np.arange(max(0, n - self.recent_size), n)
        ring = (self._recent_next + tail) % self.recent_size
        for name, arr in arrays.items():
            self._recent[name][ring] = arr[tail]
        self._recent_next = (self._recent_next + n) % self.recent_size
        self._recent_held = min(self.recent_size, self._recent_held + n)
        self.seen += n

    def drop(self, column: str, values: np.ndarray) -> int:
        """Remove every example whose ``column`` is one of ``values`` (a user deletion); how many.

        The rows left are moved together and the freed ones zeroed, so nothing of a removed
        example stays in memory or in the next checkpoint. ``seen`` is unchanged, so the
        reservoir goes on sampling as if the removed examples had been drawn out; its sample
        is uniform over what is left up to that, not exactly (freed slots go to the next
        examples added).
        """
        removed = 0
        for store, rows in ((self._reservoir, self.reservoir_rows()), (self._recent, self.recent_rows())):
            keep = ~np.isin(rows[column], values)
            held = int(keep.sum())
            removed += len(keep) - held
            if held == len(keep):
                continue
            for name, arr in rows.items():
                store[name][:held] = arr[keep]
                store[name][held:] = 0
            if store is self._reservoir:
                self._held = held
            else:   # oldest first from slot 0: the ring continues after the last one
                self._recent_held, self._recent_next = held, held % self.recent_size
        return removed

    def reservoir_rows(self) -> dict[str, np.ndarray]:
        return {k: v[: len(self)] for k, v in self._reservoir.items()}

    def recent_rows(self) -> dict[str, np.ndarray]:
        """The recent window, oldest first."""
        m = self.recent_count
        order = (self._recent_next - m + np.arange(m)) % self.recent_size
        return {k: v[order] for k, v in self._recent.items()}

    def sample(self, n: int, recent_fraction: float = 0.5,
               rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """``n`` examples: ``recent_fraction`` of them from the recent window, the rest replayed."""
        if not len(self) and not self.recent_count:
            raise ValueError("cannot sample an empty replay buffer")
        rng = self.rng if rng is None else rng
        n_recent = int(round(n * min(max(recent_fraction, 0.0), 1.0)))
        if not len(self) or not self.recent_count:   # one store emptied by drop(): all from the other
            n_recent = n if self.recent_count else 0
        recent_rows = rng.integers(0, max(self.recent_count, 1), n_recent)
        reservoir_rows = rng.integers(0, max(len(self), 1), n - n_recent)
        return {name: np.concatenate([self._recent[name][recent_rows], self._reservoir[name][reservoir_rows]])
                for name in self.columns}

    # -- checkpointing ---------------------------------------------------------------------
    def state_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and JSON-able metadata that :meth:`from_state` restores bit-exactly."""
        arrays = {f"reservoir.{k}": v[: len(self)].copy() for k, v in self._reservoir.items()}
        arrays.update({f"recent.{k}": v[: self.recent_count].copy() for k, v in self._recent.items()})
        meta = {"seen": self.seen, "reservoir_size": self.reservoir_size, "recent_size": self.recent_size,
                "held": self._held, "recent_held": self._recent_held, "recent_next": self._recent_next,
                "rng": json.dumps(self.rng.bit_generator.state),
                "columns": {k: [list(s), d.str] for k, (s, d) in self.columns.items()}}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], meta: dict) -> "ReplayBuffer":
        columns = {k: (tuple(s), np.dtype(d)) for k, (s, d) in meta["columns"].items()}
        buf = cls(columns, int(meta["reservoir_size"]), int(meta["recent_size"]))
        buf.seen = int(meta["seen"])
        # Checkpoints from before drop() existed hold no counts: nothing was ever dropped then.
        buf._held = int(meta.get("held", min(buf.seen, buf.reservoir_size)))
        buf._recent_held = int(meta.get("recent_held", min(buf.seen, buf.recent_size)))
        buf._recent_next = int(meta.get("recent_next", buf.seen % buf.recent_size))
        buf.rng.bit_generator.state = json.loads(meta["rng"])
        for name in columns:
            res, rec = arrays[f"reservoir.{name}"], arrays[f"recent.{name}"]
            buf._reservoir[name][: len(res)] = res
            buf._recent[name][: len(rec)] = rec
        return buf
