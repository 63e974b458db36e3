"""Serving as a real subprocess under faults: restarts while clients call it, and overload.

Admission is checked through serving's own ``/metrics``: what was counted, timed and shed,
and why, against what the clients saw.

The scenarios are :mod:`harness.chaos.serving` (``streamrec chaos`` runs longer versions);
these tests run them short and assert the guarantees on the rows they return.
"""
from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections import Counter

import pytest

from streamrec.kafka.embedded import free_port
from harness.chaos.serving import _http_load, seed_topics, serving_overload, serving_restart
from streamrec.client import AsyncRecClient, RecClient, RecUnavailable
from harness.processes import Proc

pytestmark = pytest.mark.integration


def _both_clients_raise_rec_unavailable(url: str, timeout: float, match: str | None = None) -> None:
    """The sync and the async HTTP client each raise RecUnavailable on one call to ``url``
    (``match``, if given, is checked on the sync client's message)."""
    with pytest.raises(RecUnavailable, match=match):
        RecClient(url, timeout=timeout).recommend("u1")

    async def call():
        async with AsyncRecClient(url, timeout=timeout) as client:
            await client.recommend("u1")

    with pytest.raises(RecUnavailable):
        asyncio.run(call())


def test_clients_raise_rec_unavailable_when_nothing_listens():
    _both_clients_raise_rec_unavailable(f"http://127.0.0.1:{free_port()}", timeout=1)


def test_client_raises_rec_unavailable_when_server_closes_mid_exchange():
    # A server that accepts and closes without answering: what a SIGKILL mid-request looks like.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)

        def accept_and_close():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:   # the test closed the socket
                    return
                conn.recv(65536)
                conn.close()

        threading.Thread(target=accept_and_close, daemon=True).start()
        _both_clients_raise_rec_unavailable(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=2,
                                            match="connection lost|unreachable")


def test_restart_with_sigterm_and_sigkill_every_call_answers_or_fails_clearly(settings):
    row = serving_restart(settings.replace(partitions=2), signals=(signal.SIGTERM, signal.SIGKILL),
                          client_timeout=2.0, settle_s=2.0)
    d = row["details"]
    print(row)
    assert d["unclear_errors"] == 0, d["examples"]
    assert d["hung"] == 0 and d["client_threads_stuck"] == 0
    assert row["requests_ok"] > 0
    assert row["recovered"], row   # answers again after the last restart, process up
    assert row["requests_sent"] == row["requests_ok"] + row["requests_failed"]


@pytest.mark.slow
def test_overload_twice_capacity_sheds_with_503_retry_after_bounded_memory_and_recovers(settings):
    row = serving_overload(settings.replace(partitions=2), duration_s=10.0, max_in_flight=4, overload_factor=2)
    d = row["details"]
    print(row)
    assert d["process_alive"] and row["recovered"], row
    assert row["requests_shed"] > 0, row                     # the excess is shed...
    assert d["shed_without_retry_after"] == 0                # ...always with a retry hint
    assert row["requests_ok"] > 0
    assert row["requests_failed"] == 0, d["statuses"]         # no timeouts, resets or 5xx besides 503
    # Bounded memory: the overload adds little over what the short ramp used.
    assert row["max_rss_mb"] < d["baseline_rss_mb"] * 1.25 + 64, row


def _samples(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample on serving's /metrics, keyed by (name, labels)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def _burst(url: str, users: list[str], method: str, concurrency: int, rounds: int) -> Counter:
    """``concurrency`` simultaneous requests, ``rounds`` times: counts by status (503 split by Retry-After)."""
    import aiohttp

    counts: Counter = Counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def one(n: int) -> None:
            user = users[n % len(users)]
            call = session.get(url + "/recommendations", params={"user_id": user, "k": "5"}) if method == "GET" \
                else session.post(url + "/recommendations", json={"user_id": user, "k": 5})
            async with call as response:
                await response.read()
                hint = "" if response.status != 503 else ("+retry_after" if response.headers.get("Retry-After")
                                                          else "-retry_after")
                counts[f"{response.status}{hint}"] += 1

        for _ in range(rounds):
            await asyncio.gather(*(one(n) for n in range(concurrency)))
    return counts


def test_post_is_counted_timed_and_shed_like_get(settings):
    s = settings.replace(partitions=2, serving_max_in_flight=2)
    users = seed_topics(s)
    proc = Proc("serve", s, "http_port").start()
    try:
        proc.wait_ready(150)
        before = _samples(proc.url)
        counts = {method: asyncio.run(_burst(proc.url, users, method, concurrency=32, rounds=5))
                  for method in ("GET", "POST")}
        after = _samples(proc.url)
    finally:
        proc.stop()
    print(counts)
    for method, c in counts.items():
        assert set(c) <= {"200", "503+retry_after"}, (method, c)   # shed, always with a retry hint
        assert c["200"] > 0 and c["503+retry_after"] > 0, (method, c)
    ok = sum(c["200"] for c in counts.values())
    shed = sum(c["503+retry_after"] for c in counts.values())
    route = {"path": "http", "route": "recommendations"}
    assert _delta(before, after, "streamrec_serving_requests_total", **route, outcome="ok") == ok
    assert _delta(before, after, "streamrec_serving_requests_total", **route, outcome="shed") == shed
    assert _delta(before, after, "streamrec_serving_request_latency_seconds_count", **route) == ok
    other = {"path": "http", "route": "other"}
    assert _delta(before, after, "streamrec_serving_requests_total", **other, outcome="ok") == 0


def test_overload_is_shed_by_expected_wait_and_nothing_is_worked_on_after_the_queue_timeout(settings):
    # The count limit is far above the clients: whatever is shed is shed by time.
    s = settings.replace(partitions=2, serving_max_in_flight=1000, serving_queue_target_s=0.002,
                         serving_queue_timeout_s=0.25)   # 0.25: a bucket edge of the queue-wait histogram
    users = seed_topics(s)
    proc = Proc("serve", s, "http_port").start()
    try:
        proc.wait_ready(150)
        before = _samples(proc.url)
        load = asyncio.run(_http_load(proc.url, f"/recommendations?user_id={users[0]}&k=10", 128, 4.0, 30.0))
        after = _samples(proc.url)
        alive = proc.process.poll() is None
    finally:
        proc.stop()
    print(load)
    assert alive and set(load) <= {"200", "503_retry_after"}, load
    assert load["200"] > 0 and load["503_retry_after"] > 0, load
    assert _delta(before, after, "streamrec_serving_shed_total", reason="queue_full") == 0
    assert _delta(before, after, "streamrec_serving_shed_total", reason="expected_wait") > 0
    shed = sum(_delta(before, after, "streamrec_serving_shed_total", reason=r)
               for r in ("queue_full", "expected_wait", "waited"))
    assert shed == load["503_retry_after"]
    # Every request worked on had waited at most the queue timeout for its turn.
    worked = _delta(before, after, "streamrec_serving_queue_wait_seconds_count")
    assert worked == load["200"]
    assert _delta(before, after, "streamrec_serving_queue_wait_seconds_bucket", le="0.25") == worked
