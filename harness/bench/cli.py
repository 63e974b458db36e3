"""``streamrec bench NAME``: run one benchmark, print its table, write its JSON.

Subcommands are listed in :data:`SUBCOMMANDS` (name -> (module, help)); each module
provides ``add_arguments(parser)`` and ``run(args, settings) -> int``, so adding a benchmark
never touches another's code. With no ``KAFKA_BOOTSTRAP_SERVERS`` an embedded broker is
started for the run.
"""
from __future__ import annotations

import argparse
import sys
from types import ModuleType

from harness.bench import learner as learner_bench, serving_cli, streams_cli
from streamrec.settings import Settings

SUBCOMMANDS: dict[str, tuple[ModuleType, str]] = {
    "serving": (serving_cli, "HTTP and topic latency, event-to-visible latency"),
    "streams": (streams_cli, "ingest rate vs a raw consumer, freshness, memory per user"),
    "learner": (learner_bench, "learner cycle time, trigger to version swapped in serving"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="name", required=True, metavar="NAME")
    for name, (module, text) in SUBCOMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=text, description=text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    module = SUBCOMMANDS[args.name][0]
    from streamrec.kafka.runtime import embedded_or_configured

    with embedded_or_configured(Settings.from_env()) as settings:
        return int(module.run(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
