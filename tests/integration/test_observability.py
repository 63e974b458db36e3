"""Every process's /metrics, /healthz and /readyz, scraped from real processes on the embedded
broker: each exports the metrics its module declares, follows the naming conventions, and its
counters move when events flow; `streamrec status --once` reads all three."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamrec.kafka.config import ensure_topics
from harness.metric_catalogue import process_metrics
from harness.replay import EventPublisher, publish_items
from harness.processes import Proc

pytestmark = pytest.mark.integration

# process -> (streamrec command, port setting)
PROCESSES = {"streams": ("streams", "streams_web_port"),
             "learner": ("learner", "learner_port"),
             "serving": ("serve", "http_port")}
# counters that must grow when events flow, by process (found by words, like the status view)
MOVES_WITH_EVENTS = {"streams": "events_applied_total", "learner": "events_total",
                     "serving": "events_applied_total"}
FORBIDDEN_LABELS = {"user_id", "item_id", "user", "item", "event_id", "request_id"}


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def counter_value(text: str, sample_name: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == sample_name)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def movielens_docs(ml100k, n: int) -> list[dict]:
    return [{"user_id": str(ml100k.user_ids[j]), "item_id": str(ml100k.item_ids[j]), "event_type": "rating",
             "timestamp": float(ml100k.timestamps[j]), "value": float(ml100k.values[j]),
             "event_id": f"ml-{j}"} for j in range(n)]


def test_every_process_exports_its_metrics_and_counters_move(settings, ml100k):
    catalogue = process_metrics()
    present = {p: PROCESSES[p] for p in catalogue}
    settings = settings.replace(learner_use_text=False)
    ensure_topics(settings)
    publish_items(settings, ml100k.items[:200])
    procs = {p: Proc(cmd, settings, port) for p, (cmd, port) in present.items()}
    try:
        for proc in procs.values():
            proc.start()
        for proc in procs.values():
            proc.wait_ready(120)
        before = {p: proc.metrics() for p, proc in procs.items()}

        for p, proc in procs.items():
            assert get(proc.url + "/healthz")[0] == 200, p
            status, body = get(proc.url + "/readyz")
            assert status == 200 and json.loads(body)["ready"] is True, (p, body)

            exported = families(before[p])
            own = {n: f for n, f in exported.items() if n.startswith("streamrec_")}
            declared = {info.name for info in catalogue[p]}
            missing = declared - set(own)
            assert not missing, f"{p} declares but does not serve: {sorted(missing)}"
            for name, family in own.items():
                assert name.startswith(f"streamrec_{p}_"), f"{p} serves another process's metric {name}"
                labels = {k for s in family.samples for k in s.labels} - {"le", "quantile"}
                assert not labels & FORBIDDEN_LABELS, f"{name} is labelled by an id: {labels}"
                if family.type == "histogram":
                    assert re.search(r"_(seconds|bytes|events|examples|items|messages)$", name), \
                        f"histogram {name} has no base-unit suffix"

        docs = movielens_docs(ml100k, 2000)
        publisher = EventPublisher(settings, pack=50)
        publisher.publish(docs)
        publisher.flush()

        deadline = time.monotonic() + 180
        moved: dict[str, bool] = {}
        while time.monotonic() < deadline:
            for p, proc in procs.items():
                name = f"streamrec_{p}_{MOVES_WITH_EVENTS[p]}"
                moved[p] = counter_value(proc.metrics(), name) > counter_value(before[p], name)
            if all(moved.values()):
                break
            time.sleep(0.5)
        assert all(moved.values()), f"counters that did not move: {[p for p, m in moved.items() if not m]}"

        args = [sys.executable, "-m", "harness.cli", "status", "--once"]
        for p, proc in procs.items():
            args += [f"--{p}-url", proc.url]
        shown = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert f"{len(procs)}/{len(procs)} endpoints up" in shown.stdout
        assert "down" not in shown.stdout
    finally:
        for proc in procs.values():
            proc.stop()
