"""Recommendation clients over the request/response topics (confluent-kafka and aiokafka).

The client reads its reply topic from the end offsets it takes when it starts (before any
request is sent), so a reply can never slip past it; replies for other request ids (other
clients sharing ``rec-responses``) are skipped. Use a reply topic of your own (``reply_to``)
when many clients run at once, so each reads only its own answers.

With no ``settings`` (or settings with no ``KAFKA_BOOTSTRAP_SERVERS``) a client finds the
running ``streamrec up`` itself (:func:`streamrec.kafka.runfile.find_broker`: the run file
of its state directory, else the embedded broker's fixed port), so ``TopicRecClient()``
needs no configuration beside a running ``up``.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from streamrec.client.errors import RecRequestError, RecTimeout, RecUnavailable
from streamrec.client.request_doc import request_doc
from streamrec.settings import Settings
from streamrec.contracts.topics import REC_REQUESTS, REC_RESPONSES


def _check(reply: dict) -> dict:
    if reply.get("error") is not None:
        raise RecRequestError(int(reply.get("status") or 400), str(reply["error"]), reply.get("field"))
    return reply


def _encode_request(user_id: Any, k: int | None, reply_to: str, options: dict) -> tuple[bytes, str, bytes]:
    """``(value, request_id, key)`` of a recommendation request on the request topic.

    The document is the HTTP body plus ``reply_to`` (unless the options name one); the key is
    the user id, as the request topic's contract says.
    """
    doc = request_doc(user_id, k, options)
    doc.setdefault("reply_to", reply_to)
    return json.dumps(doc).encode(), doc["request_id"], str(user_id).encode()


def _decode_reply(value: bytes | None) -> dict | None:
    """The reply in a message of the reply topic; None for anything that is not a JSON object."""
    try:
        reply = json.loads(value)
    except (TypeError, ValueError):
        return None
    return reply if isinstance(reply, dict) else None


class _TopicClient:
    """Settings, timeout and topics of a topic client (the part both clients share)."""

    def __init__(self, settings: Settings | None, reply_to: str | None = None, timeout: float | None = None):
        from streamrec.kafka.runfile import find_broker, no_broker_found

        settings = Settings.from_env() if settings is None else settings
        found = find_broker(settings)
        if found is None:
            raise RecUnavailable(no_broker_found(settings))
        self.settings = settings = settings.replace(bootstrap_servers=found[0])
        self.timeout = settings.serving_request_timeout_s if timeout is None else timeout
        self.requests_topic = settings.topic(REC_REQUESTS)
        self.reply_to = reply_to or settings.topic(REC_RESPONSES)


class TopicRecClient(_TopicClient):
    """Synchronous client: one request at a time, confluent-kafka underneath."""

    def __init__(self, settings: Settings | None = None, reply_to: str | None = None,
                 timeout: float | None = None):
        from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

        from streamrec.kafka.config import confluent_config, producer_config

        super().__init__(settings, reply_to, timeout)
        settings = self.settings
        self._producer = Producer(producer_config(settings, **{"linger.ms": 0}))
        self._consumer = Consumer(confluent_config(settings, **{
            "group.id": f"streamrec-client-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
            "fetch.wait.max.ms": 10}))
        try:
            metadata = self._consumer.list_topics(self.reply_to, timeout=10)
            topic = metadata.topics.get(self.reply_to)
            if topic is None or topic.error is not None or not topic.partitions:
                raise RecUnavailable(f"reply topic {self.reply_to!r} does not exist")
            assignment = []
            for p in sorted(topic.partitions):
                _, high = self._consumer.get_watermark_offsets(TopicPartition(self.reply_to, p), timeout=10)
                assignment.append(TopicPartition(self.reply_to, p, high))
        except KafkaException as exc:
            self._consumer.close()
            raise RecUnavailable(f"Kafka at {settings.bootstrap_servers} did not answer: {exc}") from None
        self._consumer.assign(assignment)

    def request_raw(self, value: bytes, request_id: str | None, key: bytes | None = None) -> dict:
        """Send raw bytes as a request and return the reply carrying ``request_id`` (unchecked)."""
        self._producer.produce(self.requests_topic, key=key, value=value)
        if self._producer.flush(self.timeout) > 0:
            raise RecTimeout(f"request not acknowledged by the broker within {self.timeout}s")
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self._consumer.poll(min(left, 0.5))
            if msg is None or msg.error() is not None:
                continue
            reply = _decode_reply(msg.value())
            if reply is not None and reply.get("request_id") == request_id:
                return reply
        raise RecTimeout(f"no reply to request {request_id!r} on {self.reply_to!r} within {self.timeout}s")

    def recommend(self, user_id: Any, k: int | None = None, **options: Any) -> dict:
        return _check(self.request_raw(*_encode_request(user_id, k, self.reply_to, options)))

    def close(self) -> None:
        self._consumer.close()
        self._producer.flush(1)

    def __enter__(self) -> "TopicRecClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncTopicRecClient(_TopicClient):
    """Asynchronous client: any number of requests in flight, matched by ``request_id``."""

    def __init__(self, settings: Settings | None = None, reply_to: str | None = None,
                 timeout: float | None = None):
        super().__init__(settings, reply_to, timeout)
        self._pending: dict[str | None, asyncio.Future] = {}
        self._producer = self._consumer = self._reader = None

    async def start(self) -> "AsyncTopicRecClient":
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        from streamrec.kafka.config import aiokafka_config

        conf = aiokafka_config(self.settings)
        self._producer = AIOKafkaProducer(**conf, linger_ms=0)
        self._consumer = AIOKafkaConsumer(**conf, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=10)
        await self._producer.start()
        await self._consumer.start()
        if self.reply_to not in await self._consumer.topics():
            await self.close()
            raise RecUnavailable(f"reply topic {self.reply_to!r} does not exist")
        tps = [TopicPartition(self.reply_to, p) for p in sorted(self._consumer.partitions_for_topic(self.reply_to))]
        self._consumer.assign(tps)
        for tp, offset in (await self._consumer.end_offsets(tps)).items():
            self._consumer.seek(tp, offset)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self._consumer:
            reply = _decode_reply(msg.value)
            if reply is None:
                continue
            future = self._pending.get(reply.get("request_id"))
            if future is not None and not future.done():
                future.set_result(reply)

    async def request_raw(self, value: bytes, request_id: str | None, key: bytes | None = None) -> dict:
        if self._reader is None:
            await self.start()
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await asyncio.wait_for(self._producer.send_and_wait(self.requests_topic, value=value, key=key),
                                   self.timeout)
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:
            raise RecTimeout(f"no reply to request {request_id!r} on {self.reply_to!r} "
                             f"within {self.timeout}s") from None
        finally:
            self._pending.pop(request_id, None)

    async def recommend(self, user_id: Any, k: int | None = None, **options: Any) -> dict:
        return _check(await self.request_raw(*_encode_request(user_id, k, self.reply_to, options)))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        for part in (self._consumer, self._producer):
            if part is not None:
                await part.stop()
        self._consumer = self._producer = None

    async def __aenter__(self) -> "AsyncTopicRecClient":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()
