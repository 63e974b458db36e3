"""Prometheus metrics of the learner (``streamrec_learner_*``, base units, no IDs as labels)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MODEL_VERSION = Gauge("streamrec_learner_model_version", "Newest published model version.")
MODEL_CREATED = Gauge("streamrec_learner_model_created_timestamp_seconds",
                      "Creation time of the newest published version (epoch seconds).")
MODEL_AGE = Gauge("streamrec_learner_model_age_seconds", "Seconds since the newest version was published.")
TRAINING_LOSS = Gauge("streamrec_learner_training_loss", "Loss of the last mini-batch of the last cycle.")
GATE_DECISIONS = Counter("streamrec_learner_gate_decisions_total",
                         "Evaluation-gate decisions on trained candidates.", ["decision"])
CYCLES = Counter("streamrec_learner_cycles_total", "Training cycles run, by what triggered them.", ["trigger"])
CYCLE_IN_PROGRESS = Gauge("streamrec_learner_cycle_in_progress", "1 while a training cycle runs, else 0.")
CYCLE_DURATION = Histogram("streamrec_learner_cycle_duration_seconds", "Wall time of one training cycle.",
                           buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
VERSIONS_PUBLISHED = Counter("streamrec_learner_versions_published_total",
                             "Versions written and announced, by kind (trained, catalogue).", ["kind"])
REPLAY_EXAMPLES = Gauge("streamrec_learner_replay_buffer_examples", "Examples held, by store.", ["store"])
REPLAY_FILL = Gauge("streamrec_learner_replay_buffer_fill_ratio", "Examples held / capacity, by store.", ["store"])
NEWEST_HR10 = Gauge("streamrec_learner_newest_version_hr10", "HR@10 of the newest trained version on its held-out events.")
NEWEST_NDCG10 = Gauge("streamrec_learner_newest_version_ndcg10", "NDCG@10 of the newest trained version on its held-out events.")
GATE_SCORE = Gauge("streamrec_learner_gate_score",
                   "Scores of the last gate on its held-out events, by model (candidate, current) and metric.",
                   ["model", "metric"])
PROBE_HR10 = Gauge("streamrec_learner_forgetting_probe_hr10", "HR@10 of the current model on the fixed forgetting probe.")
PROBE_NDCG10 = Gauge("streamrec_learner_forgetting_probe_ndcg10",
                     "NDCG@10 of the current model on the fixed forgetting probe.")
EVENTS = Counter("streamrec_learner_events_total", "Valid events consumed.")
SKIPPED = Counter("streamrec_learner_events_skipped_total",
                  "Valid events not trained on, by cause (duplicate event_id; misrouted: arrived on another "
                  "user's partition, trained on where the streams worker re-publishes it).", ["cause"])
INVALID = Counter("streamrec_learner_invalid_messages_total",
                  "Messages or packed elements skipped as invalid (the streams worker dead-letters them).")
PREQUENTIAL_SCORED = Counter("streamrec_learner_prequential_scored_total",
                             "Events the current model ranked before learning from them.")
PREQUENTIAL_HITS = Counter("streamrec_learner_prequential_hits_total",
                           "Of those, events whose item was in the model's top 10.")
LIVE_HR10 = Gauge("streamrec_learner_live_hr10", "ADWIN estimate of the current model's live HR@10.")
DRIFT_DETECTIONS = Counter("streamrec_learner_drift_detections_total", "Drops of the live hit rate detected by ADWIN.")
ITEMS = Gauge("streamrec_learner_items", "Items known to the model.")
USERS = Gauge("streamrec_learner_users", "Users in the learner's interaction log.")
CHECKPOINTS = Counter("streamrec_learner_checkpoints_total", "Checkpoints written.")
KAFKA_ERRORS = Counter("streamrec_learner_kafka_errors_total", "Kafka errors seen (retried).")
USERS_DELETED = Counter("streamrec_learner_users_deleted_total",
                        "Verified user deletions applied (the user's history and examples forgotten).")
EXAMPLES_FORGOTTEN = Counter("streamrec_learner_examples_forgotten_total",
                             "Rows of training examples removed by user deletions (replay buffer stores, pending events, "
                             "probe; one example may be held by more than one).")


def record_cycle(result, trigger: str) -> None:
    """A finished cycle (a ``learner.trainer.CycleResult``, not skipped) and what triggered it."""
    CYCLES.labels(trigger).inc()
    CYCLE_DURATION.observe(result.duration_s)
    TRAINING_LOSS.set(result.loss_last)
    GATE_DECISIONS.labels(result.decision).inc()
    for model, scores in (("candidate", result.candidate), ("current", result.current)):
        for metric in ("hr@10", "ndcg@10"):
            GATE_SCORE.labels(model, metric.replace("@", "")).set(scores.get(metric, 0.0))
    if result.probe:
        PROBE_HR10.set(result.probe["hr@10"])
        PROBE_NDCG10.set(result.probe["ndcg@10"])


def record_replay_buffer(buffer) -> None:
    """How full each store of a ``learner.replay_buffer.ReplayBuffer`` is."""
    for store, held, cap in (("reservoir", len(buffer), buffer.reservoir_size),
                             ("recent", buffer.recent_count, buffer.recent_size)):
        REPLAY_EXAMPLES.labels(store).set(held)
        REPLAY_FILL.labels(store).set(held / cap)
