"""Serving benchmark: HTTP and topic latency at a fixed rate, and event-to-visible latency.

Set-up: a synthetic model version with ``n_items`` items (random unit vectors,
``vector_dim``), the catalogue on ``items``, ``n_users`` users with 20 events each, and a
serving process started in this process (its own thread and event loop, on a free loopback
port). Then three measurements:

* **HTTP**: an aiohttp load generator sends ``GET /recommendations?user_id=U&k=10`` at a
  fixed rate (open loop: request *i* is due at ``t0 + i / rate``; latency runs from the due
  time, so a stall shows up in the tail instead of silently lowering the rate);
* **topic**: the same through :class:`~streamrec.client.AsyncTopicRecClient`
  (``rec-requests`` → agent → ``rec-responses``), at its own fixed rate;
* **event to visible**: events produced with confluent-kafka at ``event_rate`` per second;
  for each, the time from the broker's acknowledgement (delivery callback) to the moment the
  serving replica has applied it (polled every 0.5 ms). 0 means it was applied before the
  acknowledgement reached the producer.

The HTTP and topic load generators run in a child process (sharing the server's GIL would
measure the generator, not the server); the event poller runs in the server's process, as
it reads the replica directly. Everything, broker included, shares the machine's 2 cores.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.bench.plots import latency_quantiles
from streamrec.settings import Settings

USER_EVENTS = 20


def _percentiles(values: list[float]) -> dict[str, float | list[float] | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "quantiles_ms": None}
    a = np.asarray(values) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max()),
            "quantiles_ms": latency_quantiles(a)}


def _prepare(settings: Settings, n_items: int, n_users: int, seed: int) -> list[str]:
    from confluent_kafka import Producer

    from streamrec import model_store
    from streamrec.events import encode_events
    from streamrec.kafka import ensure_topics, producer_config
    from streamrec.topics import EVENTS, ITEMS, MODEL_UPDATES

    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 5}))
    rng = np.random.default_rng(seed)
    ids = [f"item-{j}" for j in range(n_items)]
    for j, item_id in enumerate(ids):
        producer.produce(settings.topic(ITEMS), key=item_id.encode(), value=json.dumps(
            {"item_id": item_id, "title": f"Item {j}", "tags": [f"tag-{j % 20}"]}).encode())
        if j % 1000 == 0:
            producer.poll(0)
    vectors = rng.standard_normal((n_items, settings.vector_dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ann = model_store.write_version(settings.state_dir / "models", 1, ids, vectors, {})
    producer.produce(settings.topic(MODEL_UPDATES), key=model_store.MODEL_KEY, value=ann.encode())
    users = [f"user-{u}" for u in range(n_users)]
    t0 = time.time() - 86400.0
    for u, user_id in enumerate(users):
        items = rng.integers(0, n_items, USER_EVENTS)
        producer.produce(settings.topic(EVENTS), key=user_id.encode(), value=encode_events(
            [{"user_id": user_id, "item_id": ids[i], "event_type": "click", "timestamp": t0 + u + k}
             for k, i in enumerate(items)]))
        if u % 500 == 0:
            producer.poll(0)
    producer.flush(30)
    return users


async def _http_load(url: str, users: list[str], rate: float, count: int) -> dict[str, Any]:
    import aiohttp

    latencies, errors, statuses = [], 0, {}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                async with session.get(f"{url}/recommendations", params={"user_id": users[i % len(users)],
                                                                         "k": "10"}) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 200:
                        latencies.append(time.perf_counter() - due)
                    else:
                        errors += 1
            except Exception:
                errors += 1

        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"path": "http", "target_rate": rate, "requests": count, "ok": len(latencies), "errors": errors,
            "throughput_rps": len(latencies) / elapsed, **_percentiles(latencies)}


async def _topic_load(settings: Settings, users: list[str], rate: float, count: int) -> dict[str, Any]:
    from streamrec.client import AsyncTopicRecClient, RecTimeout

    latencies, errors = [], 0
    async with AsyncTopicRecClient(settings, timeout=10) as client:
        for _ in range(6):   # warm-up: metadata, connections, and any rebalance after the HTTP load
            try:
                await client.recommend(users[0], k=10)
                break
            except RecTimeout:
                continue
        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                await client.recommend(users[i % len(users)], k=10)
                latencies.append(time.perf_counter() - due)
            except Exception:
                errors += 1

        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"path": "topic", "target_rate": rate, "requests": count, "ok": len(latencies), "errors": errors,
            "throughput_rps": len(latencies) / elapsed, **_percentiles(latencies)}


def _event_to_visible(settings: Settings, replica, users: list[str], n_items: int, rate: float,
                      count: int, seed: int) -> dict[str, Any]:
    from confluent_kafka import Producer

    from streamrec.events import encode_events
    from streamrec.kafka import producer_config
    from streamrec.topics import EVENTS

    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    rng = np.random.default_rng(seed)
    expected = {u: (replica.users[u].applied if u in replica.users else 0) for u in users}
    acked: dict[int, float] = {}
    visible: dict[int, float] = {}
    waiting: list[tuple[int, str, int]] = []    # (event number, user, applied count that shows it)
    latencies: list[float] = []
    failed = 0
    start = time.perf_counter()
    sent = 0
    t_event = time.time() - 3600.0

    def on_delivery(n):
        def callback(err, msg):
            nonlocal failed
            if err is not None:
                failed += 1
            else:
                acked[n] = time.perf_counter()
        return callback

    deadline = start + count / rate + 30.0
    while (sent < count or waiting) and time.perf_counter() < deadline:
        now = time.perf_counter()
        while sent < count and start + sent / rate <= now:
            user = users[int(rng.integers(len(users)))]
            expected[user] += 1
            producer.produce(settings.topic(EVENTS), key=user.encode(), on_delivery=on_delivery(sent),
                             value=encode_events([{"user_id": user, "item_id": f"item-{int(rng.integers(n_items))}",
                                                   "event_type": "view", "timestamp": t_event + sent * 1e-3}]))
            waiting.append((sent, user, expected[user]))
            sent += 1
        producer.poll(0)
        still = []
        for n, user, target in waiting:
            if n not in visible:
                state = replica.users.get(user)
                if state is not None and state.applied >= target:
                    visible[n] = time.perf_counter()
            if n in visible and n in acked:
                # Applied before the ack reached the producer counts as 0.
                latencies.append(max(0.0, visible[n] - acked[n]))
            else:
                still.append((n, user, target))
        waiting = still
        time.sleep(0.0005)
    producer.flush(10)
    return {"path": "event_to_visible", "target_rate": rate, "events": count, "measured": len(latencies),
            "delivery_failures": failed, "unresolved": len(waiting), **_percentiles(latencies)}


def _run_async(func, *args):
    return asyncio.run(func(*args))


def _in_subprocess(func, *args) -> dict[str, Any]:
    """Run a load generator in a child process, so it does not share the server's GIL."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run_async, (func, *args))


def run_serving_bench(settings: Settings, *, rate: float = 500.0, duration_s: float = 10.0,
                      topic_rate: float = 200.0, topic_duration_s: float = 5.0, n_items: int = 10_000,
                      n_users: int = 2_000, event_rate: float = 1000.0, n_events: int = 3000,
                      out: Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Run the benchmark against ``settings``' cluster (topics under a fresh prefix)."""
    import tempfile

    import faiss

    from serving.process import ServingThread
    from streamrec.broker import free_port

    faiss.omp_set_num_threads(1)
    import sys
    sys.setswitchinterval(0.0005)   # as `streamrec serve` does (see serving.main.serve)
    settings = settings.replace(topic_prefix=f"{settings.topic_prefix}bench-{uuid.uuid4().hex[:6]}-",
                                http_port=free_port(settings.http_host),
                                state_dir=Path(tempfile.mkdtemp(prefix="streamrec-bench-")))
    started = time.perf_counter()
    users = _prepare(settings, n_items, n_users, seed)
    serving = ServingThread(settings).start(120, agent=True)
    from serving.main import tune_gc
    tune_gc()   # as `streamrec serve` does once it is ready
    try:
        replica = serving.process.replica
        deadline = time.monotonic() + 60
        while (serving.process.holder.current.version < 1 or len(replica.users) < n_users) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        setup_s = time.perf_counter() - started
        rows = [_in_subprocess(_http_load, serving.url, users, rate, int(rate * duration_s)),
                _in_subprocess(_topic_load, settings, users, topic_rate, int(topic_rate * topic_duration_s)),
                _event_to_visible(settings, replica, users, n_items, event_rate, n_events, seed)]
        index = serving.process.holder.current.index
        result = {"benchmark": "serving", "date": time.strftime("%Y-%m-%d"), "items": n_items,
                  "index": index.kind, "users": n_users, "model_version": serving.process.holder.current.version, "setup_s": setup_s, "rows": rows,
                  "targets": {"http_p99_ms": 10.0, "event_to_visible_p99_ms": 100.0}}
    finally:
        serving.stop()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    return result


def format_table(result: dict[str, Any]) -> str:
    def ms(v):
        return "-" if v is None else f"{v:.2f}"

    lines = [f"serving benchmark: {result['items']:,} items ({result['index']} index), "
             f"{result['users']:,} users, model version {result['model_version']}",
             f"{'path':<18}{'rate/s':>8}{'sent':>7}{'ok':>7}{'err':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
             f"{'thru/s':>9}"]
    for row in result["rows"]:
        sent = row.get("requests", row.get("events"))
        ok = row.get("ok", row.get("measured"))
        err = row.get("errors", row.get("delivery_failures", 0) + row.get("unresolved", 0))
        thru = f"{row['throughput_rps']:.0f}" if "throughput_rps" in row else "-"
        lines.append(f"{row['path']:<18}{row['target_rate']:>8.0f}{sent:>7}{ok:>7}{err:>5}{ms(row['p50_ms']):>9}"
                     f"{ms(row['p99_ms']):>9}{ms(row['max_ms']):>9}{thru:>9}")
    t = result["targets"]
    lines.append(f"targets: HTTP p99 < {t['http_p99_ms']:.0f} ms at 500 req/s; "
                 f"event-to-visible p99 < {t['event_to_visible_p99_ms']:.0f} ms at 1,000 events/s")
    return "\n".join(lines)
