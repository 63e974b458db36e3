"""The streams worker on the embedded broker: a real Faust worker process, real topics."""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer

from harness.chaos.streams import compare, dataset_docs, reference, streams_crash, wait_for_states
from streamrec.kafka.config import confluent_config, ensure_topics
from harness.replay import EventPublisher, publish_items
from streamrec.contracts.topics import EVENTS_DLQ
from harness.processes import Proc

pytestmark = pytest.mark.integration

BAD = {
    "bad_json": b'{"user_id": 1, "item_id": ',
    "bad_encoding": b'{"user_id": "\xff\xfe"}',
    "missing_field": b'{"user_id": "u1", "item_id": "i1", "timestamp": 1e9}',
    "bad_type": b'{"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": "yesterday"}',
    "unknown_event_type": b'{"user_id": "u1", "item_id": "i1", "event_type": "like", "timestamp": 1e9}',
    "non_finite": b'{"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": NaN}',
    "not_an_object": b'"just a string"',
    "timestamp_out_of_range": b'{"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": 9e12}',
}


def assert_matches(states: dict, docs: list[dict]) -> None:
    ref = reference(docs)
    assert set(states) == set(ref)
    assert compare(states, ref) == {"lost": 0, "applied_twice": 0, "users_mismatched": 0}


def read_dlq(settings, expected: int, timeout: float = 60.0) -> list:
    c = Consumer(confluent_config(settings, **{"group.id": "dlq-check", "auto.offset.reset": "earliest"}))
    c.subscribe([settings.topic(EVENTS_DLQ)])
    out, deadline = [], time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg)
        extra_deadline = time.monotonic() + 2.0  # anything beyond the expected count is a bug too
        while time.monotonic() < extra_deadline:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                out.append(msg)
    finally:
        c.close()
    return out


def test_valid_applied_once_bad_dead_lettered_duplicates_once(settings, ml100k):
    settings = settings.replace(max_message_bytes=65536)
    ensure_topics(settings)
    docs = dataset_docs(ml100k, 3000, event_ids=True)
    publish_items(settings, ml100k.items[:50])
    with Proc("streams", settings, "streams_web_port") as worker:
        worker.wait_ready()
        single, packed = EventPublisher(settings, pack=1), EventPublisher(settings, pack=50)
        single.publish(docs[:1000])
        for reason, raw in BAD.items():
            single.publish_raw(raw, key=b"u1")
        oversized = json.dumps({"user_id": "u1", "item_id": "x" * 100_000, "event_type": "click",
                                "timestamp": 1e9}).encode()
        single.publish_raw(oversized, key=b"u1")
        # A packed message with one bad element among good ones: only that element is rejected.
        single.publish_raw(json.dumps([docs[1000], {"user_id": "u9", "event_type": "click"}]).encode(),
                           key=docs[1000]["user_id"].encode())
        # Two producers: the first delivers before the second starts, so each user's events
        # arrive in the order the reference applies them (its recent list depends on it).
        single.flush()
        packed.publish(docs[1001:])
        # Recent events again (same event_id, new offsets): a producer's retry storm.
        packed.publish(docs[-500:])
        single.flush()
        packed.flush()
        states = wait_for_states(settings, len(docs), 90)
        dead = read_dlq(settings, len(BAD) + 2)
        metrics = worker.metrics()
    assert_matches(states, docs)
    reasons = Counter(dict(m.headers())["reason"].decode() for m in dead)
    assert reasons == Counter({**{r: 1 for r in BAD}, "oversized": 1, "missing_field": 2})
    for m in dead:
        headers = dict(m.headers())
        assert headers["source_topic"] == settings.topic("events").encode()
        assert int(headers["source_offset"]) >= 0 and m.value()
    assert "streamrec_streams_events_applied_total 3000.0" in metrics
    assert 'streamrec_streams_events_skipped_total{cause="duplicate_event_id"} 500.0' in metrics


@pytest.mark.slow
def test_worker_killed_and_restarted_recovers_tables_and_applies_once(settings, ml100k):
    """SIGKILL three times mid-stream: each restarted worker restores its tables from the
    changelog, replays the uncommitted tail and skips what the restored state already holds."""
    row = streams_crash(settings, dataset_docs(ml100k, 20000), kills=3, seed=1)
    assert row["applied"] == 20000
    assert (row["lost"], row["applied_twice"], row["users_mismatched"]) == (0, 0, 0)
