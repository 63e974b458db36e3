"""The learner process: Kafka in, training in a background thread, versions out.

Threads
    * the caller's thread consumes ``events`` (group ``learner_group_id`` behind the topic prefix, offsets committed
      only after a checkpoint holding the same state) and the compacted ``items`` topic
      (read from the beginning on every start, :mod:`learner.catalogue_feed`), and feeds
      :class:`ContinualTrainer`;
    * a training thread runs cycles when due (count, timer or drift), publishes accepted
      candidates, publishes catalogue-only versions when new items arrive and no cycle is
      due, and checkpoints;
    * an aiohttp thread serves ``/healthz``, ``/readyz`` and ``/metrics``.

Publishing a version: the trainer's items without those the catalogue says may not be
served (retired by a tombstone, unavailable, expired: :meth:`CatalogueFeed.servable`), then
:func:`streamrec.contracts.model_store.write_version` (atomic: tmp, fsync, rename), then the
:class:`~streamrec.contracts.model_store.Announcement` on ``model-updates`` (key ``model``),
so a half-written file is never announced. Versions are monotonic across restarts: the
counter is checkpointed and the models directory is scanned on start. A user whose history
names an item left out reads it, in serving's user encoder, as an unknown item.

A restart resumes from ``<state_dir>/learner/checkpoint.safetensors``: the trainer's state
and the offsets it had consumed up to, which take precedence over the group's committed
offsets (those are committed after each checkpoint, for lag monitoring), unless the broker
lost the log they index (:mod:`learner.resume`): then those partitions are read from the
earliest offset, what was learnt is kept, and ``/readyz`` carries the fact in its ``notes``.

A verified user deletion on ``events`` (:mod:`streamrec.contracts.deletion`) is applied
where it stands in the stream: the events before it are observed first, then
:meth:`ContinualTrainer.forget_user` removes the user's examples, and the training thread
writes a checkpoint at once, so the file on disk holds none of them either.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from learner import metrics as M
from learner.checkpoint import checkpoint_cluster_id, load_checkpoint, save_checkpoint
from learner.resume import open_events
from streamrec.contracts.events import DecodedMessage, Event, decode_message
from streamrec.kafka.config import producer_config
from streamrec.contracts.model_store import MODEL_KEY, Announcement, remove_stale_temporaries, write_version
from streamrec.observability.health import HealthServer
from streamrec.settings import Settings
from streamrec.contracts.topics import MODEL_UPDATES
from learner.catalogue_feed import CatalogueFeed
from learner.trainer import ContinualTrainer, CycleResult
from learner.versions import announcement_of, published_versions

log = logging.getLogger(__name__)


class Learner:
    def __init__(self, settings: Settings, encoder=None):
        self.settings = settings
        self.models_dir = Path(settings.state_dir) / "models"
        self.checkpoint_path = Path(settings.state_dir) / "learner" / "checkpoint.safetensors"
        for directory in (self.models_dir, self.checkpoint_path.parent):
            for path in remove_stale_temporaries(directory):   # left by a kill mid-write
                log.warning("removed %s, the temporary copy of a write interrupted by a crash", path.name)
        if self.checkpoint_path.exists():
            self.trainer, self.version = load_checkpoint(self.checkpoint_path, settings, encoder)
        else:
            self.trainer, self.version = ContinualTrainer(settings, encoder=encoder), 0
        self.version = max(self.version, published_versions(self.models_dir))
        self.cluster_id = checkpoint_cluster_id(self.checkpoint_path)   # where the offsets came from
        self.resume_notes: list[str] = []
        self.stop_event = threading.Event()
        self.trainer_alive = False
        self.last_scores: dict = {}
        self.newest: Announcement | None = None   # the newest version announced by this process
        self.versions_published = 0
        self.failed = False
        self.gate_decisions: dict[str, int] = {}
        self._commit_request: dict[str, int] | None = None
        self._drift_counted = 0
        self._forgotten_unsaved = False   # a deletion applied since the last checkpoint
        self._producer: Producer | None = None
        self.feed: CatalogueFeed | None = None
        M.MODEL_VERSION.set(self.version)

    # -- readiness ------------------------------------------------------------------------
    def not_ready(self) -> list[str]:
        # Kafka is not a reason: the process started once the broker answered (wait_for_broker).
        return [] if self.trainer_alive else ["training thread not running"]

    # -- the run loop ---------------------------------------------------------------------
    def run(self) -> None:
        """Consume and train until :meth:`stop`; the broker must answer (``learner.main`` waits for it)."""
        http = self._serve_http()
        training = threading.Thread(target=self._training_loop, name="learner-training", daemon=True)
        try:
            self._producer = Producer(producer_config(self.settings))
            self._reannounce_newest()
            events, self.feed = self._consumers(), CatalogueFeed.open(self.settings)
            training.start()
            try:
                self._consume(events, self.feed)
            finally:
                self.stop_event.set()
                training.join()
                self._checkpoint()
                self._commit(events)
                events.close()
                self.feed.close()
        finally:
            self.stop_event.set()
            if self._producer is not None:
                self._producer.flush(5)
            if http is not None:
                http.close()

    def stop(self) -> None:
        self.stop_event.set()

    def _consumers(self) -> Consumer:
        events, self.cluster_id, notes = open_events(self.settings, self.trainer, self.cluster_id)
        self.resume_notes.extend(notes)
        return events

    def _consume(self, events: Consumer, items: CatalogueFeed) -> None:
        while not self.stop_event.is_set():
            items.poll(self.trainer)
            if self._backpressure():
                self.stop_event.wait(0.05)
                continue
            batch, offsets = [], {}
            for msg in events.consume(num_messages=200, timeout=0.2):
                if msg.error():
                    M.KAFKA_ERRORS.inc()
                    continue
                key = f"{msg.topic()}:{msg.partition()}"
                try:
                    message = decode_message(msg.value(), msg.partition(), msg.offset(), self.settings)
                    if message.deletions:   # in order: what came before is learnt, then the user forgotten
                        self._observe(batch, offsets)
                        batch, offsets = [], {}
                        self._forget(message, {key: msg.offset() + 1})
                        continue
                    batch.extend(self._admit(message))
                except Exception:   # a bug, never an input: skip the message, never die on it
                    log.exception("message %s/%s could not be read; skipped", msg.partition(), msg.offset())
                    M.INVALID.inc()
                offsets[key] = msg.offset() + 1
            self._observe(batch, offsets)
            if self._commit_request is not None:
                self._commit(events)
            if self._producer is not None:
                self._producer.poll(0)

    def _observe(self, batch: list[Event], offsets: dict[str, int]) -> None:
        if not (batch or offsets):
            return
        result = self.trainer.observe(batch, offsets)
        M.EVENTS.inc(result.events)
        M.PREQUENTIAL_SCORED.inc(result.scored)
        M.PREQUENTIAL_HITS.inc(result.hits)
        drift = self.trainer.drift
        M.LIVE_HR10.set(drift.hit_rate if drift.enabled else 0.0)
        if drift.detections > self._drift_counted:
            M.DRIFT_DETECTIONS.inc(drift.detections - self._drift_counted)
            self._drift_counted = drift.detections
        M.ITEMS.set(len(self.trainer.item_ids))
        M.USERS.set(len(self.trainer.log))

    def _forget(self, message: DecodedMessage, offsets: dict[str, int]) -> None:
        """Apply a verified user deletion; the training thread checkpoints soon after."""
        for deletion, _ in message.deletions:
            removed = self.trainer.forget_user(deletion.user_id, offsets)
            M.USERS_DELETED.inc()
            M.EXAMPLES_FORGOTTEN.inc(removed)
            log.info("user deletion %s applied: %d examples removed", deletion.deletion_id, removed)
        M.USERS.set(len(self.trainer.log))
        M.record_replay_buffer(self.trainer.buffer)
        self._forgotten_unsaved = True

    def _admit(self, message: DecodedMessage) -> list[Event]:
        """The events of one message the learner trains on: the same rule as streams and serving."""
        if message.rejections:
            M.INVALID.inc(len(message.rejections))
        if message.misrouted:   # applied where the streams worker re-publishes them
            M.SKIPPED.labels("misrouted").inc(len(message.misrouted))
        kept = []
        with self.trainer.lock:
            for ev, position in message.events:
                if self.trainer.event_ids.keep(ev.user_id, ev.event_id, position):
                    kept.append(ev)
                else:
                    M.SKIPPED.labels("duplicate_event_id").inc()
        return kept

    def _backpressure(self) -> bool:
        """True while more than two cycles' worth of events wait to be trained on.

        A fast replay (or a backlog after downtime) would otherwise be swallowed before the
        first cycle: one cycle over everything instead of one per ``learner_train_every_events``,
        and an unbounded pending list. While it holds, the loop stops reading ``events`` (the
        backlog waits in Kafka as consumer lag) until the training thread drains it, which
        takes one cycle: seconds, far below the consumer's max.poll.interval.ms.
        """
        s = self.settings
        limit = 2 * s.learner_train_every_events if s.learner_train_every_events else 50_000
        return self.trainer.pending_count >= max(limit, s.learner_min_events)

    def _commit(self, consumer: Consumer) -> None:
        request, self._commit_request = self._commit_request, None
        if not request:
            return
        tps = [TopicPartition(key.rsplit(":", 1)[0], int(key.rsplit(":", 1)[1]), off) for key, off in request.items()]
        try:
            consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:  # the checkpoint holds the offsets anyway
            M.KAFKA_ERRORS.inc()
            log.warning("offset commit failed (%s); the checkpoint keeps them", exc)

    # -- training thread ------------------------------------------------------------------
    def _training_loop(self) -> None:
        self.trainer_alive = True
        try:
            while not self.stop_event.is_set():
                trainer = self.trainer
                if self._forgotten_unsaved:   # a deleted user's examples leave the file on disk now
                    self._forgotten_unsaved = False
                    self._checkpoint()
                elif self.feed is None or not self.feed.caught_up:
                    self.stop_event.wait(0.1)   # no version before the catalogue is read: see CatalogueFeed
                elif trainer.should_train():
                    self._cycle()
                elif (trainer.catalogue_changed_at is not None and time.monotonic() - trainer.catalogue_changed_at
                      >= self.settings.learner_catalogue_publish_s):
                    self._publish({"kind": "catalogue", "gate": "skipped",
                                   "reason": "catalogue-only version: weights unchanged, the catalogue's items",
                                   **{k: v for k, v in self.last_scores.items() if k not in ("kind", "gate", "reason")}})
                    self._checkpoint()
                else:
                    self.stop_event.wait(0.1)
                M.MODEL_AGE.set(time.time() - self.newest.created_at if self.newest else 0.0)
        except Exception:
            log.exception("training thread failed; stopping the learner")
            self.failed = True
            self.stop_event.set()
        finally:
            self.trainer_alive = False

    def _cycle(self) -> CycleResult:
        trainer = self.trainer
        trigger = "drift" if trainer.drift.triggered else (
            "count" if trainer.pending_count >= max(self.settings.learner_train_every_events, 1) else "time")
        M.CYCLE_IN_PROGRESS.set(1)
        try:
            result = trainer.train_cycle()
        finally:
            M.CYCLE_IN_PROGRESS.set(0)
        if result.decision == "skip":
            return result
        M.record_cycle(result, trigger)
        self.gate_decisions[result.decision] = self.gate_decisions.get(result.decision, 0) + 1
        M.record_replay_buffer(trainer.buffer)
        if result.accepted:
            scores = {"kind": "trained", "gate": result.decision, "reason": result.reason, "trigger": trigger,
                      "hr@10": result.candidate.get("hr@10"), "ndcg@10": result.candidate.get("ndcg@10"),
                      "current_hr@10": result.current.get("hr@10"), "current_ndcg@10": result.current.get("ndcg@10"),
                      "holdout_events": result.holdout_events, "loss": result.loss_last,
                      "probe_hr@10": result.probe.get("hr@10"), "probe_ndcg@10": result.probe.get("ndcg@10"),
                      "generation": trainer.generation, "events_seen": trainer.events_seen}
            self._publish(scores)
            self.last_scores = scores
            M.NEWEST_HR10.set(scores["hr@10"] or 0.0)
            M.NEWEST_NDCG10.set(scores["ndcg@10"] or 0.0)
        else:
            log.warning("gate refused the candidate: %s (candidate %s, current %s)",
                        result.reason, result.candidate, result.current)
        self._checkpoint()
        return result

    def _publish(self, scores: dict) -> None:
        trainer = self.trainer
        with trainer.lock:
            trainer.catalogue_changed_at = None
            ids, vectors, tensors, meta = trainer.export()
        ids, vectors = self.feed.servable(ids, vectors)
        version = self.version + 1
        announcement = write_version(self.models_dir, version, ids, vectors, tensors, scores, extra_metadata=meta)
        self._announce(announcement.signed(self.settings.model_signing_key).encode())
        self.version = version
        self.newest = announcement
        self.versions_published += 1
        M.MODEL_VERSION.set(version)
        M.MODEL_CREATED.set(announcement.created_at)
        M.VERSIONS_PUBLISHED.labels(scores.get("kind", "trained")).inc()
        log.info("published version %d (%s): %d items", version, scores.get("kind"), len(ids))

    def _announce(self, value: bytes) -> None:
        """Produce the announcement and wait until the broker has it, retrying with backoff."""
        delay, attempts = 0.5, 0
        while True:
            errors = []
            self._producer.produce(self.settings.topic(MODEL_UPDATES), key=MODEL_KEY, value=value,
                                   on_delivery=lambda err, msg: errors.append(err) if err else None)
            left = self._producer.flush(10)
            if not left and not errors:
                return
            attempts += 1
            M.KAFKA_ERRORS.inc()
            if self.stop_event.is_set() and attempts >= 3:
                # The file is written; the next start re-announces the newest version.
                log.error("announcement not delivered before shutdown (%s)", errors or "timeout")
                return
            log.warning("announcement not delivered (%s); retrying in %.1fs", errors or "timeout", delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _reannounce_newest(self) -> None:
        """After a restart, announce the newest written version again (it may never have been)."""
        announcement = announcement_of(self.models_dir, self.version)
        if announcement is None:
            return
        self._announce(announcement.signed(self.settings.model_signing_key).encode())
        self.newest = announcement
        self.last_scores = dict(announcement.scores)
        M.MODEL_CREATED.set(announcement.created_at)
        log.info("re-announced version %d after restart", self.version)

    def _checkpoint(self) -> None:
        save_checkpoint(self.checkpoint_path, self.trainer, self.version, self.cluster_id)
        M.CHECKPOINTS.inc()
        with self.trainer.lock:
            self._commit_request = dict(self.trainer.offsets)

    # -- HTTP -----------------------------------------------------------------------------
    def _serve_http(self) -> HealthServer | None:
        try:
            return HealthServer(self.settings.http_host, self.settings.learner_port, self.not_ready,
                                notes=lambda: list(self.resume_notes))
        except OSError as exc:   # training matters more than its metrics: run on without them
            log.error("cannot serve metrics on port %d: %s", self.settings.learner_port, exc)
            return None
