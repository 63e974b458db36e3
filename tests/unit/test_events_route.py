"""``POST /events`` over real HTTP, with serving's producer replaced by an in-memory log (the
broker itself: tests/integration/test_events_http.py): 202 only after every acknowledgement,
with the token of the positions; all or nothing on a bad element, naming its index and field;
the body bounded by the events message limit; 503 in bounded time; the admission turn given
back while the broker is waited for; counted in /metrics; described in /openapi.json."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import ClientSession

from serving.http_api import openapi_document
from streamrec.contracts.events import decode_message
from streamrec.settings import Settings
from tests.unit.conftest import MemoryLog


def event(user: str = "u1", **over) -> dict:
    return {"user_id": user, "item_id": "i1", "event_type": "click", "timestamp": 1.7e9, **over}


async def post(url: str, body, raw: bytes | None = None) -> tuple[int, dict, dict]:
    async with ClientSession() as session:
        async with session.post(url + "/events", data=raw if raw is not None else json.dumps(body)) as r:
            return r.status, await r.json(), dict(r.headers)


async def test_accepted_once_acknowledged_with_the_token_of_the_positions(serve):
    log = MemoryLog()
    url, settings, _ = await serve(log, partitions=4)
    status, body, _ = await post(url, [event("u1"), event("u2"), event("u1", item_id="i2", event_id="mine")])
    assert status == 202 and body["accepted"] == 3
    written = {p: len(values) - 1 for p, values in log.partitions.items()}
    assert body["token"] == ",".join(f"p{p}:{o}" for p, o in sorted(written.items()))
    applied = []
    for partition, values in log.partitions.items():   # each lands where the streams worker owns its user
        for offset, value in enumerate(values):
            message = decode_message(value, partition, offset, settings)
            assert not message.misrouted and not message.rejections
            applied += [ev for ev, _ in message.events]
    assert sorted(e.user_id for e in applied) == ["u1", "u1", "u2"]
    assert [e.item_id for e in applied if e.user_id == "u1"] == ["i1", "i2"]   # the body's order
    assert all(e.event_id for e in applied) and "mine" in {e.event_id for e in applied}
    status, body, _ = await post(url, event("u3"))     # one event, not an array
    assert status == 202 and body["accepted"] == 1


@pytest.mark.parametrize("body, raw, index, field, reason", [
    ([event(), event(event_type="like"), event(timestamp="now")], None, 1, "event_type", "unknown_event_type"),
    (event(user_id=None), None, None, "user_id", "missing_field"),
    (None, b"{not json", None, "body", "bad_json"),
    ([], None, None, "body", "empty_batch"),
    (None, b"", None, "body", "bad_json"),
    ("an event", None, None, "body", "not_an_object"),
])
async def test_a_bad_element_rejects_the_whole_body_naming_index_and_field(serve, body, raw, index, field, reason):
    log = MemoryLog()
    url, _, _ = await serve(log)
    status, answer, _ = await post(url, body, raw)
    assert status == 400 and not log.partitions   # nothing written
    assert (answer["index"], answer["field"], answer["reason"]) == (index, field, reason)
    if index is not None:
        assert answer["error"].startswith(f"element {index}: ") and answer["valid"] == 1
        assert [(e["index"], e["field"]) for e in answer["errors"]] == [(1, "event_type"), (2, "timestamp")]


async def test_the_body_is_bounded_by_the_events_message_limit_not_the_request_limit(serve):
    log = MemoryLog()
    url, settings, _ = await serve(log, serving_max_body_bytes=1024, max_message_bytes=20_000)
    many = [event(f"u{n}") for n in range(100)]
    assert settings.serving_max_body_bytes < len(json.dumps(many)) < settings.max_message_bytes
    status, body, _ = await post(url, many)
    assert status == 202 and body["accepted"] == 100
    status, body, _ = await post(url, [event(f"u{n}") for n in range(400)])
    assert status == 413 and body["field"] == "body" and "20000 bytes" in body["error"]
    async with ClientSession() as session:    # the other routes keep their own limit
        async with session.post(url + "/recommendations", data=json.dumps({"user_id": "x" * 2000})) as r:
            assert r.status == 413


async def test_no_producer_is_503_at_once(serve):
    url, _, _ = await serve(None)
    status, body, headers = await post(url, event())
    assert status == 503 and headers["Retry-After"] == "1" and body["acknowledged"] == 0


async def test_an_unacknowledged_write_is_503_in_bounded_time_and_holds_no_one_up(serve):
    url, _, _ = await serve(MemoryLog(hold=True), serving_ingest_timeout_s=1.0)
    started = time.monotonic()
    waiting = asyncio.create_task(post(url, [event("u1"), event("u2")]))
    await asyncio.sleep(0.2)
    async with ClientSession() as session:   # answered while the events wait for the broker
        async with session.get(url + "/recommendations?user_id=u9&k=3") as r:
            assert r.status == 200 and not waiting.done()
    status, body, headers = await waiting
    assert status == 503 and "did not acknowledge within 1s" in body["error"] and body["token"] == ""
    assert headers["Retry-After"] == "1" and time.monotonic() - started < 5


async def test_counted_and_timed_in_metrics(serve):
    url, _, _ = await serve(MemoryLog())
    await post(url, [event(), event(event_type="like")])
    await post(url, [event(), event("u2")])
    async with ClientSession() as session:
        async with session.get(url + "/metrics") as r:
            text = await r.text()
    assert 'streamrec_serving_requests_total{outcome="ok",path="http",route="events"}' in text
    assert 'streamrec_serving_requests_total{outcome="client_error",path="http",route="events"}' in text
    assert 'streamrec_serving_request_latency_seconds_count{path="http",route="events"}' in text
    assert 'streamrec_serving_http_events_total{outcome="accepted"}' in text


def test_openapi_describes_the_route():
    doc = openapi_document(Settings())
    post_events = doc["paths"]["/events"]["post"]
    assert set(post_events["responses"]) == {"202", "400", "413", "503"}
    assert doc["components"]["schemas"]["Event"]["required"] == ["user_id", "item_id", "event_type", "timestamp"]
