"""Admission control's decisions on a clock the test moves (serving.admission)."""
from __future__ import annotations

import asyncio

from serving.admission import Admission


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _serve(gate: Admission, clock: Clock, work_s: float, log: list, name: str) -> None:
    reason, waited = await gate.admit(clock())
    log.append((name, reason, round(waited, 6)))
    if reason is None:
        clock.now += work_s   # the answer's CPU time on the loop
        gate.done()


def test_turns_are_first_come_one_at_a_time_and_the_queue_bound_sheds_at_once():
    async def main():
        clock, log = Clock(), []
        gate = Admission(max_queued=3, target_wait_s=10.0, max_wait_s=10.0, clock=clock)
        await asyncio.gather(*(_serve(gate, clock, 0.01, log, f"r{n}") for n in range(5)))
        return log, gate

    log, gate = asyncio.run(main())
    # r3 and r4 find three ahead of them and are refused before anyone is answered.
    assert log == [("r3", "queue_full", 0.0), ("r4", "queue_full", 0.0),
                   ("r0", None, 0.0), ("r1", None, 0.01), ("r2", None, 0.02)]
    assert gate.queued == 0


def test_expected_wait_sheds_by_measured_time_per_answer_not_by_count():
    async def main():
        clock, log = Clock(), []
        gate = Admission(max_queued=1000, target_wait_s=0.05, max_wait_s=10.0, clock=clock)
        # A backlog teaches the gate what an answer costs: starts 20 ms apart.
        await asyncio.gather(*(_serve(gate, clock, 0.02, log, f"warm{n}") for n in range(4)))
        assert abs(gate.per_answer_s - 0.02) < 1e-9
        log.clear()
        await asyncio.gather(*(_serve(gate, clock, 0.02, log, f"r{n}") for n in range(6)))
        return log

    log = asyncio.run(main())
    # r0..r2 see 0, 1, 2 ahead (expected wait 0, 20, 40 ms <= 50 ms); r3 would wait 60 ms.
    shed = [name for name, reason, _ in log if reason == "expected_wait"]
    assert shed == ["r3", "r4", "r5"]
    assert [waited for name, reason, waited in log if reason is None] == [0.0, 0.02, 0.04]


def test_a_request_that_waited_past_the_timeout_is_shed_on_its_turn_and_the_next_one_served():
    async def main():
        clock, log = Clock(), []
        gate = Admission(max_queued=10, target_wait_s=10.0, max_wait_s=0.1, clock=clock)
        # The first answer stalls for 150 ms: the two behind it waited past 100 ms.
        first = asyncio.create_task(_serve(gate, clock, 0.15, log, "stall"))
        others = [asyncio.create_task(_serve(gate, clock, 0.01, log, f"r{n}")) for n in range(2)]
        await asyncio.gather(first, *others)
        await _serve(gate, clock, 0.01, log, "later")   # arrives after the stall: served
        return log, gate

    log, gate = asyncio.run(main())
    assert log == [("stall", None, 0.0), ("r0", "waited", 0.15), ("r1", "waited", 0.15), ("later", None, 0.0)]
    # The shed turns did no work: they must not teach the gate that answers are free.
    assert abs(gate.per_answer_s - 0.15) < 1e-9 and gate.queued == 0


def test_a_cancelled_waiter_gives_up_its_place_and_the_turn_moves_on():
    async def main():
        clock, log = Clock(), []
        gate = Admission(max_queued=10, target_wait_s=10.0, max_wait_s=10.0, clock=clock)
        reason, _ = await gate.admit(clock())          # holds the turn
        assert reason is None
        waiting = asyncio.create_task(_serve(gate, clock, 0.01, log, "cancelled"))
        behind = asyncio.create_task(_serve(gate, clock, 0.01, log, "behind"))
        await asyncio.sleep(0)
        assert gate.queued == 3
        waiting.cancel()
        await asyncio.sleep(0)
        gate.done()
        await behind
        return log, gate, waiting

    log, gate, waiting = asyncio.run(main())
    assert waiting.cancelled() and log == [("behind", None, 0.0)] and gate.queued == 0


def test_a_turn_granted_then_cancelled_passes_the_turn_on():
    async def main():
        clock, log = Clock(), []
        gate = Admission(max_queued=10, target_wait_s=10.0, max_wait_s=10.0, clock=clock)
        await gate.admit(clock())
        granted = asyncio.create_task(_serve(gate, clock, 0.01, log, "granted"))
        behind = asyncio.create_task(_serve(gate, clock, 0.01, log, "behind"))
        await asyncio.sleep(0)
        gate.done()            # "granted" now holds the turn but has not run yet...
        granted.cancel()       # ...and is cancelled (the server is stopping)
        await asyncio.gather(granted, behind, return_exceptions=True)
        return log, gate

    log, gate = asyncio.run(main())
    assert log == [("behind", None, 0.0)] and gate.queued == 0
