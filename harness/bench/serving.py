"""Serving benchmark: HTTP and topic latency at a fixed rate, event-to-visible latency, overload.

Set-up: a synthetic model version with ``n_items`` items (random unit vectors,
``vector_dim``), the catalogue on ``items``, ``n_users`` users with 20 events each, and a
serving process started in this process (its own thread and event loop, on a free loopback
port). Then four measurements:

* **HTTP**: a load generator (:mod:`harness.bench.http_load`, lean so that its own cost is
  not charged to the server) sends ``GET /recommendations?user_id=U&k=10`` at a
  fixed rate (open loop: request *i* is due at ``t0 + i / rate``; latency runs from the due
  time, so a stall shows up in the tail instead of silently lowering the rate);
* **topic**: the same through :class:`~streamrec.client.AsyncTopicRecClient`
  (``rec-requests`` → agent → ``rec-responses``), at its own fixed rate;
* **event to visible**: events produced with confluent-kafka at ``event_rate`` per second;
  for each, the time from the broker's acknowledgement (delivery callback) to the moment the
  serving replica has applied it (polled every 0.5 ms). 0 means it was applied before the
  acknowledgement reached the producer;
* **overload**: the rate serving sustains is measured first (8 closed-loop clients, 3 s);
  then ``overload_factor`` times that rate is sent open loop with the clients' own timeout
  (``serving_request_timeout_s``): the latency of accepted answers and of 503 answers (shed),
  and how many took longer than the client would wait.

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
from typing import Any, Callable

import numpy as np

from harness.bench.http_load import HttpLoadClient
from harness.bench.plots import latency_quantiles
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

    from streamrec.contracts import model_store
    from streamrec.contracts.events import encode_events
    from streamrec.kafka.config import ensure_topics, producer_config
    from streamrec.contracts.topics import EVENTS, ITEMS, MODEL_UPDATES

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


async def at_fixed_rate(one, rate: float, count: int) -> float:
    """Start ``one(i, due)`` for ``i < count`` at ``rate`` per second (open loop: never waits for
    answers) and wait for all; returns the start time the due times count from."""
    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return start


async def _open_loop_http(url: str, users: list[str], rate: float, count: int,
                          timeout: float) -> tuple[dict[str, list[float]], float]:
    """``count`` GETs at ``rate``: latencies from each due time by status (or error kind), elapsed s."""
    by_status: dict[str, list[float]] = {"lag": []}   # "lag": how late the generator sent each request
    # As many connections as the 512 clients: a shortage would queue requests in the
    # generator, and the wait would be charged to the server.
    async with HttpLoadClient.for_url(url, max_connections=512) as client:
        async def one(i: int, due: float) -> None:
            by_status["lag"].append(time.perf_counter() - due)
            try:
                status = await client.get("/recommendations", {"user_id": users[i % len(users)], "k": "10"},
                                          timeout=timeout)
            except asyncio.TimeoutError:
                status = "timeout"
            except Exception as exc:
                status = f"error:{type(exc).__name__}"
            by_status.setdefault(status, []).append(time.perf_counter() - due)

        start = await at_fixed_rate(one, rate, count)
    return by_status, time.perf_counter() - start


async def _http_load(url: str, users: list[str], rate: float, count: int) -> dict[str, Any]:
    by_status, elapsed = await _open_loop_http(url, users, rate, count, 10.0)
    latencies = by_status.get("200", [])
    return {"path": "http", "target_rate": rate, "requests": count, "ok": len(latencies),
            "errors": count - len(latencies), "throughput_rps": len(latencies) / elapsed,
            "statuses": {k: len(v) for k, v in by_status.items() if k != "lag"}, **_percentiles(latencies)}


async def _http_capacity(url: str, users: list[str], concurrency: int, duration_s: float) -> float:
    """Answers per second of ``concurrency`` closed-loop clients: the rate serving sustains."""
    answered = 0
    deadline = time.perf_counter() + duration_s
    async with HttpLoadClient.for_url(url, max_connections=concurrency) as client:
        async def one_client(n: int) -> None:
            nonlocal answered
            while time.perf_counter() < deadline:
                status = await client.get("/recommendations", {"user_id": users[n % len(users)], "k": "10"})
                answered += status == "200"
                n += concurrency

        await asyncio.gather(*(one_client(n) for n in range(concurrency)))
    return answered / duration_s


async def _http_overload(url: str, users: list[str], factor: float, duration_s: float,
                         timeout: float) -> dict[str, Any]:
    """Measure the sustainable rate, then send ``factor`` times it, open loop, for ``duration_s``."""
    capacity = await _http_capacity(url, users, 8, 3.0)
    rate = factor * capacity
    count = int(rate * duration_s)
    by_status, elapsed = await _open_loop_http(url, users, rate, count, timeout)
    accepted, shed = by_status.get("200", []), by_status.get("503", [])
    lag = by_status.pop("lag")
    late = sum(t > timeout for times in by_status.values() for t in times) + len(by_status.get("timeout", []))
    shed_stats = _percentiles(shed)
    return {"path": "http_overload", "target_rate": rate, "capacity_rps": capacity, "factor": factor,
            "requests": count, "ok": len(accepted), "shed": len(shed), "errors": count - len(accepted) - len(shed),
            "over_client_timeout": late, "client_timeout_s": timeout, "throughput_rps": len(accepted) / elapsed,
            "statuses": {k: len(v) for k, v in by_status.items()},
            # The generator shares the cores: when it sends late, every latency above includes that.
            "generator_lag_p99_ms": _percentiles(lag)["p99_ms"], **_percentiles(accepted),
            **{f"shed_{k}": v for k, v in shed_stats.items()}}


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

        start = await at_fixed_rate(one, rate, count)
        elapsed = time.perf_counter() - start
    return {"path": "topic", "target_rate": rate, "requests": count, "ok": len(latencies), "errors": errors,
            "throughput_rps": len(latencies) / elapsed, **_percentiles(latencies)}


def _event_to_visible(settings: Settings, replica, users: list[str], n_items: int, rate: float,
                      count: int, seed: int, measured: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Events for ``users`` at ``rate``; how long each took to show in ``replica`` (only those of the
    users ``measured`` says, when given: sharded serving's instance keeps only its own)."""
    from confluent_kafka import Producer

    from streamrec.contracts.events import encode_events
    from streamrec.kafka.config import producer_config
    from streamrec.contracts.topics import EVENTS

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
            if measured is None or measured(user):
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
    result = func(*args)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


def _in_subprocess(func, *args) -> dict[str, Any]:
    """Run a load generator in a child process, so it does not share the server's GIL."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run_async, (func, *args))


def _shed_counts() -> dict[str, float]:
    from serving import metrics

    return {s.labels["reason"]: s.value for m in metrics.SHED.collect() for s in m.samples
            if s.name.endswith("_total")}


def _with_shed_reasons(row: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``row()`` with ``shed_reasons``: serving's own count of its 503s during it, by reason
    (refused on arrival: ``queue_full``, ``expected_wait``; refused on its turn: ``waited``)."""
    before = _shed_counts()
    result = row()
    after = _shed_counts()
    return {**result, "shed_reasons": {r: int(after[r] - before.get(r, 0.0)) for r in after
                                       if after[r] > before.get(r, 0.0)}}


def run_serving_bench(settings: Settings, *, rate: float = 500.0, duration_s: float = 10.0,
                      topic_rate: float = 200.0, topic_duration_s: float = 5.0, n_items: int = 10_000,
                      n_users: int = 2_000, event_rate: float = 1000.0, n_events: int = 3000,
                      overload_factor: float = 2.0, overload_duration_s: float = 10.0,
                      out: Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Run the benchmark against ``settings``' cluster (topics under a fresh prefix)."""
    import tempfile

    import faiss

    from harness.bench.read_your_writes import read_your_writes
    from serving.process import ServingThread
    from streamrec.kafka.embedded import free_port

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
                _event_to_visible(settings, replica, users, n_items, event_rate, n_events, seed),
                _in_subprocess(read_your_writes, serving.url, settings, users, n_items, event_rate, 400),
                # Last: the shedding it provokes must not disturb the other measurements.
                _with_shed_reasons(lambda: _in_subprocess(_http_overload, serving.url, users, overload_factor,
                                                          overload_duration_s, settings.serving_request_timeout_s))]
        index = serving.process.holder.current.index
        result = {"benchmark": "serving", "date": time.strftime("%Y-%m-%d"), "items": n_items,
                  "index": index.kind, "users": n_users, "model_version": serving.process.holder.current.version, "setup_s": setup_s, "rows": rows,
                  "targets": {"http_p99_ms": 10.0, "event_to_visible_p99_ms": 100.0,
                              "overload_accepted_p99_ms": 250.0, "overload_shed_p99_ms": 20.0}}
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
    for row in result["rows"]:
        if row["path"] == "http_overload":
            lines.append(f"overload: {row['factor']:g}x the sustainable {row['capacity_rps']:.0f} req/s; "
                         f"{row['shed']} shed with 503 ({row['shed'] / max(row['requests'], 1):.0%}), "
                         f"answered p50 {ms(row['shed_p50_ms'])} / p99 {ms(row['shed_p99_ms'])} / "
                         f"max {ms(row['shed_max_ms'])} ms; {row['over_client_timeout']} over the "
                         f"{row['client_timeout_s']:g} s client timeout; statuses {row['statuses']}; "
                         f"shed by reason {row.get('shed_reasons', {})}; "
                         f"generator sent p99 {ms(row['generator_lag_p99_ms'])} ms late")
        if row["path"] == "read_your_writes":
            lines.append(f"read-your-writes at {row['target_rate']:,.0f} events/s: answer after the write's ack, "
                         f"with after= p50 {ms(row['after_p50_ms'])} / p99 {ms(row['after_p99_ms'])} ms "
                         f"({row['stale']} stale), without p50 {ms(row['plain_p50_ms'])} / p99 "
                         f"{ms(row['plain_p99_ms'])} ms ({row['plain_missed_own_event']} still showed the "
                         f"item just bought)")
    lines.append(f"targets: HTTP p99 < {t['http_p99_ms']:.0f} ms at 500 req/s; "
                 f"event-to-visible p99 < {t['event_to_visible_p99_ms']:.0f} ms at 1,000 events/s")
    if "overload_accepted_p99_ms" in t:
        lines.append(f"         overload: accepted p99 < {t['overload_accepted_p99_ms']:.0f} ms, shed p99 < "
                     f"{t['overload_shed_p99_ms']:.0f} ms, none over the client timeout")
    return "\n".join(lines)
