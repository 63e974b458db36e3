"""``streamrec bench NAME``: run one benchmark, print its table, write its JSON.

Subcommands are registered in :data:`SUBCOMMANDS` (name -> (module, help)); each module
provides ``add_arguments(parser)`` and ``run(args, settings) -> int``, so adding a benchmark
never touches another's code. With no ``KAFKA_BOOTSTRAP_SERVERS`` an embedded broker is
started for the run.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from streamrec.settings import Settings

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serving": ("harness.bench.serving_cli", "HTTP and topic latency, event-to-visible latency"),
    "streams": ("harness.bench.streams_cli", "ingest rate vs a raw consumer, freshness, memory per user"),
    "learner": ("harness.bench.learner", "learner cycle time, trigger to version swapped in serving"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="name", required=True, metavar="NAME")
    for name, (module_name, text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        try:
            importlib.import_module(module_name).add_arguments(p)
        except ModuleNotFoundError:
            p.set_defaults(_missing=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if getattr(args, "_missing", None):
        print(f"streamrec bench {args.name}: not available in this build ({args._missing})", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.name][0])
    from streamrec.kafka.runtime import embedded_or_configured

    with embedded_or_configured(Settings.from_env()) as settings:
        return int(module.run(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
