"""One settings object for every process, documented field by field.

Each field is read from an environment variable (named in its metadata) and may be
overridden on the command line of each process that reads it (:mod:`streamrec.settings_args`).
``streamrec settings`` prints the table that
docs/operations.md carries, so the documentation is generated from this file and cannot
drift from it.

Examples
--------
>>> s = Settings.from_env({"STREAMREC_PARTITIONS": "8"})
>>> s.partitions
8
>>> s.bootstrap_servers is None   # no KAFKA_BOOTSTRAP_SERVERS: embedded broker
True
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from streamrec.contracts.semantics import (DEFAULT_EVENT_WEIGHTS, EventSemantics, check_repeat_policy, event_semantics,
                                          parse_event_weights, parse_value_rule)


def setting(default: Any, env: str, doc: str) -> Any:
    """Declare one setting: its default, its environment variable and what it means."""
    kwargs: dict[str, Any] = {"metadata": {"env": env, "doc": doc}}
    if isinstance(default, (list, dict, set)):
        kwargs["default_factory"] = lambda: type(default)(default)
    else:
        kwargs["default"] = default
    return field(**kwargs)


@dataclass(frozen=True)
class Settings:
    # --- Kafka -----------------------------------------------------------------------
    bootstrap_servers: str | None = setting(
        None, "KAFKA_BOOTSTRAP_SERVERS",
        "Kafka cluster to use (host:port,...). Unset: start the embedded Tansu broker on loopback.")
    broker_port: int = setting(
        19092, "STREAMREC_BROKER_PORT",
        "Loopback port of the embedded broker `streamrec up` and `demo` start (taken: they refuse to start). "
        "With no KAFKA_BOOTSTRAP_SERVERS, clients and `replay` use the running `up` of their state directory "
        "(its run file), else a broker listening on this port. 0: any free port, found through the run file only.")
    partitions: int = setting(
        4, "STREAMREC_PARTITIONS",
        "Partitions for topics created at start-up; the unit of parallelism for streams workers.")
    replication_factor: int = setting(
        1, "STREAMREC_REPLICATION_FACTOR", "Replication factor for topics created at start-up.")
    topic_prefix: str = setting(
        "", "STREAMREC_TOPIC_PREFIX",
        "Prefix for every topic name, so several deployments can share a cluster.")
    session_timeout_s: float = setting(
        6.0, "STREAMREC_SESSION_TIMEOUT_S",
        "Consumer-group session timeout. Short by default: a group join waits about half of it.")
    security_protocol: str = setting(
        "PLAINTEXT", "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    sasl_mechanism: str | None = setting(
        None, "KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 when SASL is used.")
    sasl_username: str | None = setting(None, "KAFKA_SASL_USERNAME", "SASL user name.")
    sasl_password: str | None = setting(None, "KAFKA_SASL_PASSWORD", "SASL password.")
    ssl_cafile: str | None = setting(None, "KAFKA_SSL_CAFILE", "CA bundle for TLS to the brokers.")

    # --- Events and state --------------------------------------------------------------
    max_message_bytes: int = setting(
        1_048_576, "STREAMREC_MAX_MESSAGE_BYTES",
        "Largest accepted event message (a packed batch included); larger ones are dead-lettered.")
    dlq_max_copy_bytes: int = setting(
        262_144, "STREAMREC_DLQ_MAX_COPY_BYTES",
        "A rejected message up to this size is copied whole to the dead-letter topic; a larger one (or one with no value) is dead-lettered as a small record naming its topic, partition, offset, size and reason. Keep it below the producer's largest request.")
    max_id_length: int = setting(
        256, "STREAMREC_MAX_ID_LENGTH", "Longest accepted user_id / item_id / event_id.")
    max_future_skew_s: float = setting(
        86400.0, "STREAMREC_MAX_FUTURE_SKEW_S",
        "Events stamped further than this in the future (vs. wall clock) are rejected.")
    min_timestamp: float = setting(
        0.0, "STREAMREC_MIN_TIMESTAMP", "Events stamped before this (epoch seconds) are rejected.")
    deletion_signing_key: str | None = setting(
        None, "STREAMREC_DELETION_SIGNING_KEY",
        "Secret user deletions on `events` are signed with (HMAC-SHA256): serving's DELETE /admin/users/{id} "
        "signs them; the streams worker, serving and the learner apply only validly signed ones (set the same "
        "value on each). Unset: every deletion is refused (dead-lettered) and the route answers 501.")
    recent_items: int = setting(
        50, "STREAMREC_RECENT_ITEMS", "How many recent items each user's state keeps.")
    seen_items: int = setting(
        5000, "STREAMREC_SEEN_ITEMS",
        "How many distinct items per user are remembered as seen (never recommended again).")
    dedup_ids: int = setting(
        256, "STREAMREC_DEDUP_IDS",
        "How many recent event_ids per user are remembered: a duplicate within that many of the user's events is applied once.")
    vector_dim: int = setting(
        32, "STREAMREC_VECTOR_DIM", "Dimension of item and user vectors.")
    user_vector_half_life_s: float = setting(
        7 * 86400.0, "STREAMREC_USER_VECTOR_HALF_LIFE_S",
        "Half-life, in event time, of an item's weight in the online user vector.")
    popularity_half_life_s: float = setting(
        3 * 86400.0, "STREAMREC_POPULARITY_HALF_LIFE_S",
        "Half-life, in event time, of an item's decayed popularity (trending).")
    event_weights: str = setting(
        DEFAULT_EVENT_WEIGHTS, "STREAMREC_EVENT_WEIGHTS",
        "The event types accepted and the signal weight of each, `name=weight,...` (a name: a lowercase letter, "
        "then up to 31 lowercase letters, digits, _ or -); an event of another type is dead-lettered "
        "(unknown_event_type). A negative weight (e.g. dislike=-1) pushes the item away: the user vector moves "
        "away from it, co-occurrence and popularity do not count it, the learner does not train towards it, and "
        "it is never recommended to that user again (until a positive event on it).")
    value_rule: str = setting(
        "ignore", "STREAMREC_VALUE_RULE",
        "What an event's `value` does to its type's weight: ignore; threshold:<t> (a value below t makes the "
        "weight negative, e.g. threshold:3 for 1-5 star ratings); scale or scale:<max> (the weight times the "
        "value clipped to [0, max], default 10, e.g. dwell time). An event without a value keeps its type's weight.")
    repeat_consumption: str = setting(
        "exclude", "STREAMREC_REPEAT_CONSUMPTION",
        "Whether items a user already had may be recommended to them again: exclude, or allow (groceries, music, "
        "news). Serving's default for a request's include_seen; the evaluation also scores, under allow, events "
        "on items the user had. Items the user rejected (a negative event) are never recommended either way.")
    take_batch: int = setting(
        1000, "STREAMREC_TAKE_BATCH", "Messages the streams agent takes per batch.")
    take_within_s: float = setting(
        0.005, "STREAMREC_TAKE_WITHIN_S",
        "Longest wait to fill a batch; bounds the latency that batching adds.")

    # --- Processes -----------------------------------------------------------------------
    data_dir: Path | None = setting(
        None, "STREAMREC_DATA_DIR", "Where datasets live (then ../shared/data).")
    state_dir: Path = setting(
        Path("var"), "STREAMREC_STATE_DIR",
        "Working directory for Faust's local data, checkpoints and published models.")
    streams_web_port: int = setting(
        6066, "STREAMREC_STREAMS_PORT", "HTTP port of the streams worker (/metrics, /healthz, /readyz).")
    learner_port: int = setting(
        6067, "STREAMREC_LEARNER_PORT", "HTTP port of the learner (/metrics, /healthz, /readyz).")
    http_port: int = setting(
        8080, "STREAMREC_HTTP_PORT", "Serving HTTP port (recommendations API).")
    http_host: str = setting(
        "127.0.0.1", "STREAMREC_HTTP_HOST", "Interface the HTTP servers bind to.")
    log_level: str = setting("INFO", "STREAMREC_LOG_LEVEL", "Log level.")
    log_json: bool = setting(False, "STREAMREC_LOG_JSON", "Log one JSON object per line.")

    # --- Published models (readers: serving, streams) -------------------------------------
    model_signing_key: str | None = setting(
        None, "STREAMREC_MODEL_SIGNING_KEY",
        "Secret the learner signs model announcements with (HMAC-SHA256); when set, serving and streams "
        "refuse announcements without a valid signature. Unset: announcements are not signed.")
    model_max_bytes: int = setting(
        1 << 30, "STREAMREC_MODEL_MAX_BYTES", "Largest model file serving and streams will read; larger ones are refused.")
    model_read_timeout_s: float = setting(
        60.0, "STREAMREC_MODEL_READ_TIMEOUT_S",
        "Longest time reading one announced model file may take; a slower read is abandoned and the version refused.")

    # --- Learner --------------------------------------------------------------------------
    learner_group_id: str = setting(
        "streamrec-learner", "STREAMREC_LEARNER_GROUP_ID",
        "Consumer group the learner reads `events` with, behind STREAMREC_TOPIC_PREFIX (deployments sharing a cluster never share a group).")
    # 3000: best of 1500/2000/3000/5000 on the first 50,000 MovieLens events (python -m
    # harness.learner_measure, 2026-11-22: HR@10 0.162, 0.161, 0.163, 0.146); the second half was not used.
    learner_train_every_events: int = setting(
        3000, "STREAMREC_LEARNER_TRAIN_EVERY_EVENTS",
        "Start a training cycle after this many new events (0: never by count).")
    learner_train_every_s: float = setting(
        30.0, "STREAMREC_LEARNER_TRAIN_EVERY_S",
        "Start a training cycle this long after the previous one if any new event arrived (0: never by time).")
    learner_min_events: int = setting(
        50, "STREAMREC_LEARNER_MIN_EVENTS", "Fewest new events a cycle needs (fewer: the cycle waits).")
    learner_batches_per_cycle: int = setting(
        60, "STREAMREC_LEARNER_BATCHES_PER_CYCLE", "Mini-batches per training cycle (bounds its duration).")
    learner_batch_size: int = setting(
        256, "STREAMREC_LEARNER_BATCH_SIZE", "Examples per mini-batch.")
    learner_learning_rate: float = setting(
        0.003, "STREAMREC_LEARNER_LEARNING_RATE", "Adam learning rate of the fine-tuning.")
    learner_loss: str = setting(
        "sampled", "STREAMREC_LEARNER_LOSS",
        "Training loss: softmax (full catalogue), sampled (in-batch negatives, logQ correction) or bpr.")
    learner_sequence_length: int = setting(
        20, "STREAMREC_LEARNER_SEQUENCE_LENGTH", "Recent items the user encoder reads (at most STREAMREC_RECENT_ITEMS).")
    learner_reservoir_size: int = setting(
        50_000, "STREAMREC_LEARNER_RESERVOIR_SIZE", "Replay buffer: uniform reservoir sample over all history.")
    learner_recent_window: int = setting(
        5_000, "STREAMREC_LEARNER_RECENT_WINDOW", "Replay buffer: window of the most recent examples.")
    learner_recent_fraction: float = setting(
        0.5, "STREAMREC_LEARNER_RECENT_FRACTION",
        "Share of each mini-batch drawn from the new and recent examples; the rest is replayed from the reservoir.")
    learner_holdout_events: int = setting(
        500, "STREAMREC_LEARNER_HOLDOUT_EVENTS",
        "Newest events of a cycle held out of its training to score candidate and current model.")
    learner_gate_tolerance: float = setting(
        0.01, "STREAMREC_LEARNER_GATE_TOLERANCE",
        "A candidate whose NDCG@10 on the held-out events is lower than the current model's by more is refused.")
    learner_probe_size: int = setting(
        500, "STREAMREC_LEARNER_PROBE_SIZE", "Older interactions in the fixed forgetting probe scored on every version.")
    learner_drift_delta: float = setting(
        0.002, "STREAMREC_LEARNER_DRIFT_DELTA",
        "ADWIN confidence on the live HR@10; a detected drop starts a cycle early (0: off).")
    learner_use_text: bool = setting(
        True, "STREAMREC_LEARNER_USE_TEXT",
        "Project all-MiniLM-L6-v2 embeddings of item content into the item tower (needs the `text` extra; "
        "without it items are IDs only).")
    learner_id_dropout: float = setting(
        0.1, "STREAMREC_LEARNER_ID_DROPOUT",
        "Share of items whose ID embedding is dropped in each training batch, so content vectors alone "
        "rank well (what a brand-new item relies on); more helps new items, costs warm accuracy. "
        "Ignored without content.")
    learner_item_embedding_dim: int = setting(
        0, "STREAMREC_LEARNER_ITEM_EMBEDDING_DIM",
        "Length of producer-supplied item `embedding`s to project into the item tower (0: ignore them; "
        "embeddings of another length are ignored).")
    learner_catalogue_publish_s: float = setting(
        1.0, "STREAMREC_LEARNER_CATALOGUE_PUBLISH_S",
        "New items wait at most this long before a catalogue-only version (same weights, more vectors) is published.")
    # Item-to-item co-occurrence blended with the model (streamrec.state.cooccurrence). Tuned on the
    # first 50,000 MovieLens 100K events only (see docs/evaluation-tuning.md).
    cooccurrence_weight: float = setting(
        1.0, "STREAMREC_COOCCURRENCE_WEIGHT",
        "Weight of the online co-occurrence score added to the standardised model score (0: model only).")
    cooccurrence_window: int = setting(
        50, "STREAMREC_COOCCURRENCE_WINDOW",
        "A new item co-occurs with at most this many of the user's most recent earlier items.")
    cooccurrence_history: int = setting(
        20, "STREAMREC_COOCCURRENCE_HISTORY", "Most recent items of a user whose co-occurrences score a list.")
    cooccurrence_recency_decay: float = setting(
        0.8, "STREAMREC_COOCCURRENCE_RECENCY_DECAY",
        "Weight of the j-th most recent history item in the co-occurrence score is this ** j.")
    cooccurrence_half_life_s: float = setting(
        0.0, "STREAMREC_COOCCURRENCE_HALF_LIFE_S", "Half-life of co-occurrence counts in event time (0: no decay).")
    cooccurrence_max_dense_items: int = setting(
        10_000, "STREAMREC_COOCCURRENCE_MAX_DENSE_ITEMS",
        "Catalogues up to this size count co-occurrence exactly in a dense matrix (4 n^2 bytes); larger "
        "ones keep each item's strongest pairs in bounded lists (0: always the lists).")
    cooccurrence_neighbours: int = setting(
        100, "STREAMREC_COOCCURRENCE_NEIGHBOURS",
        "Pairs kept per item once co-occurrence uses bounded lists (memory per item: about 28 bytes each).")
    learner_seed: int = setting(0, "STREAMREC_LEARNER_SEED", "Seed of initialisation, sampling and the replay reservoir.")
    learner_torch_threads: int = setting(
        1, "STREAMREC_LEARNER_TORCH_THREADS",
        "torch intra-op threads (process-wide; 0: torch's default). The model is small: one thread is "
        "~20x faster than two when the cores are shared with other processes.")

    # --- Serving --------------------------------------------------------------------------
    serving_default_k: int = setting(
        10, "STREAMREC_SERVING_DEFAULT_K", "Recommendations returned when a request names no k.")
    serving_max_k: int = setting(
        200, "STREAMREC_SERVING_MAX_K", "Largest k a request may ask for (larger: 400 error).")
    serving_candidates: int = setting(
        100, "STREAMREC_SERVING_CANDIDATES",
        "Candidates fetched from the faiss index before re-ranking (at least 4 x k are fetched).")
    serving_diversity: float = setting(
        0.2, "STREAMREC_SERVING_DIVERSITY",
        "Default MMR diversity weight in [0, 1]: 0 ranks by relevance only, 1 by novelty only.")
    serving_exploration: float = setting(
        0.1, "STREAMREC_SERVING_EXPLORATION",
        "Default share of the k slots given to new or under-exposed items (exploration).")
    serving_seed: int = setting(
        0, "STREAMREC_SERVING_SEED", "Seed mixed into each request's exploration draw (reproducible answers).")
    serving_hnsw_threshold: int = setting(
        100_000, "STREAMREC_SERVING_HNSW_THRESHOLD",
        "Catalogues up to this many items get an exact inner-product index; larger ones HNSW.")
    serving_hnsw_m: int = setting(32, "STREAMREC_SERVING_HNSW_M", "HNSW graph degree (M) for large catalogues.")
    serving_hnsw_ef_search: int = setting(
        128, "STREAMREC_SERVING_HNSW_EF_SEARCH", "HNSW search breadth (efSearch): recall against latency.")
    serving_max_in_flight: int = setting(
        256, "STREAMREC_SERVING_MAX_IN_FLIGHT",
        "Most HTTP recommendation-type requests admitted and not yet answered (queued + running); "
        "more are shed at once with 503 and Retry-After (admission control).")
    serving_queue_target_s: float = setting(
        0.05, "STREAMREC_SERVING_QUEUE_TARGET_S",
        "An HTTP request whose expected wait for its turn (requests ahead x measured time per answer) "
        "is over this is shed at once with 503 and Retry-After.")
    serving_read_your_writes_wait_s: float = setting(
        1.0, "STREAMREC_SERVING_READ_YOUR_WRITES_WAIT_S",
        "A recommendation asked after= a consistency token waits at most this long for serving to apply "
        "those events (outside the admission queue), then answers with \"stale\": true.")
    serving_queue_timeout_s: float = setting(
        0.25, "STREAMREC_SERVING_QUEUE_TIMEOUT_S",
        "An admitted HTTP request that has waited longer than this when its turn comes (a stall) is "
        "answered 503 and Retry-After instead of worked on.")
    serving_max_body_bytes: int = setting(
        65_536, "STREAMREC_SERVING_MAX_BODY_BYTES", "Largest accepted HTTP request body (larger: 413).")
    serving_require_model: bool = setting(
        False, "STREAMREC_SERVING_REQUIRE_MODEL",
        "Report not ready until a published model version is loaded (else the deterministic "
        "pre-model vectors count as version 0).")
    serving_index_refresh_s: float = setting(
        1.0, "STREAMREC_SERVING_INDEX_REFRESH_S",
        "Before any model: how often the index over deterministic vectors is rebuilt when items appear.")
    serving_request_timeout_s: float = setting(
        5.0, "STREAMREC_SERVING_REQUEST_TIMEOUT_S", "Client-side timeout for one recommendation request.")
    serving_ingest_timeout_s: float = setting(
        5.0, "STREAMREC_SERVING_INGEST_TIMEOUT_S",
        "Longest POST /events waits for the broker to acknowledge its events, and how long serving's producer "
        "keeps trying to deliver a message (events and request-topic replies); longer: 503.")
    serving_max_experiments: int = setting(
        4, "STREAMREC_SERVING_MAX_EXPERIMENTS",
        "Most live experiments (POST /admin/experiments refuses more): bounds the per-arm metric series.")
    serving_max_arms: int = setting(
        4, "STREAMREC_SERVING_MAX_ARMS", "Most arms one experiment may have (2 at least).")
    serving_admin_token: str | None = setting(
        None, "STREAMREC_ADMIN_TOKEN",
        "Bearer token of the serving admin API (/admin/*: list, promote or roll back model versions, reload; "
        "create, list and stop experiments). "
        "Unset: the admin API does not exist (404).")
    serving_instance: str = setting(
        "0/1", "STREAMREC_SERVING_INSTANCE",
        "Sharded serving: this instance is i of N (\"i/N\") and keeps the user state of the events partitions p "
        "with p % N == i; a request for another instance's user is forwarded to it. 0/1: one instance keeps "
        "every user.")
    serving_peers: str = setting(
        "", "STREAMREC_SERVING_PEERS",
        "Sharded serving: the base URLs of instances 0 to N-1, comma-separated, in instance order (this "
        "instance's own included). Required when N > 1.")
    serving_forward_timeout_s: float = setting(
        3.0, "STREAMREC_SERVING_FORWARD_TIMEOUT_S",
        "Sharded serving: longest wait for the owning instance to answer a forwarded request (then 503). Keep it "
        "above STREAMREC_SERVING_READ_YOUR_WRITES_WAIT_S: a forwarded after= request waits there.")

    # --- Evaluation -----------------------------------------------------------------------
    eval_k: int = setting(
        10, "STREAMREC_EVAL_K", "List length k of prequential evaluation (HR@k, NDCG@k, MRR@k).")
    eval_block: int = setting(
        64, "STREAMREC_EVAL_BLOCK",
        "Most consecutive events of distinct users whose requests are answered together before "
        "they are learned (1: strictly one event at a time).")
    eval_windows: int = setting(
        10, "STREAMREC_EVAL_WINDOWS", "Equal-count time windows the metrics are also reported over.")
    eval_warmup: int = setting(
        0, "STREAMREC_EVAL_WARMUP", "Events every method learns before requests start being scored.")
    eval_next_items: int = setting(
        10, "STREAMREC_EVAL_NEXT_ITEMS",
        "How many of the user's next new items count as relevant to a request for recall@k, precision@k "
        "and MAP@k (1: only the next one, where recall@k equals HR@k).")
    eval_cold_events: int = setting(
        5, "STREAMREC_EVAL_COLD_EVENTS",
        "A request is a cold user's when the user had fewer earlier events than this; cold and warm "
        "requests are reported apart.")
    eval_bootstrap: int = setting(
        1000, "STREAMREC_EVAL_BOOTSTRAP",
        "Resamples of users behind every 95% interval of the evaluation (cluster bootstrap; 0: none).")
    eval_static_warmup_events: int = setting(
        20_000, "STREAMREC_EVAL_STATIC_WARMUP_EVENTS",
        "Events the `system-static` variant learns from before its model freezes.")
    eval_out_dir: Path = setting(
        Path("results"), "STREAMREC_EVAL_OUT_DIR", "Where `streamrec evaluate` writes its JSON and plots.")

    # ------------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read every field from ``environ`` (default ``os.environ``), then apply overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = _coerce(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """Environment variables that reproduce these settings in a child process."""
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                env[f.metadata["env"]] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def shown(self, name: str) -> Any:
        """A field's value for display: ``***`` for a set secret (see :func:`is_secret`)."""
        value = getattr(self, name)
        return MASK if value is not None and is_secret(name) else value

    def secrets(self) -> list[str]:
        """The values of the set secret fields (what logs must never show)."""
        return [str(getattr(self, f.name)) for f in dataclasses.fields(self)
                if is_secret(f.name) and getattr(self, f.name) not in (None, "")]

    def __repr__(self) -> str:
        # A settings object in a log line or a traceback must not carry a password.
        inner = ", ".join(f"{f.name}={self.shown(f.name)!r}" for f in dataclasses.fields(self))
        return f"Settings({inner})"

    def __post_init__(self) -> None:
        # Malformed event semantics are refused when the settings are made, naming the variable.
        checks = (("event_weights", parse_event_weights), ("value_rule", parse_value_rule),
                  ("repeat_consumption", check_repeat_policy))
        for name, check in checks:
            try:
                check(getattr(self, name))
            except ValueError as exc:
                env = self.__dataclass_fields__[name].metadata["env"]
                raise ValueError(f"{env}={getattr(self, name)!r}: {exc}") from None

    @property
    def semantics(self) -> EventSemantics:
        """The event semantics (types, weights, value rule, repeat policy) every consumer reads."""
        return event_semantics(self.event_weights, self.value_rule, self.repeat_consumption)


MASK = "***"
SECRET_WORDS = frozenset({"password", "token", "secret", "key"})


def is_secret(name: str) -> bool:
    """True when a field or variable name marks a secret: a word password, token, secret or key.

    >>> is_secret("sasl_password"), is_secret("STREAMREC_ADMIN_TOKEN"), is_secret("sasl_username")
    (True, True, False)
    """
    return bool(SECRET_WORDS & set(name.lower().split("_")))


def _coerce(f: dataclasses.Field, raw: str) -> Any:
    kind = str(f.type)
    if "bool" in kind:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{f.metadata['env']}={raw!r}: expected true or false")
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise ValueError(f"{f.metadata['env']}={raw!r}: expected a number") from None
    if "Path" in kind:
        return Path(raw)
    return raw


def settings_table(cls: type = Settings) -> str:
    """The Markdown table of every setting (variable, default, meaning)."""
    rows = ["| environment variable | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "(unset)" if default is None else f"`{default}`"
        rows.append(f"| `{f.metadata['env']}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows)
