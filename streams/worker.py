"""``streamrec streams``: run one streams worker.

Start several (same settings, different ``--port``) to split the partitions between them;
partitions are the unit of parallelism.
"""
from __future__ import annotations

import argparse
import asyncio
import logging

import faust
from aiohttp import web

from streamrec.kafka.broker_watch import BrokerWatch, wait_for_broker
from streamrec.kafka.model_follower import follow_models, refusal_reason
from streamrec.observability.health import add_health_routes
from streamrec.settings import Settings
from streamrec.settings_args import (EVENT_INPUT, KAFKA, MODELS, ONLINE_STATE, PROCESS, USER_HISTORY,
                                      parse_settings, settings_parser)
from streams import metrics
from streams.app import StreamsApp

log = logging.getLogger(__name__)


def build(settings: Settings, watch: BrokerWatch | None = None) -> StreamsApp:
    streams = StreamsApp(settings)
    app = streams.app
    watch = watch or BrokerWatch(settings)

    @app.task
    async def watch_broker() -> None:
        # Faust/aiokafka reconnect by themselves; this makes an outage show on /readyz.
        await watch.run()

    @app.task
    async def follow_model_updates() -> None:
        def adopt(snapshot, announcement) -> None:
            streams.item_vectors.replace(snapshot.item_ids, snapshot.item_vectors, snapshot.version)
            metrics.MODEL_VERSION.set(snapshot.version)
            log.info("item vectors from model version %d (%d items)", snapshot.version, len(snapshot.item_ids))

        def refused(announcement, exc: Exception) -> None:
            reason = refusal_reason(announcement, exc)
            metrics.MODEL_REFUSED.labels(reason).inc()
            log.error("model announcement %s refused (%s), keeping the item vectors of version %s: %s",
                      announcement.version if announcement else "?", reason, streams.item_vectors.version, exc)
        await follow_models(settings, adopt, refused)

    @app.task
    async def serve_http() -> None:
        web_app = web.Application()
        add_health_routes(web_app, lambda: watch.reasons() + streams.ready_reasons())
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.streams_web_port).start()
        log.info("streams worker metrics on http://%s:%d/metrics", settings.http_host, settings.streams_web_port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    return streams


# Every setting the worker reads (tests/unit/test_settings_args.py checks this against the code).
READS = (*KAFKA, *EVENT_INPUT, "dlq_max_copy_bytes", *USER_HISTORY, *ONLINE_STATE, "take_batch",
         "take_within_s", *MODELS, *PROCESS, "streams_web_port")


def build_parser() -> argparse.ArgumentParser:
    # --port: the spelling this command had before every setting became an option.
    return settings_parser("streamrec streams", READS, __doc__.split("\n\n")[0],
                           aliases={"streams_web_port": ["--port"]})


def main(argv: list[str] | None = None) -> int:
    from streamrec.observability.logging_setup import configure_logging
    from streamrec.kafka.runtime import embedded_or_configured

    _, settings = parse_settings(build_parser(), argv)
    configure_logging(settings)
    with embedded_or_configured(settings) as settings:
        # Started before its broker: /readyz says why (503) and the wait retries with backoff.
        watch = wait_for_broker(settings, health_port=settings.streams_web_port)
        streams = build(settings, watch)
        worker = faust.Worker(streams.app, loglevel=settings.log_level.lower(), quiet=True,
                              redirect_stdouts=False, override_logging=False)
        worker.execute_from_commandline()
    return 0
