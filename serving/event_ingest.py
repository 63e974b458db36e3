"""Events received over HTTP, written to ``events`` like any producer would (``POST /events``).

:meth:`EventIngest.prepare` validates a body with the one input rule every consumer applies
(:func:`streamrec.contracts.events.parse_message`: one event, or a JSON array of them) and
packs it with the producers' one packer (:mod:`streamrec.contracts.packing`: an ``event_id``
for each event without one, each event on its user's partition, packed per partition in the
order given). **All or nothing**: one invalid element rejects the whole body
(:class:`EventsRejected`, every element's problem listed) and nothing is written, so a 400
always means "fix and resend all of it", never "some of it went in".

:meth:`EventIngest.write` hands the messages to serving's producer (the request agent's
Faust producer: :meth:`serving.request_agent.RequestAgent.enqueue`), each partition's in
order, and waits for the broker's acknowledgements, at most ``serving_ingest_timeout_s``
(the producer's own delivery timeout; the wait allows one second more so that the
producer's verdict comes first). The :class:`Written` outcome carries the consistency token
(:mod:`streamrec.contracts.consistency`) of what was acknowledged.

Examples
--------
>>> from streamrec.settings import Settings
>>> ingest = EventIngest(Settings(partitions=4))
>>> messages = ingest.prepare(b'[{"user_id": "u1", "item_id": "a", "event_type": "view", "timestamp": 1.7e9},'
...                           b' {"user_id": "u1", "item_id": "b", "event_type": "click", "timestamp": 1.7e9}]')
>>> [(m.key, len(m.events)) for m in messages], all(e.event_id for e in messages[0].events)
([(b'u1', 2)], True)
>>> try:
...     ingest.prepare(b'[{"user_id": "u1", "item_id": "a", "event_type": "like", "timestamp": 1.7e9}]')
... except EventsRejected as exc:
...     body = exc.body()
>>> body["index"], body["field"], body["reason"]
(0, 'event_type', 'unknown_event_type')
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from streamrec.contracts.consistency import acknowledge, encode_token
from streamrec.contracts.deletion import UserDeletion
from streamrec.contracts.events import Rejection, owner_partition, parse_message
from streamrec.contracts.packing import PackedMessage, message_limit, pack_events, with_event_id
from streamrec.contracts.topics import EVENTS
from streamrec.settings import Settings

log = logging.getLogger(__name__)

# (topic, key, value, partition) -> a future of the broker's record metadata (.partition, .offset)
Enqueue = Callable[[str, bytes, bytes, int], Awaitable[Awaitable[Any]]]
# A 400 lists this many element problems at most (a body of thousands of bad events would
# otherwise answer with a body larger than itself).
MAX_LISTED = 100


class EventsRejected(Exception):
    """The body is not valid events: nothing was written. :meth:`body` is the 400 answer."""

    def __init__(self, rejections: list[Rejection], events: int):
        super().__init__(rejections[0].describe())
        self.rejections, self.events = rejections, events

    def body(self) -> dict[str, Any]:
        """``error``, ``field``, ``index``, ``reason`` of the first problem, then ``errors`` (each one)."""
        first = self.rejections[0]
        where = "" if first.index is None else f"element {first.index}: "
        return {"error": f"{where}{first.detail}", "field": first.field or "body", "index": first.index,
                "reason": first.reason, "rejected": len(self.rejections), "valid": self.events,
                "errors": [{"index": r.index, "field": r.field or "body", "reason": r.reason, "detail": r.detail}
                           for r in self.rejections[:MAX_LISTED]]}


@dataclass
class Written:
    """What the broker acknowledged of one body's messages."""

    events: int                                    # in the body
    acknowledged: int = 0                          # events in acknowledged messages
    positions: dict[int, int] = field(default_factory=dict)
    error: str | None = None                       # why not all were (None: all were)

    @property
    def complete(self) -> bool:
        return self.error is None and self.acknowledged == self.events

    @property
    def token(self) -> str:
        return encode_token(self.positions)


class EventIngest:
    """Validation, packing and acknowledged writes of ``POST /events`` bodies.

    ``enqueue`` is set once serving's producer runs (None: not yet, or stopping: the route
    answers 503); ``broker_problem`` tells why the broker cannot be written to right now
    (the broker watch's verdict), so a request is answered at once instead of after the
    timeout while the broker is known to be down.
    """

    def __init__(self, settings: Settings, enqueue: Enqueue | None = None,
                 broker_problem: Callable[[], str | None] = lambda: None):
        self.settings = settings
        self.topic = settings.topic(EVENTS)
        self.timeout_s = settings.serving_ingest_timeout_s
        self.enqueue, self.broker_problem = enqueue, broker_problem
        self.body_limit = settings.max_message_bytes     # a body is at most one events message

    def prepare(self, raw: bytes) -> list[PackedMessage]:
        """The messages to write for ``raw``; :class:`EventsRejected` if any of it is invalid."""
        events, rejections = parse_message(raw, self.settings)
        if rejections:
            raise EventsRejected(rejections, len(events))
        return pack_events([with_event_id(e) for e in events], self.settings.partitions,
                           message_limit(self.settings))

    def unavailable(self) -> str | None:
        """Why nothing can be written now (None: try)."""
        if self.enqueue is None:
            return "serving's producer is not running (starting or stopping)"
        return self.broker_problem()

    async def write(self, messages: list[PackedMessage]) -> Written:
        """Write and wait for the broker: every message acknowledged, or why not (bounded wait)."""
        out = Written(sum(len(m.events) for m in messages))
        by_partition: dict[int, list[PackedMessage]] = defaultdict(list)
        for m in messages:
            by_partition[m.partition].append(m)
        tasks = [asyncio.ensure_future(self._write_partition(ms, out)) for ms in by_partition.values()]
        done, pending = await asyncio.wait(tasks, timeout=self.timeout_s + 1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        failures = [t.exception() for t in done if t.exception() is not None]
        if failures:
            out.error = f"the broker did not take the events: {type(failures[0]).__name__}: {failures[0]}"[:300]
        elif pending:
            out.error = f"the broker did not acknowledge within {self.timeout_s:g}s"
        if out.error:
            log.warning("POST /events: %d of %d events acknowledged; %s", out.acknowledged, out.events, out.error)
        return out

    async def write_deletion(self, deletion: UserDeletion) -> Written:
        """Write a signed user deletion on its user's partition, as a message of its own.

        The :class:`Written` counts no events; its token is the deletion's own position.
        """
        partition = owner_partition(deletion.user_id, self.settings.partitions)
        key = deletion.user_id.encode("utf-8", "surrogatepass")
        return await self.write([PackedMessage(partition, key, deletion.encode(), ())])

    async def _write_partition(self, messages: list[PackedMessage], out: Written) -> None:
        # Every message is queued before any is awaited, in order: one partition's messages
        # reach the log in the order of the body.
        enqueue = self.enqueue
        if enqueue is None:
            raise RuntimeError("serving's producer stopped")
        futures = [await enqueue(self.topic, m.key, m.value, m.partition) for m in messages]
        for message, future in zip(messages, futures):
            meta = await future
            acknowledge(out.positions, meta.partition, meta.offset)
            out.acknowledged += len(message.events)
