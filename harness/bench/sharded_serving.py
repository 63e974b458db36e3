"""Sharded serving benchmark (``streamrec bench serving --instances N``): each instance's share of
the events, event-to-visible latency on the owner, and what a forwarded request costs.

Set-up as in :mod:`harness.bench.serving` (a synthetic model version, its catalogue on
``items``, users with history), then, on the same broker:

* **one instance** (the baseline of the same run), in this process, as ``streamrec bench
  serving`` runs it: events for every user at ``event_rate`` per second, each timed from the
  broker's acknowledgement to the moment the replica has applied it (polled every 0.5 ms);
* **N instances** (``STREAMREC_SERVING_INSTANCE=i/N``): instance 0 in this process, the
  others real ``streamrec serve`` processes. The same kind of events for every user; the
  latency is measured on instance 0 for its own users' events, the same way. Each instance's
  events applied to user state and learned for item-side state only during the phase (its
  replica, or its ``/metrics``);
* **forwarding**: ``GET /recommendations`` for every user once at ``http_rate`` per second, all
  sent to instance 0 from a load generator in its own process, timed separately for the
  answers instance 0 computed and those it forwarded to their owner;
* **apply cost**, in process and without Kafka: CPU time per event of the owner's path
  (decode, user state, item-side state) against the item-side-only path of the other
  instances (one message at a time, as live traffic trickles in, and a hundred at a time, as
  a catch-up fetches them), and the memory each keeps per user (``tracemalloc``).

Everything, the broker included, shares the machine's cores.
"""
from __future__ import annotations

import json
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from harness.bench.serving import _event_to_visible, _in_subprocess, _percentiles, _prepare, at_fixed_rate
from streamrec.settings import Settings


def _start(settings: Settings, count: int, n_users: int) -> tuple[Any, list]:
    """Instance 0 of ``count`` in this process, the others ``streamrec serve`` processes; ready with
    the model and every user. Returns (instance 0's ServingThread, the processes)."""
    from harness.chaos.restart import counter
    from harness.polling import wait_or_fail
    from harness.processes import Proc
    from serving.process import ServingThread
    from streamrec.kafka.embedded import free_port

    port = free_port(settings.http_host)
    procs = [Proc("serve", settings.replace(serving_instance=f"{i}/{count}"), "http_port") for i in range(1, count)]
    peers = ",".join([f"http://{settings.http_host}:{port}", *(p.url for p in procs)]) if count > 1 else ""
    thread = None
    try:
        for proc in procs:
            proc.extra_env.update({"STREAMREC_SERVING_PEERS": peers, "STREAMREC_LOG_LEVEL": "WARNING"})
            proc.start()
        thread = ServingThread(settings.replace(http_port=port, serving_instance=f"0/{count}", serving_peers=peers),
                               topic_agent=False).start(180)
        for proc in procs:
            proc.wait_ready(180)
        own = thread.process
        wait_or_fail(lambda: own.holder.current.version >= 1
                     and all(counter(p.url, "streamrec_serving_model_version") >= 1 for p in procs)
                     and len(own.replica.users) + sum(counter(p.url, "streamrec_serving_replica_users")
                                                      for p in procs) >= n_users,
                     180, "every user's state and the model on every instance")
    except BaseException:
        _stop(thread, procs)
        raise
    return thread, procs


def _stop(thread, procs: list) -> None:
    if thread is not None:
        thread.stop()
    for proc in procs:
        proc.stop()


def _counts(thread, procs: list) -> list[tuple[float, float]]:
    """(events applied to user state, events learned item-side only) of each instance, in order."""
    from harness.chaos.restart import counter

    own = thread.process
    return [(own.replica.events_applied, own.feeds.item_side.events_learned),
            *((counter(p.url, "streamrec_serving_events_applied_total"),
               counter(p.url, "streamrec_serving_events_item_side_only_total")) for p in procs)]


async def _forwarding_load(url: str, users: list[str], rate: float, own_label: str) -> dict[str, Any]:
    """``GET /recommendations`` for each user once at ``rate``, sent to ``url``: latencies of the
    answers computed there and of those forwarded, and the statuses."""
    import aiohttp

    latency: dict[str, list[float]] = {"local": [], "forwarded": []}
    statuses: dict[str, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512),
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def one(i: int, due: float) -> None:
            try:
                async with session.get(f"{url}/recommendations", params={"user_id": users[i], "k": "10"}) as r:
                    await r.read()
                    status, served_by = str(r.status), r.headers.get("X-Streamrec-Instance")
            except Exception as exc:
                status, served_by = f"error:{type(exc).__name__}", None
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200":
                latency["local" if served_by == own_label else "forwarded"].append(time.perf_counter() - due)

        await at_fixed_rate(one, rate, len(users))
    return {"statuses": statuses, **{kind: {**_percentiles(values), "count": len(values)}
                                     for kind, values in latency.items()}}


def _cost_messages(settings: Settings, n_users: int, n_items: int, n_events: int,
                   seed: int) -> tuple[list[tuple[int, int, bytes]], int]:
    """(partition, offset, message) of one event each, with an ``event_id`` as producers give them;
    and how many users they name."""
    from streamrec.contracts.events import encode_events, owner_partition

    rng = np.random.default_rng(seed)
    offsets = [0] * settings.partitions
    out, named = [], set()
    for n in range(n_events):
        user = f"user-{int(rng.integers(n_users))}"
        named.add(user)
        p = owner_partition(user, settings.partitions)
        out.append((p, offsets[p], encode_events([{"user_id": user, "item_id": f"item-{int(rng.integers(n_items))}",
                                                    "event_type": "view", "timestamp": 1.7e9 + n,
                                                    "event_id": f"e-{n}"}])))
        offsets[p] += 1
    return out, len(named)


def _batches(messages: list, size: int) -> list[tuple[int, list]]:
    """``messages`` as the feed hands them over: per partition, ``size`` at a time, in order."""
    per: dict[int, list] = {}
    for partition, offset, raw in messages:
        per.setdefault(partition, []).append((offset, raw))
    return [(p, batch[j:j + size]) for p, batch in per.items() for j in range(0, len(batch), size)]


def _run_path(settings: Settings, path: str, messages: list) -> tuple[float, int]:
    """Apply ``messages`` on ``path`` (owner, item_side, item_side_x100, decode): (seconds, bytes still held)."""
    from serving.item_side import ItemSideFeed
    from serving.state_replica import StateReplica
    from streamrec.contracts.events import decode_message

    batches = _batches(messages, 100)

    def run(keep: list) -> float:
        replica = StateReplica(settings)
        feed = ItemSideFeed(replica)
        keep.append((replica, feed))
        started = time.perf_counter()
        if path == "item_side_x100":
            for partition, batch in batches:
                feed.apply_messages(partition, batch)
            return time.perf_counter() - started
        apply = {"owner": replica.apply_events, "item_side": feed.apply_events,
                 "decode": lambda p, o, raw: decode_message(raw, p, o, settings)}[path]
        for partition, offset, raw in messages:
            apply(partition, offset, raw)
        return time.perf_counter() - started

    seconds = run([])
    tracemalloc.start()
    held: list = []
    run(held)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return seconds, memory


def apply_cost(settings: Settings, n_users: int = 2_000, n_items: int = 1_000, n_events: int = 40_000,
               seed: int = 0) -> dict[str, Any]:
    """CPU per event and memory per user of the owner's path against the item-side-only path."""
    messages, users = _cost_messages(settings, n_users, n_items, n_events, seed)
    paths = ("owner", "item_side", "item_side_x100", "decode")
    figures = {path: _run_path(settings, path, messages) for path in paths}
    return {"events": n_events, "users": users, "items": n_items,
            **{f"{path}_us_per_event": round(sec / n_events * 1e6, 2) for path, (sec, _) in figures.items()},
            **{f"{path}_bytes_per_user": round(mem / users) for path, (_, mem) in figures.items()
               if path in ("owner", "item_side")}}


def _phase(settings: Settings, instances: int, users: list[str], n_items: int, event_rate: float, n_events: int,
           http_rate: float | None, seed: int) -> dict[str, Any]:
    """Start ``instances`` instances, measure, stop them."""
    from serving.main import tune_gc

    thread, procs = _start(settings, instances, len(users))
    try:
        tune_gc()   # as `streamrec serve` does once it is ready
        own = thread.process
        before = _counts(thread, procs)
        row = _event_to_visible(settings, own.replica, users, n_items, event_rate, n_events, seed,
                                measured=own.ownership.owns if instances > 1 else None)
        after = _counts(thread, procs)
        shares = [{"instance": f"{i}/{instances}", "applied": int(a1 - a0), "item_side_only": int(l1 - l0)}
                  for i, ((a0, l0), (a1, l1)) in enumerate(zip(before, after))]
        http = _in_subprocess(_forwarding_load, thread.url, users, http_rate, own.ownership.label) if http_rate \
            else None
    finally:
        _stop(thread, procs)
    return {"row": {**row, "instances": instances}, "shares": shares, "http": http}


def run_sharded_bench(settings: Settings, *, instances: int = 2, event_rate: float = 1000.0, n_events: int = 3000,
                      http_rate: float = 200.0, n_items: int = 10_000, n_users: int = 2_000,
                      out: Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Run the benchmark against ``settings``' cluster (topics under a fresh prefix)."""
    import sys
    import tempfile

    import faiss

    faiss.omp_set_num_threads(1)
    sys.setswitchinterval(0.0005)   # as `streamrec serve` does (see serving.main.serve)
    settings = settings.replace(topic_prefix=f"{settings.topic_prefix}bench-{uuid.uuid4().hex[:6]}-",
                                partitions=max(settings.partitions, instances),
                                state_dir=Path(tempfile.mkdtemp(prefix="streamrec-bench-")))
    started = time.perf_counter()
    users = _prepare(settings, n_items, n_users, seed)
    one = _phase(settings, 1, users, n_items, event_rate, n_events, None, seed)
    many = _phase(settings, instances, users, n_items, event_rate, n_events, http_rate, seed + 1)
    http = many["http"]
    rows = [one["row"], {**many["row"], "path": f"event_to_visible_x{instances}"},
            *({"path": f"http_{kind}", "target_rate": http_rate, "requests": http[kind]["count"], **http[kind]}
              for kind in ("local", "forwarded"))]
    result = {"benchmark": "serving", "variant": "sharded", "date": time.strftime("%Y-%m-%d"), "items": n_items,
              "index": "flat" if n_items <= settings.serving_hnsw_threshold else "hnsw", "users": n_users,
              "instances": instances, "partitions": settings.partitions,
              "elapsed_s": time.perf_counter() - started, "rows": rows, "shares": many["shares"],
              "http_statuses": http["statuses"], "apply_cost": apply_cost(settings, seed=seed),
              "targets": {"event_to_visible_p99_ms": 100.0}}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(result: dict[str, Any]) -> str:
    ms = _ms
    lines = [f"sharded serving benchmark: {result['instances']} instances over {result['partitions']} partitions, "
             f"{result['items']:,} items ({result['index']} index), {result['users']:,} users",
             f"{'path':<24}{'rate/s':>8}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"]
    for row in result["rows"]:
        count = row.get("measured", row.get("requests"))
        lines.append(f"{row['path']:<24}{row['target_rate']:>8.0f}{count:>7}{ms(row['p50_ms']):>9}"
                     f"{ms(row['p99_ms']):>9}{ms(row['max_ms']):>9}")
    for row in result["rows"][:2]:
        whose = "every user's" if row["instances"] == 1 else f"instance 0/{row['instances']}'s users'"
        lines.append(f"{row['path']}: {row['measured']:,} of {whose} events timed, {row['unresolved']} never seen, "
                     f"{row['delivery_failures']} not delivered")
    total = sum(s["applied"] for s in result["shares"])
    for s in result["shares"]:
        lines.append(f"instance {s['instance']}: applied {s['applied']:,} events ({s['applied'] / max(total, 1):.0%}),"
                     f" item-side only {s['item_side_only']:,}")
    lines.append(f"GET /recommendations for every user, all sent to instance 0: statuses {result['http_statuses']}")
    c = result["apply_cost"]
    lines.append(f"apply cost per event: owner {c['owner_us_per_event']} us, item-side only "
                 f"{c['item_side_us_per_event']} us ({c['item_side_x100_us_per_event']} us a hundred at a time; "
                 f"decode alone {c['decode_us_per_event']} us); memory per user: owner "
                 f"{c['owner_bytes_per_user']:,} B, item-side only {c['item_side_bytes_per_user']:,} B")
    lines.append(f"target: event-to-visible p99 < {result['targets']['event_to_visible_p99_ms']:.0f} ms at "
                 "1,000 events/s")
    return "\n".join(lines)
