"""Learner crash scenario: SIGKILL while it trains and while it writes a file.

Serving runs throughout with a client asking it for recommendations. The learner is killed
(1) at a random moment while fresh events are being trained on and (2) inside the window
between writing a checkpoint or model file's temporary copy and renaming it (widened with the
``STREAMREC_FAULT_WRITE_DELAY_S`` hook of :func:`streamrec.model_store.atomic_write`), and
restarted each time. Checked at the end: every client call was answered and the model version
it carried never went backwards; every announced version's file verifies against its sha256;
serving never failed to load one; the restarted learner resumed from its checkpoint (versions
continue) and learnt every event exactly once (its checkpoint's event count).
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

from streamrec.changelog import read_topic
from streamrec.client import RecClient
from streamrec.kafka import ensure_topics
from streamrec.model_store import FAULT_WRITE_DELAY_ENV, Announcement, load_version
from streamrec.processes import Proc
from streamrec.replay import EventPublisher, publish_items
from streamrec.settings import Settings
from streamrec.topics import MODEL_UPDATES

FAST = dict(learner_use_text=False, learner_train_every_events=500, learner_train_every_s=1.0,
            learner_min_events=50, learner_batches_per_cycle=40, learner_batch_size=128,
            learner_holdout_events=200, learner_probe_size=100, learner_drift_delta=0.0,
            learner_reservoir_size=5000, learner_recent_window=1000, learner_seed=0)


class Caller(threading.Thread):
    """Asks serving for recommendations in a loop; records failures and versions seen."""

    def __init__(self, url: str, users: list[str]):
        super().__init__(daemon=True)
        self.client = RecClient(url, timeout=2.0)
        self.users = users
        self.stop = threading.Event()
        self.ok = self.failed = 0
        self.versions: list[int] = []
        self.errors: list[str] = []

    def run(self) -> None:
        j = 0
        while not self.stop.wait(0.05):
            try:
                answer = self.client.recommend(self.users[j % len(self.users)], k=10)
                self.ok += 1
                self.versions.append(int(answer["model_version"]))
            except Exception as exc:
                self.failed += 1
                self.errors.append(repr(exc)[:200])
            j += 1


def _metric(proc: Proc, name: str) -> float:
    try:
        text = proc.metrics()
    except Exception:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def _announcements(settings: Settings) -> list[Announcement]:
    return [Announcement.decode(m.value) for m in asyncio.run(read_topic(settings, settings.topic(MODEL_UPDATES),
                                                                          idle=1.0))]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def learner_crash(settings: Settings, dataset, n_events: int = 6000, seed: int = 0) -> dict:
    from streamrec.chaos.streams import dataset_docs
    from streamrec.checkpoint import load_checkpoint

    rng = random.Random(seed)
    s = settings.replace(**FAST)
    ensure_topics(s)
    publish_items(s, dataset.items)
    docs = dataset_docs(dataset, n_events)
    pub = EventPublisher(s, pack=50)
    parts = [docs[i * n_events // 4:(i + 1) * n_events // 4] for i in range(4)]
    started = time.monotonic()
    kills: list[str] = []
    serving = Proc("serve", s, "http_port").start()
    learner = None
    try:
        serving.wait_ready(120)
        caller = Caller(serving.url, [d["user_id"] for d in docs[:200]])
        caller.start()
        learner = Proc("learner", s, "learner_port").start()
        learner.wait_ready(120)
        pub.publish(parts[0])
        pub.flush()
        _wait(lambda: any(a.scores.get("kind") == "trained" for a in _announcements(s)), 120, "a trained version")
        first_versions = max(a.version for a in _announcements(s))

        # (1) killed while training on fresh events, at a random moment.
        cycles = _metric(learner, "streamrec_learner_cycles_total")
        pub.publish(parts[1])
        pub.flush()
        _wait(lambda: _metric(learner, "streamrec_learner_cycles_total") > cycles, 60, "a cycle to start")
        time.sleep(rng.uniform(0.0, 0.5))
        learner.kill()
        kills.append("SIGKILL while training")

        # (2) killed between a file's temporary copy and its rename.
        learner = Proc("learner", s, "learner_port", extra_env={FAULT_WRITE_DELAY_ENV: "3"}).start()
        pub.publish(parts[2])
        pub.flush()
        state_dir = Path(s.state_dir)
        _wait(lambda: any(p.name.startswith(".") and ".tmp-" in p.name for p in state_dir.rglob("*")), 120,
              "a file being written")
        learner.kill()
        kills.append("SIGKILL between write and rename")
        leftovers = [p for p in state_dir.rglob("*") if ".tmp-" in p.name]

        # Restart cleanly; the stream goes on.
        learner = Proc("learner", s, "learner_port").start()
        pub.publish(parts[3])
        pub.flush()
        checkpoint = state_dir / "learner" / "checkpoint.safetensors"

        def all_learnt() -> bool:
            try:
                trainer, _ = load_checkpoint(checkpoint, s)
            except Exception:
                return False
            return trainer.events_seen >= n_events and trainer.pending_count == 0
        _wait(all_learnt, 180, "the restarted learner to learn every event")
        time.sleep(2.0)
        caller.stop.set()
        caller.join(10)
        load_errors = _metric(serving, "streamrec_serving_model_load_errors_total")
    finally:
        if learner is not None:
            learner.stop()
        serving.stop()
    trainer, version = load_checkpoint(checkpoint, s)
    announced = _announcements(s)
    bad_files = []
    for a in announced:
        try:
            load_version(a)
        except Exception as exc:
            bad_files.append(f"v{a.version}: {exc}")
    backwards = sum(1 for a, b in zip(caller.versions, caller.versions[1:]) if b < a)
    return {
        "scenario": "learner SIGKILL while training and while writing", "faults_injected": len(kills),
        "events_in": n_events, "applied": trainer.events_seen,
        "lost": max(0, n_events - trainer.events_seen), "applied_twice": max(0, trainer.events_seen - n_events),
        "requests_failed": caller.failed, "seconds": round(time.monotonic() - started, 1),
        "details": {"requests_ok": caller.ok, "versions_announced": len(announced),
                    "first_trained_version": first_versions, "final_version": version,
                    "announced_files_failing_checksum": bad_files, "serving_load_errors": load_errors,
                    "version_went_backwards": backwards, "tmp_files_left_by_kill": len(leftovers),
                    "announced_tmp_files": sum(".tmp-" in a.path for a in announced),
                    "client_errors": caller.errors[:3], "kills": kills},
    }


def run_learner(settings: Settings, args) -> dict:
    from streamrec.datasets import load_dataset

    dataset = load_dataset("ml-100k", settings.data_dir)
    s = settings.replace(topic_prefix=f"chaos-learner-{int(time.time())}-",
                         state_dir=Path(settings.state_dir) / f"learner-{int(time.time())}")
    return learner_crash(s, dataset, n_events=20000, seed=getattr(args, "seed", 0))
