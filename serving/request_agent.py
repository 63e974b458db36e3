"""Recommendations over Kafka: a Faust agent on ``rec-requests`` replying on ``reply_to``.

A request is a JSON object on ``rec-requests`` (key ``user_id``)::

    {"request_id": "r-1", "user_id": "196", "k": 10, "reply_to": "rec-responses", ...options}

with the same options as ``POST /recommendations``. The answer goes to ``reply_to``
(default ``rec-responses``, under the deployment's topic prefix) keyed by ``request_id``,
carrying the same ``request_id``: the HTTP response body. Anything wrong gets an *error
reply*, never silence: ``{"request_id", "user_id", "error", "field", "status"}``, on
``reply_to`` with the ``request_id`` whenever the message names them (a body nested too deep
to decode included); when the message is not even JSON the reply goes to the default topic
with the ``request_id`` null.
A message over ``serving_max_body_bytes`` gets a 413 error reply unread (so ``request_id`` null).
``reply_to`` may not name one of the system's own topics (events, items, dead letters,
model updates, experiments, requests, Faust's internal topics), so a client cannot make serving write into them.

The agent runs in its own Faust app (``streamrec-serving``), so several serving processes
form one consumer group and split the request partitions. An unsharded serving process keeps
a full replica of all users' state (:mod:`serving.state_replica`), so whichever worker gets a
request's partition can answer it from the freshest state. Sharded instances
(:mod:`serving.ownership`) are assigned request partitions by the group, not by ownership, so
a request for a user another instance keeps is sent to it over HTTP
(:meth:`RequestAgent.handle_routed`) and its answer, or its error (503 when it is down), is
the reply. Requests older than
``serving_request_timeout_s`` (the client has given up) are dropped and counted instead of
answered, so a backlog after a restart drains quickly.

The app's producer is serving's one Kafka producer: it sends the replies and, through
:meth:`RequestAgent.enqueue`, the events of ``POST /events`` (:mod:`serving.event_ingest`).
With ``answer=False`` (``streamrec serve --no-topic-agent``) the app runs that producer only.
A message the producer cannot deliver within ``serving_ingest_timeout_s`` is given up (an
error to its sender) rather than kept for Faust's default 20 minutes: a reply or an
acknowledgement that late has no one waiting for it, and a stop would wait for it.
"""
from __future__ import annotations

import json
import logging
import re
import time

import faust

from serving import metrics
from serving.forwarding import Forward, Forwarder, decide
from serving.recommender_service import RecommenderService
from serving.request_model import TOPIC_FIELDS, BodyTooDeep, RecRequest, RequestError, decode_object, parse_request
from streamrec.kafka.config import faust_broker_kwargs, shorten_fetch_wait
from streamrec.settings import Settings
from streamrec.contracts.topics import (EVENTS, EVENTS_DLQ, EXPERIMENTS, ITEMS, ITEMS_DLQ, MODEL_UPDATES,
                                        REC_REQUESTS, REC_RESPONSES)

log = logging.getLogger(__name__)

SERVING_APP_ID = "streamrec-serving"
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_MAX_REPLY_TOPICS = 256


class RequestAgent:
    """The Faust app and agent answering ``rec-requests``."""

    def __init__(self, settings: Settings, service: RecommenderService, answer: bool = True,
                 forwarder: Forwarder | None = None):
        self.settings = s = settings
        self.service = service
        self.forwarder = forwarder   # sharded serving: requests for other instances' users go there
        self.answering = answer
        (s.state_dir / "faust-serving").mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            s.topic(SERVING_APP_ID), **faust_broker_kwargs(s), store="memory://", web_enabled=False,
            topic_partitions=s.partitions, topic_replication_factor=s.replication_factor,
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=max(0.5, s.session_timeout_s / 6),
            broker_request_timeout=max(30.0, s.session_timeout_s * 5),
            consumer_auto_offset_reset="earliest", key_serializer="raw", value_serializer="raw",
            datadir=str(s.state_dir / "faust-serving"), producer_linger=0.0,
            producer_request_timeout=s.serving_ingest_timeout_s)
        self.requests_topic = self.app.topic(s.topic(REC_REQUESTS), key_serializer="raw", value_serializer="raw",
                                             partitions=s.partitions)
        self.default_reply = s.topic(REC_RESPONSES)
        self._reply_topics: dict[str, faust.types.TopicT] = {}
        self._forbidden = {s.topic(t) for t in (EVENTS, EVENTS_DLQ, ITEMS, ITEMS_DLQ, MODEL_UPDATES, EXPERIMENTS,
                                                REC_REQUESTS)}
        self.answered = 0
        if answer:
            self.app.agent(self.requests_topic, name="answer_requests")(self._agent)
        else:
            self.app.producer_only = True   # no consumer, no group: the producer alone

    def assigned(self) -> bool:
        consumer = getattr(self.app, "_consumer", None)
        return bool(consumer is not None and any(tp.topic == self.requests_topic.get_topic_name()
                                                 for tp in consumer.assignment()))

    async def start(self) -> None:
        await self.app.start()

    async def enqueue(self, topic: str, key: bytes, value: bytes, partition: int):
        """Queue one message on the app's producer; returns the future of its record metadata."""
        return await self.app.producer.send(topic, key, value, partition, None, None)

    async def stop(self) -> None:
        await self.app.stop()

    def _reply_topic(self, name: str):
        topic = self._reply_topics.get(name)
        if topic is None:
            if len(self._reply_topics) >= _MAX_REPLY_TOPICS:
                self._reply_topics.clear()
            topic = self._reply_topics[name] = self.app.topic(name, key_serializer="raw", value_serializer="raw")
        return topic

    def _check_reply_to(self, value) -> str:
        if value is None or value == "":
            return self.default_reply
        if not isinstance(value, str) or not _TOPIC_NAME.match(value):
            raise RequestError("reply_to", "must be a topic name (letters, digits, '.', '_', '-')")
        internal = self.settings.topic("streamrec-")
        if value in self._forbidden or value.startswith(internal):
            raise RequestError("reply_to", "may not be one of the system's own topics")
        return value

    def _reply_target(self, envelope: dict) -> str:
        """Where a reply goes: the envelope's ``reply_to`` when it is allowed, else the default."""
        try:
            return self._check_reply_to(envelope.get("reply_to"))
        except RequestError:
            return self.default_reply

    def _ids(self, envelope: dict) -> tuple[str | None, str | None]:
        """The (request_id, user_id) an error reply carries, as far as the envelope tells them."""
        request_id, user_id = envelope.get("request_id"), envelope.get("user_id")
        request_id = str(request_id)[:128] if isinstance(request_id, (str, int)) and not isinstance(
            request_id, bool) else None
        user_id = str(user_id)[: self.settings.max_id_length] if isinstance(user_id, (str, int)) else None
        return request_id, user_id

    def handle(self, raw: bytes | None) -> tuple[str, bytes, bytes]:
        """Answer one request message: (reply topic, reply key, reply value). Never raises.

        Whatever is wrong, the reply goes to the request's ``reply_to`` (when it is a topic a
        reply may go to) with its ``request_id``, as far as the message lets them be read: a
        body too deep to decode still gives up its top-level fields.
        """
        envelope, req, body, outcome = self._parse(raw)
        if req is not None:
            body, outcome = self._attempt(envelope, self.service.recommend, req)
        return self._reply(envelope, body, outcome)

    async def handle_routed(self, raw: bytes | None) -> tuple[str, bytes, bytes]:
        """:meth:`handle`, but a request for a user another serving instance keeps is answered by it
        (sharded serving, :mod:`serving.forwarding`): its answer, or its error, becomes the reply."""
        envelope, req, _, _ = self._parse(raw)
        target = decide(self.forwarder.ownership, req.user_id, None) if req is not None else None
        if not isinstance(target, Forward):
            return self.handle(raw)
        status, answer = await self.forwarder.recommend(target, {k: v for k, v in envelope.items()
                                                                if k != "reply_to"})
        if status == 200:
            return self._reply(envelope, answer, "ok")
        error = {"error": answer.get("error", "error"), "field": answer.get("field"), "status": status}
        return self._reply(envelope, error, "client_error" if status < 500 else "error")

    def _parse(self, raw: bytes | None) -> tuple[dict, RecRequest | None, dict | None, str]:
        """(envelope, the request, or None and the error reply's body and outcome)."""
        envelope: dict = {}

        def parse() -> RecRequest:
            nonlocal envelope
            if raw is not None and len(raw) > self.settings.serving_max_body_bytes:
                raise RequestError("body", f"request larger than {self.settings.serving_max_body_bytes} bytes",
                                   status=413)
            if raw is None:
                raise RequestError("body", "must be a JSON object")
            try:
                envelope = decode_object(raw)
            except BodyTooDeep as exc:
                envelope = exc.envelope()
                raise
            self._check_reply_to(envelope.get("reply_to"))
            if self._ids(envelope)[0] is None:
                raise RequestError("request_id", "is required on the request topic")
            return parse_request({k: v for k, v in envelope.items() if k != "reply_to"}, self.settings,
                                 allowed=TOPIC_FIELDS)

        result, outcome = self._attempt(envelope, parse)
        return (envelope, result, None, outcome) if outcome == "ok" else (envelope, None, result, outcome)

    def _attempt(self, envelope: dict, work, *args) -> tuple:
        """``(work(*args), "ok")``, or an error reply's body and outcome: a failure still gets an answer."""
        try:
            return work(*args), "ok"
        except RequestError as exc:
            return {"error": exc.message, "field": exc.field, "status": exc.status}, "client_error"
        except Exception as exc:
            log.exception("request %r failed", self._ids(envelope)[0])
            return {"error": f"internal error: {type(exc).__name__}", "field": None, "status": 500}, "error"

    def _reply(self, envelope: dict, body: dict, outcome: str) -> tuple[str, bytes, bytes]:
        if outcome != "ok":
            request_id, user_id = self._ids(envelope)
            body = {"request_id": request_id, "user_id": user_id, **body}
        metrics.REQUESTS.labels("topic", "recommendations", outcome).inc()
        key = (self._ids(envelope)[0] or "").encode()
        return self._reply_target(envelope), key, json.dumps(body, separators=(",", ":")).encode()

    async def _agent(self, stream):
        timeout = self.settings.serving_request_timeout_s
        shorten_fetch_wait(self.app)
        async for event in stream.events():
            started = time.perf_counter()
            sent_at = event.message.timestamp
            if sent_at and time.time() - sent_at > timeout:
                metrics.REQUESTS.labels("topic", "recommendations", "expired").inc()
                continue
            reply_to, key, value = (self.handle(event.value) if self.forwarder is None
                                    else await self.handle_routed(event.value))
            try:
                await self._reply_topic(reply_to).send(key=key, value=value)
            except Exception:
                log.exception("could not send the reply to %r", reply_to)
                metrics.REQUESTS.labels("topic", "recommendations", "reply_failed").inc()
            self.answered += 1
            metrics.REQUEST_LATENCY.labels("topic", "recommendations").observe(time.perf_counter() - started)
