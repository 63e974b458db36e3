"""How far serving has applied the ``events`` topic, and waiting until a write is covered.

Read-your-writes: a client that wrote events holds a consistency token (the offsets the
broker acknowledged them at, :mod:`streamrec.contracts.consistency`); a recommendation
request that carries it (``after=``) is answered once serving's replica has handled every
``events`` message up to those offsets, so the answer reflects the client's own events (an
item just bought is already excluded). The wait is bounded: when it runs out the answer is
given anyway and says ``"stale": true``.

A position is the highest offset the replica's events feed has *handled* on a partition —
applied, dead-lettered or skipped as a duplicate alike: each of those is as applied as it
will ever be.

Examples
--------
>>> import asyncio
>>> positions = AppliedPositions()
>>> async def demo():
...     waiting = asyncio.create_task(positions.wait({0: 5, 2: 1}, timeout_s=1.0))
...     positions.advance(0, 5); positions.advance(2, 0)       # partition 2 not there yet
...     await asyncio.sleep(0)
...     positions.advance(2, 3)
...     return await waiting, await positions.wait({1: 0}, timeout_s=0.01)
>>> asyncio.run(demo())                                        # covered; never covered
(True, False)
"""
from __future__ import annotations

import asyncio
from typing import Mapping


class AppliedPositions:
    """Highest handled offset per partition, and futures waiting for targets to be covered."""

    def __init__(self) -> None:
        self.positions: dict[int, int] = {}
        self._waiters: list[tuple[Mapping[int, int], asyncio.Future]] = []

    def covers(self, target: Mapping[int, int]) -> bool:
        """Whether every partition of ``target`` is handled up to its offset."""
        positions = self.positions
        return all(positions.get(p, -1) >= offset for p, offset in target.items())

    def advance(self, partition: int, offset: int) -> None:
        """The feed handled ``partition`` up to ``offset``; wake the waits it completes."""
        if offset <= self.positions.get(partition, -1):
            return
        self.positions[partition] = offset
        if self._waiters:
            still = []
            for target, future in self._waiters:
                if future.done():
                    continue
                if self.covers(target):
                    future.set_result(True)
                else:
                    still.append((target, future))
            self._waiters = still

    async def wait(self, target: Mapping[int, int], timeout_s: float) -> bool:
        """True once ``target`` is covered; False if ``timeout_s`` passed first."""
        if self.covers(target):
            return True
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return False
        finally:
            if not future.done():
                future.cancel()
            self._waiters = [w for w in self._waiters if w[1] is not future]


__all__ = ["AppliedPositions"]
