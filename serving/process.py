"""One serving process: replica consumers, model holder, experiments, HTTP server, request agent, event ingest.

:class:`ServingProcess` starts and stops everything on the running event loop, so the same
object serves ``streamrec serve``, the integration tests and the benchmark (in-process, on a
free port).

Examples
--------
>>> async def demo(settings):                      # doctest: +SKIP
...     async with ServingProcess(settings) as serving:
...         await serving.wait_ready(30)
...         print(serving.url)
"""
from __future__ import annotations

import asyncio
import logging

import faiss

from aiohttp import web

from serving.event_ingest import EventIngest
from serving.experiments import ExperimentRegistry
from serving.experiments_api import ExperimentWriter
from serving.forwarding import Forwarder
from serving.http_api import build_app
from serving.model_holder import ModelHolder
from serving.ownership import Ownership
from serving.recommender_service import RecommenderService
from serving.replica_feeds import ReplicaFeeds, wait_until
from serving.request_agent import RequestAgent
from serving.state_replica import StateReplica
from streamrec.kafka.broker_watch import BrokerWatch
from streamrec.settings import Settings

log = logging.getLogger(__name__)


class ServingProcess:
    def __init__(self, settings: Settings, *, http: bool = True, topic_agent: bool = True):
        self.settings = settings
        self.ownership = Ownership.from_settings(settings)   # 0/1 unless sharded: every user is ours
        self.replica = StateReplica(settings)
        self.holder = ModelHolder(settings, self.replica)
        self.experiments = ExperimentRegistry(settings, self.holder, self.replica.arm_quality)
        self.service = RecommenderService(settings, self.replica, self.holder, self.experiments)
        self.feeds = ReplicaFeeds(settings, self.replica, self.holder, self.experiments, self.ownership)
        self.forwarder = Forwarder(settings, self.ownership) if self.ownership.sharded else None
        # Always built: its producer writes POST /events even when it answers no topic requests.
        self.agent = RequestAgent(settings, self.service, answer=topic_agent, forwarder=self.forwarder)
        self.http_enabled = http
        self.watch = BrokerWatch(settings)
        self.ingest = EventIngest(settings, broker_problem=self._broker_problem)
        self.experiment_writer = ExperimentWriter(settings, self.experiments)
        self._watch_task: asyncio.Task | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._catalogue_gone_logged: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.http_host}:{self.port}"

    def not_ready(self) -> list[str]:
        # The producer starts last: until it runs, POST /events and the admin API's writes answer 503.
        producer = [] if self.ingest.enqueue is not None else ["serving's producer not running yet"]
        return self.watch.reasons() + self.feeds.not_ready() + self.experiments.not_ready() + producer

    def _broker_problem(self) -> str | None:
        # Only "unreachable": a broker that lost its data still takes new events.
        return None if self.watch.reachable else self.watch.reasons()[0]

    def notes(self) -> list[str]:
        """What /readyz must tell although serving answers: a model whose catalogue is gone.

        After a restart on an empty broker with a kept state directory, the learner announces
        its newest version again while the ``items`` topic holds nothing: the model's items
        are then recommended with no catalogue entry behind them (no titles, no filters, no
        tombstones). Serving keeps answering from that model and says so here (and in its
        log, the first time /readyz reports it for a version) until the catalogue is
        published again or a new version arrives.
        """
        return self.experiments.notes() + self._catalogue_notes()

    def _catalogue_notes(self) -> list[str]:
        bundle = self.holder.current
        if not bundle.published or not bundle.ids or self.feeds.not_ready():
            return []
        catalogue = self.replica.catalogue
        missing = sum(1 for item_id in bundle.ids if item_id not in catalogue)
        if missing * 2 <= len(bundle.ids):
            self._catalogue_gone_logged = None
            return []
        note = (f"model version {bundle.version}: {missing:,} of its {len(bundle.ids):,} items are not in the "
                f"catalogue ({len(catalogue):,} items): the catalogue it was trained with is gone; publish it "
                "again (items topic) or wait for a newer model")
        if self._catalogue_gone_logged != bundle.version:
            self._catalogue_gone_logged = bundle.version
            log.warning("%s", note)
        return [note]

    async def start(self) -> "ServingProcess":
        # OpenMP's thread count is per calling thread: set it on the thread that searches.
        # One query over <=100k vectors is far cheaper than waking a thread pool (measured:
        # 22 ms per request with the default pool on 2 busy cores, 1 ms without).
        faiss.omp_set_num_threads(1)
        # HTTP first, so /readyz explains (503, "broker ... unreachable") while the broker
        # is not there yet; then wait for it (retrying with backoff, however long it takes).
        if self.http_enabled:
            app = build_app(self.service, self.not_ready, self.notes, self.ingest, self.experiment_writer,
                            [self.forwarder.middleware()] if self.forwarder is not None else ())
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port, backlog=1024)
            await site.start()
            self.port = self._runner.addresses[0][1]
            log.info("serving HTTP on %s", self.url)
        if self.ownership.sharded:
            log.info("serving instance %s: keeps the users of partitions %s; forwards the others' to %s",
                     self.ownership.label, self.ownership.owned_partitions(), ", ".join(self.ownership.peers))
        await self.watch.wait_reachable()
        self._watch_task = asyncio.create_task(self.watch.run())
        await self.feeds.start()
        await self.agent.start()
        self.ingest.enqueue = self.experiment_writer.enqueue = self.agent.enqueue
        return self

    async def wait_ready(self, timeout: float, *, agent: bool = False) -> None:
        """Wait until /readyz would answer 200 (and, with ``agent``, requests are assigned)."""
        ok = await wait_until(lambda: not self.not_ready() and (not agent or not self.agent.answering
                                                                 or self.agent.assigned()), timeout)
        if not ok:
            raise TimeoutError(f"serving not ready after {timeout}s: {self.not_ready()}")

    async def stop(self) -> None:
        # Stop taking requests first, then the consumers that feed them.
        self.ingest.enqueue = self.experiment_writer.enqueue = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
            self._watch_task = None
        try:
            await self.agent.stop()
        except Exception:
            log.exception("request agent did not stop cleanly")
        await self.feeds.stop()
        await self.experiments.close()
        if self.forwarder is not None:
            await self.forwarder.close()
        self.holder.close()

    async def __aenter__(self) -> "ServingProcess":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


class ServingThread:
    """A :class:`ServingProcess` on its own event loop in a daemon thread.

    For callers that are not asyncio programs themselves (tests with a synchronous client,
    the benchmark's load generator running on another loop).
    """

    def __init__(self, settings: Settings, **kwargs):
        import threading

        self.loop = asyncio.new_event_loop()
        self.settings, self._kwargs = settings, kwargs
        self.process: ServingProcess | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="serving", daemon=True)

    def start(self, ready_timeout: float = 60.0, *, agent: bool = False) -> "ServingThread":
        self._thread.start()
        self.process = self.call(self._create())   # built on its loop: Faust binds to the loop it sees
        self.call(self.process.start())
        self.call(self.process.wait_ready(ready_timeout, agent=agent))
        return self

    async def _create(self) -> ServingProcess:
        return ServingProcess(self.settings, **self._kwargs)

    def call(self, coro, timeout: float | None = 120.0):
        """Run ``coro`` on the serving loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            if self.process is not None:
                self.call(self.process.stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    @property
    def url(self) -> str:
        return self.process.url
