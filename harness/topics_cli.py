"""``streamrec topics``: create the system's topics on the configured cluster, then exit.

The one-shot initialiser of a deployment (docker-compose runs it before the processes), so
partition counts and compaction are decided once, by us, rather than by broker auto-creation.
It waits for the cluster to answer (``--timeout``), creates what is missing and leaves
existing topics alone, so running it again is harmless.

Examples
--------
>>> main(["--help"])                      # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import logging

from streamrec.observability.logging_setup import configure_logging
from streamrec.kafka.runtime import require_broker
from streamrec.settings import Settings
from streamrec.contracts.topics import TOPICS


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streamrec topics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the cluster to answer (default 120)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings, process_name="topics")
    log = logging.getLogger("streamrec.contracts.topics")
    if not settings.bootstrap_servers:
        log.error("KAFKA_BOOTSTRAP_SERVERS is not set: there is no cluster to create topics on "
                  "(the embedded broker creates its own at start-up)")
        return 2
    created = require_broker(settings, timeout=args.timeout)   # StartupError names the address
    names = [settings.topic(spec.name) for spec in TOPICS]
    log.info("topics ready on %s: %s (created now: %s)", settings.bootstrap_servers,
             ", ".join(names), ", ".join(created) or "none")
    return 0
