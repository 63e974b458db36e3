"""Prometheus metrics of the serving process (``streamrec_serving_*``).

Labels are bounded sets only (path, outcome, source, kind, experiment and arm): never a user or item id, which
would grow the series without limit.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Sub-millisecond to seconds: the target is p99 < 10 ms, so resolve that range finely.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5)
_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)

REQUEST_LATENCY = Histogram(
    "streamrec_serving_request_latency_seconds",
    "Time to answer one recommendation-type request, by path (http, topic) and route.",
    ["path", "route"], buckets=_LATENCY_BUCKETS)
REQUESTS = Counter(
    "streamrec_serving_requests",
    "Requests answered, by path (http, topic), route and outcome (ok, client_error, shed, error).",
    ["path", "route", "outcome"])
IN_FLIGHT = Gauge("streamrec_serving_in_flight_requests",
                  "HTTP recommendation-type requests admitted and not yet answered (queued + running).")
SHED = Counter("streamrec_serving_shed",
               "HTTP requests answered 503 by admission control, by reason (queue_full, expected_wait, "
               "waited).", ["reason"])
QUEUE_WAIT = Histogram("streamrec_serving_queue_wait_seconds",
                       "Time an HTTP request waited for its turn before it was worked on.",
                       buckets=_LATENCY_BUCKETS)
TIME_PER_ANSWER = Gauge("streamrec_serving_time_per_answer_seconds",
                        "Admission control's estimate of the event-loop time one HTTP answer takes.")
EVENTS_RECEIVED = Counter(
    "streamrec_serving_http_events",
    "Events received by POST /events, by outcome (accepted: acknowledged by the broker; rejected: in a body "
    "answered 400, nothing of it written; unacknowledged: not acknowledged in time, answered 503).", ["outcome"])
COLD_START = Counter("streamrec_serving_cold_start", "Recommendations answered from trending (unknown users).")

MODEL_VERSION = Gauge("streamrec_serving_model_version", "Model version serving answers (0: pre-model vectors).")
MODEL_CREATED = Gauge("streamrec_serving_model_created_timestamp_seconds",
                      "Creation time of the model version in use (age = now - this).")
MODEL_SWAPS = Counter("streamrec_serving_model_swaps", "Index swaps, by kind (model, pre_model).", ["kind"])
MODEL_ERRORS = Counter("streamrec_serving_model_load_errors",
                       "Announced versions that could not be used, by reason.", ["reason"])
INDEX_ITEMS = Gauge("streamrec_serving_index_items", "Items in the retrieval index.")
INDEX_BUILD_SECONDS = Histogram("streamrec_serving_index_build_seconds",
                                "Time to load a version and build its index (off the request path).",
                                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

REPLICA_USERS = Gauge("streamrec_serving_replica_users", "Users held in the serving state replica.")
REPLICA_ITEMS = Gauge("streamrec_serving_catalogue_items", "Items known from the items topic.")
REPLICA_RECORDS = Counter("streamrec_serving_replica_records",
                          "Records consumed by the replica, by source topic kind and outcome.",
                          ["source", "outcome"])
EVENTS_APPLIED = Counter("streamrec_serving_events_applied", "Events applied to the replica from the events topic.")
USERS_DELETED = Counter(
    "streamrec_serving_users_deleted",
    "Verified user deletions met on the events topic, by outcome (removed: the replica's state of the user "
    "dropped; absent: the replica held none; outlived: its state holds events written after the deletion).",
    ["outcome"])
DELETIONS_REQUESTED = Counter(
    "streamrec_serving_user_deletions_requested",
    "DELETE /admin/users/{id} requests, by outcome (written: acknowledged by the broker; refused: no signing "
    "key or an invalid id; unavailable: the broker did not take it in time).", ["outcome"])
FRESHNESS_LAG = Histogram("streamrec_serving_freshness_lag_seconds",
                          "Broker append time of an event to its application in the replica.",
                          buckets=_LAG_BUCKETS)
FRESHNESS_LAST = Gauge("streamrec_serving_freshness_lag_last_seconds",
                       "Freshness lag of the newest event batch applied.")

# Online quality of live traffic (see streamrec.observability.online_metrics): a served list is scored when
# that user's next event arrives; exposure is over the most recent served lists.
ONLINE_HIT_RATE = Gauge("streamrec_serving_online_hit_rate",
                        "HR@10 over a sliding window of served lists scored by the user's next event.")
ONLINE_NDCG = Gauge("streamrec_serving_online_ndcg",
                    "NDCG@10 over a sliding window of served lists scored by the user's next event.")
EXPOSURE_ENTROPY = Gauge("streamrec_serving_exposure_entropy_bits",
                         "Shannon entropy (bits) of item exposure over the recent served lists.")
EXPOSURE_GINI = Gauge("streamrec_serving_exposure_gini",
                      "Gini index of item exposure over the recent served lists (0 even, 1 concentrated).")
CATALOGUE_COVERAGE = Gauge("streamrec_serving_catalogue_coverage_ratio",
                           "Share of the indexed catalogue shown at least once in the recent served lists.")

# Experiments (serving.experiments): the same online quality per arm. The labels are bounded:
# at most STREAMREC_SERVING_MAX_EXPERIMENTS live experiments of STREAMREC_SERVING_MAX_ARMS arms each,
# and an experiment's series are removed when it stops.
_ARM = ["experiment", "arm"]
ARM_REQUESTS = Counter("streamrec_serving_experiment_requests",
                       "Recommendations answered per live experiment arm.", _ARM)
ARM_SCORED = Gauge("streamrec_serving_experiment_scored_lists",
                   "Served lists in the arm's HR@10 / NDCG@10 window (the sample size behind them).", _ARM)
ARM_HIT_RATE = Gauge("streamrec_serving_experiment_online_hit_rate",
                     "HR@10 of the arm's served lists, scored by each user's next event (sliding window).", _ARM)
ARM_NDCG = Gauge("streamrec_serving_experiment_online_ndcg",
                 "NDCG@10 of the arm's served lists, scored by each user's next event (sliding window).", _ARM)
ARM_ENTROPY = Gauge("streamrec_serving_experiment_exposure_entropy_bits",
                    "Shannon entropy (bits) of item exposure over the arm's recent served lists.", _ARM)
ARM_GINI = Gauge("streamrec_serving_experiment_exposure_gini",
                 "Gini index of item exposure over the arm's recent served lists.", _ARM)
ARM_COVERAGE = Gauge("streamrec_serving_experiment_catalogue_coverage_ratio",
                     "Share of the arm's index shown at least once in its recent served lists.", _ARM)
ARM_SERIES = (ARM_REQUESTS, ARM_SCORED, ARM_HIT_RATE, ARM_NDCG, ARM_ENTROPY, ARM_GINI, ARM_COVERAGE)
EXPERIMENTS_LIVE = Gauge("streamrec_serving_experiments_live", "Live experiments serving assigns users to.")
EXPERIMENT_RECORDS = Counter(
    "streamrec_serving_experiment_records",
    "Records read from the experiments topic, by outcome (applied; stale: older than the one held; invalid; "
    "unsigned, bad_signature: refused under STREAMREC_MODEL_SIGNING_KEY; over_capacity: more live experiments "
    "than STREAMREC_SERVING_MAX_EXPERIMENTS; pin_failed: a pinned model version could not be loaded).", ["outcome"])
# Sharded serving (serving.ownership, serving.forwarding); one instance (0/1) owns every partition.
OWNED_PARTITIONS = Gauge("streamrec_serving_owned_partitions",
                         "Events partitions whose users this serving instance keeps (all of them unless sharded).")
EVENTS_ITEM_SIDE = Counter(
    "streamrec_serving_events_item_side_only",
    "Events of partitions another serving instance owns: learned into trending and co-occurrence only, "
    "not applied to user state.")
FORWARDED = Counter(
    "streamrec_serving_forwarded",
    "Requests for another instance's user sent on to it, by route and outcome (answered: the owner answered, "
    "whatever its status; unreachable, timeout: answered 503 here; misrouted: a forwarded request for a user "
    "this instance does not keep either, answered 508).", ["route", "outcome"])
