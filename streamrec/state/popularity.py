"""Time-decayed item popularity ("trending"), kept per source partition and summed on read.

A streams worker only sees the events of its own partitions, so it keeps one decayed
score per (partition, item): the table key is ``"<partition>/<item_id>"`` and the record
lands in the changelog partition of the events it summarises. Readers (serving, the
learner) sum the partitions' scores after decaying them to a common time.

Examples
--------
>>> p = Popularity.empty()
>>> p.add(t=0.0, weight=1.0, half_life=10.0); p.add(t=10.0, weight=1.0, half_life=10.0)
>>> round(p.score, 3), p.count
(1.5, 2)
>>> round(p.at(20.0, half_life=10.0), 3)
0.75
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np


def popularity_key(partition: int, item_id: str) -> str:
    return f"{partition}/{item_id}"


def split_key(key: str) -> tuple[int, str]:
    partition, _, item_id = key.partition("/")
    return int(partition), item_id


@dataclass
class Popularity:
    score: float     # decayed weight, anchored at ``t``
    t: float
    count: int
    watermark: tuple[int, int] = (-1, -1)   # (offset, index) of the last event counted

    @classmethod
    def empty(cls) -> "Popularity":
        return cls(0.0, 0.0, 0)

    def add(self, t: float, weight: float, half_life: float) -> None:
        if t >= self.t:
            self.score = self.score * 2.0 ** ((self.t - t) / half_life) + weight
            self.t = t
        else:  # late event: decay its weight to the anchor instead
            self.score += weight * 2.0 ** ((t - self.t) / half_life)
        self.count += 1

    def at(self, now: float, half_life: float) -> float:
        return self.score * 2.0 ** ((self.t - now) / half_life) if now >= self.t else self.score

    def encode(self) -> bytes:
        return json.dumps({"s": self.score, "t": self.t, "n": self.count, "wm": list(self.watermark)},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Popularity":
        d = json.loads(raw)
        return cls(float(d["s"]), float(d["t"]), int(d["n"]), tuple(d["wm"]))


@dataclass
class TrendingIndex:
    """Sum of per-partition decayed popularity; what serving ranks cold-start lists by."""

    half_life: float
    _parts: dict[str, dict[int, Popularity]] = field(default_factory=dict)
    newest_time: float = 0.0

    def update(self, key: str, raw: bytes | None) -> None:
        partition, item_id = split_key(key)
        if raw is None:
            self._parts.get(item_id, {}).pop(partition, None)
            return
        pop = Popularity.decode(raw)
        self._parts.setdefault(item_id, {})[partition] = pop
        self.newest_time = max(self.newest_time, pop.t)

    def scores(self, now: float | None = None) -> tuple[list[str], np.ndarray]:
        now = self.newest_time if now is None else now
        ids = list(self._parts)
        values = np.fromiter((sum(p.at(now, self.half_life) for p in self._parts[i].values()) for i in ids),
                             dtype=np.float64, count=len(ids))
        return ids, values

    def top(self, k: int, exclude: set[str] = frozenset(), now: float | None = None) -> list[tuple[str, float]]:
        ids, values = self.scores(now)
        order = np.argsort(-values, kind="stable")
        out = []
        for j in order:
            if ids[j] not in exclude:
                out.append((ids[j], float(values[j])))
                if len(out) == k:
                    break
        return out
