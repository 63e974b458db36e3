"""EventProducer against the embedded broker: what it sends is applied once by a real streams
worker, its consistency token is where the broker put the messages, and delivery failures
come back to the caller with the events that failed."""
from __future__ import annotations

import asyncio
import json
import random

import pytest

from harness.chaos.streams import compare, dataset_docs, reference, wait_for_states
from harness.processes import Proc
from streamrec.contracts.consistency import parse_token
from streamrec.contracts.events import owner_partition
from streamrec.contracts.topics import EVENTS
from streamrec.kafka.changelog import read_topic
from streamrec.kafka.config import ensure_topics
from streamrec.kafka.embedded import free_port
from streamrec.producer import DeliveryError, EventProducer
from streamrec.settings import Settings

pytestmark = pytest.mark.integration


def test_sent_events_are_applied_once_by_a_streams_worker_and_the_token_is_where_they_landed(settings, ml100k):
    ensure_topics(settings)
    docs = dataset_docs(ml100k, 2000)
    for j in random.Random(1).sample(range(len(docs)), 300):   # some carry their own id
        docs[j]["event_id"] = f"mine-{j}"
    with Proc("streams", settings, "streams_web_port") as worker:
        worker.wait_ready()
        with EventProducer(settings, pack=50) as producer:
            ids = producer.send_many(docs)
            token = producer.flush()
            again = producer.send_many(docs[-200:])   # a retry storm: same events again, new ids where generated
        assert len(set(ids)) == len(docs)
        assert all(ids[j] == d["event_id"] for j, d in enumerate(docs) if "event_id" in d)
        # Resent events without an id of their own got new ones: they count again; those with one do not.
        resent = [d for d in docs[-200:] if "event_id" not in d]
        states = wait_for_states(settings, len(docs) + len(resent))
    assert compare(states, reference(docs + resent)) == {"lost": 0, "applied_twice": 0, "users_mismatched": 0}

    # The token of the first flush covers exactly the messages that held its events.
    positions = parse_token(token)
    assert set(positions) == {owner_partition(d["user_id"], settings.partitions) for d in docs}
    messages = asyncio.run(read_topic(settings, settings.topic(EVENTS)))
    before, after = [], []
    for m in messages:
        decoded = json.loads(m.value)
        (before if m.offset <= positions.get(m.partition, -1) else after).extend(
            e["event_id"] for e in (decoded if isinstance(decoded, list) else [decoded]))
    assert sorted(before) == sorted(ids) and sorted(after) == sorted(again)
    assert parse_token(producer.token) == {p: max(m.offset for m in messages if m.partition == p)
                                           for p in {m.partition for m in messages}}


def test_undeliverable_events_are_raised_with_the_events(tmp_path):
    nowhere = Settings(bootstrap_servers=f"127.0.0.1:{free_port()}", state_dir=tmp_path)
    producer = EventProducer(nowhere, delivery_timeout_s=1.0)
    sent = [{"user_id": f"u{n}", "item_id": "i", "event_type": "view", "timestamp": 1.7e9} for n in range(5)]
    ids = producer.send_many(sent)
    with pytest.raises(DeliveryError) as err:
        producer.close()
    assert sorted(e.event_id for e, _ in err.value.failed) == sorted(ids)
    assert all("timed out" in reason.lower() for _, reason in err.value.failed)
    assert err.value.pending == 0 and err.value.token == ""
