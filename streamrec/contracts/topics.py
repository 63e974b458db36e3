"""Topic names, their configuration, and the partitioner every producer must share.

Events are keyed by ``user_id`` and routed with Kafka's default (murmur2) partitioner, the
one the Java client, aiokafka and Faust use, so that one streams worker owns each user's
events and state. Packed messages are grouped by that partition before they are written.
"""
from __future__ import annotations

from dataclasses import dataclass

from aiokafka.partitioner import murmur2

from streamrec.settings import Settings

EVENTS = "events"
EVENTS_DLQ = "events-dlq"
ITEMS = "items"
ITEMS_DLQ = "items-dlq"   # invalid items, written by the streams worker (see streams.items_check)
MODEL_UPDATES = "model-updates"
EXPERIMENTS = "experiments"   # experiment records, written by serving's admin API (streamrec.contracts.experiments)
REC_REQUESTS = "rec-requests"
REC_RESPONSES = "rec-responses"
# Faust app id: its changelog topics are named "<app id>-<table>-changelog".
STREAMS_APP_ID = "streamrec-streams"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False
    partitioned: bool = True  # False: one partition (a total order matters more than scale)


TOPICS = (
    TopicSpec(EVENTS),
    TopicSpec(EVENTS_DLQ),
    TopicSpec(ITEMS, compacted=True),
    TopicSpec(ITEMS_DLQ),
    TopicSpec(MODEL_UPDATES, compacted=True, partitioned=False),
    TopicSpec(EXPERIMENTS, compacted=True, partitioned=False),
    TopicSpec(REC_REQUESTS),
    TopicSpec(REC_RESPONSES),
)


def partition_for(key: str | bytes, partitions: int) -> int:
    """Kafka's default partition for ``key``: murmur2, positive, modulo the count."""
    data = key.encode() if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions


def changelog_topic(settings: Settings, table: str) -> str:
    return f"{settings.topic(STREAMS_APP_ID)}-{table}-changelog"
