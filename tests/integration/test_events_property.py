"""Property test through a real streams worker: thousands of malformed events interleaved
with valid ones. Every bad one lands in ``events-dlq`` with a reason, every valid one is
applied once, and the worker process is the same one at the end (it never restarted)."""
from __future__ import annotations

import asyncio
import json
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from harness.chaos.streams import read_states
from streamrec.kafka.changelog import read_topic
from streamrec.contracts.events import EVENT_TYPES, REASONS, parse_message
from streamrec.kafka.config import ensure_topics
from harness.processes import Proc
from harness.replay import EventPublisher
from streamrec.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = time.time()
users = st.integers(0, 40).map(lambda n: f"u{n}")
valid = st.fixed_dictionaries({
    "user_id": users,
    "item_id": st.integers(0, 500).map(str),
    "event_type": st.sampled_from(EVENT_TYPES),
    "timestamp": st.floats(1e9, NOW, allow_nan=False),
}, optional={"value": st.floats(-1e6, 1e6, allow_nan=False)})

junk_values = st.one_of(st.none(), st.booleans(), st.lists(st.integers(), max_size=3), st.dictionaries(
    st.text(max_size=3), st.integers(), max_size=2), st.text(min_size=300, max_size=400), st.just(float("nan")),
    st.just(float("inf")), st.just(-1e300))


@st.composite
def broken(draw) -> bytes:
    """A valid event with one thing wrong, or bytes that are not an event at all."""
    kind = draw(st.sampled_from(["drop", "junk", "type", "time", "bytes", "truncate", "array"]))
    doc = dict(draw(valid))
    if kind == "drop":
        del doc[draw(st.sampled_from(["user_id", "item_id", "event_type", "timestamp"]))]
    elif kind == "junk":
        doc[draw(st.sampled_from(["user_id", "item_id", "event_type", "timestamp"]))] = draw(junk_values)
    elif kind == "type":
        doc["event_type"] = draw(st.text(max_size=12).filter(lambda t: t not in EVENT_TYPES))
    elif kind == "time":
        doc["timestamp"] = draw(st.sampled_from([-1.0, NOW + 1e8, 1e15]))
    elif kind == "bytes":
        return draw(st.binary(min_size=1, max_size=60))
    elif kind == "truncate":
        raw = json.dumps(doc).encode()
        return raw[: draw(st.integers(1, len(raw) - 1))]
    else:
        return json.dumps([doc, {"user_id": "u1"}]).encode()  # a packed batch with a bad element
    return json.dumps(doc, allow_nan=True).encode()


message = st.one_of(valid.map(lambda d: ("valid", d)), broken().map(lambda b: ("bad", b)))


def generate_messages(examples: int = 300) -> list:
    """Thousands of interleaved messages drawn by hypothesis (seeded). They are collected
    first and then sent through one worker: a worker round trip per example would take hours."""
    out: list = []

    @hsettings(max_examples=examples, derandomize=True, database=None, deadline=None,
               suppress_health_check=list(HealthCheck))
    @given(st.lists(message, min_size=5, max_size=12))
    def collect(batch):
        out.extend(batch)

    collect()
    return out


@pytest.fixture
def worker(broker, tmp_path_factory):
    s = Settings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"prop{int(time.time())}-",
                 state_dir=tmp_path_factory.mktemp("prop"))
    ensure_topics(s)
    proc = Proc("streams", s, "streams_web_port").start()
    proc.wait_ready(150)
    yield proc
    proc.stop()


def test_malformed_events_go_to_the_dlq_valid_ones_are_applied(worker):
    messages = generate_messages()
    assert len(messages) >= 2000 and sum(k == "bad" for k, _ in messages) >= 800
    settings = worker.settings
    pid = worker.process.pid
    before_dlq = len(asyncio.run(read_topic(settings, settings.topic("events-dlq"), idle=0.5)))
    before = {u: s.applied for u, s in read_states(settings).items()}
    pub = EventPublisher(settings)
    expect_valid, expect_dead = {}, 0
    for kind, payload in messages:
        raw = json.dumps(payload).encode() if kind == "valid" else payload
        ok, bad = parse_message(raw, settings)
        if kind == "bad":
            assert bad, f"the generator made a valid event: {raw!r}"
        expect_dead += len(bad)
        for ev in ok:
            expect_valid[ev.user_id] = expect_valid.get(ev.user_id, 0) + 1
        key = payload["user_id"].encode() if kind == "valid" else b"junk"
        if ok and kind == "bad":  # a packed batch with good elements: key it by their user
            key = ok[0].user_id.encode()
        pub.publish_raw(raw, key=key)
    pub.flush()
    deadline = time.monotonic() + 180
    while True:
        states = read_states(settings)
        applied = {u: s.applied - before.get(u, 0) for u, s in states.items()}
        if all(applied.get(u, 0) >= n for u, n in expect_valid.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {u: n for u, n in applied.items() if n} == expect_valid
    dead = asyncio.run(read_topic(settings, settings.topic("events-dlq"), idle=1.0))[before_dlq:]
    assert len(dead) == expect_dead
    assert all(dict(m.headers)["reason"].decode() in REASONS for m in dead)
    assert worker.process.poll() is None and worker.process.pid == pid
    assert not math.isnan(sum(s.vector.sum() for s in states.values()))
