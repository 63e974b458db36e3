"""A hostile producer against real, separately started streams, serving and learner processes.

Each class of bad input found by hand (a null value, a megabyte of junk, messages over the
size limit, integers too large for a float, JSON nested 20,000 deep, events on the wrong
partition or with no key, a packed batch mixing users, event_id retries near the edge of the
dedup window) is sent with confluent-kafka, then ten valid clicks. Afterwards: every bad
message is in ``events-dlq`` exactly once with its reason (none ``internal_error``), every
valid event is applied exactly once by all three consumers, and no process restarted.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from confluent_kafka import Producer

from streamrec.chaos.streams import read_states
from streamrec.changelog import read_topic
from streamrec.kafka import ensure_topics, producer_config
from streamrec.processes import Proc
from streamrec.topics import EVENTS, EVENTS_DLQ, partition_for
from tests.learner_helpers import small_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = time.time()
HUGE = "1" + "0" * 400


def click(user: str, item: str, **extra) -> dict:
    return {"user_id": user, "item_id": item, "event_type": "click", "timestamp": NOW - 60, **extra}


def users_on(partition: int, partitions: int, n: int, prefix: str) -> list[str]:
    found, k = [], 0
    while len(found) < n:
        if partition_for(f"{prefix}{k}", partitions) == partition:
            found.append(f"{prefix}{k}")
        k += 1
    return found


class Traffic:
    """Produces the messages and keeps the expected outcome, written out by hand."""

    def __init__(self, settings):
        self.settings = settings
        self.n = settings.partitions
        self.producer = Producer(producer_config(settings, **{"message.max.bytes": 20_000_000}))
        self.topic = settings.topic(EVENTS)
        self.expected: dict[str, int] = {}      # user -> events that must be applied once
        self.dead: list[str] = []                # reasons expected on the DLQ, one per bad message
        self.rerouted = 0                        # valid events sent to a partition not their user's

    def _count_misrouted(self, user: str):
        def on_delivery(err, msg) -> None:
            assert err is None, err
            self.rerouted += msg.partition() != partition_for(user, self.n)
        return on_delivery

    def send(self, value, key: str | None, partition: int | None = None) -> None:
        raw = value if value is None or isinstance(value, bytes) else json.dumps(value).encode()
        kwargs = {} if partition is None else {"partition": partition}
        if isinstance(value, dict):
            kwargs["on_delivery"] = self._count_misrouted(value["user_id"])
        self.producer.produce(self.topic, value=raw, key=None if key is None else key.encode(), **kwargs)
        self.producer.poll(0)

    def valid(self, user: str, n: int = 1) -> None:
        self.expected[user] = self.expected.get(user, 0) + n

    def run(self) -> None:
        n = self.n
        a, b = users_on(0, n, 2, "a"), users_on(1, n, 2, "b")
        self.send(None, a[0]); self.dead.append("null_value")
        self.send(b"\xff" * 1_040_001, a[0]); self.dead.append("bad_encoding")
        self.send(b"x" * 1_680_000, a[0]); self.dead.append("oversized")
        self.send(b"[" * 20_000 + b"]" * 20_000, a[0]); self.dead.append("bad_json")
        self.send(f'{{"user_id":"{a[0]}","item_id":"i","event_type":"click","timestamp":{HUGE}}}'.encode(), a[0])
        self.dead.append("number_too_large")
        self.send(f'{{"user_id":"{a[0]}","item_id":"i","event_type":"click","timestamp":{NOW - 60},'
                  f'"value":{HUGE}}}'.encode(), a[0])
        self.dead.append("number_too_large")
        # A packed batch: its valid siblings are applied, the overflowing element alone is dead.
        self.send(f'[{json.dumps(click(a[1], "p1"))},{{"user_id":"{a[1]}","item_id":"p2","event_type":"click",'
                  f'"timestamp":{HUGE}}},{json.dumps(click(a[1], "p3"))}]'.encode(), a[1])
        self.valid(a[1], 2); self.dead.append("number_too_large")
        # Wrong partitions: an explicit wrong one, no key at all, and a packed batch mixing users.
        self.send(click(b[0], "w1"), b[0], partition=(1 + 1) % n); self.valid(b[0])
        for k in range(4):
            self.send(click(b[1], f"nokey{k}"), None); self.valid(b[1])
        self.send([click(a[0], "m1"), click(b[0], "m2"), click(b[1], "m3")], a[0], partition=0)
        self.valid(a[0]); self.valid(b[0]); self.valid(b[1]); self.rerouted += 2
        # event_id retries: inside the dedup window dropped everywhere, outside applied everywhere.
        d = users_on(2 % n, n, 1, "d")[0]
        window = self.settings.dedup_ids
        self.send(click(d, "x0", event_id="inside"), d); self.valid(d)
        for k in range(10):
            self.send(click(d, f"x{k + 1}", event_id=f"f{k}"), d); self.valid(d)
        self.send(click(d, "x0", event_id="inside"), d)           # a retry: dropped
        self.send(click(d, "y0", event_id="edge"), d); self.valid(d)
        for k in range(window + 20):
            self.send(click(d, f"y{k + 1}", event_id=f"g{k}"), d); self.valid(d)
        self.send(click(d, "y0", event_id="edge"), d); self.valid(d)  # out of the window: a new event
        for k in range(10):
            user = a[k % 2] if k < 5 else b[k % 2]
            self.send(click(user, f"ok{k}"), user); self.valid(user)
        assert self.producer.flush(60) == 0


@pytest.fixture
def trio(settings):
    s = settings.replace(**{k: getattr(small_settings(), k) for k in small_settings().__dataclass_fields__
                            if k.startswith("learner_") and k != "learner_port"})
    ensure_topics(s)
    procs = [Proc("streams", s, "streams_web_port"), Proc("serve", s, "http_port"),
             Proc("learner", s, "learner_port")]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.wait_ready(120)
        yield procs
    finally:
        for p in procs:
            p.stop()


def _json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def test_hostile_messages_are_dead_lettered_once_and_valid_events_applied_once_everywhere(trio):
    streams, serving, learner = trio
    s = streams.settings
    pids = [p.process.pid for p in trio]
    traffic = Traffic(s)
    traffic.run()
    expected, total = traffic.expected, sum(traffic.expected.values())

    def settled() -> bool:
        states = read_states(s)
        if any(states.get(u) is None or states[u].applied < n for u, n in expected.items()):
            return False
        return _metric(learner.metrics(), "streamrec_learner_events_total") >= total

    deadline = time.monotonic() + 120
    while not settled() and time.monotonic() < deadline:
        time.sleep(1.0)
    time.sleep(2.0)   # anything applied twice would show by now
    states = read_states(s)
    assert {u: states[u].applied for u in expected} == expected
    for user, n in expected.items():
        assert _json(f"{serving.url}/users/{user}")["events_applied"] == n, user
    assert _metric(learner.metrics(), "streamrec_learner_events_total") == total

    dead = asyncio.run(read_topic(s, s.topic(EVENTS_DLQ), idle=1.0))
    reasons = sorted(dict(m.headers)["reason"].decode() for m in dead)
    assert reasons == sorted(traffic.dead)
    assert len({m.key for m in dead}) == len(dead)            # each bad message exactly once
    stubs = [json.loads(m.value) for m in dead if dict(m.headers).get("truncated")]
    assert sorted(d["reason"] for d in stubs) == ["bad_encoding", "null_value", "oversized"]
    assert all({"source_topic", "source_partition", "source_offset", "size"} <= set(d) for d in stubs)
    assert traffic.rerouted >= 3
    assert _metric(streams.metrics(), "streamrec_streams_events_rerouted_total") == traffic.rerouted
    assert [p.process.poll() for p in trio] == [None, None, None]
    assert [p.process.pid for p in trio] == pids
    for p in trio:
        with urllib.request.urlopen(p.url + "/readyz", timeout=5) as r:
            assert r.status == 200

