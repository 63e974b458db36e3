"""Where the learner resumes reading ``events``: the checkpoint's offsets, unless the log they index is gone.

A checkpoint records the next offset per partition together with the state trained up to
it. Those offsets are only trusted on the log they came from: when the broker is another
cluster than the one recorded with them (the embedded broker gets a new id on each start)
or a partition's end lies below its checkpoint offset, the broker lost that log, and those
partitions are read from the earliest offset instead of silently skipping everything up to
the old position (:func:`learner.checkpoint.stale_offsets` is the rule; this module asks the
broker).
"""
from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from learner.checkpoint import stale_offsets
from learner.trainer import ContinualTrainer
from streamrec.contracts.topics import EVENTS
from streamrec.kafka.config import confluent_config
from streamrec.settings import Settings

log = logging.getLogger(__name__)


def open_events(settings: Settings, trainer: ContinualTrainer,
                cluster_id: str | None) -> tuple[Consumer, str | None, list[str]]:
    """The ``events`` consumer, resuming at the trainer's offsets where the log still holds them.

    Returns the consumer (subscribed), the broker's cluster id (to record with the next
    checkpoint) and notes for ``/readyz`` on what was read again and why.
    """
    s = settings
    events = Consumer(confluent_config(
        s, **{"group.id": s.topic(s.learner_group_id), "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "session.timeout.ms": int(s.session_timeout_s * 1000)}))
    topic = s.topic(EVENTS)
    stale, broker_cluster = lost_offsets(s, events, topic, dict(trainer.offsets), cluster_id)
    notes = []
    if stale:
        with trainer.lock:
            for key in stale:
                trainer.offsets.pop(key, None)
        notes.append(f"the broker lost the log the checkpoint's offsets refer to "
                     f"({'; '.join(sorted(set(stale.values())))}): reading {len(stale)} partition(s) of {topic} "
                     f"from the earliest offset, keeping the trained model")
        log.warning("%s", notes[0])
    offsets = trainer.offsets

    def on_assign(consumer, partitions):
        for tp in partitions:
            key = f"{tp.topic}:{tp.partition}"
            resume = offsets.get(key)
            if resume is not None:
                tp.offset = resume
            elif key in stale:
                tp.offset = OFFSET_BEGINNING
        consumer.assign(partitions)
        log.info("assigned %s", [(tp.topic, tp.partition, tp.offset) for tp in partitions])

    events.subscribe([topic], on_assign=on_assign)
    return events, broker_cluster or cluster_id, notes


def log_holds(settings: Settings, topic: str, partition: int, offset: int, timeout_s: float = 5.0) -> bool:
    """Whether the broker still has the record at ``offset`` (fetched, not inferred)."""
    probe = Consumer(confluent_config(settings, **{
        "group.id": settings.topic(f"{settings.learner_group_id}-probe"),
        "enable.auto.commit": False, "auto.offset.reset": "error"}))
    try:
        probe.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = probe.poll(0.2)
            if message is not None:   # an error here is the offset out of range: not held
                return message.error() is None and message.offset() == offset
        return False
    finally:
        probe.close()


def lost_offsets(settings: Settings, consumer: Consumer, topic: str, offsets: dict[str, int],
                 cluster_id: str | None) -> tuple[dict[str, str], str | None]:
    """The checkpoint ``offsets`` that point into a lost log (key -> why), and the broker's cluster id."""
    meta = consumer.list_topics(topic, timeout=10)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.topics[topic].partitions}
    stale = stale_offsets(offsets, topic, ends, cluster_id, meta.cluster_id)
    if not (cluster_id and meta.cluster_id and cluster_id != meta.cluster_id):
        # Same cluster: an offset "beyond the end" may still be real, since a high watermark
        # can be reported per record batch rather than per record (the embedded broker's
        # is). Ask the log itself for the last record the checkpoint says it read.
        stale = {key: why for key, why in stale.items()
                 if not log_holds(settings, topic, int(key.rsplit(":", 1)[1]), offsets[key] - 1)}
    return stale, meta.cluster_id
