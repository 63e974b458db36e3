"""The Kafka consumers that keep serving's replica and model current.

Each source gets its own aiokafka consumer with manual assignment of every partition, no
consumer group and no committed offsets: every serving process reads everything from the
beginning and keeps a full replica (see :mod:`serving.state_replica`).

* ``events`` → :meth:`StateReplica.apply_events` (fetches wait at most 10 ms, so an
  acknowledged event is applied within a few milliseconds);
* ``<streams app>-user_state-changelog`` → :meth:`StateReplica.apply_user_record`; the topic
  exists only once a streams worker has run, so it is looked for until it appears;
* ``items`` → :meth:`StateReplica.apply_item`;
* ``model-updates`` → :func:`streamrec.kafka.model_follower.follow_models` →
  :meth:`ModelHolder.install`;
* ``experiments`` → :meth:`serving.experiments.ExperimentRegistry.apply_record` (when serving
  runs experiments).

Sharded serving (``STREAMREC_SERVING_INSTANCE=i/N``, :mod:`serving.ownership`): the changelog
feed reads only the partitions this instance owns, and the events feed applies user state only
for those; the events of the other partitions are still read, for item-side state alone
(:class:`serving.item_side.ItemSideFeed`), and still advance the read-your-writes positions.

Readiness: each feed records the end offsets of its partitions when it starts and reports
caught up once it has consumed up to them; the model feed is caught up at once when nothing
was ever announced, else once every announcement up to that end offset is handled (the
newest usable one installed, the refused ones refused).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from serving import metrics
from serving.experiments import ExperimentRegistry
from serving.item_side import ItemSideFeed
from serving.model_holder import ModelHolder
from serving.ownership import Ownership
from serving.state_replica import StateReplica
from streamrec.kafka.config import aiokafka_config, ensure_topics
from streamrec.kafka.model_follower import follow_models, refusal_reason
from streamrec.contracts.model_store import Announcement
from streamrec.settings import Settings
from streamrec.contracts.topics import EVENTS, EXPERIMENTS, ITEMS, MODEL_UPDATES, changelog_topic

log = logging.getLogger(__name__)

Handler = Callable[[TopicPartition, list], None]


class ReplicaFeeds:
    """Runs the consumers; ``caught_up`` says which sources have reached their start-up end."""

    def __init__(self, settings: Settings, replica: StateReplica, holder: ModelHolder,
                 experiments: ExperimentRegistry | None = None, ownership: Ownership | None = None):
        self.settings = settings
        self.replica = replica
        self.holder = holder
        self.experiments = experiments
        self.ownership = ownership or Ownership(partitions=settings.partitions)
        self.item_side = ItemSideFeed(replica)
        metrics.OWNED_PARTITIONS.set(len(self.ownership.owned_partitions()))
        self.caught_up: dict[str, bool] = {"events": False, "user_state": False, "items": False,
                                           "models": False}
        if experiments is not None:
            self.caught_up["experiments"] = False
        self.stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._model_end = 0

    def not_ready(self) -> list[str]:
        reasons = [f"{name} not caught up" for name, done in self.caught_up.items() if not done]
        if self.settings.serving_require_model and not self.holder.current.published:
            reasons.append("no model version loaded yet")
        return reasons

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, ensure_topics, self.settings)
        s = self.settings
        self._tasks = [
            asyncio.create_task(self._feed("events", s.topic(EVENTS), self._on_events, fetch_wait_ms=10)),
            asyncio.create_task(self._feed("user_state", changelog_topic(s, "user_state"), self._on_user_state,
                                           may_be_missing=True, owned_only=True)),
            asyncio.create_task(self._feed("items", s.topic(ITEMS), self._on_items)),
            asyncio.create_task(self._models()),
            asyncio.create_task(self.holder.run_pre_model_refresh(self.stop_event)),
        ]
        if self.experiments is not None:
            self._tasks.append(asyncio.create_task(self._feed("experiments", s.topic(EXPERIMENTS),
                                                              self._on_experiments)))

    async def stop(self) -> None:
        self.stop_event.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # --- handlers (run on the loop, one batch at a time) -------------------------------------
    def _on_events(self, tp: TopicPartition, messages: list) -> None:
        owned = self.ownership.owns_partition(tp.partition)
        applied = 0
        if owned:
            for msg in messages:
                applied += _guarded("events", msg, self.replica.apply_events, tp.partition, msg.offset,
                                    msg.value) or 0
        elif messages:   # another instance's users: item-side state only, the batch at once
            applied = _guarded("events", messages[0], self.item_side.apply_messages, tp.partition,
                               [(msg.offset, msg.value) for msg in messages]) or 0
        if messages:   # after the whole batch: a read-your-writes answer sees all of it
            self.replica.applied.advance(tp.partition, messages[-1].offset)
        if messages and messages[-1].timestamp and messages[-1].timestamp > 0:
            lag = max(0.0, time.time() - messages[-1].timestamp / 1000.0)
            metrics.FRESHNESS_LAG.observe(lag)
            metrics.FRESHNESS_LAST.set(lag)
        (metrics.EVENTS_APPLIED if owned else metrics.EVENTS_ITEM_SIDE).inc(applied)
        metrics.REPLICA_RECORDS.labels("events", "consumed").inc(len(messages))
        metrics.REPLICA_USERS.set(len(self.replica.users))

    def _on_user_state(self, tp: TopicPartition, messages: list) -> None:
        for msg in messages:
            _guarded("user_state", msg, self.replica.apply_user_record, msg.key, msg.value)
        metrics.REPLICA_USERS.set(len(self.replica.users))

    def _on_items(self, tp: TopicPartition, messages: list) -> None:
        for msg in messages:
            _guarded("items", msg, self.replica.apply_item, msg.key, msg.value)
        metrics.REPLICA_ITEMS.set(len(self.replica.catalogue))

    def _on_experiments(self, tp: TopicPartition, messages: list) -> None:
        for msg in messages:
            _guarded("experiments", msg, self.experiments.apply_record, msg.offset, msg.key, msg.value)

    # --- consumers -------------------------------------------------------------------------------
    async def _feed(self, name: str, topic: str, handler: Handler, *, fetch_wait_ms: int = 100,
                    may_be_missing: bool = False, owned_only: bool = False) -> None:
        first_attempt = True
        backoff = 0.5
        while not self.stop_event.is_set():
            consumer = AIOKafkaConsumer(**aiokafka_config(self.settings), group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        fetch_max_wait_ms=fetch_wait_ms)
            try:
                await consumer.start()
                partitions = await self._partitions(consumer, topic)
                if owned_only:
                    partitions = [tp for tp in partitions if self.ownership.owns_partition(tp.partition)]
                if not partitions:
                    if may_be_missing and first_attempt:
                        self.caught_up[name] = True   # nothing written yet: nothing to catch up on
                    first_attempt = False
                    await consumer.stop()
                    await asyncio.sleep(2.0)
                    continue
                first_attempt = False
                await self._consume(name, consumer, partitions, handler)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s feed failed (%s); restarting in %.1fs", name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                await consumer.stop()

    @staticmethod
    async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
        if topic not in await consumer.topics():
            return []
        return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]

    async def _consume(self, name: str, consumer: AIOKafkaConsumer, partitions: list[TopicPartition],
                       handler: Handler) -> None:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        remaining = {tp: end for tp, end in ends.items() if end > starts[tp]}
        if not remaining:
            self.caught_up[name] = True
        while not self.stop_event.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, messages in batches.items():
                if messages:
                    handler(tp, messages)
                    if tp in remaining and messages[-1].offset + 1 >= remaining[tp]:
                        del remaining[tp]
            if remaining and not batches:
                # Compaction or control records can leave the last offsets without a message.
                for tp in list(remaining):
                    if await consumer.position(tp) >= remaining[tp]:
                        del remaining[tp]
            if not remaining and not self.caught_up[name]:
                self.caught_up[name] = True
                log.info("serving replica: %s caught up", name)

    async def _models(self) -> None:
        consumer = AIOKafkaConsumer(**aiokafka_config(self.settings), group_id=None, enable_auto_commit=False)
        try:
            await consumer.start()
            tp = TopicPartition(self.settings.topic(MODEL_UPDATES), 0)
            end = (await consumer.end_offsets([tp]))[tp]
            start = (await consumer.beginning_offsets([tp]))[tp]
        finally:
            await consumer.stop()
        self._model_end = end
        if end <= start:
            self.caught_up["models"] = True
        await follow_models(self.settings, self._on_version, self._on_model_error, self.stop_event,
                            on_verified=self.holder.remember, on_position=self._on_model_position)

    async def _on_version(self, snapshot, announcement: Announcement) -> bool:
        return await self.holder.install(snapshot, announcement) is not None

    def _on_model_error(self, announcement: Announcement | None, exc: Exception) -> None:
        self.holder.reject(announcement, str(exc), refusal_reason(announcement, exc))

    def _on_model_position(self, position: int) -> None:
        if position >= self._model_end and not self.caught_up["models"]:
            self.caught_up["models"] = True
            log.info("serving replica: models caught up")


async def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` on the loop until true or ``timeout``; True if it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


def _guarded(feed: str, msg, apply, *args):
    """Apply one message; a failure is logged and counted, and the feed goes on.

    Input is validated before it is applied, so this only catches bugs; without it one
    message would restart the feed, which re-reads the topic from the beginning and meets
    the same message again, forever.
    """
    try:
        return apply(*args)
    except Exception:
        log.exception("serving %s feed: message at %s/%s could not be applied; skipped", feed,
                      msg.partition, msg.offset)
        metrics.REPLICA_RECORDS.labels(feed, "internal_error").inc()
        return None
