"""``streamrec learner``: run the continual learner (see :mod:`learner.service`).

Every option defaults to its environment variable (``streamrec settings`` lists them all);
``--help`` prints each learner setting with its variable and default. With no bootstrap
servers configured, an embedded broker is started on loopback, as for every command.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from streamrec.settings import Settings

# Settings that the learner reads besides its own section.
SHARED = ("bootstrap_servers", "topic_prefix", "state_dir", "learner_port", "http_host", "vector_dim",
          "recent_items", "log_level")


def _fields(settings_cls=Settings):
    for f in dataclasses.fields(settings_cls):
        if f.name.startswith("learner_") or f.name in SHARED:
            yield f


def build_parser(defaults: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamrec learner", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Consume events and the item catalogue, fine-tune the model continually with a replay "
                    "buffer, gate each candidate on the newest held-out events, and publish versions on "
                    "model-updates. Items use a MiniLM content embedding when the `text` extra is installed, "
                    "IDs only otherwise.")
    for f in _fields():
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        help_text = f"{f.metadata['doc']} [{f.metadata['env']}]"
        default = getattr(defaults, f.name)
        if "bool" in kind:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            cast = int if kind.startswith("int") else float if kind.startswith("float") else (
                Path if "Path" in kind else str)
            p.add_argument(flag, dest=f.name, type=cast, default=default, help=help_text, metavar=f.name.upper())
    return p


def main(argv: list[str] | None = None) -> int:
    defaults = Settings.from_env()
    args = build_parser(defaults).parse_args(sys.argv[1:] if argv is None else argv)
    settings = defaults.replace(**{f.name: getattr(args, f.name) for f in _fields()})
    from streamrec.observability.logging_setup import configure_logging
    configure_logging(settings, process_name="learner")
    from streamrec.kafka.embedded import EmbeddedBroker
    from learner.service import Learner

    broker = None
    if not settings.bootstrap_servers:
        broker = EmbeddedBroker().start()
        settings = settings.replace(bootstrap_servers=broker.bootstrap_servers)
        logging.getLogger("learner").info("no KAFKA_BOOTSTRAP_SERVERS: embedded broker on %s",
                                          broker.bootstrap_servers)
    learner = Learner(settings)

    def on_signal(signum, frame):
        logging.getLogger("learner").info("signal %d: finishing the current cycle, checkpointing", signum)
        learner.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        learner.run()
    finally:
        if broker is not None:
            broker.stop()
    return 1 if learner.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
