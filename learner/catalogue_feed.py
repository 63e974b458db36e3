"""The learner's reading of the compacted ``items`` topic: content for the model, and what a version may hold.

Every start reads the topic from the beginning (manual assignment, no committed offsets):
the topic is the catalogue. Each message goes through
:func:`streamrec.contracts.items.decode_item_message`, the rule serving applies too:

* an item's content (title, text, tags, embedding) goes to the trainer
  (:meth:`learner.trainer.ContinualTrainer.add_items`), which gives new items a row;
* items and tombstones go to a :class:`~streamrec.state.catalogue.Catalogue`, and
  :meth:`CatalogueFeed.servable` leaves every item it says may not be served (retired,
  unavailable, expired when the version is written) out of a published version. The trainer
  keeps their rows: a model's shapes never shrink, and history that names them still trains;
* an invalid message is counted and skipped. It is not dead-lettered here: the learner
  re-reads the whole topic on every start and would write the same dead letter each time;
  the streams worker does it once (:mod:`streams.items_check`).

A change of what may be served (a tombstone, ``available`` flipped, a new expiry) marks the
catalogue changed, so a catalogue-only version follows within ``learner_catalogue_publish_s``
when no training cycle is due. The learner publishes nothing before it has read the topic
up to where it ended at start (:attr:`CatalogueFeed.caught_up`), so a version written right
after a restart cannot bring back an item retired before it.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from learner import metrics as M
from learner.trainer import ContinualTrainer
from streamrec.contracts.items import InvalidItem, ItemMessage, decode_item_message
from streamrec.contracts.topics import ITEMS
from streamrec.kafka.config import confluent_config
from streamrec.settings import Settings
from streamrec.state.catalogue import Catalogue

log = logging.getLogger(__name__)

# Past this, publishing goes ahead even if a partition never said it reached its end.
CATCH_UP_LIMIT_S = 60.0


class CatalogueFeed:
    """The ``items`` consumer, the catalogue it builds, and whether it has read everything yet."""

    def __init__(self, settings: Settings, consumer: Consumer, partitions: list[int]):
        self.settings = settings
        self.catalogue = Catalogue()
        self._consumer = consumer
        self._pending = set(partitions)   # partitions not yet read to the end they had at start
        self._started = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings) -> "CatalogueFeed":
        """Assign every partition of ``items`` from the beginning."""
        consumer = Consumer(confluent_config(settings, **{
            "group.id": settings.topic(f"{settings.learner_group_id}-catalogue"), "enable.auto.commit": False,
            "enable.partition.eof": True}))
        topic = settings.topic(ITEMS)
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        return cls(settings, consumer, partitions)

    @property
    def caught_up(self) -> bool:
        """True once every partition reached its end once (or :data:`CATCH_UP_LIMIT_S` passed)."""
        if self._pending and time.monotonic() - self._started > CATCH_UP_LIMIT_S:
            log.warning("items partitions %s never reported their end; publishing anyway", sorted(self._pending))
            self._pending.clear()
        return not self._pending

    def poll(self, trainer: ContinualTrainer) -> int:
        """Read what has arrived (without waiting) into ``trainer`` and the catalogue; returns messages read."""
        messages = self._consumer.consume(num_messages=2000, timeout=0.0)
        decoded: list[ItemMessage] = []
        for msg in messages:
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    self._pending.discard(msg.partition())
                else:
                    M.KAFKA_ERRORS.inc()
                continue
            try:
                decoded.append(decode_item_message(msg.key(), msg.value(), max_id_length=self.settings.max_id_length))
            except InvalidItem:
                M.INVALID.inc()
        if not decoded:
            return len(messages)
        now = time.time()
        with self._lock:   # the training thread reads the catalogue when it publishes
            before = self.catalogue.blocked(now)
            for message in decoded:
                self.catalogue.apply(message.item_id, message.item)
            changed = self.catalogue.blocked(now) != before
        content = [m.item for m in decoded if m.item is not None]
        if content:
            trainer.add_items(content)   # encodes text outside the trainer's lock
        if changed:
            with trainer.lock:
                trainer.catalogue_changed_at = trainer.catalogue_changed_at or time.monotonic()
        M.ITEMS.set(len(trainer.item_ids))
        return len(messages)

    def servable(self, ids: list[str], vectors: np.ndarray, now: float | None = None) -> tuple[list[str], np.ndarray]:
        """``ids`` and their ``vectors`` without the items the catalogue says may not be served at ``now``."""
        with self._lock:
            keep = self.catalogue.servable_mask(ids, time.time() if now is None else now)
        if keep.all():
            return ids, vectors
        return [i for i, k in zip(ids, keep) if k], vectors[keep]

    def close(self) -> None:
        self._consumer.close()
