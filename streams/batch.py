"""The streams hot path: one batch of Kafka messages in, state writes and dead letters out.

This is pure logic over one key-value store (user state), so it is tested without Faust; the agent in
:mod:`streams.app` feeds it batches from ``stream.take_events`` and writes what it returns
to the changelog-backed table.

Work per batch is shaped for Python's costs: all messages are validated first, then
:func:`streamrec.state.apply.apply_located` (the routine serving's replica applies events
with too) gathers every valid event's item vector with one numpy fancy-index and updates
each user's state once per batch; each changed state is encoded once for the changelog.

Examples
--------
>>> from streamrec.settings import Settings
>>> from streamrec.state.item_vectors import ItemVectors
>>> s = Settings()
>>> proc = BatchProcessor(s, ItemVectors(s.vector_dim))
>>> # user "1" belongs to partition 3 of the default 4
>>> rec = Record("events", 3, 7, b'{"user_id":1,"item_id":2,"event_type":"click","timestamp":1e9}', 1e9)
>>> out = proc.process([rec], users={})
>>> sorted(out.user_writes), out.applied, out.rejected
(['1'], 1, [])
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

from streamrec.contracts.deletion import UserDeletion
from streamrec.contracts.events import Event, Rejection, decode_message
from streamrec.settings import Settings
from streamrec.state.apply import Located, apply_located
from streamrec.state.item_vectors import ItemVectors
from streamrec.state.user_state import UserState, decode_state


DLQ_HEAD_BYTES = 512   # how much of a message too big to copy its dead letter still shows


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp: float  # broker/producer timestamp of the message, seconds
    key: bytes | None = None   # read only where the key is part of the contract (items)


@dataclass
class DeadLetter:
    """A rejected message (or element of a packed one) on its way to ``events-dlq``.

    The record is keyed by its source position (``topic/partition/offset[/index]``), so a
    reader can tell a copy written twice after a crash from two bad messages. A value that
    cannot travel whole (no value at all, or larger than ``copy_limit``, which stays below
    the producer's request size, ``STREAMREC_DLQ_MAX_COPY_BYTES``) is replaced by a small JSON record naming its topic,
    partition, offset, size and reason, with the first bytes base64-encoded under ``head``.
    """

    record: Record
    rejection: Rejection
    copy_limit: int = 262_144   # STREAMREC_DLQ_MAX_COPY_BYTES

    def key(self) -> bytes:
        r = self.record
        key = f"{r.topic}/{r.partition}/{r.offset}"
        return (key if self.rejection.index is None else f"{key}/{self.rejection.index}").encode()

    def _original(self) -> bytes | None:
        return self.rejection.original if self.rejection.original is not None else self.record.value

    def _fits(self) -> bool:
        original = self._original()
        return original is not None and len(original) <= self.copy_limit

    def headers(self) -> list[tuple[str, bytes]]:
        original = self._original()
        h = [("reason", self.rejection.reason.encode()),
             ("detail", self.rejection.detail[:500].encode("utf-8", "replace")),
             ("source_topic", self.record.topic.encode()),
             ("source_partition", str(self.record.partition).encode()),
             ("source_offset", str(self.record.offset).encode()),
             ("size", str(-1 if original is None else len(original)).encode())]
        if self.rejection.index is not None:
            h.append(("source_index", str(self.rejection.index).encode()))
        if not self._fits():
            h.append(("truncated", b"1"))
        return h

    def value(self) -> bytes:
        original = self._original()
        if self._fits():
            return original
        r = self.record
        return json.dumps({
            "source_topic": r.topic, "source_partition": r.partition, "source_offset": r.offset,
            "source_index": self.rejection.index, "size": None if original is None else len(original),
            "reason": self.rejection.reason, "detail": self.rejection.detail[:500],
            "head": base64.b64encode((original or b"")[:DLQ_HEAD_BYTES]).decode(),
        }, separators=(",", ":")).encode()


@dataclass
class Reroute:
    """A valid event that arrived on another user's partition, re-published to its own.

    An event with no ``event_id`` gets one derived from where it arrived, so a re-publish
    repeated after a crash is a duplicate that every consumer drops (:mod:`streamrec.state.dedup`).
    """

    event: Event
    partition: int            # the partition its user belongs to
    source: tuple[int, int, int]

    def key(self) -> bytes:
        return self.event.user_id.encode("utf-8", "surrogatepass")

    def value(self) -> bytes:
        doc = self.event.to_dict()
        if self.event.event_id is None:
            doc["event_id"] = "rerouted:{}:{}:{}".format(*self.source)
        return json.dumps(doc, separators=(",", ":")).encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return [("rerouted_from", "{}/{}/{}".format(*self.source).encode())]


@dataclass
class BatchResult:
    user_writes: dict[str, bytes | None] = field(default_factory=dict)   # None: a tombstone (user deleted)
    rejected: list[DeadLetter] = field(default_factory=list)
    rerouted: list[Reroute] = field(default_factory=list)
    consumed: int = 0
    applied: int = 0
    replayed: int = 0       # at or below a watermark: applied before a restart
    duplicates: int = 0     # event_id seen before at another position
    deleted: int = 0        # user states a verified deletion removed
    event_times: list[float] = field(default_factory=list)
    arrival_times: list[float] = field(default_factory=list)


class BatchProcessor:
    def __init__(self, settings: Settings, item_vectors: ItemVectors, partitions: int | None = None):
        self.settings = settings
        self.partitions = partitions or settings.partitions   # of the events topic
        self.item_vectors = item_vectors

    def process(self, records: list[Record], users: Mapping[str, bytes],
                now: float | None = None) -> BatchResult:
        """Validate and apply ``records`` (in consumption order) against the current user store."""
        s = self.settings
        now = time.time() if now is None else now
        out = BatchResult()
        located: list[Located] = []
        # user -> their last deletion in the batch and how many valid events came before it
        deletions: dict[str, tuple[UserDeletion, tuple[int, int], int]] = {}
        for rec in records:
            message = decode_message(rec.value, rec.partition, rec.offset, s, self.partitions, now)
            out.consumed += (len(message.events) + len(message.misrouted) + len(message.rejections)
                             + len(message.deletions))
            out.rejected.extend(DeadLetter(rec, r, s.dlq_max_copy_bytes) for r in message.rejections)
            out.rerouted.extend(Reroute(ev, owner, pos) for ev, pos, owner in message.misrouted)
            for deletion, position in message.deletions:
                deletions[deletion.user_id] = (deletion, position, len(located))
            located.extend(message.events)
            out.arrival_times.extend(rec.timestamp for _ in message.events)
        wiped = self._delete(deletions, users, out)
        if deletions:   # a user's events before their deletion are gone with it (or applied already)
            located = [(ev, pos) for k, (ev, pos) in enumerate(located)
                       if ev.user_id not in deletions or k >= deletions[ev.user_id][2]]
        if not located:
            return out

        def state_of(user_id: str) -> UserState:
            raw = None if user_id in wiped else users.get(user_id)
            return decode_state(raw) if raw is not None else UserState.empty(s.vector_dim)

        for user in apply_located(located, state_of, self.item_vectors, s):
            out.applied += len(user.applied)
            out.duplicates += len(user.duplicates)
            out.replayed += len(user.replayed)
            if user.applied:   # only an applied event moves a watermark: nothing else to write
                out.user_writes[user.user_id] = user.state.encode()
            out.event_times.extend(located[k][0].timestamp for k in user.applied)
        return out

    @staticmethod
    def _delete(deletions: Mapping[str, tuple[UserDeletion, tuple[int, int], int]], users: Mapping[str, bytes],
                out: BatchResult) -> set[str]:
        """Apply each user's last deletion of the batch: a tombstone, unless the state outlived it.

        A stored state holding an event of the partition written after the deletion has seen
        it already (the batch is a replay after a crash, and the user came back since): it
        stays. Events after the deletion in this batch start the user afresh, and their
        state replaces the tombstone in ``user_writes``.
        """
        wiped: set[str] = set()
        for user_id, (_, (partition, offset), _) in deletions.items():
            raw = users.get(user_id)
            if raw is not None and not decode_state(raw).deleted_by(partition, offset):
                continue
            wiped.add(user_id)
            out.user_writes[user_id] = None
            out.deleted += 1
        return wiped
