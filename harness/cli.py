"""The ``streamrec`` command line: one entry point that routes to each command's module.

Each command lives next to what it runs and exposes ``main(argv) -> int``; this file only
maps names to modules, so adding a command never touches another's code.
"""
from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("harness.supervisor", "run the whole system (broker unless configured, streams, learner, serving)"),
    "demo": ("harness.demo", "`up` plus a MovieLens 100K replay with live progress"),
    "replay": ("harness.replay", "publish a dataset's catalogue and events to Kafka"),
    "streams": ("streams.worker", "run one streams worker (Faust agents)"),
    "learner": ("learner.main", "run the continual learner"),
    "serve": ("serving.main", "run the serving process (HTTP and request topics)"),
    "recommend": ("harness.recommend_cli", "ask for recommendations for a user"),
    "evaluate": ("harness.evaluation.cli", "prequential evaluation against baselines"),
    "report": ("harness.evaluation.report", "redraw tables and plots from a results file"),
    "simulate": ("harness.simulation.cli", "closed-loop simulation of long-term effects"),
    "generate": ("harness.synthetic", "generate a synthetic event stream"),
    "bench": ("harness.bench.cli", "throughput, freshness, learner-cycle and memory benchmarks"),
    "status": ("harness.status", "live terminal dashboard read from the metrics endpoints"),
    "chaos": ("harness.chaos.cli", "fault-injection scenarios with a loss/duplication table"),
    "settings": ("harness.settings_cli", "print every setting with its current value"),
    "topics": ("harness.topics_cli", "create the system's topics on the configured cluster"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: streamrec COMMAND [options]   (streamrec COMMAND --help for its options)", "",
             "commands:"]
    for name, (module, text) in COMMANDS.items():
        lines.append(f"  {name.ljust(width)}  {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"streamrec: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"streamrec {name}: not available in this build ({module_name} is missing)", file=sys.stderr)
            return 2
        raise
    from streamrec.kafka.runtime import StartupError

    try:
        return int(module.main(rest) or 0)
    except StartupError as exc:  # an expected failure with its own explanation: no traceback
        print(f"streamrec {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
