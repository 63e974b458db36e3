"""``streamrec demo``: ``streamrec up`` plus a MovieLens 100K replay with live progress.

With ``--exit-after-replay`` it waits until the streams worker has applied what was
published, checks every user's state against counts computed straight from the input file
(exactly once: nothing lost, nothing applied twice), prints a summary and exits 0 only if
the check passes. A handful of malformed messages is published too, to show them landing
on the dead-letter topic instead of stopping anything.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from streamrec.kafka.changelog import read_table, read_topic
from harness.datasets import Dataset
from harness.datasets.flags import add_dataset_arguments, dataset_from_args
from streamrec.kafka.config import ensure_topics
from harness.replay import EventPublisher, replay_dataset
from streamrec.settings import Settings
from harness.supervisor import Supervisor, _broker_log
from streamrec.contracts.topics import EVENTS_DLQ, MODEL_UPDATES
from streamrec.state.user_state import decode_state

# One of each kind of bad input; each must land on events-dlq with its reason.
MALFORMED = (b"{not json", b'{"user_id": "1"}', b'{"user_id":"1","item_id":"2","event_type":"teleport",'
             b'"timestamp":1e9}', b'{"user_id":"1","item_id":"2","event_type":"click","timestamp":NaN}',
             b"\xff\xfe", b'[{"user_id":[1],"item_id":"2","event_type":"click","timestamp":1e9}]')


def expected_counts(dataset: Dataset, limit: int) -> Counter:
    return Counter(dataset.user_ids[:limit].tolist())


async def verify(settings: Settings, expected: Counter, timeout: float, progress) -> dict:
    """Poll the user-state changelog until it matches ``expected`` (or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        table = await read_table(settings, "user_state", timeout=timeout)
        states = {k.decode(): decode_state(v) for k, v in table.items()}
        applied = {u: s.applied for u, s in states.items()}
        counted = {u: sum(s.counts.values()) for u, s in states.items()}
        total = sum(applied.values())
        progress(total)
        missing = sum(max(0, n - applied.get(u, 0)) for u, n in expected.items())
        twice = sum(max(0, a - expected.get(u, 0)) for u, a in applied.items())
        consistent = all(counted[u] == applied[u] for u in applied)
        if (missing == 0 and twice == 0) or time.monotonic() > deadline:
            return {"applied": total, "lost": missing, "applied_twice": twice, "users": len(states),
                    "counts_consistent": consistent}
        await asyncio.sleep(1.0)


def newest_model(settings: Settings) -> dict | None:
    from confluent_kafka import Consumer, TopicPartition

    from streamrec.kafka.config import confluent_config

    c = Consumer(confluent_config(settings, **{"group.id": "streamrec-demo", "enable.auto.commit": False}))
    try:
        tp = TopicPartition(settings.topic(MODEL_UPDATES), 0, 0)
        low, high = c.get_watermark_offsets(tp, timeout=5)
        if high <= low:
            return None
        c.assign([TopicPartition(tp.topic, 0, high - 1)])
        msg = c.poll(5)
        return json.loads(msg.value()) if msg is not None and not msg.error() else None
    finally:
        c.close()


def scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except Exception:
        return ""


def live_progress(sup: Supervisor, every: float = 5.0) -> None:
    """One status line every few seconds until Ctrl-C: applied, model version, requests."""
    import signal
    import threading

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(every):
        streams = scrape(_url(sup, "streams") + "/metrics")
        learner = scrape(_url(sup, "learner") + "/metrics")
        serving = scrape(_serving_url(sup) + "/metrics")
        applied = sum(metric_sum(streams, "streamrec_streams_events_applied_total").values())
        version = sum(metric_sum(learner, "streamrec_learner_model_version").values())
        hr = sum(metric_sum(learner, "streamrec_learner_newest_version_hr10").values())
        served = sum(metric_sum(serving, "streamrec_serving_requests_total").values())
        print(f"  {time.strftime('%H:%M:%S')}  applied {applied:,.0f}  model v{version:.0f} "
              f"(HR@10 {hr:.3f})  requests served {served:,.0f}", flush=True)


def wait_for_learner(url: str, events: int, timeout: float) -> dict:
    """Wait until the learner has consumed every event and published a version trained after
    that, so the summary's model scores describe a model that saw the whole replay."""
    deadline = time.monotonic() + timeout
    seen_all_at_cycles = None
    state: dict = {}
    while time.monotonic() < deadline:
        text = scrape(url + "/metrics")
        consumed = sum(metric_sum(text, "streamrec_learner_events_total").values())
        cycles = sum(metric_sum(text, "streamrec_learner_cycles_total").values())
        published = sum(metric_sum(text, "streamrec_learner_versions_published_total").values())
        state = {"events": int(consumed), "cycles": int(cycles), "published": int(published)}
        if consumed >= events and seen_all_at_cycles is None:
            seen_all_at_cycles = cycles
            print(f"  learner consumed all {events:,} events; waiting for a training cycle on them", flush=True)
        if seen_all_at_cycles is not None and cycles > seen_all_at_cycles and published > 0:
            time.sleep(1.0)  # the announcement follows the cycle's checkpoint
            return state
        time.sleep(1.0)
    print("  the learner did not finish a cycle on the whole replay within the timeout", flush=True)
    return state


def metric_sum(text: str, name: str) -> dict[str, float]:
    """Samples of ``name`` by their label string, from Prometheus text."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key[len(name):] or ""] = float(value)
    return out


def main(argv: list[str]) -> int:
    from streamrec.observability.logging_setup import configure_logging
    from streamrec.kafka.runtime import embedded_or_configured

    parser = argparse.ArgumentParser(prog="streamrec demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_arguments(parser)
    parser.add_argument("--data-dir")
    parser.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    parser.add_argument("--limit", type=int, help="replay only the first N events")
    parser.add_argument("--exit-after-replay", action="store_true",
                        help="verify exactly-once application, print a summary and exit")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the check")
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args(argv)
    settings = Settings.from_env(bootstrap_servers=args.bootstrap_servers, data_dir=args.data_dir)
    if not settings.bootstrap_servers:
        # The embedded broker starts empty: so must everything that remembers offsets.
        settings = settings.replace(state_dir=Path(settings.state_dir) / "runs" / time.strftime("%Y%m%d-%H%M%S"))
    configure_logging(settings)
    dataset = dataset_from_args(args, "streamrec demo", settings, settings.data_dir)
    if dataset is None:
        return 2
    limit = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    embedded = not settings.bootstrap_servers
    with embedded_or_configured(settings, log_file=_broker_log(settings), port=settings.broker_port) as settings:
        ensure_topics(settings)
        sup = Supervisor(settings)
        sup.start()
        print("streamrec is up:\n" + sup.describe(embedded=embedded), flush=True)
        try:
            return run(settings, sup, dataset, limit, args)
        finally:
            sup.stop()


def run(settings: Settings, sup: Supervisor, dataset: Dataset, limit: int, args) -> int:
    started = time.monotonic()
    pub = EventPublisher(settings)
    for raw in MALFORMED:
        pub.publish_raw(raw, key=b"1")
    pub.flush()
    print(f"replaying {limit:,} {dataset.name} events ({len(dataset.items):,} items)…", flush=True)
    summary = replay_dataset(settings, dataset, rate=args.rate, limit=limit, progress=sys.stderr.isatty())
    print(f"published {summary['events']:,} events in {summary['seconds']:.1f}s "
          f"({summary['messages']:,} messages)", flush=True)
    if not args.exit_after_replay:
        print("replay done; the system keeps running. Try:\n"
              f"  curl '{_serving_url(sup)}/recommendations?user_id=196&k=10'\n"
              "  streamrec status      (live dashboard)\nCtrl-C to stop.", flush=True)
        live_progress(sup)
        return 0

    def progress(applied: int) -> None:
        print(f"  applied {applied:,}/{limit:,}", flush=True)

    result = asyncio.run(verify(settings, expected_counts(dataset, limit), args.timeout, progress))
    learner = wait_for_learner(_url(sup, "learner"), limit, args.timeout) if _url(sup, "learner") else {}
    dlq = len(asyncio.run(read_topic(settings, settings.topic(EVENTS_DLQ))))
    model = newest_model(settings)
    ok = result["lost"] == 0 and result["applied_twice"] == 0 and result["counts_consistent"]
    report = {
        "events_published": limit, "malformed_published": len(MALFORMED),
        "applied": result["applied"], "lost": result["lost"], "applied_twice": result["applied_twice"],
        "rejected_to_dlq": dlq, "users": result["users"], "items": len(dataset.items),
        "learner_events": learner.get("events"), "learner_cycles": learner.get("cycles"),
        "model_versions": model["version"] if model else 0,
        "newest_model_scores": model.get("scores") if model else None,
        "gate_decisions": {k or "all": v for k, v in metric_sum(
            scrape(_url(sup, "learner") + "/metrics"), "streamrec_learner_gate_decisions_total").items()},
        "seconds": round(time.monotonic() - started, 1), "exactly_once": ok,
    }
    sample = scrape(_serving_url(sup) + "/recommendations?user_id=196&k=5")
    print("\n== summary ==")
    for key, value in report.items():
        print(f"  {key:22} {value}")
    if sample:
        print(f"  sample: GET /recommendations?user_id=196&k=5 -> {sample[:400]}")
    print("OK: every valid event applied exactly once" if ok else "FAILED: see lost / applied_twice above")
    return 0 if ok else 1


def _url(sup: Supervisor, name: str) -> str:
    return next((c.url for c in sup.children if c.spec.name == name), "")


def _serving_url(sup: Supervisor) -> str:
    return _url(sup, "serving") or f"http://{sup.settings.http_host}:{sup.settings.http_port}"
