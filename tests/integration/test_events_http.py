"""``POST /events`` on a real serving process and the embedded broker: accepted events are on
the log where the token says and applied by serving's own replica (which skips an event on a
partition other than its user's, so this also shows the partitioning); the producer-only mode
of ``serve --no-topic-agent`` ingests too; a broker gone means 503 in bounded time."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest

from harness.polling import wait_until
from serving.process import ServingThread
from streamrec.contracts.consistency import parse_token
from streamrec.contracts.events import owner_partition
from streamrec.contracts.topics import EVENTS
from streamrec.kafka.changelog import read_topic
from streamrec.kafka.embedded import EmbeddedBroker, free_port

pytestmark = pytest.mark.integration


def post_events(url: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/events", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def counts(url: str, user: str) -> dict | None:
    """The user's event counts in serving's replica (None: no state yet)."""
    try:
        with urllib.request.urlopen(f"{url}/users/{user}", timeout=10) as response:
            return json.load(response)["counts"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def events_for(users: list[str], per_user: int) -> list[dict]:
    return [{"user_id": u, "item_id": f"i{n}", "event_type": "click", "timestamp": 1.7e9 + n}
            for n in range(per_user) for u in users]


@pytest.mark.parametrize("topic_agent", [True, False], ids=["with-agent", "producer-only"])
def test_accepted_events_are_where_the_token_says_and_applied_by_serving(settings, topic_agent):
    settings = settings.replace(http_port=free_port(), partitions=4)
    serving = ServingThread(settings, topic_agent=topic_agent).start(60)
    try:
        users = [f"web-{n}" for n in range(6)]
        status, first = post_events(serving.url, events_for(users, 5))
        assert status == 202 and first["accepted"] == 30
        status, second = post_events(serving.url, {"user_id": "web-0", "item_id": "last", "event_type": "purchase",
                                                   "timestamp": time.time()})
        assert status == 202 and second["accepted"] == 1
        status, bad = post_events(serving.url, [events_for(["web-9"], 1)[0], {"user_id": "web-9"}])
        assert status == 400 and (bad["index"], bad["field"]) == (1, "item_id")
        assert wait_until(lambda: counts(serving.url, "web-0") == {"click": 5, "purchase": 1}, 30)
        assert wait_until(lambda: all(counts(serving.url, u) == {"click": 5} for u in users[1:]), 30)
        assert counts(serving.url, "web-9") is None   # the rejected body wrote nothing
    finally:
        serving.stop()
    positions = parse_token(first["token"])
    assert set(positions) == {owner_partition(u, 4) for u in users}
    messages = asyncio.run(read_topic(settings, settings.topic(EVENTS)))
    assert {(m.partition, m.offset) for m in messages} >= set(positions.items())
    [(partition, offset)] = parse_token(second["token"]).items()
    assert partition == owner_partition("web-0", 4) and offset > positions[partition]


def test_broker_gone_is_503_in_bounded_time(tmp_path):
    """Producer-only serving: with the broker gone the request agent's Faust consumer takes over a
    minute to stop (it cannot leave its group), which is not what this test is about."""
    from streamrec.settings import Settings

    broker = EmbeddedBroker(log_file=tmp_path / "tansu.log").start()
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, state_dir=tmp_path / "state", partitions=2,
                        http_port=free_port(), serving_ingest_timeout_s=2.0)
    serving = ServingThread(settings, topic_agent=False).start(60)
    try:
        event = {"user_id": "u", "item_id": "i", "event_type": "view", "timestamp": 1.7e9}
        assert post_events(serving.url, event)[0] == 202
        broker.stop()
        for _ in range(2):   # before and after serving's broker watch notices
            started = time.monotonic()
            status, body = post_events(serving.url, event)
            assert status == 503 and body["acknowledged"] == 0, body
            assert time.monotonic() - started < settings.serving_ingest_timeout_s + 2.0
        assert wait_until(lambda: "unreachable" in post_events(serving.url, event)[1]["error"], 30)
    finally:
        serving.stop()
        broker.stop()
