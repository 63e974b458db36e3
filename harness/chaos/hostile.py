"""Hostile-producer scenarios: bad input, and mis-partitioned events with two streams workers.

Both send with confluent-kafka, as a producer outside our codebase would, against real,
separately started processes, and compare what each consumer of ``events`` applied with
the expected outcome written out per message (not recomputed by the code under test).

* ``bad-input``: a null value, a megabyte of junk, a message over the size limit, JSON
  nested 20,000 deep, integers too large for a float (alone and inside a packed batch),
  events on the wrong partition or with no key, a packed batch mixing users, and
  ``event_id`` retries inside and just outside the dedup window; then ten valid clicks.
  Streams, serving and the learner must each apply every valid event once, and every bad
  message must reach ``events-dlq`` exactly once with its reason.
* ``misrouted``: two streams workers splitting the partitions while a producer sends a third
  of its events with no key and a third to a wrong partition: every event is applied once,
  by the worker that owns its user, and no user's state is written to another partition.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator

from confluent_kafka import Producer

from streamrec.kafka.changelog import read_topic
from harness.chaos.streams import read_states
from streamrec.kafka.config import ensure_topics, producer_config
from harness.polling import wait_until
from harness.processes import Proc
from streamrec.settings import Settings
from streamrec.contracts.topics import EVENTS, EVENTS_DLQ, changelog_topic, partition_for

HUGE = "1" + "0" * 400   # an integer no float can hold


def users_on(partition: int, partitions: int, n: int, prefix: str) -> list[str]:
    """``n`` user ids whose events belong to ``partition``."""
    found, k = [], 0
    while len(found) < n:
        if partition_for(f"{prefix}{k}", partitions) == partition:
            found.append(f"{prefix}{k}")
        k += 1
    return found


class HostileProducer:
    """Sends messages with confluent-kafka and keeps the outcome each one must have."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.n = settings.partitions
        self.now = time.time()
        self.producer = Producer(producer_config(settings, **{"message.max.bytes": 20_000_000}))
        self.topic = settings.topic(EVENTS)
        self.expected: dict[str, int] = {}      # user -> events that must be applied once
        self.dead: list[str] = []               # the reason of each message that must be dead-lettered
        self.rerouted = 0                       # valid events delivered to a partition not their user's

    def click(self, user: str, item: str, **extra) -> dict:
        return {"user_id": user, "item_id": item, "event_type": "click", "timestamp": self.now - 60, **extra}

    def send(self, value, key: str | None, partition: int | None = None) -> None:
        raw = value if value is None or isinstance(value, bytes) else json.dumps(value).encode()
        kwargs: dict = {} if partition is None else {"partition": partition}
        if isinstance(value, dict):   # learn where the producer's partitioner put it
            kwargs["on_delivery"] = self._count_misrouted(value["user_id"])
        self.producer.produce(self.topic, value=raw, key=None if key is None else key.encode(), **kwargs)
        self.producer.poll(0)

    def _count_misrouted(self, user: str):
        def on_delivery(err, msg) -> None:
            if err is None:
                self.rerouted += msg.partition() != partition_for(user, self.n)
        return on_delivery

    def valid(self, user: str, n: int = 1) -> None:
        self.expected[user] = self.expected.get(user, 0) + n

    def bad(self, reason: str, value, key: str | None) -> None:
        self.send(value, key)
        self.dead.append(reason)

    def flush(self) -> None:
        if self.producer.flush(60):
            raise RuntimeError("the producer could not deliver every message")

    def send_bad_input(self) -> None:
        n, now = self.n, self.now
        a, b = users_on(0, n, 2, "a"), users_on(1 % n, n, 2, "b")
        self.bad("null_value", None, a[0])
        self.bad("bad_encoding", b"\xff" * 1_040_001, a[0])
        self.bad("oversized", b"x" * 1_680_000, a[0])
        self.bad("bad_json", b"[" * 20_000 + b"]" * 20_000, a[0])
        self.bad("number_too_large", f'{{"user_id":"{a[0]}","item_id":"i","event_type":"click",'
                                     f'"timestamp":{HUGE}}}'.encode(), a[0])
        self.bad("number_too_large", f'{{"user_id":"{a[0]}","item_id":"i","event_type":"click",'
                                     f'"timestamp":{now - 60},"value":{HUGE}}}'.encode(), a[0])
        # A packed batch: its valid siblings are applied, the overflowing element alone is dead.
        self.bad("number_too_large", f'[{json.dumps(self.click(a[1], "p1"))},{{"user_id":"{a[1]}",'
                                     f'"item_id":"p2","event_type":"click","timestamp":{HUGE}}},'
                                     f'{json.dumps(self.click(a[1], "p3"))}]'.encode(), a[1])
        self.valid(a[1], 2)
        self.send(self.click(b[0], "w1"), b[0], partition=(partition_for(b[0], n) + 1) % n)
        self.valid(b[0])
        for k in range(4):
            self.send(self.click(b[1], f"nokey{k}"), None)
            self.valid(b[1])
        self.send([self.click(a[0], "m1"), self.click(b[0], "m2"), self.click(b[1], "m3")], a[0], partition=0)
        self.valid(a[0]), self.valid(b[0]), self.valid(b[1])
        self.rerouted += 2 if n > 1 else 0
        self.send_event_id_retries(users_on(2 % n, n, 1, "d")[0])
        for k in range(10):
            user = a[k % 2] if k < 5 else b[k % 2]
            self.send(self.click(user, f"ok{k}"), user)
            self.valid(user)
        self.flush()

    def send_event_id_retries(self, user: str) -> None:
        """A retry inside the dedup window (dropped) and one just outside it (a new event)."""
        self.send(self.click(user, "x0", event_id="inside"), user)
        self.valid(user)
        for k in range(10):
            self.send(self.click(user, f"x{k + 1}", event_id=f"f{k}"), user)
            self.valid(user)
        self.send(self.click(user, "x0", event_id="inside"), user)
        self.send(self.click(user, "y0", event_id="edge"), user)
        self.valid(user)
        for k in range(self.settings.dedup_ids + 20):
            self.send(self.click(user, f"y{k + 1}", event_id=f"g{k}"), user)
            self.valid(user)
        self.send(self.click(user, "y0", event_id="edge"), user)
        self.valid(user)

    def send_misrouted(self, users: int, per_user: int, seed: int = 0) -> None:
        """Each event keyed right, with no key, or on a wrong partition, a third each."""
        rng = random.Random(seed)
        for k in range(per_user):
            for u in range(users):
                user, way = f"m{u}", rng.randrange(3)
                doc = self.click(user, f"i{rng.randrange(500)}")
                if way == 0:
                    self.send(doc, user)
                elif way == 1:
                    self.send(doc, None)
                else:
                    self.send(doc, user, partition=(partition_for(user, self.n) + 1) % self.n)
                self.valid(user)
        self.flush()


@contextmanager
def processes(settings: Settings, *specs: tuple[str, str]) -> Iterator[list[Proc]]:
    """Start ``(command, port_field)`` processes, wait until ready, always stop them."""
    ensure_topics(settings)
    procs = [Proc(command, settings, port) for command, port in specs]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.wait_ready(120)
        yield procs
    finally:
        for p in procs:
            p.stop()


def metric(proc: Proc, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in proc.metrics().splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def applied_by_serving(serving: Proc, users) -> dict[str, int]:
    out = {}
    for user in users:
        try:
            with urllib.request.urlopen(f"{serving.url}/users/{user}", timeout=5) as r:
                out[user] = json.loads(r.read())["events_applied"]
        except OSError:
            out[user] = 0
    return out


def wait_applied(settings: Settings, expected: dict[str, int], extra=lambda: True, timeout: float = 120.0):
    def all_applied() -> bool:
        states = read_states(settings)
        return all(states.get(u) is not None and states[u].applied >= n for u, n in expected.items()) and extra()

    wait_until(all_applied, timeout, interval=1.0)
    time.sleep(2.0)   # anything applied twice would show by now
    return {u: s.applied for u, s in read_states(settings).items() if u in expected}


def loss(expected: dict[str, int], got: dict[str, int]) -> tuple[int, int]:
    lost = sum(max(0, n - got.get(u, 0)) for u, n in expected.items())
    twice = sum(max(0, got.get(u, 0) - n) for u, n in expected.items())
    return lost, twice


def bad_input(settings: Settings) -> dict:
    """The ``bad-input`` row; ``details`` holds what the test checks message by message."""
    started = time.monotonic()
    with processes(settings, ("streams", "streams_web_port"), ("serve", "http_port"),
                   ("learner", "learner_port")) as (streams, serving, learner):
        pids = [p.process.pid for p in (streams, serving, learner)]
        traffic = HostileProducer(streams.settings)
        traffic.send_bad_input()
        total = sum(traffic.expected.values())
        by_streams = wait_applied(streams.settings, traffic.expected,
                                  lambda: metric(learner, "streamrec_learner_events_total") >= total)
        by_serving = applied_by_serving(serving, traffic.expected)
        by_learner = int(metric(learner, "streamrec_learner_events_total"))
        dead = asyncio.run(read_topic(settings, settings.topic(EVENTS_DLQ), idle=1.0))
        rerouted = int(metric(streams, "streamrec_streams_events_rerouted_total"))
        alive = [p.process.poll() is None and p.process.pid == pid
                 for p, pid in zip((streams, serving, learner), pids)]
    lost, twice = (sum(x) for x in zip(loss(traffic.expected, by_streams), loss(traffic.expected, by_serving)))
    lost += max(0, total - by_learner)
    twice += max(0, by_learner - total)
    return {"scenario": "bad input (streams, serving, learner)", "faults_injected": len(traffic.dead),
            "events_in": total, "applied": min(sum(by_streams.values()), sum(by_serving.values()), by_learner),
            "lost": lost, "applied_twice": twice, "dead_lettered": len(dead), "requests_failed": None,
            "seconds": round(time.monotonic() - started, 1),
            "details": {"expected": traffic.expected, "streams": by_streams, "serving": by_serving,
                        "learner": by_learner, "dead_expected": sorted(traffic.dead),
                        "dead": [(m.key, dict(m.headers), m.value) for m in dead],
                        "rerouted_expected": traffic.rerouted, "rerouted": rerouted, "alive": alive}}


def misrouted(settings: Settings) -> dict:
    """The ``misrouted`` row: two streams workers, a third of events keyless, a third mis-sent."""
    started = time.monotonic()
    with processes(settings, ("streams", "streams_web_port"), ("streams", "streams_web_port"),
                   ("serve", "http_port")) as (one, two, serving):
        traffic = HostileProducer(one.settings)
        traffic.send_misrouted(users=200, per_user=10)
        by_streams = wait_applied(one.settings, traffic.expected)
        by_serving = applied_by_serving(serving, traffic.expected)
        rerouted = [int(metric(w, "streamrec_streams_events_rerouted_total")) for w in (one, two)]
        applied = [int(metric(w, "streamrec_streams_events_applied_total")) for w in (one, two)]
        records = asyncio.run(read_topic(settings, changelog_topic(settings, "user_state"), idle=1.0))
        dead = asyncio.run(read_topic(settings, settings.topic(EVENTS_DLQ), idle=1.0))
    foreign = sum(1 for m in records if m.partition != partition_for(m.key, settings.partitions))
    lost, twice = (sum(x) for x in zip(loss(traffic.expected, by_streams), loss(traffic.expected, by_serving)))
    return {"scenario": "mis-partitioned producer, two streams workers", "faults_injected": traffic.rerouted,
            "events_in": sum(traffic.expected.values()), "applied": sum(by_streams.values()), "lost": lost,
            "applied_twice": twice, "dead_lettered": len(dead), "requests_failed": None,
            "seconds": round(time.monotonic() - started, 1),
            "details": {"rerouted_by_worker": rerouted, "applied_by_worker": applied,
                        "rerouted_expected": traffic.rerouted, "state_records_on_foreign_partition": foreign}}


def _for_table(scenario, name: str, settings: Settings) -> dict:
    stamp = int(time.time())
    row = scenario(settings.replace(topic_prefix=f"chaos-{name}-{stamp}-",
                                    state_dir=settings.state_dir / f"{name}-{stamp}"))
    details = row.pop("details")
    row["checks"] = {k: v for k, v in details.items() if k not in ("dead", "expected", "streams", "serving")}
    return row


def run_bad_input(settings: Settings, args=None) -> dict:
    return _for_table(bad_input, "bad-input", settings)


def run_misrouted(settings: Settings, args=None) -> dict:
    return _for_table(misrouted, "misrouted", settings)
