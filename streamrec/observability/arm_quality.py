"""Online quality per experiment arm: the windows of :mod:`~streamrec.observability.online_metrics`, one set per arm.

Serving records a served list under the arm that answered it (:meth:`QualityByArm.served`)
and hands every batch of applied events to :meth:`QualityByArm.observe`; each arm scores only
the lists it served (a user's pending list lives in their arm's window), so every arm's
HR@10, NDCG@10, exposure entropy, Gini and coverage are computed exactly as the global ones,
over that arm's traffic alone. Arms come and go with their experiments (:meth:`add`,
:meth:`remove`); the caller bounds how many there are.

Examples
--------
>>> arms = QualityByArm(k=10)
>>> control, diverse = arms.add(("div", "control")), arms.add(("div", "diverse"))
>>> arms.served(("div", "control"), "u1", ["a", "b"])
>>> arms.served(("div", "diverse"), "u2", ["c", "d"])
>>> arms.observe(["u1", "u2", "u3"], ["b", "x", "a"])     # u1 hit, u2 missed, u3 in no arm
2
>>> control.accuracy.hit_rate, diverse.accuracy.hit_rate
(1.0, 0.0)
>>> arms.remove(("div", "diverse")); sorted(arms.keys())
[('div', 'control')]
"""
from __future__ import annotations

from typing import Hashable, Sequence

from streamrec.observability.online_metrics import OnlineQuality

ArmKey = tuple[str, str]   # (experiment, arm)


class QualityByArm:
    """One :class:`OnlineQuality` per ``(experiment, arm)``, created with the same windows."""

    def __init__(self, k: int = 10, **windows):
        self.k, self.windows = k, windows
        self._arms: dict[ArmKey, OnlineQuality] = {}

    def add(self, key: ArmKey) -> OnlineQuality:
        """The windows of ``key``, created empty when it has none yet."""
        quality = self._arms.get(key)
        if quality is None:
            quality = self._arms[key] = OnlineQuality(k=self.k, **self.windows)
        return quality

    def remove(self, key: ArmKey) -> None:
        self._arms.pop(key, None)

    def get(self, key: ArmKey) -> OnlineQuality | None:
        return self._arms.get(key)

    def keys(self) -> list[ArmKey]:
        return list(self._arms)

    def served(self, key: ArmKey, user_id: Hashable, items: Sequence[Hashable]) -> None:
        """Record a list ``key`` served to ``user_id`` (ignored for an arm that is gone)."""
        quality = self._arms.get(key)
        if quality is not None:
            quality.served(user_id, items)

    def observe(self, user_ids: Sequence[Hashable], item_ids: Sequence[Hashable]) -> int:
        """Score each arm's pending lists against these events; returns how many were scored."""
        return sum(quality.observe(user_ids, item_ids) for quality in self._arms.values())
