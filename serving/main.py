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
import logging
import signal
import sys

from streamrec.kafka.runtime import embedded_or_configured
from streamrec.observability.logging_setup import configure_logging
from streamrec.settings import Settings
from streamrec.settings_args import (EVENT_INPUT, KAFKA, MODELS, ONLINE_STATE, PROCESS, USER_HISTORY,
                                     parse_settings, section, settings_parser)

log = logging.getLogger(__name__)

# Every setting serving reads (tests/unit/test_settings_args.py checks this against the code).
READS = (*KAFKA, *EVENT_INPUT, *USER_HISTORY, *ONLINE_STATE, *MODELS, *PROCESS, "http_port",
         *section("serving_"), *section("cooccurrence_"))


def build_parser() -> argparse.ArgumentParser:
    parser = settings_parser("streamrec serve", READS, __doc__.split("\n\n")[0])
    parser.add_argument("--no-topic-agent", action="store_true",
                        help="answer HTTP only (no Faust agent on rec-requests)")
    return parser


def tune_gc() -> None:
    """Keep the collector off the request path.

    The replica holds many long-lived objects (every user's state); full collections walking
    them showed up in the tail latency (``streamrec bench serving``). Freezing what exists
    once serving is ready, and collecting the youngest generation less often, keeps them off
    it. Reference cycles are still collected, only less often.
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
    # Faust's consumer thread holds the GIL for whole 5 ms switch intervals, and requests
    # waited on it; a tenth of that keeps the median answer low (`streamrec bench serving`).
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
    shard = f", instance {process.ownership.label}" if process.ownership.sharded else ""
    print(f"streamrec serving on {process.url} (model version {process.holder.current.version}{shard})", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping serving")
        await process.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    from serving.ownership import Ownership, ShardingError

    parser = build_parser()
    args, settings = parse_settings(parser, argv)
    try:
        Ownership.from_settings(settings)   # before any broker or port: a contradiction ends here
    except ShardingError as exc:
        parser.error(str(exc))
    configure_logging(settings, process_name="serving")
    with embedded_or_configured(settings) as settings:
        # The wait for the broker is ServingProcess.start's (BrokerWatch.wait_reachable), on the
        # event loop, so /readyz answers meanwhile and a SIGTERM still stops the process.
        return asyncio.run(serve(settings, topic_agent=not args.no_topic_agent))


if __name__ == "__main__":
    sys.exit(main())
