"""What a producer does to events before writing them: an id each, the partition, packing.

Serving's ``POST /events`` and :class:`streamrec.producer.EventProducer` both go through
:class:`Packer`, so both write what the event contract asks (docs/contracts.md): every
event on its user's partition (:func:`~streamrec.contracts.events.owner_partition`, Kafka's
default partitioner on ``user_id``: the partition the streams worker owns for that user),
a packed message holding only events of that one partition, in the order they were given,
keyed by the ``user_id`` of its first event, and no value larger than the consumers accept
(:func:`message_limit`). The partition is set explicitly on each message, so no client's
partitioner setting matters.

Examples
--------
>>> from streamrec.contracts.events import Event, owner_partition
>>> packer = Packer(partitions=4, max_bytes=10_000, max_events=2)
>>> events = [Event(u, "i", "view", 1.7e9, event_id=f"e{n}") for n, u in enumerate(["a", "c", "a", "a"])]
>>> done = [m for ev in events for m in packer.add(ev)]     # "a"'s partition fills up first
>>> [(m.partition == owner_partition("a", 4), len(m.events)) for m in done]
[(True, 2)]
>>> [(m.key, len(m.events)) for m in packer.drain()]          # the rest, partition by partition
[(b'a', 1), (b'c', 1)]
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field

from streamrec.contracts.events import Event, owner_partition
from streamrec.settings import Settings

# Every client's default largest produce request is 1,000,000 bytes (librdkafka's
# message.max.bytes, aiokafka's and Faust's max_request_size), and Kafka's default largest
# record batch is 1,048,588: a value below both, with room for the key and the record
# framing, is accepted everywhere without tuning.
MAX_VALUE_BYTES = 990_000


def message_limit(settings: Settings) -> int:
    """Largest packed value to write: what the consumers accept, within what clients send."""
    return min(settings.max_message_bytes, MAX_VALUE_BYTES)


def new_event_id() -> str:
    """A fresh ``event_id`` (random, 32 hex digits)."""
    return uuid.uuid4().hex


def with_event_id(event: Event) -> Event:
    """``event`` with a generated ``event_id`` when it has none.

    An id makes a copy written twice (a producer's retry after a lost acknowledgement)
    count once: every consumer drops ``event_id`` duplicates (:mod:`streamrec.state.dedup`).
    """
    return event if event.event_id is not None else dataclasses.replace(event, event_id=new_event_id())


def encode_event(event: Event) -> bytes:
    """One event's compact JSON, as it appears inside a packed message."""
    return json.dumps(event.to_dict(), separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class PackedMessage:
    """One message to write: its partition, key, value and the events it holds (none for a user deletion)."""

    partition: int
    key: bytes
    value: bytes
    events: tuple[Event, ...]


@dataclass(slots=True)
class _Open:
    """The message being filled for one partition."""

    events: list[Event] = field(default_factory=list)
    parts: list[bytes] = field(default_factory=list)
    size: int = 0          # bytes of the parts, without brackets and commas

    def size_with(self, part: bytes) -> int:
        # A packed value is [e1,e2,...]: brackets and a comma between each two.
        return self.size + len(part) + len(self.parts) + 2


class Packer:
    """Groups events into packed messages per partition, bounded in events and bytes.

    Parameters
    ----------
    partitions : int
        Partitions of ``events`` (``settings.partitions``: the count every consumer assumes).
    max_bytes : int
        Largest value of a packed message (see :func:`message_limit`); an event is never
        split, so a message of one event may only be as large as that event.
    max_events : int
        Most events in one message.
    """

    def __init__(self, partitions: int, max_bytes: int, max_events: int = 500):
        self.partitions, self.max_bytes, self.max_events = partitions, max_bytes, max(1, max_events)
        self._open: dict[int, _Open] = {}

    def __len__(self) -> int:
        """Events added and not yet returned in a message."""
        return sum(len(o.events) for o in self._open.values())

    def add(self, event: Event) -> list[PackedMessage]:
        """Add one event; returns the messages it completed (none, or its partition's full one)."""
        partition = owner_partition(event.user_id, self.partitions)
        part = encode_event(event)
        done: list[PackedMessage] = []
        current = self._open.get(partition)
        if current is not None and current.size_with(part) > self.max_bytes:
            done.append(self._close(partition))
            current = None
        if current is None:
            current = self._open[partition] = _Open()
        current.events.append(event)
        current.parts.append(part)
        current.size += len(part)
        if len(current.events) >= self.max_events:
            done.append(self._close(partition))
        return done

    def drain(self) -> list[PackedMessage]:
        """Every message still being filled, by partition (the packer is empty afterwards)."""
        return [self._close(partition) for partition in sorted(self._open)]

    def _close(self, partition: int) -> PackedMessage:
        current = self._open.pop(partition)
        # One event is written as an object, several as an array: encode_events' format.
        value = current.parts[0] if len(current.parts) == 1 else b"[" + b",".join(current.parts) + b"]"
        key = current.events[0].user_id.encode("utf-8", "surrogatepass")
        return PackedMessage(partition, key, value, tuple(current.events))


def pack_events(events: list[Event], partitions: int, max_bytes: int, max_events: int = 500) -> list[PackedMessage]:
    """All of ``events`` as packed messages (see :class:`Packer`); each partition's in the order given."""
    packer = Packer(partitions, max_bytes, max_events)
    done = [message for event in events for message in packer.add(event)]
    return done + packer.drain()
