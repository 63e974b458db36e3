"""Streams-worker crash scenario: SIGKILL during a replay, restart, compare with the input.

The reference is computed straight from the published events (counts by type, last event
time, recent items per user, ``event_id`` duplicates counted once); the system's state is
read from the user-state changelog, exactly what a restarted worker or serving would see.
"""
from __future__ import annotations

import random
import time
from collections import Counter

from streamrec.kafka.changelog import read_table_sync
from streamrec.kafka.config import ensure_topics
from harness.processes import Proc
from harness.replay import EventPublisher
from streamrec.settings import Settings
from streamrec.state.user_state import UserState, decode_state


def reference(docs: list[dict], recent_limit: int = 50) -> dict[str, dict]:
    """Per-user counts, last event time and recent items, computed from the input alone."""
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
        r["recent"].append(str(d["item_id"]))
        if len(r["recent"]) > recent_limit:
            del r["recent"][0]
    return ref


def compare(states: dict[str, UserState], ref: dict[str, dict]) -> dict:
    """Events lost and applied twice, and users whose state differs in any field."""
    lost = twice = mismatched = 0
    for user, r in ref.items():
        want = sum(r["counts"].values())
        s = states.get(user)
        got = s.applied if s else 0
        lost += max(0, want - got)
        twice += max(0, got - want)
        if s is None or s.counts != dict(r["counts"]) or s.last_event_time != r["last"] or \
                [i for i, _, _ in s.recent] != r["recent"]:
            mismatched += 1
    extra = [u for u in states if u not in ref]
    twice += sum(states[u].applied for u in extra)
    return {"lost": lost, "applied_twice": twice, "users_mismatched": mismatched + len(extra)}


def read_states(settings: Settings) -> dict[str, UserState]:
    return {k.decode(): decode_state(v) for k, v in read_table_sync(settings, "user_state").items()}


def wait_for_states(settings: Settings, expected_total: int, timeout: float = 120.0) -> dict[str, UserState]:
    deadline = time.monotonic() + timeout
    while True:
        states = read_states(settings)
        if sum(s.applied for s in states.values()) >= expected_total or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def dataset_docs(dataset, limit: int | None = None, event_ids: bool = False) -> list[dict]:
    n = len(dataset) if limit is None else min(limit, len(dataset))
    return [{"user_id": str(dataset.user_ids[j]), "item_id": str(dataset.item_ids[j]),
             "event_type": str(dataset.event_types[j]), "timestamp": float(dataset.timestamps[j]),
             "value": float(dataset.values[j]),
             **({"event_id": f"{dataset.name}-{j}"} if event_ids else {})} for j in range(n)]


def streams_crash(settings: Settings, docs: list[dict], kills: int = 3, pack: int = 20, seed: int = 0,
                  timeout: float = 180.0) -> dict:
    """Publish ``docs`` in ``kills + 1`` parts; SIGKILL the worker at a random moment of each
    part but the last and restart it. No event ids: only the offset watermarks prevent
    double application. Returns one row of the chaos table."""
    rng = random.Random(seed)
    ensure_topics(settings)
    pub = EventPublisher(settings, pack=pack)
    worker = Proc("streams", settings, "streams_web_port").start()
    worker.wait_ready(150)
    parts = kills + 1
    size = -(-len(docs) // parts)
    started = time.monotonic()
    try:
        for part in range(parts):
            pub.publish(docs[part * size:(part + 1) * size])
            pub.flush()
            if part < kills:
                time.sleep(rng.uniform(0.05, 1.5))  # kill at a random point of this part's processing
                worker.kill()
                worker = Proc("streams", settings, "streams_web_port").start()
                worker.wait_ready(150)
        states = wait_for_states(settings, len(docs), timeout)
    finally:
        worker.stop()
    result = compare(states, reference(docs))
    return {"scenario": "streams SIGKILL during replay", "faults_injected": kills, "events_in": len(docs),
            "applied": sum(s.applied for s in states.values()), **result, "requests_failed": None,
            "seconds": round(time.monotonic() - started, 1)}
