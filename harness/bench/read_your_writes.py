"""What read-your-writes costs: answers asked ``after=`` a write, against answers that do not wait.

While a background producer writes ``event_rate`` events/s to ``events`` (other users'
traffic), the client repeats: ``POST /events`` one event for a user, then at once
``GET /recommendations`` for that user — alternately with ``after=<the token>`` and without.
The row reports the latency of both kinds of answer (measured from the moment the write was
acknowledged, so the ``after`` answer includes its wait for serving to apply the write), how
many ``after`` answers came back stale, and how many answers without ``after`` still
recommended the item the user had just bought: what the wait buys.

Examples
--------
>>> row = {"after_p50_ms": 6.0, "plain_p50_ms": 2.5}
>>> round(row["after_p50_ms"] - row["plain_p50_ms"], 1)   # the extra latency, at the median
3.5
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np

from streamrec.settings import Settings


def _background_events(settings: Settings, rate: float, stop: threading.Event, n_items: int) -> None:
    """Other users' traffic at ``rate`` events/s until ``stop`` is set."""
    from confluent_kafka import Producer

    from streamrec.contracts.events import encode_events
    from streamrec.contracts.topics import EVENTS
    from streamrec.kafka.config import producer_config

    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    rng = np.random.default_rng(1)
    start, sent = time.perf_counter(), 0
    while not stop.is_set():
        while start + sent / rate <= time.perf_counter():
            user = f"background-{int(rng.integers(10_000))}"
            producer.produce(settings.topic(EVENTS), key=user.encode(), value=encode_events(
                [{"user_id": user, "item_id": f"item-{int(rng.integers(n_items))}", "event_type": "view",
                  "timestamp": time.time()}]))
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    producer.flush(10)


async def _pairs(url: str, users: list[str], n_items: int, count: int) -> dict[str, Any]:
    import aiohttp

    latency: dict[bool, list[float]] = {True: [], False: []}
    stale = missed = failed = 0
    rng = np.random.default_rng(2)
    async with aiohttp.ClientSession() as session:
        for n in range(count):
            user, item = users[n % len(users)], f"item-{int(rng.integers(n_items))}"
            async with session.post(f"{url}/events", json={"user_id": user, "item_id": item, "event_type":
                                                           "purchase", "timestamp": time.time()}) as response:
                if response.status != 202:
                    failed += 1
                    continue
                token = (await response.json())["token"]
            after = n % 2 == 0
            query = {"user_id": user, "k": "10", **({"after": token} if after else {})}
            written = time.perf_counter()
            async with session.get(f"{url}/recommendations", params=query) as response:
                answer = await response.json()
            if response.status != 200:
                failed += 1
                continue
            latency[after].append(time.perf_counter() - written)
            if after:
                stale += bool(answer.get("stale"))
            elif item in {i["item_id"] for i in answer["items"]}:
                missed += 1
    return {"latency": latency, "stale": stale, "missed": missed, "failed": failed}


def read_your_writes(url: str, settings: Settings, users: list[str], n_items: int, event_rate: float,
                     count: int) -> dict[str, Any]:
    """The benchmark row (run it in its own process: its client must not share the server's GIL)."""
    from harness.bench.serving import _percentiles

    stop = threading.Event()
    background = threading.Thread(target=_background_events, args=(settings, event_rate, stop, n_items),
                                  daemon=True)
    background.start()
    try:
        result = asyncio.run(_pairs(url, users, n_items, count))
    finally:
        stop.set()
        background.join(15)
    after, plain = (_percentiles(result["latency"][k]) for k in (True, False))
    return {"path": "read_your_writes", "target_rate": event_rate, "requests": count,
            "ok": len(result["latency"][True]) + len(result["latency"][False]), "errors": result["failed"],
            "stale": result["stale"], "plain_missed_own_event": result["missed"],
            **{f"after_{k}": v for k, v in after.items()}, **{f"plain_{k}": v for k, v in plain.items()},
            "p50_ms": after["p50_ms"], "p99_ms": after["p99_ms"], "max_ms": after["max_ms"]}
