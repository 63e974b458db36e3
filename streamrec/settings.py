"""One settings object for every process, documented field by field.

Each field is read from an environment variable (named in its metadata) and may be
overridden on the command line. ``streamrec settings`` prints the table that the README
carries, so the documentation is generated from this file and cannot drift from it.

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
    max_id_length: int = setting(
        256, "STREAMREC_MAX_ID_LENGTH", "Longest accepted user_id / item_id / event_id.")
    max_future_skew_s: float = setting(
        86400.0, "STREAMREC_MAX_FUTURE_SKEW_S",
        "Events stamped further than this in the future (vs. wall clock) are rejected.")
    min_timestamp: float = setting(
        0.0, "STREAMREC_MIN_TIMESTAMP", "Events stamped before this (epoch seconds) are rejected.")
    recent_items: int = setting(
        50, "STREAMREC_RECENT_ITEMS", "How many recent items each user's state keeps.")
    dedup_ids: int = setting(
        256, "STREAMREC_DEDUP_IDS",
        "How many recent event_ids per user are remembered to apply duplicates once.")
    vector_dim: int = setting(
        32, "STREAMREC_VECTOR_DIM", "Dimension of item and user vectors.")
    user_vector_half_life_s: float = setting(
        7 * 86400.0, "STREAMREC_USER_VECTOR_HALF_LIFE_S",
        "Half-life, in event time, of an item's weight in the online user vector.")
    popularity_half_life_s: float = setting(
        3 * 86400.0, "STREAMREC_POPULARITY_HALF_LIFE_S",
        "Half-life, in event time, of an item's decayed popularity (trending).")
    event_weights: str = setting(
        "view=0.5,click=1,add_to_cart=2,purchase=3,rating=1",
        "STREAMREC_EVENT_WEIGHTS",
        "Signal strength per event type, used by the user vector and popularity.")
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

    # --- Learner (issue 3: add learner settings below this line) ------------------------

    # --- Serving (issue 4: add serving settings below this line) ------------------------

    # --- Evaluation (issue 5: add evaluation settings below this line) ------------------

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

    @property
    def weights(self) -> dict[str, float]:
        return parse_weights(self.event_weights)

    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return Path(self.data_dir)
        return Path("..") / "shared" / "data"


def parse_weights(spec: str) -> dict[str, float]:
    out = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        out[name.strip()] = float(value)
    return out


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
