"""Learner crash scenario: SIGKILL while it trains and while it writes a file.

Serving runs throughout with a client thread asking it for recommendations. After a first
trained version is live, the learner is SIGKILLed once per entry of ``during`` and restarted
each time, with fresh MovieLens events published before each kill:

``"train"``
    inside a training cycle: the learner's ``streamrec_learner_cycle_in_progress`` gauge is
    polled and the kill lands a random 0–50 ms after it reads 1;
``"version"`` / ``"checkpoint"``
    between writing a model version file's (or the checkpoint's) temporary copy and renaming
    it. That window is widened by the fault-injection hook ``STREAMREC_FAULT_WRITE_DELAY_S``
    of :func:`streamrec.contracts.model_store.atomic_write` (off unless set), and the kill is sent
    once this learner's ``.<name>.tmp-<pid>`` file exists; the file still being there after
    the kill proves the rename never happened.

Checked at the end: every client call was answered, the model version it carried never
went backwards and always named an announced version whose file verifies against its
sha256 (or 0, the pre-model vectors); no temporary file was ever announced; serving counted
no load error; each restart resumed from the checkpoint (its version and event count are
read from the file right after the kill and the newest version keeps rising past them); the
temporary files left by the kills were removed on restart; and the learner learnt every
event exactly once (``events_seen`` in its final checkpoint, as in
``tests/integration/test_learner.py``'s SIGKILL test).
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

from streamrec.kafka.changelog import read_topic
from streamrec.client import RecClient
from streamrec.kafka.config import ensure_topics
from streamrec.contracts.model_store import FAULT_WRITE_DELAY_ENV, Announcement, load_version
from harness.polling import wait_or_fail, wait_until
from harness.processes import Proc
from harness.replay import EventPublisher, publish_items
from streamrec.settings import Settings
from streamrec.contracts.topics import MODEL_UPDATES

# Small, fast cycles (no text encoder) so several happen in a short slice of MovieLens.
FAST = dict(learner_use_text=False, learner_train_every_events=500, learner_train_every_s=1.0,
            learner_min_events=50, learner_batches_per_cycle=40, learner_batch_size=128,
            learner_holdout_events=200, learner_probe_size=100, learner_drift_delta=0.0,
            learner_reservoir_size=5000, learner_recent_window=1000, learner_seed=0)
PHASES = ("train", "version", "checkpoint")


class Caller(threading.Thread):
    """Asks serving for recommendations in a loop; records failures and the versions seen."""

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
                self.versions.append(int(answer.get("model_version") or 0))
            except Exception as exc:
                self.failed += 1
                self.errors.append(repr(exc)[:200])
            j += 1


def metric(proc: Proc, name: str, by_label: bool = False):
    """Sum of a Prometheus series from ``proc``'s /metrics (0 if unreachable)."""
    try:
        text = proc.metrics()
    except Exception:
        return {} if by_label else 0.0
    values = {}
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            values[series] = float(value)
    return values if by_label else sum(values.values())


def announcements(settings: Settings) -> list[Announcement]:
    messages = asyncio.run(read_topic(settings, settings.topic(MODEL_UPDATES), idle=1.0))
    return [Announcement.decode(m.value) for m in messages]


class _CycleKiller(threading.Thread):
    """SIGKILLs the learner as soon as a training cycle is in progress.

    Started before the events that trigger the cycle are published: on a quiet machine a
    cycle can start and finish while the publisher is still flushing, and a watcher started
    after the publish would wait for a cycle that never comes.
    """

    def __init__(self, learner: Proc, rng: random.Random, timeout: float = 120.0):
        super().__init__(name="cycle-killer", daemon=True)
        self.learner, self.delay, self.timeout = learner, rng.uniform(0.0, 0.05), timeout
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            wait_or_fail(lambda: metric(self.learner, "streamrec_learner_cycle_in_progress") == 1.0,
                         self.timeout, "a training cycle to start", interval=0.02)
            time.sleep(self.delay)
            self.learner.kill()
        except Exception as exc:   # re-raised by the scenario's thread
            self.error = exc

    def result(self) -> dict:
        self.join(self.timeout + 10)
        if self.error is not None:
            raise self.error
        return {"during": "train", "cycle_in_progress_before_kill": True}


def _kill_in_write(learner: Proc, state_dir: Path, phase: str) -> dict:
    pid = learner.process.pid
    pattern = ".model-v*.safetensors.tmp-{}" if phase == "version" else ".checkpoint.safetensors.tmp-{}"
    found: list[Path] = []

    def writing() -> bool:
        found[:] = list(state_dir.rglob(pattern.format(pid)))
        return bool(found)
    wait_or_fail(writing, 120, f"the learner to write a {phase} file", interval=0.05)
    learner.kill()
    return {"during": phase, "file": found[0].name, "left_mid_write": found[0].exists()}


def _start_learner(s: Settings, next_kill: str | None, write_delay_s: float) -> Proc:
    # Each (re)start gets the write delay iff the next kill is inside a write. No graceful
    # restarts in between: a kill is the only way a learner stops until the end.
    env = {FAULT_WRITE_DELAY_ENV: str(write_delay_s)} if next_kill in ("version", "checkpoint") else {}
    return Proc("learner", s, "learner_port", extra_env=env).start().wait_ready(120)


def _kill_and_restart(s: Settings, learner: Proc, phase: str, next_kill: str | None,
                      killer: _CycleKiller | None, write_delay_s: float, kills: list[dict]) -> Proc:
    """SIGKILL ``learner`` in ``phase``, record what its checkpoint held, start the next one."""
    from learner.checkpoint import load_checkpoint

    state_dir = Path(s.state_dir)
    if killer is not None:
        record = killer.result()
    else:
        record = _kill_in_write(learner, state_dir, phase)
    resumed, resumed_version = load_checkpoint(state_dir / "learner" / "checkpoint.safetensors", s)
    record.update(checkpoint_version=resumed_version, checkpoint_events_seen=resumed.events_seen,
                  newest_announced=max(a.version for a in announcements(s)))
    kills.append(record)
    learner = _start_learner(s, next_kill, write_delay_s)
    record["resumed_at_version"] = int(metric(learner, "streamrec_learner_model_version"))
    return learner


def _wait_all_learnt(checkpoint: Path, s: Settings, n_events: int, timeout: float) -> bool:
    """True once the checkpoint holds every event learnt; False (reported as lost) on timeout."""
    from learner.checkpoint import load_checkpoint

    def all_learnt() -> bool:
        try:
            trainer, _ = load_checkpoint(checkpoint, s)
        except Exception:
            return False
        return trainer.events_seen >= n_events and trainer.pending_count == 0
    return wait_until(all_learnt, timeout, interval=0.2)


def _row(s: Settings, checkpoint: Path, during, docs, kills, caller, started: float, caught_up: bool,
         first_trained: int, load_errors: dict, leftovers: list[str]) -> dict:
    """The chaos table row: what the final checkpoint learnt and what every announcement held."""
    from learner.checkpoint import load_checkpoint

    trainer, final_version = load_checkpoint(checkpoint, s)
    announced = announcements(s)
    verified, bad_files = {0}, []
    for a in announced:
        try:
            load_version(a)
            verified.add(a.version)
        except Exception as exc:
            bad_files.append(f"v{a.version}: {exc}")
    versions = caller.versions
    n_in = len(docs)
    return {
        "scenario": "learner SIGKILL: " + ", ".join(during), "faults_injected": len(kills),
        "events_in": n_in, "applied": trainer.events_seen,
        "lost": max(0, n_in - trainer.events_seen), "applied_twice": max(0, trainer.events_seen - n_in),
        "requests_failed": caller.failed, "seconds": round(time.monotonic() - started, 1),
        "details": {
            "caught_up": caught_up, "requests_ok": caller.ok, "versions_served": sorted(set(versions)),
            "version_went_backwards": sum(1 for a, b in zip(versions, versions[1:]) if b < a),
            "served_versions_not_verified": sorted(set(versions) - verified),
            "versions_announced": len(announced), "first_trained_version": first_trained,
            "final_version": final_version, "announced_files_failing_checksum": bad_files,
            "announced_tmp_files": sum(".tmp-" in a.path for a in announced),
            "serving_load_errors": {k: v for k, v in load_errors.items() if v},
            "tmp_files_left_after_restart": leftovers, "kills": kills, "client_errors": caller.errors[:3],
        },
    }


def learner_crash(settings: Settings, dataset, *, n_events: int = 6000, during: tuple[str, ...] = PHASES,
                  seed: int = 0, write_delay_s: float = 3.0, timeout: float = 180.0) -> dict:
    """Run the scenario on ``settings``' broker and state dir; returns the chaos table row."""
    from harness.chaos.streams import dataset_docs

    unknown = set(during) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown phases {sorted(unknown)}; choose from {PHASES}")
    rng = random.Random(seed)
    s = settings.replace(**FAST)
    state_dir = Path(s.state_dir)
    checkpoint = state_dir / "learner" / "checkpoint.safetensors"
    ensure_topics(s)
    publish_items(s, dataset.items)
    docs = dataset_docs(dataset, n_events)
    n_parts = len(during) + 2          # warm-up, one per kill, one after the last restart
    parts = [docs[i * len(docs) // n_parts:(i + 1) * len(docs) // n_parts] for i in range(n_parts)]
    pub = EventPublisher(s, pack=50)
    started = time.monotonic()
    kills: list[dict] = []
    serving = Proc("serve", s, "http_port").start()
    learner = None
    caller = None
    try:
        serving.wait_ready(120)
        caller = Caller(serving.url, sorted({d["user_id"] for d in docs[:500]}))
        caller.start()
        learner = _start_learner(s, during[0] if during else None, write_delay_s)
        pub.publish(parts[0])
        pub.flush()
        wait_or_fail(lambda: any(a.scores.get("kind") == "trained" for a in announcements(s)), timeout,
                     "a first trained version", interval=0.2)
        first_trained = max(a.version for a in announcements(s))

        for k, phase in enumerate(during):
            killer = _CycleKiller(learner, rng) if phase == "train" else None
            if killer is not None:
                killer.start()
            pub.publish(parts[k + 1])
            pub.flush()
            learner = _kill_and_restart(s, learner, phase, during[k + 1] if k + 1 < len(during) else None,
                                        killer, write_delay_s, kills)

        leftovers = [p.name for p in state_dir.rglob("*.tmp-*")]   # the restarts must have removed them
        pub.publish(parts[-1])
        pub.flush()

        caught_up = _wait_all_learnt(checkpoint, s, len(docs), timeout)
        time.sleep(2.0)   # serving picks up the last version while the client still asks
        load_errors = metric(serving, "streamrec_serving_model_load_errors_total", by_label=True)
    finally:
        if caller is not None:
            caller.stop.set()
            caller.join(10)
        if learner is not None:
            learner.stop()
        serving.stop()

    return _row(s, checkpoint, during, docs, kills, caller, started, caught_up, first_trained, load_errors,
                leftovers)


def run_learner(settings: Settings, args) -> dict:
    """``streamrec chaos learner``: 20,000 MovieLens events, three kills (train, version, checkpoint)."""
    from harness.datasets import load_dataset

    dataset = load_dataset("ml-100k", settings.data_dir)
    stamp = int(time.time())
    s = settings.replace(topic_prefix=f"chaos-learner-{stamp}-", state_dir=Path(settings.state_dir) / f"learner-{stamp}")
    return learner_crash(s, dataset, n_events=20000, seed=getattr(args, "seed", 0))
