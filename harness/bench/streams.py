"""``streamrec bench streams``: ingest rate against a raw consumer, freshness, memory per user.

Every figure is measured in the same run as its baseline, on the same topic:

- **ingest**: N events are published before a streams worker starts; the worker's rate is
  measured from its ``applied`` counter between 5% and 100% of N (start-up and group join
  excluded). In the same run a raw aiokafka consumer reads the same topic, and the ratio of
  the two is reported, for one-event messages and for packed messages.
- **freshness**: with the worker caught up, events for fresh users are produced at a fixed
  rate; the time from the broker's acknowledgement to that user's record appearing on the
  user-state changelog (what serving and restarts read) gives p50 and p99.
- **memory per user**: the in-process batch processor applies synthetic streams for growing
  user counts (no Kafka, so the figure is the state's own cost); the encoded state bytes per
  user and the growth of the process's resident memory per user are reported.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import time

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Producer

from harness.bench.plots import latency_quantiles
from streamrec.state.item_vectors import ItemVectors
from streamrec.kafka.config import aiokafka_config, ensure_topics, producer_config
from harness.processes import Proc
from harness.replay import EventPublisher
from streamrec.settings import Settings
from harness.synthetic import generate
from streamrec.contracts.topics import EVENTS, changelog_topic
from streams.batch import BatchProcessor, Record


def _docs(ds) -> list[dict]:
    return [{"user_id": u, "item_id": i, "event_type": "click", "timestamp": float(t)}
            for u, i, t in zip(ds.user_ids.tolist(), ds.item_ids.tolist(), ds.timestamps.tolist())]


async def raw_consumer_rate(settings: Settings, messages: int, events: int) -> dict:
    """Read ``messages`` from the events topic with a bare aiokafka consumer, no processing."""
    topic = settings.topic(EVENTS)
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, start = 0, time.perf_counter()
        while seen < messages:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10000)
            if not batches:
                break
            seen += sum(len(v) for v in batches.values())
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return {"messages": seen, "seconds": elapsed, "events_per_s": events * seen / max(messages, 1) / elapsed}


def _applied(proc: Proc) -> float:
    try:
        text = proc.metrics()
    except Exception:
        return 0.0
    for line in text.splitlines():
        if line.startswith("streamrec_streams_events_applied_total "):
            return float(line.split()[-1])
    return 0.0


def worker_rate(settings: Settings, events: int, timeout: float = 600.0) -> dict:
    with Proc("streams", settings, "streams_web_port") as proc:
        proc.wait_ready(120)
        t5 = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = _applied(proc)
            now = time.perf_counter()
            if t5 is None and n >= 0.05 * events:
                t5, n5 = now, n
            if n >= events:
                return {"events_per_s": (n - n5) / max(now - t5, 1e-9), "applied": n}
            time.sleep(0.05)
    raise TimeoutError(f"streams worker applied {n} of {events} in {timeout}s")


def ingest(settings: Settings, users: int, events: int, pack: int) -> dict:
    settings = settings.replace(topic_prefix=f"{settings.topic_prefix}ingest-p{pack}-u{users}-")
    ensure_topics(settings)
    docs = _docs(generate(users=users, items=5000, events=events, seed=1))
    pub = EventPublisher(settings, pack=pack)
    messages = pub.publish(docs)
    pub.flush()
    raw = asyncio.run(raw_consumer_rate(settings, messages, events))
    streams = worker_rate(settings, events)
    return {"pack": pack, "users": users, "events": events, "messages": messages,
            "raw_consumer_events_per_s": round(raw["events_per_s"]),
            "streams_events_per_s": round(streams["events_per_s"]),
            "ratio": round(streams["events_per_s"] / raw["events_per_s"], 4)}


async def _watch_changelog(settings: Settings, wanted: set[bytes], seen: dict[bytes, float], stop: asyncio.Event):
    topic = changelog_topic(settings, "user_state")
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), group_id=None, auto_offset_reset="latest",
                                fetch_max_wait_ms=5)
    await consumer.start()
    try:
        while topic not in await consumer.topics():
            await asyncio.sleep(0.1)
        consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        await consumer.seek_to_end()
        while not stop.is_set() or len(seen) < len(wanted):
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for msgs in batches.values():
                for m in msgs:
                    if m.key in wanted and m.key not in seen:
                        seen[m.key] = now
            if stop.is_set() and time.monotonic() > getattr(stop, "deadline", float("inf")):
                break
    finally:
        await consumer.stop()


def freshness(settings: Settings, rate: float, seconds: float) -> dict:
    settings = settings.replace(topic_prefix=f"{settings.topic_prefix}fresh-")
    ensure_topics(settings)
    n = int(rate * seconds)
    keys = [f"fresh-{i}".encode() for i in range(n)]
    acked: dict[bytes, float] = {}
    seen: dict[bytes, float] = {}
    with Proc("streams", settings, "streams_web_port") as proc:
        proc.wait_ready(120)
        # Warm up: the changelog topic exists once the first write happened.
        warm = EventPublisher(settings)
        warm.publish([{"user_id": "warm", "item_id": "i", "event_type": "click", "timestamp": time.time()}])
        warm.flush()
        time.sleep(2.0)

        async def run() -> None:
            stop = asyncio.Event()
            watcher = asyncio.create_task(_watch_changelog(settings, set(keys), seen, stop))
            await asyncio.sleep(1.0)
            producer = Producer(producer_config(settings, **{"linger.ms": 0}))

            def on_ack(err, msg):
                if err is None:
                    acked[msg.key()] = time.time()
            start = time.perf_counter()
            for j, key in enumerate(keys):
                value = (b'{"user_id":"%s","item_id":"i%d","event_type":"click","timestamp":%f}'
                         % (key, j % 100, time.time()))
                producer.produce(settings.topic(EVENTS), key=key, value=value, on_delivery=on_ack)
                producer.poll(0)
                delay = (j + 1) / rate - (time.perf_counter() - start)
                if delay > 0:
                    await asyncio.sleep(delay)
            producer.flush(10)
            stop.deadline = time.monotonic() + 10  # type: ignore[attr-defined]
            stop.set()
            await watcher
        asyncio.run(run())
    lat = np.array([seen[k] - acked[k] for k in keys if k in seen and k in acked]) * 1000
    return {"rate_per_s": rate, "events": n, "observed": int(len(lat)),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "quantiles_ms": latency_quantiles(lat)}


def _rss_bytes() -> int:
    """Resident set size of this process (Linux); tracemalloc would slow the run tenfold."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_per_user(user_counts: list[int], events_per_user: int = 3) -> list[dict]:
    settings = Settings(max_message_bytes=1 << 26)  # whole chunks as one message: no Kafka here
    out = []
    for users in user_counts:
        ds = generate(users=users, items=5000, events=users * events_per_user, seed=2)
        docs = _docs(ds)
        proc = BatchProcessor(settings, ItemVectors(settings.vector_dim))
        store: dict[str, bytes] = {}
        gc.collect()
        base = _rss_bytes()
        start = time.perf_counter()
        for lo in range(0, len(docs), 20000):
            rec = Record("events", 0, lo, json.dumps(docs[lo:lo + 20000]).encode(), time.time())
            res = proc.process([rec], store)
            store.update(res.user_writes)
        elapsed = time.perf_counter() - start
        heap = _rss_bytes() - base
        encoded = sum(len(v) for v in store.values())
        out.append({"users": len(store), "events": len(docs), "state_bytes_per_user": round(encoded / len(store)),
                    "rss_bytes_per_user": round(heap / len(store)),
                    "in_process_events_per_s": round(len(docs) / elapsed)})
        del store, proc, docs
    return out


def run(settings: Settings, quick: bool = False) -> dict:
    events = 20_000 if quick else 100_000
    return {
        "benchmark": "streams",
        "ingest": [ingest(settings, 10_000, events // 5, pack=1), ingest(settings, 10_000, events, pack=100),
                   ingest(settings, 100_000 if not quick else 20_000, events, pack=100)],
        "freshness": freshness(settings, rate=1000.0, seconds=5.0 if quick else 10.0),
        "memory": memory_per_user([10_000] if quick else [10_000, 100_000, 1_000_000]),
    }
