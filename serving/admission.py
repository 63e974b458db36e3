"""Admission control for the HTTP API: who is answered, who is shed with 503 at once.

Every answer is synchronous CPU work on the one event loop, so requests cannot run side by
side: whatever is "in flight" is really a queue, and its length times the time each answer
takes is the wait a new request will see. A count limit alone does not bound that wait (256
requests of 16 ms each queue for 4 s), so admission works in time:

* **on arrival** a request is shed at once when the queue is full (``max_queued``) or when
  the wait it would see, the requests ahead of it times the measured time per answer, is
  over ``target_wait_s``;
* **on its turn** a request that nevertheless waited longer than ``max_wait_s`` (a stall:
  garbage collection, an index swap, a burst the estimate missed) is shed instead of worked
  on, as in CoDel: its answer would come too late to be worth the work.

Requests take turns one at a time, first come first served, and every turn's work starts
two passes of the event loop after the turn is granted (:data:`_GRANT_PASSES`). That is what
keeps shedding fast: between two answers the loop reads the sockets and runs the handlers
of what it read, so a new arrival is admitted or refused after at most the answer in
progress, instead of after everything already queued. The time per answer is measured from one
turn's start to the next while requests are waiting, so it includes everything else the loop
does between answers (parsing, shedding, the request-topic agent, the replica's consumers).

A request whose work ends in a wait on I/O (``POST /events`` waits for the broker's
acknowledgement) gives its turn back before that wait: the middleware puts a callable under
:data:`RELEASE_TURN` in the request, and calling it passes the turn on (later calls, and the
middleware's own at the end, do nothing). The wait then holds up no one, and the time per
answer keeps measuring work on the loop. A request that waits and then works (a
recommendation asked ``after=`` a write waits for serving to apply it) uses
:data:`WAIT_OUTSIDE_TURN` instead: its turn is given back for the wait and the request queues
again afterwards, where it may be shed (:class:`Shed`) like any arrival.

Examples
--------
>>> import asyncio
>>> gate = Admission(max_queued=2, target_wait_s=0.05, max_wait_s=0.2)
>>> async def request():
...     reason, waited = await gate.admit(gate.clock())
...     if reason is None:
...         gate.done()   # answered (here: at once): the next in line gets the turn
...     return reason
>>> async def three_arrive():
...     return await asyncio.gather(request(), request(), request())
>>> asyncio.run(three_arrive())   # the third found two ahead of it: the queue was full
[None, None, 'queue_full']
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Awaitable, Callable

from aiohttp import web

# Key of the request's "give my turn back now" callable (see the module docstring).
RELEASE_TURN = web.RequestKey("release_turn", Callable[[], None])
# Key of the request's "await this without holding a turn, then queue again" callable.
WAIT_OUTSIDE_TURN = web.RequestKey("wait_outside_turn", Callable[[Awaitable], Awaitable])
# Weight of the newest sample in the time-per-answer average: answers differ (k, filters,
# cold users), so the estimate follows the mix of the last few dozen rather than the last one.
_ALPHA = 0.1
# Loop passes between a turn's grant and its work. asyncio runs callbacks first in, first out,
# and a request read from its socket in one pass reaches its handler only in the next: a
# turn granted in pass P (by the previous answer's ``done``) and worked on at once would
# run in P+1 ahead of the handlers of everything read at the start of P+1, so a request that
# arrived during an answer waited for that answer and the next before it was even refused.
# With two passes in between, its handler runs in the pass before the work: a refusal waits
# for at most the answer in progress. An idle server starts on a new request's second pass
# too, so the requests read with it queue up (and are counted) before any of them is worked on.
_GRANT_PASSES = 2


class Shed(Exception):
    """A request that queued again after a wait outside its turn was shed (the reason)."""


class Admission:
    """Arrival decisions, first-come turns and the time-per-answer estimate.

    Parameters
    ----------
    max_queued : int
        Most requests admitted and not yet answered (the one being answered included).
    target_wait_s : float
        Longest expected wait a request is admitted with.
    max_wait_s : float
        A request that has waited longer than this when its turn comes is shed.
    clock : callable
        Monotonic seconds (injectable for tests).
    """

    def __init__(self, max_queued: int, target_wait_s: float, max_wait_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self.max_queued, self.target_wait_s, self.max_wait_s = max_queued, target_wait_s, max_wait_s
        self.clock = clock
        self.per_answer_s = 0.0          # estimate; 0 until measured (then only the count limits)
        self._waiters: deque[asyncio.Future] = deque()
        self._busy = False               # a request holds the turn
        self._last_start: float | None = None
        self._handed_over = False        # the current turn was passed on by a request that did work

    @property
    def queued(self) -> int:
        """Requests admitted and not yet answered."""
        return len(self._waiters) + self._busy

    def expected_wait_s(self) -> float:
        """The wait a request arriving now would see."""
        return self.queued * self.per_answer_s

    def _refusal(self) -> str | None:
        if self.queued >= self.max_queued:
            return "queue_full"
        if self.queued and self.expected_wait_s() > self.target_wait_s:
            return "expected_wait"
        return None

    async def admit(self, arrived: float) -> tuple[str | None, float]:
        """Admit a request and wait for its turn: (why it is shed or None, seconds it waited).

        A refusal on arrival (``queue_full``, ``expected_wait``) comes without waiting; a
        request that waited too long gets ``waited`` and the turn is already passed on. When
        the reason is None the request holds the turn: call :meth:`done` once it is answered.
        """
        refusal = self._refusal()
        if refusal is not None:
            return refusal, 0.0
        future = asyncio.get_running_loop().create_future()
        if self._busy:
            self._waiters.append(future)
        else:
            self._busy = True
            future.set_result(None)
        try:
            if not future.done():
                await future
            # The turn's work waits for two more passes of the loop (see _GRANT_PASSES): the
            # requests read meanwhile are admitted or refused before it, not after.
            for _ in range(_GRANT_PASSES):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._pass_on(worked=False)   # granted, but cancelled before it ran
            elif future in self._waiters:
                self._waiters.remove(future)
            raise
        now = self.clock()
        if self._handed_over and self._last_start is not None:
            sample = now - self._last_start
            # The first sample stands alone: averaging it with the initial 0 would admit too
            # many at the start of the first burst, exactly when the estimate matters.
            self.per_answer_s = sample if not self.per_answer_s else \
                self.per_answer_s + _ALPHA * (sample - self.per_answer_s)
        self._last_start, waited = now, now - arrived
        if waited > self.max_wait_s:
            self._pass_on(worked=False)
            return "waited", waited
        return None, waited

    def done(self) -> None:
        """The request holding the turn is answered: pass the turn on."""
        self._pass_on(worked=True)

    def _pass_on(self, worked: bool) -> None:
        # Only a turn that did the work measures the time per answer: a shed turn costs nothing
        # and would drag the estimate down just when the loop is struggling.
        self._handed_over = worked and bool(self._waiters)
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self._busy = False
