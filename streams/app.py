"""The Faust app of the streams worker: topics, the changelog-backed table, the events and items agents.

The one table, ``user_state`` (key ``user_id``, value
:class:`streamrec.state.user_state.UserState` in its own codec's bytes, so serving and the
learner can read the changelog without Faust): its changelog records are partitioned by
Kafka's partitioner on the key, so a user's record lands in the partition of that user's
events whichever batch wrote it (a ``take`` batch mixes partitions). Trending is not kept
here: serving computes it from the events it reads anyway (see :mod:`serving.state_replica`).

The items agent only checks the ``items`` topic and dead-letters what breaks the item
contract to ``items-dlq`` (why here: :mod:`streams.items_check`); serving and the learner
keep the catalogue.

Processing is at-least-once (Faust's default; its exactly-once mode fails against the
brokers we target). Exactly-once *application* comes from the watermarks kept inside each
record, see :mod:`streamrec.state.user_state`.
"""
from __future__ import annotations

import logging
import time

import faust

from streamrec.state.item_vectors import ItemVectors
from streamrec.kafka.config import faust_broker_kwargs, shorten_fetch_wait
from streamrec.settings import Settings
from streamrec.contracts.topics import EVENTS, EVENTS_DLQ, ITEMS, ITEMS_DLQ, STREAMS_APP_ID, partition_for
from streams import metrics
from streamrec.contracts.events import Rejection
from streams.batch import BatchProcessor, BatchResult, DeadLetter, Record
from streams.delivery import Write, send_until_acknowledged
from streams.items_check import dead_letters

log = logging.getLogger(__name__)


class StreamsApp:
    """Builds the Faust app for one set of settings (the app is not a module global)."""

    def __init__(self, settings: Settings):
        self.settings = s = settings
        self.item_vectors = ItemVectors(s.vector_dim)
        self.processor = BatchProcessor(s, self.item_vectors)
        self.batches = 0
        (s.state_dir / "faust").mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            s.topic(STREAMS_APP_ID),
            **faust_broker_kwargs(s),
            store="memory://",
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=max(0.5, s.session_timeout_s / 6),
            broker_request_timeout=max(30.0, s.session_timeout_s * 5),
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="raw",
            web_enabled=False,
            datadir=str(s.state_dir / "faust"),
            producer_linger=0.002,
            stream_buffer_maxsize=max(4096, s.take_batch * 4),
        )
        self.events_topic = self.app.topic(s.topic(EVENTS), value_serializer="raw", key_serializer="raw",
                                           partitions=s.partitions)
        self.dlq_topic = self.app.topic(s.topic(EVENTS_DLQ), value_serializer="raw", key_serializer="raw",
                                        partitions=s.partitions)
        self.users = self.app.Table("user_state", default=None, key_type=bytes,
                                    value_type=bytes, use_partitioner=True, partitions=s.partitions)
        self.app.agent(self.events_topic, name="apply_events")(self._agent)
        self.items_topic = self.app.topic(s.topic(ITEMS), value_serializer="raw", key_serializer="raw",
                                          partitions=s.partitions)
        self.app.agent(self.items_topic, name="check_items")(self._items_agent)

    async def _agent(self, stream):
        s = self.settings
        shorten_fetch_wait(self.app)
        async for batch in stream.take_events(s.take_batch, within=s.take_within_s):
            records = [Record(e.message.topic, e.message.partition, e.message.offset, e.value,
                              e.message.timestamp) for e in batch]
            # Returns only once everything the batch produced is acknowledged; only then does
            # ``take_events`` ack the source messages.
            try:
                await self._process_batch(records)
            except Exception:
                # Unreachable by any input (each message is isolated and dead-lettered inside);
                # kept so that a bug can never crash the agent, after which Faust would stop
                # consuming while the process looks alive.
                log.exception("could not process a batch of %d messages", len(records))
                metrics.EVENTS_REJECTED.labels("internal_error").inc(len(records))

    async def _items_agent(self, stream):
        s = self.settings
        async for batch in stream.take_events(s.take_batch, within=s.take_within_s):
            records = [Record(e.message.topic, e.message.partition, e.message.offset, e.value,
                              e.message.timestamp, e.key) for e in batch]
            try:
                dead = dead_letters(records, s)
                # Acknowledged before take_events acks the items: a crash re-checks, never skips.
                await send_until_acknowledged(self.app.producer, [
                    Write(s.topic(ITEMS_DLQ), d.key(), d.value(), None, d.headers()) for d in dead])
            except Exception:   # a bug, reached by no input: log it, never stop the agent
                log.exception("could not check a batch of %d items", len(records))
                continue
            metrics.ITEMS_CHECKED.inc(len(records))
            for d in dead:
                metrics.ITEMS_REJECTED.labels(d.rejection.reason).inc()
                log.info("item at %s/%s dead-lettered: %s", d.record.partition, d.record.offset,
                         d.rejection.describe()[:200])

    async def _process_batch(self, records: list[Record]) -> None:
        try:
            out = self._compute(records)
        except Exception:
            # Computing a batch is pure: a failure is a bug that one message triggers.
            # Isolate it so the rest of the batch is applied and it alone is dead-lettered.
            log.exception("batch of %d messages failed; processing them one by one", len(records))
            for record in records:
                try:
                    out = self._compute([record])
                except Exception as exc:
                    log.exception("message %s/%s dead-lettered after an internal error",
                                  record.partition, record.offset)
                    out = BatchResult(consumed=1, rejected=[self._dead_letter(record, Rejection(
                        "internal_error", repr(exc)[:500]))])
                await self._commit(out)
                self._observe([record], out)
            return
        await self._commit(out)
        self._observe(records, out)

    def _compute(self, records: list[Record]) -> BatchResult:
        return self.processor.process(records, _BytesKeyView(self.users))

    def _dead_letter(self, record: Record, rejection: Rejection) -> DeadLetter:
        return DeadLetter(record, rejection, self.settings.dlq_max_copy_bytes)

    async def _commit(self, out: BatchResult) -> None:
        """Update the table and produce the batch's changelog records, re-routes and dead letters.

        Faust's ``table[key] = value`` queues one changelog message per key through its
        producer buffer, far too slow for the hot path (measured: docs/benchmarks.md). The
        same records are written directly with the app's producer instead (same topics, same
        partitions, so Faust's recovery reads them as its own), and the batch waits for every
        acknowledgement before it returns, so an offset is never committed ahead of the state
        it produced.
        """
        s = self.settings
        writes: list[Write] = []
        users_topic = self.users.changelog_topic.get_topic_name()
        for user_id, value in out.user_writes.items():
            key = user_id.encode()
            if value is None:   # a deleted user: the tombstone that compaction keeps in place of the state
                self.users.data.pop(key, None)
            else:
                self.users.data[key] = value
            writes.append(Write(users_topic, key, value, partition_for(key, s.partitions)))
        events_topic = s.topic(EVENTS)
        writes += [Write(events_topic, r.key(), r.value(), r.partition, r.headers()) for r in out.rerouted]
        dlq_topic = s.topic(EVENTS_DLQ)
        writes += [Write(dlq_topic, d.key(), d.value(), None, d.headers()) for d in out.rejected]
        await send_until_acknowledged(self.app.producer, writes)
        for dead in out.rejected:
            metrics.EVENTS_REJECTED.labels(dead.rejection.reason).inc()
        metrics.EVENTS_REROUTED.inc(len(out.rerouted))
        if out.deleted:
            metrics.USERS_DELETED.inc(out.deleted)
            log.info("deleted %d user state(s): tombstones written to %s", out.deleted, users_topic)
        if out.rerouted:
            log.warning("re-routed %d events that arrived on another user's partition (first: user %r on "
                        "partition %d, belongs to %d)", len(out.rerouted), out.rerouted[0].event.user_id[:64],
                        out.rerouted[0].source[0], out.rerouted[0].partition)

    def _observe(self, records, out) -> None:
        now = time.time()
        metrics.MESSAGES.inc(len(records))
        metrics.EVENTS_CONSUMED.inc(out.consumed)
        metrics.EVENTS_APPLIED.inc(out.applied)
        metrics.EVENTS_SKIPPED.labels("replay").inc(out.replayed)
        metrics.EVENTS_SKIPPED.labels("duplicate_event_id").inc(out.duplicates)
        metrics.BATCH_SIZE.observe(out.consumed)
        for t in out.event_times[:: max(1, len(out.event_times) // 64)]:  # sampled: bounded cost
            metrics.EVENT_TIME_LAG.observe(max(0.0, now - t))
        for t in out.arrival_times[:: max(1, len(out.arrival_times) // 64)]:
            metrics.APPLY_LATENCY.observe(max(0.0, now - t))
        self.batches += 1
        metrics.USERS.set(len(self.users.data))
        self._observe_lag(records)

    def _observe_lag(self, records) -> None:
        consumer = self.app.consumer
        last = {}
        for r in records:
            last[(r.topic, r.partition)] = r.offset
        for (topic, partition), offset in last.items():
            try:
                high = consumer.highwater(faust.types.TP(topic, partition))
            except Exception:  # the consumer may be mid-rebalance
                continue
            if high is not None:
                metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(0, high - offset - 1))

    def ready_reasons(self) -> list[str]:
        reasons = []
        app = self.app
        if not app.consumer or not app.consumer.assignment():
            reasons.append("no partitions assigned yet")
        if getattr(app, "rebalancing", False):
            reasons.append("rebalancing")
        recovery = getattr(app.tables, "recovery", None)
        if recovery is not None and getattr(recovery, "in_recovery", False):
            reasons.append("recovering tables from changelog")
        return reasons


class _BytesKeyView:
    """Read a raw-keyed Faust table with ``str`` keys, without triggering changelog writes."""

    def __init__(self, table):
        self._data = table.data

    def get(self, key: str, default=None):
        return self._data.get(key.encode(), default)
