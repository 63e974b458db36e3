"""Read the streams worker's tables from their changelog topics, without Faust.

The changelogs hold our own codecs' bytes (see :mod:`streams.app`), so any process can
rebuild a table by reading its changelog from the beginning and keeping the newest value
per key. The demo uses this to check exactly-once application against the input file.
"""
from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamrec.kafka.config import aiokafka_config
from streamrec.settings import Settings
from streamrec.contracts.topics import changelog_topic


async def read_table(settings: Settings, table: str, timeout: float = 60.0) -> dict[bytes, bytes]:
    """The newest value per key of ``table``, read up to the end offsets at call time."""
    topic = changelog_topic(settings, table)
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        if not tps:
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        table_data: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout
        while await _behind(consumer, ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog {topic} not read to its end within {timeout}s")
            batches = await consumer.getmany(timeout_ms=200, max_records=50000)
            for messages in batches.values():
                for msg in messages:
                    if msg.value is None:
                        table_data.pop(msg.key, None)
                    else:
                        table_data[msg.key] = msg.value
        return table_data
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    if topic not in await consumer.topics():  # refreshes metadata; absent: nothing written yet
        return []
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def read_topic(settings: Settings, topic: str, idle: float = 1.5, limit: int = 1_000_000) -> list:
    """Every message in ``topic`` from the beginning, stopping after ``idle`` seconds with none new.

    Counting by reading rather than by offsets is deliberate: the embedded broker (Tansu)
    reports a partition's end offset as the base offset of its last record batch plus one,
    which undercounts whenever that batch held several records.
    """
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list = []
        while len(out) < limit:
            batches = await consumer.getmany(timeout_ms=int(idle * 1000))
            if not batches:
                break
            for messages in batches.values():
                out.extend(messages)
        return out
    finally:
        await consumer.stop()


def read_table_sync(settings: Settings, table: str, timeout: float = 60.0) -> dict[bytes, bytes]:
    return asyncio.run(read_table(settings, table, timeout))
