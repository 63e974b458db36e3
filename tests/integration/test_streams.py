"""The streams worker on the embedded broker: a real Faust worker process, real topics."""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer

from streamrec.changelog import read_table_sync
from streamrec.kafka import confluent_config, ensure_topics
from streamrec.replay import EventPublisher, publish_items
from streamrec.topics import EVENTS_DLQ
from streamrec.user_state import decode_state
from streamrec.processes import Proc

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


def reference(docs: list[dict]) -> dict[str, dict]:
    """Per-user counts, last event time and recent items computed straight from the input."""
    seen_ids: set[str] = set()
    ref: dict[str, dict] = {}
    for d in docs:
        if d.get("event_id") in seen_ids:
            continue
        if d.get("event_id"):
            seen_ids.add(d["event_id"])
        r = ref.setdefault(str(d["user_id"]), {"counts": Counter(), "last": 0.0, "recent": []})
        r["counts"][d["event_type"]] += 1
        r["last"] = max(r["last"], d["timestamp"])
        r["recent"] = (r["recent"] + [str(d["item_id"])])[-50:]
    return ref


def wait_for_state(settings, expected_total: int, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        states = {k.decode(): decode_state(v) for k, v in read_table_sync(settings, "user_state").items()}
        total = sum(s.applied for s in states.values())
        if total >= expected_total or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def assert_matches(states: dict, ref: dict) -> None:
    assert set(states) == set(ref)
    for user, r in ref.items():
        s = states[user]
        assert s.counts == dict(r["counts"]), user
        assert s.applied == sum(r["counts"].values()), user
        assert s.last_event_time == r["last"], user
        assert [i for i, _, _ in s.recent] == r["recent"], user


def read_dlq(settings, expected: int, timeout: float = 30.0) -> list:
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


def movielens_docs(ml100k, n: int) -> list[dict]:
    return [{"user_id": str(ml100k.user_ids[j]), "item_id": str(ml100k.item_ids[j]), "event_type": "rating",
             "timestamp": float(ml100k.timestamps[j]), "value": float(ml100k.values[j]),
             "event_id": f"ml-{j}"} for j in range(n)]


def test_valid_applied_once_bad_dead_lettered_duplicates_once(settings, ml100k):
    settings = settings.replace(max_message_bytes=65536)
    ensure_topics(settings)
    docs = movielens_docs(ml100k, 3000)
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
        packed.publish(docs[1001:])
        # Recent events again (same event_id, new offsets): a producer's retry storm.
        packed.publish(docs[-500:])
        single.flush()
        packed.flush()
        states = wait_for_state(settings, len(docs))
        dead = read_dlq(settings, len(BAD) + 2)
        metrics = worker.metrics()
    assert_matches(states, reference(docs))
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
    """SIGKILL mid-stream: the restarted worker restores its tables from the changelog,
    replays the uncommitted tail and skips what the restored state already holds."""
    ensure_topics(settings)
    docs = movielens_docs(ml100k, 20000)
    for d in docs:  # no event_ids: only the offset watermarks protect against double counting
        d.pop("event_id")
    pub = EventPublisher(settings, pack=20)
    worker = Proc("streams", settings, "streams_web_port").start()
    worker.wait_ready()
    for part in range(4):
        pub.publish(docs[part * 5000:(part + 1) * 5000])
        pub.flush()
        time.sleep(0.7)
        if part < 3:
            worker.kill()
            worker = Proc("streams", settings.replace(streams_web_port=worker.port), "streams_web_port").start()
            worker.wait_ready(90)
    try:
        states = wait_for_state(settings, len(docs), timeout=120)
    finally:
        worker.stop()
    assert_matches(states, reference(docs))
