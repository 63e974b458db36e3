"""Restart with a kept state directory: ``streamrec up`` stopped and started again, broker and all.

The embedded broker keeps everything in memory, so a second ``streamrec up`` on the same
state directory meets an empty broker (with a new cluster id) while the learner's
checkpoint still holds offsets into the old log and the models directory still holds the
old versions. The scenario runs the real ``streamrec up`` (embedded broker, streams,
learner, serving) twice on one state directory:

1. publish the catalogue and ``first`` MovieLens events; wait until the streams worker
   applied them and the learner checkpointed a trained version;
2. stop ``up`` (SIGTERM: children, then the broker); start it again on the same state
   directory; publish ``n`` *new* events (the next ones of MovieLens, catalogue not
   published again);
3. every one of the ``n`` must be applied by the streams worker and learnt by the learner
   (their per-process counters), the learner's ``/readyz`` must say it read the new log
   from the start, and serving's ``/readyz`` must say its model's catalogue is gone.

Before the learner reconciled its offsets with the broker, step 3 learnt 0 of them: it
resumed at offsets beyond the new log's end and skipped everything, reporting ready.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streamrec.kafka.embedded import free_port
from harness.chaos.broker import get
from harness.chaos.learner import FAST
from harness.chaos.streams import dataset_docs
from harness.polling import wait_until
from streamrec.kafka.runfile import running_system
from streamrec.settings import Settings


class _Up:
    """One ``streamrec up`` child in its own process group, logging to a file."""

    def __init__(self, settings: Settings, log_path: Path):
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        env.update({**settings.to_env(), "PYTHONUNBUFFERED": "1"})
        self.settings = settings
        self.process = subprocess.Popen([sys.executable, "-m", "harness.cli", "up"], env=env,
                                        stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_up(self, timeout: float) -> Settings:
        """Wait for the run file of this ``up``; the settings bound to its broker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamrec up exited with {self.process.returncode}")
            run = running_system(self.settings.state_dir)
            if run is not None and run["pid"] == self.process.pid:
                return self.settings.replace(bootstrap_servers=run["bootstrap_servers"])
            time.sleep(0.5)
        raise TimeoutError(f"streamrec up not up within {timeout}s")

    def stop(self, grace: float = 60.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def counter(url: str, name: str) -> float:
    """A counter's value from ``url``/metrics (0 when unreachable or absent)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/metrics", timeout=2) as r:
            text = r.read().decode()
    except Exception:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def _notes(url: str) -> list[str]:
    _, body = get(url + "/readyz")
    return body.get("notes", []) if isinstance(body, dict) else []


def restart_kept_state(settings: Settings, dataset, *, first: int = 3000, n: int = 600,
                       timeout: float = 300.0) -> dict:
    """Run the scenario in a fresh state directory under ``settings.state_dir``; one table row."""
    from harness.replay import EventPublisher, publish_items

    state = Path(settings.state_dir) / f"restart-kept-state-{int(time.time())}"
    (state / "logs").mkdir(parents=True, exist_ok=True)
    base = settings.replace(bootstrap_servers=None, state_dir=state, streams_web_port=free_port(),
                            learner_port=free_port(), http_port=free_port(), **FAST)
    urls = {name: f"http://{base.http_host}:{getattr(base, field)}" for name, field in
            (("streams", "streams_web_port"), ("learner", "learner_port"), ("serving", "http_port"))}
    docs = dataset_docs(dataset, first + n, event_ids=True)
    checkpoint = state / "learner" / "checkpoint.safetensors"

    def publish(bound: Settings, part: list[dict]) -> None:
        pub = EventPublisher(bound, pack=100)
        pub.publish(part)
        pub.flush()

    up = _Up(base, state / "logs" / "up-1.log")
    try:
        bound = up.wait_up(timeout)
        publish_items(bound, dataset.items)
        publish(bound, docs[:first])
        before = {"streams": wait_until(lambda: counter(urls["streams"], "streamrec_streams_events_applied_total")
                                        >= first, timeout, interval=0.5),
                  "learner_version": wait_until(lambda: counter(urls["learner"],
                                                                "streamrec_learner_versions_published_total")
                                                >= 1 and checkpoint.exists(), timeout, interval=0.5)}
    finally:
        up.stop()
    up = _Up(base, state / "logs" / "up-2.log")
    try:
        bound = up.wait_up(timeout)
        publish(bound, docs[first:first + n])
        streams_url, learner_url = urls["streams"], urls["learner"]
        wait_until(lambda: counter(streams_url, "streamrec_streams_events_applied_total") >= n
                   and counter(learner_url, "streamrec_learner_events_total") >= n, timeout, interval=0.5)
        time.sleep(2.0)   # anything applied twice would show up now
        applied = {"streams": int(counter(streams_url, "streamrec_streams_events_applied_total")),
                   "learner": int(counter(learner_url, "streamrec_learner_events_total"))}
        notes = {name: _notes(url) for name, url in urls.items()}
    finally:
        up.stop()
    return {"scenario": "restart-kept-state: `up` stopped with its embedded broker, started again on the same "
                        "state dir", "faults_injected": 1, "events_in": n, "applied": min(applied.values()),
            "lost": n - min(applied.values()), "applied_twice": sum(max(0, v - n) for v in applied.values()),
            "dead_lettered": 0, "requests_failed": None,
            "details": {"first_run": {"events": first, **before}, "applied_after_restart": applied,
                        "readyz_notes": notes, "state_dir": str(state)}}


def run_restart_kept_state(settings: Settings, args=None) -> dict:
    """``streamrec chaos restart-kept-state``."""
    from harness.datasets import load_dataset

    started = time.monotonic()
    row = restart_kept_state(settings, load_dataset("ml-100k", settings.data_dir))
    return {**row, "seconds": round(time.monotonic() - started, 1)}
