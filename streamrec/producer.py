"""``EventProducer``: send events to streamrec from any Python program.

It does what the event contract asks of a producer (docs/contracts.md) so the caller does
not have to know it:

* **validation** with the streams worker's own rules
  (:func:`streamrec.contracts.events.validate`): a bad event raises
  :class:`~streamrec.contracts.events.InvalidEvent` (a ``ValueError`` naming the reason and
  field) from :meth:`EventProducer.send`, before anything is written;
* **an ``event_id``** for every event that has none, so a copy written twice by a retry is
  applied once (:meth:`send` returns the id);
* **the system's partitioner**: each event goes to its user's partition
  (:func:`~streamrec.contracts.events.owner_partition`), set explicitly on the message;
* **batching**: events of one partition are packed into one message (up to ``pack`` events,
  never more bytes than consumers accept), and a message waits at most ``linger_s`` for
  more before it is handed to the client (a background thread sends it);
* **delivery errors surfaced**: :meth:`flush` (and :meth:`close`, and leaving a ``with``
  block normally) waits until the broker acknowledged every message, then **raises**
  :class:`DeliveryError` if any was not, holding the events that failed (resend them: their
  ids make a duplicate harmless) and the consistency token of what was written;
* **a consistency token** (:mod:`streamrec.contracts.consistency`): :attr:`token` holds the
  highest offset acknowledged on each partition, the same token ``POST /events`` answers.

With no ``settings`` (or no ``KAFKA_BOOTSTRAP_SERVERS``) it finds the running ``streamrec
up`` (:func:`streamrec.kafka.runfile.find_broker`). It is safe to call from several threads.

Examples
--------
>>> import time
>>> from streamrec.producer import DeliveryError, EventProducer
>>> with EventProducer() as producer:                                    # doctest: +SKIP
...     producer.send({"user_id": "196", "item_id": "242", "event_type": "click",
...                    "timestamp": time.time()})
...     token = producer.flush()           # every event acknowledged, or DeliveryError
>>> token                                                                # doctest: +SKIP
'p2:1041'
"""
from __future__ import annotations

import threading
from typing import Any, Iterable

from streamrec.contracts.consistency import acknowledge, encode_token
from streamrec.contracts.events import Event, validate
from streamrec.contracts.packing import Packer, PackedMessage, message_limit, with_event_id
from streamrec.contracts.topics import EVENTS
from streamrec.settings import Settings


class DeliveryError(RuntimeError):
    """Events the broker did not acknowledge.

    Attributes
    ----------
    failed : list of (Event, str)
        Each event that was not written, with the client's reason; resend them.
    pending : int
        Events whose outcome was still unknown when the wait ended (``flush(timeout)``
        shorter than the delivery timeout); they may still be written.
    token : str
        Consistency token of everything this producer had written when it raised.
    """

    def __init__(self, failed: list[tuple[Event, str]], pending: int, token: str):
        first = f"; first: {failed[0][1]}" if failed else ""
        super().__init__(f"{len(failed)} events not written, {pending} not acknowledged yet{first}")
        self.failed, self.pending, self.token = failed, pending, token


class DeliveryLedger:
    """What the broker said about each message: acknowledged positions, failed events.

    Delivery reports arrive on whichever thread polls the client; the ledger is the one
    place they are written, under its own lock.

    Examples
    --------
    >>> ledger = DeliveryLedger()
    >>> a, b = Event("u", "i", "view", 1.7e9), Event("v", "i", "view", 1.7e9)
    >>> ledger.sent(2)
    >>> ledger.acknowledged((a,), partition=1, offset=41)
    >>> ledger.failed((b,), "Local: Message timed out")
    >>> ledger.token, ledger.pending, [e.user_id for e, _ in ledger.take_failures()], ledger.take_failures()
    ('p1:41', 0, ['v'], [])
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._positions: dict[int, int] = {}
        self._failures: list[tuple[Event, str]] = []
        self.events_sent = self.events_acknowledged = self.events_failed = 0

    def sent(self, events: int) -> None:
        with self._lock:
            self.events_sent += events

    def acknowledged(self, events: tuple[Event, ...], partition: int, offset: int) -> None:
        with self._lock:
            acknowledge(self._positions, partition, offset)
            self.events_acknowledged += len(events)

    def failed(self, events: tuple[Event, ...], reason: str) -> None:
        with self._lock:
            self._failures.extend((event, reason) for event in events)
            self.events_failed += len(events)

    @property
    def pending(self) -> int:
        """Events handed to the client whose delivery report has not come yet."""
        return self.events_sent - self.events_acknowledged - self.events_failed

    @property
    def token(self) -> str:
        with self._lock:
            return encode_token(self._positions)

    def take_failures(self) -> list[tuple[Event, str]]:
        """The failed events not yet reported to the caller (the ledger forgets them)."""
        with self._lock:
            failures, self._failures = self._failures, []
            return failures


class EventProducer:
    """Validated, partitioned, batched events to ``events``, with delivery errors raised.

    Parameters
    ----------
    settings : Settings, optional
        Connection, security, topic prefix, partitions and validation limits (default:
        :meth:`Settings.from_env`, then the running ``up`` when no Kafka is configured).
    pack : int
        Most events of one partition in one message (1: a message per event).
    linger_s : float
        Longest an event waits in a part-filled message before it is sent.
    delivery_timeout_s : float
        How long the client keeps trying to deliver a message before it reports it failed.
    """

    def __init__(self, settings: Settings | None = None, *, pack: int = 100, linger_s: float = 0.005,
                 delivery_timeout_s: float = 30.0):
        from confluent_kafka import Producer

        from streamrec.kafka.config import producer_config
        from streamrec.kafka.runfile import find_broker, no_broker_found

        settings = Settings.from_env() if settings is None else settings
        found = find_broker(settings)
        if found is None:
            raise ConnectionError(no_broker_found(settings))
        self.settings = settings.replace(bootstrap_servers=found[0])
        self.topic = self.settings.topic(EVENTS)
        self.delivery_timeout_s, self.linger_s = delivery_timeout_s, linger_s
        self.ledger = DeliveryLedger()
        self._packer = Packer(self.settings.partitions, message_limit(self.settings), pack)
        self._producer = Producer(producer_config(self.settings, **{
            "message.timeout.ms": int(delivery_timeout_s * 1000), "queue.buffering.max.messages": 200_000}))
        self._lock = threading.Lock()      # the packer, and the order messages reach the client
        self._closed = threading.Event()
        self._sender = threading.Thread(target=self._linger_loop, name="event-producer", daemon=True)
        self._sender.start()

    @property
    def token(self) -> str:
        """Consistency token of every message acknowledged so far (``""``: none yet)."""
        return self.ledger.token

    def send(self, event: Event | dict[str, Any]) -> str:
        """Validate and queue one event; returns its ``event_id`` (generated when absent).

        Raises :class:`~streamrec.contracts.events.InvalidEvent` for an event the system would
        reject, and ``RuntimeError`` once the producer is closed.
        """
        if self._closed.is_set():
            raise RuntimeError("EventProducer is closed")
        checked = with_event_id(validate(event.to_dict() if isinstance(event, Event) else event, self.settings))
        with self._lock:
            for message in self._packer.add(checked):
                self._produce(message)
        self._producer.poll(0)   # serve delivery reports as we go
        return checked.event_id

    def send_many(self, events: Iterable[Event | dict[str, Any]]) -> list[str]:
        """:meth:`send` each event in order; returns their ids."""
        return [self.send(event) for event in events]

    def flush(self, timeout: float | None = None) -> str:
        """Send everything queued and wait for the broker; returns the consistency token.

        Waits at most ``timeout`` seconds (default: the delivery timeout and a little more,
        by which every message has a delivery report). Raises :class:`DeliveryError` when an
        event failed or is still unacknowledged at the end of the wait.
        """
        with self._lock:
            for message in self._packer.drain():
                self._produce(message)
        self._producer.flush(self.delivery_timeout_s + 5.0 if timeout is None else timeout)
        failed, pending = self.ledger.take_failures(), self.ledger.pending
        if failed or pending:
            raise DeliveryError(failed, pending, self.token)
        return self.token

    def close(self, timeout: float | None = None) -> str:
        """:meth:`flush` and stop; returns the token (raises :class:`DeliveryError` as flush does)."""
        self._closed.set()
        self._sender.join()
        return self.flush(timeout)

    def __enter__(self) -> "EventProducer":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
            return
        try:   # the block's own exception matters more than a delivery error behind it
            self.close()
        except DeliveryError:
            pass

    def _linger_loop(self) -> None:
        while not self._closed.wait(self.linger_s):
            if len(self._packer):
                with self._lock:
                    for message in self._packer.drain():
                        self._produce(message)
            self._producer.poll(0)

    def _produce(self, message: PackedMessage) -> None:
        """Hand one message to the client (caller holds the lock, so per-partition order holds)."""
        from confluent_kafka import KafkaException

        def report(err, msg) -> None:
            if err is None:
                self.ledger.acknowledged(message.events, msg.partition(), msg.offset())
            else:
                self.ledger.failed(message.events, err.str())

        self.ledger.sent(len(message.events))
        while True:
            try:
                self._producer.produce(self.topic, key=message.key, value=message.value,
                                       partition=message.partition, on_delivery=report)
                return
            except BufferError:      # the client's queue is full: let deliveries drain
                self._producer.poll(0.05)
            except KafkaException as exc:   # e.g. a partition the topic does not have
                self.ledger.failed(message.events, str(exc.args[0].str() if exc.args else exc))
                return
