"""Process plumbing shared by the commands: the embedded-or-configured broker, start-up checks.

With ``KAFKA_BOOTSTRAP_SERVERS`` unset a command starts the embedded broker on loopback for
its own lifetime and stops it on exit; with it set, the command uses that cluster.

A command that cannot start (the broker does not answer, a port is taken, another instance
owns the state directory) raises :class:`StartupError` with a message naming what and
where; ``streamrec`` prints it without a traceback and exits with status 2.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import socket
from typing import Iterator

from confluent_kafka import KafkaException

from streamrec.kafka.embedded import EmbeddedBroker
from streamrec.settings import Settings

log = logging.getLogger(__name__)


BROKER_PORT_ENV = Settings.__dataclass_fields__["broker_port"].metadata["env"]


class StartupError(RuntimeError):
    """A command cannot start; the message says why and what to do."""


@contextlib.contextmanager
def embedded_or_configured(settings: Settings, log_file=None,
                           on_start=None, port: int | None = None) -> Iterator[Settings]:
    """Yield ``settings`` bound to a broker: the configured one, else an embedded one for the block.

    ``port`` is the embedded broker's port: ``streamrec up`` and ``demo`` pass
    ``settings.broker_port`` (a fixed default, so clients find the system without being told;
    a taken port raises :class:`StartupError` naming it and ``STREAMREC_BROKER_PORT`` rather
    than quietly moving elsewhere). None or 0: any free port, as for the throwaway brokers of
    ``evaluate``, ``bench`` or a lone ``serve``, which nothing else should find or collide with.
    ``on_start(broker)`` is called with the embedded broker once it runs (not for a
    configured cluster), e.g. to record its pid.
    """
    if settings.bootstrap_servers:
        yield settings
        return
    if port:
        check_port_free("127.0.0.1", port, f"embedded broker ({BROKER_PORT_ENV})")
    broker = EmbeddedBroker(port=port or None, log_file=log_file).start()
    log.info("no KAFKA_BOOTSTRAP_SERVERS: embedded broker (in memory) on %s", broker.bootstrap_servers)
    try:
        if on_start is not None:
            on_start(broker)
        yield settings.replace(bootstrap_servers=broker.bootstrap_servers)
    finally:
        broker.stop()


def require_broker(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the topics, or raise :class:`StartupError` naming the address that did not answer.

    Returns the topics created now (see :func:`streamrec.kafka.config.ensure_topics`).
    """
    from streamrec.kafka.config import ensure_topics

    try:
        return ensure_topics(settings, timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        text = error.str() if hasattr(error, "str") else str(error)
        raise StartupError(f"Kafka at {settings.bootstrap_servers} did not answer within {timeout:g}s "
                           f"({text}). Is the broker running and KAFKA_BOOTSTRAP_SERVERS right?") from None


def check_port_free(host: str, port: int, what: str) -> None:
    """Raise :class:`StartupError` when ``host:port`` cannot be bound (another process listens).

    The probe binds the way aiohttp does (``SO_REUSEADDR``), so a port in TIME_WAIT after a
    clean restart counts as free, as it is for the server that will bind it.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            why = "is in use by another process" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
            raise StartupError(f"{what}: port {port} on {host} {why}. Stop that process or choose "
                               "another port.") from None
