"""The ``streamrec`` command line: one entry point that routes to each command's ``main``.

Each command lives next to what it runs and exposes ``main(argv) -> int``. Its module is
imported only when that command runs: the processes load Faust, torch or faiss, which
``streamrec --help`` or ``streamrec status`` need not wait for.
"""
from __future__ import annotations

import sys
from typing import Callable

Main = Callable[[list[str]], int]
# name -> (the function importing the command's main, one-line help), in the order of `--help`
COMMANDS: dict[str, tuple[Callable[[], Main], str]] = {}


def command(name: str, text: str) -> Callable[[Callable[[], Main]], Callable[[], Main]]:
    def register(load: Callable[[], Main]) -> Callable[[], Main]:
        COMMANDS[name] = (load, text)
        return load
    return register


@command("up", "run the whole system (broker unless configured, streams, learner, serving)")
def _up() -> Main:
    from harness.supervisor import main
    return main


@command("demo", "`up` plus a MovieLens 100K replay with live progress")
def _demo() -> Main:
    from harness.demo import main
    return main


@command("replay", "publish a dataset's catalogue and events to Kafka")
def _replay() -> Main:
    from harness.replay import main
    return main


@command("streams", "run one streams worker (Faust agents)")
def _streams() -> Main:
    from streams.worker import main
    return main


@command("learner", "run the continual learner")
def _learner() -> Main:
    from learner.main import main
    return main


@command("serve", "run the serving process (HTTP and request topics)")
def _serve() -> Main:
    from serving.main import main
    return main


@command("recommend", "ask for recommendations for a user")
def _recommend() -> Main:
    from harness.recommend_cli import main
    return main


@command("evaluate", "prequential evaluation against baselines")
def _evaluate() -> Main:
    from harness.evaluation.cli import main
    return main


@command("report", "redraw tables and plots from a results file")
def _report() -> Main:
    from harness.evaluation.report import main
    return main


@command("simulate", "closed-loop simulation of long-term effects")
def _simulate() -> Main:
    from harness.simulation.cli import main
    return main


@command("generate", "generate a synthetic event stream")
def _generate() -> Main:
    from harness.synthetic import main
    return main


@command("bench", "throughput, freshness, learner-cycle and memory benchmarks")
def _bench() -> Main:
    from harness.bench.cli import main
    return main


@command("status", "live terminal dashboard read from the metrics endpoints")
def _status() -> Main:
    from harness.status import main
    return main


@command("chaos", "fault-injection scenarios with a loss/duplication table")
def _chaos() -> Main:
    from harness.chaos.cli import main
    return main


@command("settings", "print every setting with its current value")
def _settings() -> Main:
    from harness.settings_cli import main
    return main


@command("topics", "create the system's topics on the configured cluster")
def _topics() -> Main:
    from harness.topics_cli import main
    return main


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: streamrec COMMAND [options]   (streamrec COMMAND --help for its options)", "",
             "commands:"]
    for name, (_, text) in COMMANDS.items():
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
    command_main = COMMANDS[name][0]()
    from streamrec.kafka.runtime import StartupError

    try:
        return int(command_main(rest) or 0)
    except StartupError as exc:  # an expected failure with its own explanation: no traceback
        print(f"streamrec {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
