"""Watch the broker: is it reachable, do our topics exist, did it lose them?

Every long-running process (serving, the streams worker) runs one :class:`BrokerWatch`. It
asks the broker for its topic list every ``interval_s`` (one metadata request, a few ms) and
turns the answer into readiness reasons for ``/readyz``:

* ``broker <servers> unreachable: <error>`` while the metadata request fails. The Kafka
  clients themselves (aiokafka, Faust, librdkafka) keep reconnecting on their own; the watch
  only makes the outage visible instead of the process claiming to be ready. While the
  broker is down the probe backs off exponentially (0.5 s doubling to 5 s), so a long
  outage costs one connection attempt every 5 s.
* ``broker <servers> lost its data ...`` when the broker answers again but a topic is gone
  or a partition's high watermark went *down* (the embedded broker keeps everything in
  memory, so a restart loses every topic, and clients then auto-create them, possibly with
  another partition count). Missing topics are recreated with
  :func:`streamrec.kafka.config.ensure_topics` so new data has somewhere to go, but the reason stays:
  every consumer position, watermark and changelog offset this process holds refers to the
  lost log, so new events at reused offsets would be skipped as replays. Restart the process
  (its supervisor does) to start over from what the broker now holds. With Apache Kafka
  (durable, replicated logs, committed offsets) a broker restart loses nothing and this never
  fires: the clients reconnect and resume where they were, with no restart.

:func:`wait_for_broker` is the start-up form: it blocks until the broker answers (retrying
with the same backoff, forever unless a deadline is given) and creates missing topics, so a
process may be started before its broker.

Examples
--------
>>> watch = BrokerWatch(Settings(bootstrap_servers="127.0.0.1:9"))   # doctest: +SKIP
>>> watch.check(timeout=0.5); watch.reasons()                         # doctest: +SKIP
['broker 127.0.0.1:9 unreachable: ...']
"""
from __future__ import annotations

import asyncio
import logging
import time

from streamrec.kafka.config import confluent_config, ensure_topics
from streamrec.observability.health import HealthServer
from streamrec.settings import Settings
from streamrec.contracts.topics import EVENTS, TOPICS

log = logging.getLogger(__name__)

MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0


class BrokerWatch:
    """Reachability and topic presence of the broker, as readiness reasons."""

    def __init__(self, settings: Settings, interval_s: float = 1.0):
        self.settings = settings
        self.interval_s = interval_s
        self.reachable = False
        self.error: str | None = "not contacted yet"
        self.topics_lost = 0          # times the broker came back without our data
        self.lost: str | None = None  # what was lost (sticky: positions refer to the old log)
        self.checks = 0
        self._highwater: dict[tuple[str, int], int] = {}
        self._consumer = None
        self._had_topics = False
        self._admin = None
        self._wanted = {settings.topic(spec.name) for spec in TOPICS}

    def reasons(self) -> list[str]:
        reasons = [] if self.reachable else [f"broker {self.settings.bootstrap_servers} unreachable: {self.error}"]
        if self.lost:
            reasons.append(f"broker {self.settings.bootstrap_servers} lost its data ({self.lost}); "
                           "restart this process to resume from what the broker holds now")
        return reasons

    def check(self, timeout: float = 2.0) -> bool:
        """One probe (blocking): reachability, then recreate missing topics. True if reachable."""
        from confluent_kafka.admin import AdminClient

        self.checks += 1
        try:
            if self._admin is None:
                # One client for the process's life: librdkafka reconnects it by itself.
                self._admin = AdminClient(confluent_config(self.settings, **{"reconnect.backoff.max.ms": 2000}))
            metadata = self._admin.list_topics(timeout=timeout)
            missing = self._wanted - set(metadata.topics)
            if missing:
                if self._had_topics:
                    self._report_loss(f"topics {', '.join(sorted(missing))} missing")
                ensure_topics(self.settings, timeout=max(timeout, 5.0))
            self._had_topics = True
            self._check_highwater(metadata, timeout)
        except Exception as exc:   # KafkaException, timeouts: all mean "not usable now"
            if self.reachable or self.checks == 1:
                log.warning("broker %s unreachable: %s", self.settings.bootstrap_servers, exc)
            self.reachable, self.error = False, _short(exc)
            return False
        if not self.reachable and self.checks > 1:
            log.info("broker %s reachable again", self.settings.bootstrap_servers)
        self.reachable, self.error = True, None
        return True

    def _check_highwater(self, metadata, timeout: float) -> None:
        """A high watermark that went down means the log was lost (offsets will be reused)."""
        from confluent_kafka import Consumer, TopicPartition

        topic = self.settings.topic(EVENTS)
        partitions = metadata.topics.get(topic)
        if partitions is None or partitions.error is not None:
            return
        if self._consumer is None:
            self._consumer = Consumer(confluent_config(self.settings, **{"group.id": "streamrec-broker-watch",
                                                                         "enable.auto.commit": False}))
        for p in partitions.partitions:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            before = self._highwater.get((topic, p))
            if before is not None and high < before:
                self._report_loss(f"{topic}[{p}] high watermark {before} -> {high}")
            self._highwater[(topic, p)] = high

    def _report_loss(self, what: str) -> None:
        self.topics_lost += 1
        if self.lost is None:
            self.lost = what
            log.error("broker %s lost its data (%s; an in-memory broker restarted?): missing topics are "
                      "recreated, but this process's offsets and state refer to the lost log; restart it",
                      self.settings.bootstrap_servers, what)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Probe until cancelled (or ``stop`` is set): every ``interval_s``, backing off while down."""
        loop = asyncio.get_running_loop()
        backoff = MIN_BACKOFF_S
        while stop is None or not stop.is_set():
            ok = await loop.run_in_executor(None, self.check)
            delay = self.interval_s if ok else backoff
            backoff = MIN_BACKOFF_S if ok else min(backoff * 2, MAX_BACKOFF_S)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass

    async def wait_reachable(self, timeout: float | None = None) -> None:
        """Await the first successful probe (topics created), backing off between attempts."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = MIN_BACKOFF_S
        while not await loop.run_in_executor(None, self.check):
            if deadline is not None and time.monotonic() + backoff > deadline:
                raise TimeoutError(self.reasons()[0])
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)


def wait_for_broker(settings: Settings, health_port: int | None = None,
                    timeout: float | None = None) -> BrokerWatch:
    """Block until the broker answers and the topics exist (start-up of a synchronous main).

    The same wait as :meth:`BrokerWatch.wait_reachable`, run to completion. With
    ``health_port``, ``/healthz`` (200) and ``/readyz`` (503 with the reason) are served on
    it meanwhile, from a thread, and released before this returns so the process's own
    server can bind the port.
    """
    watch = BrokerWatch(settings)
    server = HealthServer(settings.http_host, health_port, lambda: watch.reasons() or ["starting"]) \
        if health_port else None
    try:
        asyncio.run(watch.wait_reachable(timeout))
    finally:
        if server is not None:
            server.close()
    return watch


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
