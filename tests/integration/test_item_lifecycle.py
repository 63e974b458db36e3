"""Item lifecycle on the embedded broker with a real serving process, a real streams worker and
the real learner: a tombstone, an expiry and an unavailable flag take an item out of every
answer within a bounded wait and out of the learner's next version; invalid items land in
items-dlq once, with a reason, even across a restart."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from harness.polling import wait_until
from harness.processes import Proc
from tests.processes import json_request
from streamrec.contracts.events import encode_events
from streamrec.contracts.topics import EVENTS, ITEMS, ITEMS_DLQ
from streamrec.kafka.config import confluent_config, ensure_topics, producer_config

pytestmark = pytest.mark.integration

N_ITEMS = 20
# The target is well under a second; the bound leaves room for a machine other work keeps busy.
GONE_WITHIN_S = 5.0


def http(url: str) -> tuple[int, dict]:
    return json_request(url)


def ids(url: str) -> list[str]:
    status, doc = http(url)
    assert status == 200, doc
    return [entry["item_id"] for entry in doc["items"]]


def publish_item(producer: Producer, settings, item_id: str, **fields) -> None:
    value = json.dumps({"item_id": item_id, "title": f"Item {item_id}", **fields}).encode()
    producer.produce(settings.topic(ITEMS), key=item_id.encode(), value=value)
    assert producer.flush(10) == 0


def publish_events(producer: Producer, settings, pairs: list[tuple[str, str]]) -> None:
    for j, (user, item) in enumerate(pairs):
        producer.produce(settings.topic(EVENTS), key=user.encode(), value=encode_events(
            [{"user_id": user, "item_id": item, "event_type": "click", "timestamp": 1.7e9 + j}]))
    assert producer.flush(10) == 0


def every_answer(base: str) -> set[str]:
    """What the answers show: a user's full list (with exploration), cold-start trending, similar items."""
    shown = set(ids(f"{base}/recommendations?user_id=reader&k={N_ITEMS}&exploration=0"))
    shown |= set(ids(f"{base}/recommendations?user_id=reader&k=5&exploration=1&seed=3"))
    shown |= set(ids(f"{base}/recommendations?user_id=nobody&k=3&exploration=0"))
    shown |= set(ids(f"{base}/items/i1/similar?k={N_ITEMS}"))
    return shown


def gone_within(base: str, item_id: str, seconds: float) -> float:
    """Seconds until ``item_id`` left every answer; fails past ``seconds``."""
    started = time.monotonic()
    assert wait_until(lambda: item_id not in every_answer(base), timeout=seconds, interval=0.05), \
        f"{item_id} still served after {seconds}s"
    return time.monotonic() - started


def read_dlq(settings, settle: float = 3.0) -> list:
    """Everything on items-dlq, waiting until ``settle`` seconds pass with nothing new."""
    consumer = Consumer(confluent_config(settings, **{"group.id": "dlq-check", "enable.auto.commit": False}))
    topic = settings.topic(ITEMS_DLQ)
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out, quiet_since = [], time.monotonic()
    try:
        while time.monotonic() - quiet_since < settle:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                out.append(msg)
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return out


def test_retired_expired_and_unavailable_items_leave_every_answer(settings):
    settings = settings.replace(partitions=2, serving_index_refresh_s=0.1)
    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    for j in range(N_ITEMS):
        publish_item(producer, settings, f"i{j}")
    # i3 is the most trending item; "reader" had i1 and an item no catalogue message names.
    publish_events(producer, settings,
                   [(f"fan{u}", "i3") for u in range(6)] + [("reader", "i1"), ("reader", "ghost")])
    with Proc("serve", settings, "http_port") as serving:
        serving.wait_ready(120)
        base = serving.url
        # Every item and event read, and the index (before any model) rebuilt over them.
        assert wait_until(lambda: http(f"{base}/items/ghost")[1].get("in_index")
                          and http(f"{base}/items/i1/similar")[0] == 200, timeout=30)
        assert "i3" in every_answer(base)
        assert ids(f"{base}/recommendations?user_id=nobody&k=1&exploration=0") == ["i3"]

        # An item only events named: served with its id and no title; GET /items says so.
        status, ghost = http(f"{base}/items/ghost")
        assert ghost["status"] == "events_only" and "title" not in ghost
        status, doc = http(f"{base}/recommendations?user_id=fan0&k={N_ITEMS}&exploration=0")
        entry = next(e for e in doc["items"] if e["item_id"] == "ghost")
        assert "title" not in entry

        # A tombstone: gone from the list, exploration, trending and similar items.
        producer.produce(settings.topic(ITEMS), key=b"i3", value=None)
        assert producer.flush(10) == 0
        gone_within(base, "i3", GONE_WITHIN_S)
        assert http(f"{base}/items/i3")[1]["status"] == "retired"
        assert http(f"{base}/items/i3/similar")[0] == 404

        # Unavailable, then available again.
        publish_item(producer, settings, "i4", available=False)
        gone_within(base, "i4", GONE_WITHIN_S)
        assert http(f"{base}/items/i4")[1]["status"] == "unavailable"
        publish_item(producer, settings, "i4", available=True)
        assert wait_until(lambda: "i4" in every_answer(base), timeout=GONE_WITHIN_S, interval=0.05)

        # Expiry: no message when the time passes, the item leaves anyway.
        publish_item(producer, settings, "i5", expires_at=time.time() + 3.0)
        assert wait_until(lambda: http(f"{base}/items/i5")[1].get("expires_at"), timeout=GONE_WITHIN_S)
        assert "i5" in every_answer(base)
        gone_within(base, "i5", 3.0 + GONE_WITHIN_S)
        assert http(f"{base}/items/i5")[1]["status"] == "expired"


def test_invalid_items_land_in_items_dlq_once_with_a_reason(settings):
    settings = settings.replace(partitions=2)
    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    bad = [("bad_json", b"b1", b'{"item_id": '), ("key_mismatch", b"other", b'{"item_id": "b2"}'),
           ("bad_type", b"b3", b'{"item_id": "b3", "available": "yes"}'),
           # Item contract version 3: attributes are scalars, numbers finite.
           ("bad_type", b"b5", b'{"item_id": "b5", "attributes": {"category": ["books"]}}'),
           ("non_finite", b"b6", b'{"item_id": "b6", "attributes": {"price": NaN}}')]
    for _, key, value in bad:
        producer.produce(settings.topic(ITEMS), key=key, value=value)
    producer.produce(settings.topic(ITEMS), key=b"ok", value=b'{"item_id": "ok", "title": "fine"}')
    producer.produce(settings.topic(ITEMS), key=b"ok", value=None)   # a tombstone is valid
    producer.produce(settings.topic(ITEMS), key=b"fine", value=b'{"item_id": "fine", "attributes": {"price": 3}}')
    assert producer.flush(10) == 0
    with Proc("streams", settings, "streams_web_port") as worker:
        worker.wait_ready(120)
        assert wait_until(lambda: "streamrec_streams_items_checked_total 8.0" in worker.metrics(), timeout=60)
        dead = read_dlq(settings)
    reasons = Counter(dict(m.headers())["reason"].decode() for m in dead)
    assert reasons == Counter(reason for reason, _, _ in bad)
    for m in dead:
        headers = dict(m.headers())
        reason = headers["reason"].decode()
        assert m.value() in {value for r, _, value in bad if r == reason} and headers["detail"]
        assert headers["source_topic"] == settings.topic(ITEMS).encode()
        assert m.key().decode().startswith(settings.topic(ITEMS) + "/")

    # A restarted worker resumes after what it checked: no second copy.
    publish_item(producer, settings, "b4", available="no")
    with Proc("streams", settings, "streams_web_port") as worker:
        worker.wait_ready(120)
        assert wait_until(lambda: "streamrec_streams_items_rejected_total" in worker.metrics(), timeout=60)
        dead = read_dlq(settings)
    reasons = Counter(dict(m.headers())["reason"].decode() for m in dead)
    assert reasons == Counter(reason for reason, _, _ in bad) + Counter({"bad_type": 1})


def test_the_learner_leaves_retired_and_unavailable_items_out_of_its_next_version(settings):
    from learner.service import Learner          # torch: imported only by the test that runs the learner
    from streamrec.contracts.model_store import Announcement, load_version
    from streamrec.contracts.topics import MODEL_UPDATES
    from streamrec.kafka.embedded import free_port
    from tests.learner_helpers import small_settings

    own = small_settings(learner_catalogue_publish_s=0.3)
    settings = settings.replace(partitions=2, learner_port=free_port(), **{
        k: getattr(own, k) for k in own.__dataclass_fields__ if k.startswith("learner_") and k != "learner_port"})
    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    for item_id in ("a", "b", "c", "d"):
        publish_item(producer, settings, item_id)
    versions = Consumer(confluent_config(settings, **{"group.id": "versions", "enable.auto.commit": False}))
    versions.assign([TopicPartition(settings.topic(MODEL_UPDATES), 0, OFFSET_BEGINNING)])

    def next_version(after: int) -> tuple[int, list[str]]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = versions.poll(0.5)
            if msg is not None and not msg.error():
                announcement = Announcement.decode(msg.value())
                if announcement.version > after:
                    return announcement.version, sorted(load_version(announcement).item_ids)
        raise AssertionError(f"no version after {after}")

    learner = Learner(settings)
    thread = threading.Thread(target=learner.run, daemon=True)
    thread.start()
    try:
        version, ids = next_version(0)
        assert ids == ["a", "b", "c", "d"]
        producer.produce(settings.topic(ITEMS), key=b"b", value=None)
        publish_item(producer, settings, "c", available=False)
        while ids != ["a", "d"]:     # one catalogue-only version, or two if the messages straddle one
            version, ids = next_version(version)
            assert set(ids) >= {"a", "d"}
        publish_item(producer, settings, "c", available=True)
        version, ids = next_version(version)
        assert ids == ["a", "c", "d"]
    finally:
        learner.stop()
        thread.join(60)
        versions.close()
