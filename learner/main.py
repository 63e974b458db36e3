"""``streamrec learner``: run the continual learner (see :mod:`learner.service`).

Consume events and the item catalogue, fine-tune the model continually with a replay buffer,
gate each candidate on the newest held-out events, and publish versions on model-updates.
Items use a MiniLM content embedding when the `text` extra is installed, IDs only otherwise.
"""
from __future__ import annotations

import argparse
import logging
import signal

from streamrec.kafka.broker_watch import wait_for_broker
from streamrec.kafka.runtime import embedded_or_configured
from streamrec.observability.logging_setup import configure_logging
from streamrec.settings_args import (EVENT_INPUT, KAFKA, MODELS, PROCESS, USER_HISTORY, parse_settings,
                                     section, settings_parser)

log = logging.getLogger("learner")

# Every setting the learner reads (tests/unit/test_settings_args.py checks this against the code).
READS = (*KAFKA, *EVENT_INPUT, *USER_HISTORY, *MODELS, *PROCESS, "learner_port", *section("learner_"))


def build_parser() -> argparse.ArgumentParser:
    return settings_parser("streamrec learner", READS, __doc__.split("\n\n")[1].replace("\n", " "))


def main(argv: list[str] | None = None) -> int:
    _, settings = parse_settings(build_parser(), argv)
    configure_logging(settings, process_name="learner")
    with embedded_or_configured(settings) as settings:
        # Started before its broker: /readyz says why (503) and the wait retries with backoff.
        wait_for_broker(settings, health_port=settings.learner_port)
        from learner.service import Learner   # here, so that --help does not load torch

        learner = Learner(settings)

        def on_signal(signum, frame):
            log.info("signal %d: finishing the current cycle, checkpointing", signum)
            learner.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        learner.run()
    return 1 if learner.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
