"""Client configuration shared by every process: confluent-kafka, aiokafka and Faust.

Security settings (SASL, TLS) pass from :class:`~streamrec.settings.Settings` to all three,
so a deployment configures them once.
"""
from __future__ import annotations

import logging
import ssl
import time
from typing import Any, Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streamrec.settings import Settings
from streamrec.contracts.topics import TOPICS

log = logging.getLogger(__name__)


def confluent_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
        # Brokers close idle connections; that is not worth a log line per client.
        "log.connection.close": False,
        # librdkafka's own log lines go through Python logging, not straight to stderr.
        "logger": logging.getLogger("librdkafka"),
    }
    if settings.sasl_mechanism:
        conf.update({"sasl.mechanism": settings.sasl_mechanism,
                     "sasl.username": settings.sasl_username or "",
                     "sasl.password": settings.sasl_password or ""})
    if settings.ssl_cafile:
        conf["ssl.ca.location"] = settings.ssl_cafile
    conf.update(extra)
    return conf


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    # murmur2_random: the Java / aiokafka / Faust default, so keys land where Faust expects.
    return confluent_config(settings, **{"partitioner": "murmur2_random", "linger.ms": 2,
                                         "enable.idempotence": False, "acks": "all", **extra})


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers,
                            "security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        conf.update({"sasl_mechanism": settings.sasl_mechanism,
                     "sasl_plain_username": settings.sasl_username,
                     "sasl_plain_password": settings.sasl_password})
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl_context"] = ssl.create_default_context(cafile=settings.ssl_cafile)
    return conf


def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App`` that carry the connection and its security."""
    import faust

    kwargs: dict[str, Any] = {"broker": ";".join(f"kafka://{h.strip()}"
                                                 for h in settings.bootstrap_servers.split(","))}
    if settings.security_protocol == "PLAINTEXT":
        return kwargs
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.sasl_mechanism:
        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=settings.sasl_username, password=settings.sasl_password,
            mechanism=settings.sasl_mechanism, ssl_context=context)
    elif context is not None:
        kwargs["broker_credentials"] = faust.SSLCredentials(context)
    return kwargs


def shorten_fetch_wait(app, wait_ms: int = 10) -> None:
    """Lower a running Faust app's fetch wait (call from inside one of its agents).

    Faust hard-codes aiokafka's ``fetch_max_wait_ms`` to 1500, which holds each event in the
    broker for most of that wait before an agent sees it (measured: docs/benchmarks.md). The
    cost of a short wait is more empty fetches, which are cheap.
    """
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        fetcher._fetch_max_wait_ms = wait_ms


def ensure_topics(settings: Settings, specs: Iterable = TOPICS, timeout: float = 30.0) -> list[str]:
    """Create the system's topics if they do not exist. Returns the names created."""
    admin = AdminClient(confluent_config(settings))
    deadline = time.monotonic() + timeout
    while True:
        try:
            # Never wait past the caller's deadline (a 5 s attempt used to outlast --timeout 1).
            wait = min(5.0, max(deadline - time.monotonic(), 0.5))
            existing = set(admin.list_topics(timeout=wait).topics)
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    new = []
    for spec in specs:
        name = settings.topic(spec.name)
        if name in existing:
            continue
        config = {"cleanup.policy": "compact"} if spec.compacted else {}
        new.append(NewTopic(name, num_partitions=settings.partitions if spec.partitioned else 1,
                            replication_factor=settings.replication_factor, config=config))
    created = []
    for name, fut in (admin.create_topics(new).items() if new else []):
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    if created:
        log.info("created topics: %s", ", ".join(created))
    return created
