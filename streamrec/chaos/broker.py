"""Fault injection on the broker: processes started before it, and an outage mid-run.

Both scenarios run ``streamrec serve`` and ``streamrec streams`` as child processes against an
embedded broker of their own (they stop it, so it cannot be a shared one) and return a row
for the ``streamrec chaos`` table (same columns as :mod:`streamrec.chaos.serving`).

The embedded broker (Tansu) keeps everything in memory: when it restarts, every topic and
committed offset is gone. What the processes can and must do then is: stay up, say on
``/readyz`` that the broker is unreachable (503 with the reason), reconnect with backoff,
recreate the topics, and take new data again. What they cannot do is get the lost data
back; with Apache Kafka (durable, replicated logs, committed offsets stored in
``__consumer_offsets``) a broker restart loses nothing and consumers resume where they were.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from streamrec.broker import EmbeddedBroker, free_port
from streamrec.events import encode_events
from streamrec.processes import Proc
from streamrec.settings import Settings
from streamrec.topics import EVENTS


def get(url: str, timeout: float = 2.0) -> tuple[int | None, dict | str]:
    """(status, JSON body) of a GET; (None, error text) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, ""
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def metric(proc: Proc, name: str) -> float:
    for line in proc.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def publish(settings: Settings, user_id: str, n: int = 3) -> None:
    from confluent_kafka import Producer

    from streamrec.kafka import producer_config

    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    events = [{"user_id": user_id, "item_id": f"i{j}", "event_type": "click", "timestamp": time.time()}
              for j in range(n)]
    producer.produce(settings.topic(EVENTS), key=user_id.encode(), value=encode_events(events))
    if producer.flush(15) != 0:
        raise RuntimeError("event not acknowledged by the broker")


def wait(predicate, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def applied_by_both(serve: Proc, streams: Proc, settings: Settings, user_id: str, n: int = 3,
                    timeout: float = 60.0) -> bool:
    """Publish ``n`` events for a new user; True once serving's replica and the streams worker have them."""
    before = metric(streams, "streamrec_streams_events_applied_total")
    publish(settings, user_id, n)
    return wait(lambda: get(f"{serve.url}/users/{user_id}")[0] == 200
                and metric(streams, "streamrec_streams_events_applied_total") >= before + n, timeout)


class _Readiness:
    """Tally of /readyz answers per process during a phase."""

    def __init__(self):
        self.counts: Counter[str] = Counter()
        self.reasons: dict[str, str] = {}

    def poll(self, name: str, proc: Proc) -> None:
        status, body = get(proc.url + "/readyz", timeout=3)
        if proc.process.poll() is not None:
            self.counts[f"{name}:exited"] += 1
            return
        if status == 503 and isinstance(body, dict) and any("unreachable" in r for r in body.get("reasons", [])):
            self.counts[f"{name}:503_broker"] += 1
            self.reasons.setdefault(name, body["reasons"][0])
        else:
            self.counts[f"{name}:{status}"] += 1


def _processes(settings: Settings, log_dir: Path) -> tuple[Proc, Proc]:
    serve = Proc("serve", settings, "http_port", log_dir=log_dir).start()
    streams = Proc("streams", settings, "streams_web_port", log_dir=log_dir).start()
    return serve, streams


def broker_starts_late(settings: Settings, *, absent_s: float = 10.0, ready_timeout: float = 90.0) -> dict:
    """Start serving and a streams worker with no broker, then start it on their port."""
    port = free_port()
    settings = settings.replace(bootstrap_servers=f"127.0.0.1:{port}")
    log_dir = Path(settings.state_dir) / "logs"
    serve, streams = _processes(settings, log_dir)
    broker = EmbeddedBroker(port=port, log_file=log_dir / "tansu.log")
    seen = _Readiness()
    try:
        deadline = time.monotonic() + absent_s
        while time.monotonic() < deadline:
            seen.poll("serve", serve)
            seen.poll("streams", streams)
            time.sleep(0.5)
        broker.start()
        serve.wait_ready(ready_timeout)
        streams.wait_ready(ready_timeout)
        flowing = applied_by_both(serve, streams, settings, "late-user")
        alive = serve.process.poll() is None and streams.process.poll() is None
    finally:
        serve.stop()
        streams.stop()
        broker.stop()
    return {"scenario": f"processes start {absent_s:.0f}s before the broker", "faults_injected": 1,
            "requests_sent": 0, "requests_ok": 0, "requests_shed": 0, "requests_failed": 0, "max_rss_mb": None,
            "recovered": bool(flowing and alive),
            "details": {"readiness_while_absent": dict(seen.counts), "reasons": seen.reasons,
                        "events_flow_after": flowing, "alive": alive}}


def broker_outage(settings: Settings, *, outage_s: float = 30.0, ready_timeout: float = 90.0) -> dict:
    """Stop the broker for ``outage_s`` mid-run and start it again on the same port."""
    port = free_port()
    settings = settings.replace(bootstrap_servers=f"127.0.0.1:{port}")
    log_dir = Path(settings.state_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(port=port, log_file=log_dir / "tansu.log").start()
    serve, streams = _processes(settings, log_dir)
    seen = _Readiness()
    answers: Counter[str] = Counter()
    try:
        serve.wait_ready(ready_timeout)
        streams.wait_ready(ready_timeout)
        flowing_before = applied_by_both(serve, streams, settings, "before-outage")
        broker.stop()
        deadline = time.monotonic() + outage_s
        while time.monotonic() < deadline:
            seen.poll("serve", serve)
            seen.poll("streams", streams)
            # Serving answers from its in-memory replica while the broker is away.
            status, _ = get(f"{serve.url}/recommendations?user_id=before-outage&k=3", timeout=3)
            answers[str(status)] += 1
            time.sleep(0.5)
        broker.start()
        serve.wait_ready(ready_timeout)
        streams.wait_ready(ready_timeout)
        flowing_after = applied_by_both(serve, streams, settings, "after-outage")
        alive = serve.process.poll() is None and streams.process.poll() is None
    finally:
        serve.stop()
        streams.stop()
        broker.stop()
    return {"scenario": f"broker down {outage_s:.0f}s mid-run (in-memory broker)", "faults_injected": 1,
            "requests_sent": sum(answers.values()), "requests_ok": answers["200"], "requests_shed": 0,
            "requests_failed": sum(answers.values()) - answers["200"], "max_rss_mb": None,
            "recovered": bool(flowing_after and alive),
            "details": {"readiness_during_outage": dict(seen.counts), "reasons": seen.reasons,
                        "events_flow_before": flowing_before, "events_flow_after": flowing_after, "alive": alive}}
