"""The Faust app of the streams worker: topics, changelog-backed tables and the events agent.

Tables (values are our own codecs' bytes, so serving and the learner can read the
changelogs without Faust):

- ``user_state``: key ``user_id``, value :class:`streamrec.user_state.UserState`. Its
  changelog records are partitioned by Kafka's partitioner on the key, so a user's record
  lands in the partition of that user's events whichever batch wrote it (a ``take`` batch
  mixes partitions).
- ``item_popularity``: key ``"<partition>/<item_id>"``, written explicitly to the changelog
  partition of the events it counts (see :mod:`streamrec.popularity`).

Processing is at-least-once (Faust's default; its exactly-once mode fails against the
brokers we target). Exactly-once *application* comes from the watermarks kept inside each
record, see :mod:`streamrec.user_state`.
"""
from __future__ import annotations

import asyncio
import logging
import time

import faust

from streamrec.item_vectors import ItemVectors
from streamrec.kafka import faust_broker_kwargs, shorten_fetch_wait
from streamrec.settings import Settings
from streamrec.topics import EVENTS, EVENTS_DLQ, STREAMS_APP_ID, partition_for
from streams import metrics
from streamrec.events import Rejection
from streams.batch import BatchProcessor, DeadLetter, Record

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
        self.popularity = self.app.Table("item_popularity", default=None, key_type=bytes,
                                         value_type=bytes, partitions=s.partitions)
        self.app.agent(self.events_topic, name="apply_events")(self._agent)

    async def _agent(self, stream):
        s = self.settings
        shorten_fetch_wait(self.app)
        async for batch in stream.take_events(s.take_batch, within=s.take_within_s):
            records = [Record(e.message.topic, e.message.partition, e.message.offset, e.value,
                              e.message.timestamp) for e in batch]
            try:
                await self.process(records)
            except Exception:
                # Never let one batch stop the worker: isolate the record that fails.
                log.exception("batch of %d messages failed; retrying one by one", len(records))
                for record in records:
                    try:
                        await self.process([record])
                    except Exception as exc:
                        log.exception("message %s/%s dead-lettered after an internal error",
                                      record.partition, record.offset)
                        await self._dead_letter(record, "internal_error", repr(exc))

    async def _dead_letter(self, record: Record, reason: str, detail: str) -> None:
        dead = DeadLetter(record, Rejection(reason, detail))
        await self.dlq_topic.send(key=None, value=dead.value(), headers=dead.headers())
        metrics.EVENTS_REJECTED.labels(reason).inc()

    async def process(self, records: list[Record]) -> None:
        users = _BytesKeyView(self.users)
        popularity = _BytesKeyView(self.popularity)
        out = self.processor.process(records, users, popularity)
        await self._write_changelogs(out)
        for dead in out.rejected:
            await self.dlq_topic.send(key=None, value=dead.value(), headers=dead.headers())
            metrics.EVENTS_REJECTED.labels(dead.rejection.reason).inc()
        self._observe(records, out)

    async def _write_changelogs(self, out) -> None:
        """Update the tables and their changelogs for one batch, and wait for the broker.

        Faust's ``table[key] = value`` queues one changelog message per key through its
        producer buffer, which measured at about 1,000 keys/s here. The same records are
        written directly with the app's producer instead (same topics, same partitions, so
        Faust's recovery reads them as its own), and the batch waits for every
        acknowledgement before it returns: only then does ``take_events`` ack the source
        messages, so an offset is never committed ahead of the state it produced.
        """
        producer = self.app.producer
        sends = []
        users_topic = self.users.changelog_topic.get_topic_name()
        for user_id, value in out.user_writes.items():
            key = user_id.encode()
            self.users.data[key] = value
            sends.append(await producer.send(users_topic, key, value, partition_for(key, self.settings.partitions),
                                             None, None))
        pop_topic = self.popularity.changelog_topic.get_topic_name()
        for (partition, key), value in out.popularity_writes.items():
            raw_key = key.encode()
            self.popularity.data[raw_key] = value
            sends.append(await producer.send(pop_topic, raw_key, value, partition, None, None))
        if sends:
            await asyncio.gather(*sends)

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
