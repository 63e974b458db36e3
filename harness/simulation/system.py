"""One live system under simulation: its own topics, streams worker, serving and learner.

Each arm runs on a system of its own, or, with ``--experiment``, every arm on one
(:mod:`harness.simulation.experiment`). A system runs the real processes (``streamrec
streams``, ``streamrec serve`` and, unless disabled, ``streamrec learner``) as children via
:class:`harness.processes.Proc`, on the shared broker but under a topic prefix and state
directory of its own, so systems never see each other's events, state or models. The simulator talks to it only as a client would:
recommendations over HTTP (:class:`streamrec.client.RecClient`), events through Kafka
(:class:`harness.replay.EventPublisher`).

The learner is configured to train by event count only (``learner_train_every_s=0``), so
its cycles follow the simulated events rather than the wall clock. Learning stays
asynchronous, as in production: at each round boundary :meth:`ArmSystem.sync` waits until
serving shows every event of the round, and until the learner has consumed them and any
version it has already published is live in serving; a cycle still running then lands in
a later round.
"""
from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path
from typing import Sequence

from streamrec.client import RecClient, RecError
from streamrec.kafka.config import ensure_topics
from harness.processes import Proc
from harness.replay import EventPublisher, replay_dataset
from streamrec.settings import Settings


def scrape_metric(text: str, name: str) -> float:
    """Sum of every sample of metric ``name`` (all label sets) in Prometheus text; 0 if absent."""
    total = 0.0
    for match in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.eE+-]+|NaN)$", text, re.MULTILINE):
        value = float(match.group(1))
        total += 0.0 if value != value else value
    return total


class ArmSystem:
    """Start, feed, query and stop the processes of one arm."""

    def __init__(self, name: str, settings: Settings, *, learner: bool = True, streams: bool = True,
                 ready_timeout: float = 180.0):
        self.name = name
        self.settings = settings
        self.learner_enabled = learner
        self.streams_enabled = streams
        self.ready_timeout = ready_timeout
        self.procs: dict[str, Proc] = {}
        self.client: RecClient | None = None
        self.publisher: EventPublisher | None = None
        self.published = 0          # events this simulator sent (warm-up included)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "ArmSystem":
        Path(self.settings.state_dir).mkdir(parents=True, exist_ok=True)
        ensure_topics(self.settings)
        wanted = [("serve", "http_port")]
        if self.streams_enabled:
            wanted.append(("streams", "streams_web_port"))
        if self.learner_enabled:
            wanted.append(("learner", "learner_port"))
        for command, port_field in wanted:
            self.procs[command] = Proc(command, self.settings, port_field).start()
        return self

    def wait_ready(self) -> None:
        for proc in self.procs.values():
            proc.wait_ready(self.ready_timeout)
        self.client = RecClient(self.procs["serve"].url, timeout=self.settings.serving_request_timeout_s)
        self.publisher = EventPublisher(self.settings, pack=100)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()

    def logs(self) -> dict[str, str]:
        return {name: str(proc.log_path) for name, proc in self.procs.items()}

    # --- feeding -------------------------------------------------------------------------------
    def warm_up(self, dataset, limit: int) -> dict:
        summary = replay_dataset(self.settings, dataset, limit=limit, progress=False)
        self.published += summary["events"]
        return summary

    def publish(self, events: Sequence[dict]) -> None:
        self.publisher.publish(events)
        self.publisher.flush(30)
        self.published += len(events)

    # --- reading -------------------------------------------------------------------------------
    def recommend(self, user_id: str, k: int, **options) -> dict:
        """One recommendation request (``options`` as in ``POST /recommendations``; none: serving's
        defaults, or the user's experiment arm's), retried briefly when serving sheds or times out."""
        for attempt in range(5):
            try:
                return self.client.recommend(user_id, k=k, **options)
            except RecError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def state_time(self, user_id: str) -> float | None:
        try:
            return self.client.user(user_id).get("last_event_time")
        except RecError:
            return None

    def serving_model_version(self) -> int:
        with urllib.request.urlopen(self.procs["serve"].url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return int(scrape_metric(text, "streamrec_serving_model_version"))

    def learner_metrics(self, attempts: int = 5) -> dict[str, float]:
        """The learner's event, version and cycle counters; a scrape that times out (a busy
        machine, a training cycle holding the GIL) is tried again before the run gives up."""
        for attempt in range(attempts):
            try:
                text = self.procs["learner"].metrics()
                break
            except OSError:   # socket timeouts and refused connections alike
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
        return {"events": scrape_metric(text, "streamrec_learner_events_total"),
                "version": scrape_metric(text, "streamrec_learner_model_version"),
                "cycles": scrape_metric(text, "streamrec_learner_cycles_total")}

    # --- round boundaries ------------------------------------------------------------------------
    def wait_visible(self, newest: dict[str, float], timeout: float) -> int:
        """Poll ``GET /users/{id}`` until each user's state time reaches ``newest[user]``.

        Returns how many users were still not visible at the timeout (0 normally).
        """
        pending = dict(newest)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for user_id, stamp in list(pending.items()):
                seen = self.state_time(user_id)
                if seen is not None and seen >= stamp - 1e-6:
                    del pending[user_id]
            if pending:
                time.sleep(0.05)
        return len(pending)

    def sync_learner(self, timeout: float) -> dict[str, float]:
        """Wait until the learner consumed everything sent and serving runs its newest version."""
        if not self.learner_enabled:
            return {}
        deadline = time.monotonic() + timeout
        stats = self.learner_metrics()
        while stats["events"] < self.published and time.monotonic() < deadline:
            time.sleep(0.1)
            stats = self.learner_metrics()
        while self.serving_model_version() < stats["version"] and time.monotonic() < deadline:
            time.sleep(0.1)
        return stats

    def wait_first_model(self, timeout: float, quiet: float = 3.0) -> int:
        """After the warm-up: wait until the learner has consumed it, trained at least once and
        gone ``quiet`` seconds without a new cycle (a replayed backlog is trained on in several
        back-to-back cycles), and serving runs its newest version. Returns that version (0
        without a learner)."""
        if not self.learner_enabled:
            return 0
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            stats = self.learner_metrics()
            marker = (stats["cycles"], stats["version"], stats["events"])
            if marker != last:
                last, since = marker, time.monotonic()
            elif stats["cycles"] >= 1 and stats["events"] >= self.published and time.monotonic() - since >= quiet:
                break
            time.sleep(0.25)
        return int(self.sync_learner(max(1.0, deadline - time.monotonic())).get("version", 0))
