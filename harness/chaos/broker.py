"""Fault injection on the broker: processes started before it, and an outage mid-run.

Both scenarios run ``streamrec serve`` and ``streamrec streams`` as child processes against an
embedded broker of their own (they stop it, so it cannot be a shared one) and return a row
for the ``streamrec chaos`` table (same columns as :mod:`harness.chaos.serving`).

The embedded broker (Tansu) keeps everything in memory: when it restarts, every topic and
committed offset is gone. What the processes can and must do then is: stay up, say on
``/readyz`` that the broker is unreachable (503 with the reason), reconnect with backoff,
recreate the topics, and take new data again. What they cannot do is get the lost data
back; with Apache Kafka (durable, replicated logs, committed offsets stored in
``__consumer_offsets``) a broker restart loses nothing and consumers resume where they were.
"""
from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Callable

from streamrec.kafka.embedded import EmbeddedBroker, free_port
from streamrec.contracts.events import encode_events
from harness.polling import wait_until
from harness.processes import Proc
from streamrec.settings import Settings
from streamrec.contracts.topics import EVENTS


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

    from streamrec.kafka.config import producer_config

    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    events = [{"user_id": user_id, "item_id": f"i{j}", "event_type": "click", "timestamp": time.time()}
              for j in range(n)]
    producer.produce(settings.topic(EVENTS), key=user_id.encode(), value=encode_events(events))
    if producer.flush(15) != 0:
        raise RuntimeError("event not acknowledged by the broker")


def applied_by_both(serve: Proc, streams: Proc, settings: Settings, user_id: str, n: int = 3,
                    timeout: float = 60.0) -> bool:
    """Publish ``n`` events for a new user; True once serving's replica and the streams worker have them."""
    before = metric(streams, "streamrec_streams_events_applied_total")
    publish(settings, user_id, n)
    return wait_until(lambda: get(f"{serve.url}/users/{user_id}")[0] == 200
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

    def watch(self, serve: Proc, streams: Proc, seconds: float, also: Callable[[], None] = lambda: None) -> None:
        """Poll both processes' /readyz (and run ``also``) every 0.5 s for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll("serve", serve)
            self.poll("streams", streams)
            also()
            time.sleep(0.5)


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
        seen.watch(serve, streams, absent_s)
        broker.start()
        flowing, alive = _recovered(serve, streams, settings, "late-user", ready_timeout)
    finally:
        serve.stop()
        streams.stop()
        broker.stop()
    return {"scenario": f"processes start {absent_s:.0f}s before the broker", "faults_injected": 1,
            "requests_sent": 0, "requests_ok": 0, "requests_shed": 0, "requests_failed": 0, "max_rss_mb": None,
            "recovered": bool(flowing and alive),
            "details": {"readiness_while_absent": dict(seen.counts), "reasons": seen.reasons,
                        "events_flow_after": flowing, "alive": alive}}


def broker_outage(settings: Settings, *, outage_s: float = 30.0, mode: str = "pause",
                  ready_timeout: float = 90.0) -> dict:
    """Make the broker unavailable for ``outage_s`` mid-run, then bring it back on the same port.

    ``mode="pause"`` freezes the broker process (SIGSTOP, then SIGCONT): it stops answering
    but keeps its data, like a network partition or a stalled broker of a durable cluster; the
    processes must then recover completely, without a restart. ``mode="restart"`` stops it
    and starts a new one: the in-memory broker loses every topic and offset.
    """
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
        if mode == "pause":
            broker.process.send_signal(signal.SIGSTOP)
        else:
            broker.stop()
        seen.watch(serve, streams, outage_s, also=lambda: _ask_during_outage(serve, answers))
        after: dict[str, str] = {}
        restarted = False
        if mode == "pause":
            broker.process.send_signal(signal.SIGCONT)
        else:
            broker.start()
            after = _data_loss_reported(serve, streams, ready_timeout)
            alive_before_restart = _alive(serve, streams)
            serve, streams = _restart(serve), _restart(streams)   # what the supervisor does
            restarted = alive_before_restart
        flowing_after, alive = _recovered(serve, streams, settings, "after-outage", ready_timeout)
    finally:
        if mode == "pause" and broker.process is not None:
            broker.process.send_signal(signal.SIGCONT)
        serve.stop()
        streams.stop()
        broker.stop()
    what = "frozen (SIGSTOP)" if mode == "pause" else "restarted, in-memory data lost"
    return {"scenario": f"broker unavailable {outage_s:.0f}s mid-run ({what})", "faults_injected": 1,
            "requests_sent": sum(answers.values()), "requests_ok": answers["200"], "requests_shed": 0,
            "requests_failed": sum(answers.values()) - answers["200"], "max_rss_mb": None,
            "recovered": bool(flowing_after and alive),
            "details": {"readiness_during_outage": dict(seen.counts), "reasons": seen.reasons,
                        "events_flow_before": flowing_before, "events_flow_after": flowing_after, "alive": alive,
                        "data_loss_reported": after, "processes_restarted": restarted}}


def _alive(serve: Proc, streams: Proc) -> bool:
    return serve.process.poll() is None and streams.process.poll() is None


def _recovered(serve: Proc, streams: Proc, settings: Settings, user_id: str, ready_timeout: float) -> tuple[bool, bool]:
    """Once both processes are ready: (new events reach both, both are still running)."""
    serve.wait_ready(ready_timeout)
    streams.wait_ready(ready_timeout)
    return applied_by_both(serve, streams, settings, user_id), _alive(serve, streams)


def _ask_during_outage(serve: Proc, answers: Counter[str]) -> None:
    """One recommendation request, its status counted in ``answers``: serving answers from its
    in-memory replica while the broker is away."""
    status, _ = get(f"{serve.url}/recommendations?user_id=before-outage&k=3", timeout=3)
    answers[str(status)] += 1


def _data_loss_reported(serve: Proc, streams: Proc, timeout: float) -> dict[str, str]:
    """What each process's /readyz says once the in-memory broker came back without the log:
    each must say the data was lost, not claim readiness."""
    after = {}
    for name, proc in (("serve", serve), ("streams", streams)):
        wait_until(lambda: _lost_reason(proc) is not None, timeout)
        after[name] = _lost_reason(proc) or str(get(proc.url + "/readyz")[1])
    return after


def _lost_reason(proc: Proc) -> str | None:
    status, body = get(proc.url + "/readyz")
    if status == 503 and isinstance(body, dict):
        return next((r for r in body.get("reasons", []) if "lost its data" in r), None)
    return None


def _restart(proc: Proc) -> Proc:
    proc.stop()
    again = Proc(proc.command, proc.settings, log_dir=proc.log_path.parent)
    again.port, again.log_path = proc.port, proc.log_path
    return again.start()


# --- ``streamrec chaos`` entry points: fn(settings, args) -> row -----------------------------
# Each runs its own embedded broker (it is stopped on purpose), whatever ``settings`` names.
def _timed(fn, settings: Settings, name: str, **kwargs) -> dict:
    started = time.monotonic()
    row = fn(settings.replace(topic_prefix=f"chaos-{name}-{int(time.time())}-"), **kwargs)
    return {**row, "seconds": round(time.monotonic() - started, 1)}


def run_outage(settings: Settings, args=None) -> dict:
    """The broker frozen for 30 s mid-run (keeps its data): full recovery without a restart."""
    return _timed(broker_outage, settings, "outage", outage_s=30.0, mode="pause")


def run_outage_data_loss(settings: Settings, args=None) -> dict:
    """The in-memory broker stopped for 30 s and restarted empty: the loss is reported."""
    return _timed(broker_outage, settings, "outage-loss", outage_s=30.0, mode="restart")


def run_start_late(settings: Settings, args=None) -> dict:
    """Serving and streams started 30 s before their broker."""
    return _timed(broker_starts_late, settings, "late", absent_s=30.0)
