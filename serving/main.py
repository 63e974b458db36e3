"""``streamrec serve``: the serving process (HTTP API, request-topic agent, state replica).

Every serving setting is an option here and an environment variable (see ``--help``); the
command line wins over the environment. With no ``KAFKA_BOOTSTRAP_SERVERS`` an embedded
broker is started for the process's lifetime (useful only on its own: nothing else will
publish to it). SIGTERM and SIGINT stop it gracefully: the HTTP server stops accepting,
in-flight requests finish, the agent leaves its group, the consumers close.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from streamrec.settings import Settings

log = logging.getLogger(__name__)

# Settings that matter to serving beyond its own section.
_SHARED = ("bootstrap_servers", "topic_prefix", "partitions", "http_host", "http_port", "vector_dim",
           "recent_items", "user_vector_half_life_s", "popularity_half_life_s", "event_weights",
           "state_dir", "log_level", "log_json")


def _serving_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Settings) if f.name.startswith("serving_") or f.name in _SHARED]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrec serve", description=__doc__.split("\n\n")[0],
        epilog="Each option defaults to its environment variable, then to the default shown.")
    for f in _serving_fields():
        option = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{f.metadata['doc']} [env {f.metadata['env']}]"
        if "bool" in kind:
            parser.add_argument(option, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{help_text} (default {default})")
            continue
        convert = int if kind.startswith("int") else float if kind.startswith("float") else \
            Path if "Path" in kind else str
        parser.add_argument(option, dest=f.name, type=convert, default=None, metavar=f.name.split("_")[-1].upper(),
                            help=f"{help_text} (default {default})")
    parser.add_argument("--no-topic-agent", action="store_true",
                        help="answer HTTP only (no Faust agent on rec-requests)")
    return parser


def settings_from_args(args: argparse.Namespace, base: Settings | None = None) -> Settings:
    base = Settings.from_env() if base is None else base
    overrides = {f.name: getattr(args, f.name) for f in _serving_fields() if getattr(args, f.name, None) is not None}
    return base.replace(**overrides)


def tune_gc() -> None:
    """Keep the collector off the request path.

    The replica holds many long-lived objects (every user's state); full collections walking
    them showed up as a 27-127 ms p99 at 500 req/s. Freezing what exists once serving is
    ready, and collecting the youngest generation less often, gave p99 5.6 ms in the same
    benchmark. Reference cycles are still collected, only less often.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


async def serve(settings: Settings, *, topic_agent: bool = True) -> int:
    from serving.process import ServingProcess

    # Single-query searches are tiny: faiss' thread pool costs more than it saves here.
    import faiss
    faiss.omp_set_num_threads(1)
    # Faust's consumer thread holds the GIL for whole 5 ms switch intervals; requests waiting
    # on it showed p50 > 200 ms at 200 req/s. 0.5 ms gives p50 2.6 ms, p99 9.8 ms (bench).
    sys.setswitchinterval(0.0005)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    process = ServingProcess(settings, topic_agent=topic_agent)
    # start() waits for the broker as long as it takes: a SIGTERM meanwhile must still stop us.
    starting = asyncio.create_task(process.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await process.stop()
        return 0
    stopping.cancel()
    starting.result()
    tune_gc()
    print(f"streamrec serving on {process.url} (model version {process.holder.current.version})", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping serving")
        await process.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"streamrec serve: {exc}", file=sys.stderr)
        return 2
    from streamrec.observability.logging_setup import configure_logging
    configure_logging(settings, process_name="serving")
    from streamrec.kafka.runtime import embedded_or_configured

    with embedded_or_configured(settings) as resolved:
        return asyncio.run(serve(resolved, topic_agent=not args.no_topic_agent))


if __name__ == "__main__":
    sys.exit(main())
