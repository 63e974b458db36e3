"""Fault injection on a real serving process: restarts under client load, and overload.

Each scenario runs ``streamrec serve`` as a child process (:class:`harness.processes.Proc`)
against the broker named in ``settings``, drives it with real clients, injects the fault and
returns one row for the ``streamrec chaos`` table::

    {"scenario", "faults_injected", "requests_sent", "requests_ok", "requests_shed",
     "requests_failed", "max_rss_mb", "recovered", "details"}

``requests_failed`` counts calls that ended in a *clear* client error (:class:`RecUnavailable`
or :class:`RecTimeout`); ``details["unclear_errors"]`` counts any other exception (must be 0)
and ``details["hung"]`` the calls that outlived their timeout by more than a second (must
be 0). The integration tests run the same functions with shorter durations.

Examples
--------
>>> row = serving_overload(settings, duration_s=60)        # doctest: +SKIP
>>> row["requests_shed"] > 0 and row["recovered"]           # doctest: +SKIP
True
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import Producer

from streamrec.client import AsyncRecClient, RecClient, RecTimeout, RecUnavailable
from streamrec.contracts.events import encode_events
from streamrec.kafka.config import ensure_topics, producer_config
from harness.processes import Proc
from streamrec.settings import Settings
from streamrec.contracts.topics import EVENTS, ITEMS

N_ITEMS = 300
N_USERS = 50
HANG_SLACK_S = 1.0


def seed_topics(settings: Settings, n_items: int = N_ITEMS, n_users: int = N_USERS) -> list[str]:
    """Create the topics and publish a small catalogue and some history; returns the user ids."""
    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 5}))
    for i in range(n_items):
        item = {"item_id": str(i), "title": f"Item {i}", "tags": ["Drama" if i % 2 else "Comedy"]}
        producer.produce(settings.topic(ITEMS), key=str(i).encode(), value=json.dumps(item).encode())
    users = [f"u{u}" for u in range(n_users)]
    for u, user in enumerate(users):
        events = [{"user_id": user, "item_id": str((u * 7 + j) % n_items), "event_type": "click",
                   "timestamp": 1.7e9 + j} for j in range(10)]
        producer.produce(settings.topic(EVENTS), key=user.encode(), value=encode_events(events))
    if producer.flush(30) != 0:
        raise RuntimeError("seed messages not acknowledged by the broker")
    return users


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc/PID/statm."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Outcomes:
    """Thread-safe tally of client calls: ok / clear errors / unclear errors / hangs."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.ok_times: list[float] = []
        self._lock = threading.Lock()

    def record(self, outcome: str, started: float, detail: str = "") -> None:
        elapsed = time.monotonic() - started
        with self._lock:
            self.counts[outcome] += 1
            if elapsed > self.timeout + HANG_SLACK_S:
                self.counts["hung"] += 1
            if outcome == "ok":
                self.ok_times.append(time.monotonic())
            if outcome not in self.examples and detail:
                self.examples[outcome] = detail[:300]

    def call(self, fn) -> None:
        started = time.monotonic()
        try:
            fn()
        except RecTimeout as exc:
            self.record("timeout", started, str(exc))
        except RecUnavailable as exc:
            self.record("unavailable", started, str(exc))
        except Exception as exc:   # anything else is an unclear error: the guarantee is broken
            self.record("unclear", started, f"{type(exc).__name__}: {exc}")
        else:
            self.record("ok", started)

    async def acall(self, coro) -> None:
        started = time.monotonic()
        try:
            await coro
        except RecTimeout as exc:
            self.record("timeout", started, str(exc))
        except RecUnavailable as exc:
            self.record("unavailable", started, str(exc))
        except Exception as exc:
            self.record("unclear", started, f"{type(exc).__name__}: {exc}")
        else:
            self.record("ok", started)


def _restart(proc: Proc, sig: signal.Signals, ready_timeout: float) -> Proc:
    proc.process.send_signal(sig)
    proc.process.wait(30)
    again = Proc(proc.command, proc.settings, log_dir=proc.log_path.parent)
    again.port, again.log_path = proc.port, proc.log_path   # same port, same log: a restart
    return again.start().wait_ready(ready_timeout)


def serving_restart(settings: Settings, *, signals=(signal.SIGTERM, signal.SIGKILL), client_timeout: float = 2.0,
                    sync_clients: int = 2, async_concurrency: int = 4, settle_s: float = 2.0,
                    ready_timeout: float = 90.0) -> dict:
    """Restart serving with each of ``signals`` while sync and async HTTP clients keep calling."""
    users = seed_topics(settings)
    proc = Proc("serve", settings.replace(serving_request_timeout_s=client_timeout), "http_port").start()
    outcomes = _Outcomes(client_timeout)
    stop = threading.Event()
    max_rss = 0.0
    try:
        proc.wait_ready(ready_timeout)
        url = proc.url

        def sync_worker(n: int) -> None:
            client = RecClient(url, timeout=client_timeout)
            i = n
            while not stop.is_set():
                outcomes.call(lambda: client.recommend(users[i % len(users)], k=5))
                i += 1
                time.sleep(0.005)

        async def async_load() -> None:
            async with AsyncRecClient(url, timeout=client_timeout) as client:
                async def one(n: int) -> None:
                    i = n
                    while not stop.is_set():
                        await outcomes.acall(client.recommend(users[i % len(users)], k=5))
                        i += 1
                        await asyncio.sleep(0.005)
                await asyncio.gather(*(one(n) for n in range(async_concurrency)))

        threads = [threading.Thread(target=sync_worker, args=(n,), daemon=True) for n in range(sync_clients)]
        threads.append(threading.Thread(target=lambda: asyncio.run(async_load()), daemon=True))
        for t in threads:
            t.start()
        time.sleep(settle_s)
        for sig in signals:
            max_rss = max(max_rss, rss_mb(proc.process.pid))
            proc = _restart(proc, sig, ready_timeout)
            time.sleep(settle_s)
        restarted_at = time.monotonic() - settle_s
        max_rss = max(max_rss, rss_mb(proc.process.pid))
        stop.set()
        for t in threads:
            t.join(client_timeout * 3 + 5)
        alive_threads = sum(t.is_alive() for t in threads)
        recovered = any(t > restarted_at for t in outcomes.ok_times) and proc.process.poll() is None
    finally:
        stop.set()
        proc.stop()
    c = outcomes.counts
    return {"scenario": "serving restart under load", "faults_injected": len(signals),
            "requests_sent": c["ok"] + c["timeout"] + c["unavailable"] + c["unclear"],
            "requests_ok": c["ok"], "requests_shed": 0, "requests_failed": c["timeout"] + c["unavailable"],
            "max_rss_mb": round(max_rss, 1), "recovered": bool(recovered),
            "details": {"timeouts": c["timeout"], "unavailable": c["unavailable"], "unclear_errors": c["unclear"],
                        "hung": c["hung"], "client_threads_stuck": alive_threads,
                        "signals": [signal.Signals(s).name for s in signals], "examples": outcomes.examples}}


async def _http_load(url: str, path: str, concurrency: int, duration_s: float, timeout: float,
                     on_rss=None) -> Counter:
    """``concurrency`` closed-loop HTTP clients for ``duration_s``: counts by status / error."""
    import aiohttp

    counts: Counter = Counter()
    deadline = time.monotonic() + duration_s

    async def one(session) -> None:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + path) as response:
                    await response.read()
                    if response.status == 503:
                        counts["503_retry_after" if response.headers.get("Retry-After") else "503_no_hint"] += 1
                    else:
                        counts[str(response.status)] += 1
            except asyncio.TimeoutError:
                counts["timeout"] += 1
            except aiohttp.ClientError as exc:
                counts[f"error:{type(exc).__name__}"] += 1

    async def sample() -> None:
        while time.monotonic() < deadline:
            if on_rss is not None:
                on_rss()
            await asyncio.sleep(0.5)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        await asyncio.gather(sample(), *(one(session) for _ in range(concurrency)))
    return counts


def serving_overload(settings: Settings, *, duration_s: float = 60.0, max_in_flight: int = 4,
                     overload_factor: int = 2, ramp_s: float = 2.0, client_timeout: float = 5.0,
                     ready_timeout: float = 90.0) -> dict:
    """Measure capacity, then send ``overload_factor`` times it for ``duration_s``, then check recovery.

    Capacity is admission capacity: ``max_in_flight`` requests queued at once (throughput at
    that concurrency is measured in a short ramp and reported). The overload phase runs
    ``overload_factor * max_in_flight`` closed-loop clients, so about half the requests exceed
    the limit; RSS of the serving process is sampled every 0.5 s throughout.
    """
    users = seed_topics(settings)
    proc = Proc("serve", settings.replace(serving_max_in_flight=max_in_flight), "http_port").start()
    rss: list[float] = []
    try:
        proc.wait_ready(ready_timeout)
        sample = lambda: rss.append(rss_mb(proc.process.pid))   # noqa: E731
        path = f"/recommendations?user_id={users[0]}&k=10"
        ramp = asyncio.run(_http_load(proc.url, path, max_in_flight, ramp_s, client_timeout, sample))
        capacity_rps = ramp["200"] / ramp_s
        baseline_rss = max(rss)
        load = asyncio.run(_http_load(proc.url, path, overload_factor * max_in_flight, duration_s,
                                      client_timeout, sample))
        alive = proc.process.poll() is None
        after = Counter()
        for n in range(20):   # load dropped: one client, every request must succeed
            outcomes = _Outcomes(client_timeout)
            outcomes.call(lambda: RecClient(proc.url, timeout=client_timeout).recommend(users[n % len(users)], k=5))
            after.update(outcomes.counts)
        recovered = alive and proc.process.poll() is None and after["ok"] == 20
    finally:
        proc.stop()
    shed = load["503_retry_after"] + load["503_no_hint"]
    return {"scenario": f"serving overload {overload_factor}x for {duration_s:.0f}s", "faults_injected": 1,
            "requests_sent": sum(load.values()), "requests_ok": load["200"], "requests_shed": shed,
            "requests_failed": sum(load.values()) - load["200"] - shed,
            "max_rss_mb": round(max(rss), 1), "recovered": bool(recovered),
            "details": {"capacity_rps": round(capacity_rps, 1), "baseline_rss_mb": round(baseline_rss, 1),
                        "shed_without_retry_after": load["503_no_hint"], "statuses": dict(load),
                        "after_load": dict(after), "process_alive": alive}}


# --- ``streamrec chaos`` entry points: fn(settings, args) -> row -----------------------------
def run_restart(settings: Settings, args=None) -> dict:
    """SIGTERM then SIGKILL serving, twice each, under sync and async client load."""
    started = time.monotonic()
    row = serving_restart(settings.replace(topic_prefix=f"chaos-restart-{int(time.time())}-"),
                          signals=(signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL), settle_s=5.0)
    return {**row, "seconds": round(time.monotonic() - started, 1)}


def run_overload(settings: Settings, args=None) -> dict:
    """Twice the admission capacity for 60 s."""
    started = time.monotonic()
    row = serving_overload(settings.replace(topic_prefix=f"chaos-overload-{int(time.time())}-"), duration_s=60.0)
    return {**row, "seconds": round(time.monotonic() - started, 1)}
