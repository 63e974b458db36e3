"""Process plumbing shared by the commands: the embedded-or-configured broker.

With ``KAFKA_BOOTSTRAP_SERVERS`` unset a command starts the embedded broker on loopback for
its own lifetime and stops it on exit; with it set, the command uses that cluster.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from streamrec.broker import EmbeddedBroker
from streamrec.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def embedded_or_configured(settings: Settings, log_file=None) -> Iterator[Settings]:
    if settings.bootstrap_servers:
        yield settings
        return
    broker = EmbeddedBroker(log_file=log_file).start()
    log.info("no KAFKA_BOOTSTRAP_SERVERS: embedded broker (in memory) on %s", broker.bootstrap_servers)
    try:
        yield settings.replace(bootstrap_servers=broker.bootstrap_servers)
    finally:
        broker.stop()
