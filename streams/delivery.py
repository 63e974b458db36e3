"""Produce a batch's records and wait until the broker has acknowledged every one.

The streams worker acknowledges its source messages only after this returns, so an offset
is never committed ahead of the state, re-routes and dead letters it produced. A write that
fails with a retriable error (broker down, leader moving, timeout) is sent again, alone,
with backoff, for as long as it takes: the worker stalls rather than loses anything. One
that can never succeed (for example a record larger than the broker accepts) is logged and
counted in ``streamrec_streams_writes_failed_total`` and dropped, so it cannot stall the
worker forever; records that already went through are never sent twice by a retry.
"""
from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from streams import metrics

log = logging.getLogger(__name__)


class Write(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: list[tuple[str, bytes]] | None = None


def retriable(exc: BaseException) -> bool:
    """True for errors that may pass by themselves (aiokafka marks them; Faust wraps them)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (asyncio.TimeoutError, ConnectionError)) or getattr(exc, "retriable", False):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


async def _send(producer, write: Write):
    future = await producer.send(write.topic, write.key, write.value, write.partition, None, write.headers)
    return await future


async def send_until_acknowledged(producer, writes: list[Write], *, first_backoff: float = 0.2,
                                  max_backoff: float = 5.0) -> None:
    """Send ``writes`` concurrently; re-send only the retriable failures until all are done."""
    pending = list(writes)
    backoff = first_backoff
    while pending:
        results = await asyncio.gather(*(_send(producer, w) for w in pending), return_exceptions=True)
        again = []
        for write, result in zip(pending, results):
            if not isinstance(result, BaseException):
                continue
            if isinstance(result, asyncio.CancelledError):
                raise result
            if retriable(result):
                again.append(write)
            else:
                metrics.WRITES_FAILED.labels(write.topic).inc()
                log.error("dropping a %d-byte record for %s that the broker refused: %r",
                          len(write.value or b""), write.topic, result)
        if again:
            log.warning("%d of %d writes failed with retriable errors; retrying in %.1fs",
                        len(again), len(pending), backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
        pending = again
