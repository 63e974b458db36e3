"""Prometheus metrics of the streams worker (``streamrec_streams_*``)."""
from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("streamrec_streams_messages_total", "Kafka messages consumed from the events topic.")
EVENTS_CONSUMED = Counter("streamrec_streams_events_consumed_total",
                          "Events consumed (elements of packed messages counted one by one), valid or not.")
EVENTS_APPLIED = Counter("streamrec_streams_events_applied_total", "Valid events applied to user state.")
EVENTS_SKIPPED = Counter("streamrec_streams_events_skipped_total",
                         "Events not applied again, by cause (replay after a restart, duplicate event_id).",
                         ["cause"])
EVENTS_REJECTED = Counter("streamrec_streams_events_rejected_total",
                          "Events sent to the dead-letter topic, by reason.", ["reason"])
CONSUMER_LAG = Gauge("streamrec_streams_consumer_lag_messages",
                     "Messages behind the high watermark, per topic partition.", ["topic", "partition"])
EVENT_TIME_LAG = Histogram(
    "streamrec_streams_event_time_lag_seconds",
    "Wall-clock time at application minus the event's own timestamp (large for replays of old data).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86400, float("inf")))
APPLY_LATENCY = Histogram(
    "streamrec_streams_apply_latency_seconds",
    "Time from the broker's append (message timestamp) to the event being applied.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")))
BATCH_SIZE = Histogram("streamrec_streams_batch_events", "Events per processed batch.",
                       buckets=(1, 10, 50, 100, 500, 1000, 5000, 20000, 100000))
USERS = Gauge("streamrec_streams_users", "Users with state on this worker.")
MODEL_VERSION = Gauge("streamrec_streams_model_version",
                      "Model version whose item vectors the user vectors use (0: deterministic init).")
MODEL_REFUSED = Counter("streamrec_streams_model_refused",
                        "Model announcements refused (never used), by reason (the check that failed).", ["reason"])
EVENTS_REROUTED = Counter(
    "streamrec_streams_events_rerouted_total",
    "Valid events that arrived on another user's partition (wrong partitioner, no key, mixed packed batch), "
    "re-published to their user's partition instead of being applied where they arrived.")
WRITES_FAILED = Counter("streamrec_streams_writes_failed_total",
                        "Records the broker refused for good (not retriable) and that were dropped, by topic.",
                        ["topic"])
ITEMS_CHECKED = Counter("streamrec_streams_items_checked_total",
                        "Messages of the items topic checked against the item contract (tombstones included).")
ITEMS_REJECTED = Counter("streamrec_streams_items_rejected_total",
                         "Items sent to items-dlq, by reason.", ["reason"])
USERS_DELETED = Counter("streamrec_streams_users_deleted_total",
                        "Verified user deletions applied: the user's state dropped and a tombstone written to the "
                        "user_state changelog (a replay after a crash may count one again).")
