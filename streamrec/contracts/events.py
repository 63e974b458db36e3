"""The event contract (topic ``events``) and its validation.

An event is a JSON object; a message may also carry a JSON array of them (a packed
batch). Validation is strict and cheap: each element is checked on its own, valid
ones become :class:`Event`, invalid ones become :class:`Rejection` with a reason code
that the streams worker puts on the dead-letter topic together with the original bytes.
The event types accepted are the ones the deployment declares (``STREAMREC_EVENT_WEIGHTS``,
:mod:`streamrec.contracts.semantics`; by default :data:`EVENT_TYPES`).

Examples
--------
>>> from streamrec.settings import Settings
>>> ok, bad = parse_message(b'{"user_id": 1, "item_id": "a", "event_type": "click",'
...                         b' "timestamp": 1.5e9}', Settings())
>>> ok[0].user_id, ok[0].item_id, bad
('1', 'a', [])
>>> bad = parse_message(b'[{"user_id": 1, "item_id": "a", "event_type": "like", "timestamp": 1.5e9}]',
...                     Settings())[1][0]
>>> bad.reason, bad.index, bad.field
('unknown_event_type', 0, 'event_type')
>>> parse_message(b'{"user_id": 1, "item_id": "a", "event_type": "like", "timestamp": 1.5e9}',
...               Settings(event_weights="like=1,dislike=-1"))[0][0].event_type   # a declared type
'like'
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

from streamrec.contracts.deletion import UserDeletion, decode_deletion
from streamrec.contracts.fields import InvalidEvent, identifier, number
from streamrec.contracts.semantics import event_semantics
from streamrec.contracts.topics import partition_for
from streamrec.settings import Settings

# The event types declared by default (STREAMREC_EVENT_WEIGHTS declares a deployment's own:
# streamrec.contracts.semantics); validation accepts the declared ones.
EVENT_TYPES = event_semantics().types
REQUIRED = ("user_id", "item_id", "event_type", "timestamp")
KNOWN_FIELDS = frozenset(REQUIRED + ("value", "event_id"))

# Reason codes carried in the ``reason`` header of dead-letter records.
REASONS = (
    "null_value", "oversized", "bad_encoding", "bad_json", "not_an_object", "missing_field", "bad_type",
    "bad_id", "unknown_event_type", "non_finite", "number_too_large", "timestamp_out_of_range",
    "empty_batch", "not_an_event",
    # user deletions (streamrec.contracts.deletion)
    "unknown_op", "deletion_no_key", "deletion_unsigned", "deletion_bad_signature", "deletion_misrouted",
)


@dataclass(frozen=True, slots=True)
class Event:
    user_id: str
    item_id: str
    event_type: str
    timestamp: float
    value: float | None = None
    event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"user_id": self.user_id, "item_id": self.item_id,
                             "event_type": self.event_type, "timestamp": self.timestamp}
        if self.value is not None:
            d["value"] = self.value
        if self.event_id is not None:
            d["event_id"] = self.event_id
        return d


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    index: int | None = None  # position inside a packed batch, None for the whole message
    original: bytes | None = None  # the element's own JSON when it came from a packed batch
    field: str | None = None  # the event field at fault (None: the message or element as a whole)

    def describe(self) -> str:
        where = "" if self.index is None else f" (element {self.index})"
        return f"{self.reason}: {self.detail}{where}"


def validate(obj: Any, settings: Settings, now: float | None = None) -> Event:
    """Turn one decoded JSON value into an :class:`Event` or raise :class:`InvalidEvent`."""
    if not isinstance(obj, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    if "op" in obj:   # reserved: a user deletion, which is never an event nor part of a packed batch
        raise InvalidEvent("not_an_event", "a record with op is a user deletion: only serving's DELETE "
                                           "/admin/users/{id} writes one, as a message of its own", "op")
    for name in REQUIRED:
        if name not in obj or obj[name] is None:
            raise InvalidEvent("missing_field", f"{name} is required", name)
    user_id = identifier(obj, "user_id", settings.max_id_length)
    item_id = identifier(obj, "item_id", settings.max_id_length)
    event_type = obj["event_type"]
    if not isinstance(event_type, str):
        raise InvalidEvent("bad_type", "event_type must be a string", "event_type")
    semantics = settings.semantics
    if not semantics.accepts(event_type):
        raise InvalidEvent("unknown_event_type", f"{event_type[:40]!r} is not one of {', '.join(semantics.types)}",
                           "event_type")
    ts = number(obj, "timestamp")
    now = time.time() if now is None else now
    if ts < settings.min_timestamp or ts > now + settings.max_future_skew_s:
        raise InvalidEvent("timestamp_out_of_range", f"timestamp {ts} is outside the accepted range", "timestamp")
    value = number(obj, "value") if obj.get("value") is not None else None
    event_id = identifier(obj, "event_id", settings.max_id_length) if obj.get("event_id") is not None else None
    return Event(user_id, item_id, event_type, ts, value, event_id)


def _reject_constant(name: str) -> float:
    raise InvalidEvent("non_finite", f"{name} is not valid JSON")   # which field: unknown while decoding


def parse_message(raw: bytes | None, settings: Settings,
                  now: float | None = None) -> tuple[list[Event], list[Rejection]]:
    """Validate one Kafka message value: a single event or a packed JSON array of them."""
    doc, rejection = _load(raw, settings)
    if rejection is not None:
        return [], [rejection]
    return _events_of(doc, settings, time.time() if now is None else now)


def _load(raw: bytes | None, settings: Settings) -> tuple[Any, Rejection | None]:
    """A message value's JSON document, or why it has none."""
    if raw is None:
        return None, Rejection("null_value", "the message has no value (a null / tombstone)")
    if len(raw) > settings.max_message_bytes:
        return None, Rejection("oversized", f"{len(raw)} bytes > {settings.max_message_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, Rejection("bad_encoding", f"not UTF-8: {exc.reason}")
    try:
        # NaN / Infinity are not JSON; Python accepts them unless told otherwise.
        return json.loads(text, parse_constant=_reject_constant), None
    except InvalidEvent as exc:
        return None, Rejection(exc.reason, exc.detail)
    except (ValueError, RecursionError) as exc:
        return None, Rejection("bad_json", str(exc)[:200])


def _events_of(doc: Any, settings: Settings, now: float) -> tuple[list[Event], list[Rejection]]:
    if isinstance(doc, list):
        if not doc:
            return [], [Rejection("empty_batch", "packed batch holds no events")]
        events, rejections = [], []
        for i, element in enumerate(doc):
            try:
                events.append(validate(element, settings, now))
            except InvalidEvent as exc:
                original = json.dumps(element, separators=(",", ":")).encode()
                rejections.append(Rejection(exc.reason, exc.detail, i, original, exc.field))
        return events, rejections
    try:
        return [validate(doc, settings, now)], []
    except InvalidEvent as exc:
        return [], [Rejection(exc.reason, exc.detail, field=exc.field)]


def encode_events(events: Iterable[Event | dict]) -> bytes:
    """Encode one event, or a packed batch when given several."""
    docs = [e.to_dict() if isinstance(e, Event) else e for e in events]
    doc: Any = docs[0] if len(docs) == 1 else docs
    return json.dumps(doc, separators=(",", ":")).encode()


Position = tuple[int, int, int]   # (partition, offset, index among the message's valid events)


@dataclass(slots=True)
class DecodedMessage:
    """One ``events`` message as every consumer sees it (see :func:`decode_message`)."""

    events: list[tuple[Event, Position]]            # valid, and their user belongs to this partition
    misrouted: list[tuple[Event, Position, int]]    # valid, but their user's partition is the int
    rejections: list[Rejection]
    # a verified user deletion with its (partition, offset): a message holds one or none
    deletions: list[tuple[UserDeletion, tuple[int, int]]] = field(default_factory=list)


@lru_cache(maxsize=1 << 16)
def owner_partition(user_id: str, partitions: int) -> int:
    """The partition a user's events belong to: Kafka's default partitioner on the key."""
    return partition_for(user_id.encode("utf-8", "surrogatepass"), partitions)


def decode_message(raw: bytes | None, partition: int, offset: int, settings: Settings,
                   partitions: int | None = None, now: float | None = None) -> DecodedMessage:
    """Validate one message read from ``partition``/``offset`` of ``events``: the one input rule.

    The streams worker, serving's replica and the learner all call this, so they accept,
    reject and locate events identically. An event is *misrouted* when its user's partition
    (Kafka's default partitioner on ``user_id``, over ``partitions``, default
    ``settings.partitions``) is not the one it arrived on: a producer with another
    partitioner, no key, or a packed batch mixing users. Consumers never apply a misrouted
    event where it arrived; the streams worker re-publishes it to its user's partition,
    where everyone applies it (see :mod:`streams.batch`).

    A message that is one object with an ``op`` is a user deletion
    (:mod:`streamrec.contracts.deletion`): it is in ``deletions`` when its signature is valid
    under ``settings.deletion_signing_key`` and it arrived on its user's partition (where it
    is ordered after that user's earlier events), and a rejection otherwise; a deletion is
    never re-routed, since moving it would move it out of that order.

    Examples
    --------
    >>> s = Settings(partitions=4)
    >>> m = decode_message(b'{"user_id": "u1", "item_id": "a", "event_type": "view", "timestamp": 1e9}',
    ...                    owner_partition("u1", 4), 7, s)
    >>> [(ev.user_id, pos[1:]) for ev, pos in m.events], m.misrouted, m.rejections
    ([('u1', (7, 0))], [], [])
    >>> decode_message(None, 0, 8, s).rejections[0].reason
    'null_value'
    """
    n = partitions or settings.partitions
    doc, rejection = _load(raw, settings)
    if rejection is not None:
        return DecodedMessage([], [], [rejection])
    if isinstance(doc, dict) and "op" in doc:
        return _decode_deletion(doc, partition, offset, settings, n)
    events, rejections = _events_of(doc, settings, time.time() if now is None else now)
    located: list[tuple[Event, Position]] = []
    misrouted: list[tuple[Event, Position, int]] = []
    for index, ev in enumerate(events):
        owner = owner_partition(ev.user_id, n)
        if owner == partition:
            located.append((ev, (partition, offset, index)))
        else:
            misrouted.append((ev, (partition, offset, index), owner))
    return DecodedMessage(located, misrouted, rejections)


def _decode_deletion(doc: dict, partition: int, offset: int, settings: Settings, partitions: int) -> DecodedMessage:
    try:
        deletion = decode_deletion(doc, settings.deletion_signing_key, settings.max_id_length)
    except InvalidEvent as exc:
        return DecodedMessage([], [], [Rejection(exc.reason, exc.detail, field=exc.field)])
    owner = owner_partition(deletion.user_id, partitions)
    if owner != partition:
        return DecodedMessage([], [], [Rejection("deletion_misrouted", f"the deletion of a user of partition {owner} "
                                                 f"arrived on partition {partition}", field="user_id")])
    return DecodedMessage([], [], [], [(deletion, (partition, offset))])
