"""A deployment's own event types through the real streams worker and serving on the embedded broker.

With ``STREAMREC_EVENT_WEIGHTS`` declaring ``like`` and ``dislike``, both processes (children
started with those settings) accept and apply them: the streams worker's changelog and
serving's replica count them, the disliked item is rejected in both and never recommended
back, even with ``include_seen``. An undeclared type is still refused: a 400 from
``POST /events`` and a dead letter from the streams worker.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness.chaos.streams import read_states
from harness.polling import wait_until
from harness.processes import Proc
from harness.replay import EventPublisher
from streamrec.kafka.config import ensure_topics
from tests.integration.test_events_http import post_events
from tests.integration.test_streams import read_dlq

pytestmark = pytest.mark.integration

DECLARED = "view=0.5,click=1,like=2,dislike=-1"


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _post_when_writable(url: str, body) -> tuple[int, dict]:
    """``POST /events``, again after each 503 (serving's producer still starting: nothing written)."""
    answers: list[tuple[int, dict]] = []
    wait_until(lambda: answers.append(post_events(url, body)) or answers[-1][0] != 503, timeout=60)
    return answers[-1]


def _recommended(url: str, user: str, **options) -> list[str]:
    query = urllib.parse.urlencode({"user_id": user, "k": 10, **options})
    return [entry["item_id"] for entry in _get(f"{url}/recommendations?{query}")["items"]]


def _event(user: str, item: str, kind: str, t: float) -> dict:
    return {"user_id": user, "item_id": item, "event_type": kind, "timestamp": 1.7e9 + t}


def test_declared_types_are_applied_by_streams_and_serving_and_undeclared_ones_dead_lettered(settings):
    settings = settings.replace(event_weights=DECLARED)
    ensure_topics(settings)
    with Proc("streams", settings, "streams_web_port") as streams, Proc("serve", settings, "http_port") as serve:
        streams.wait_ready(150)
        serve.wait_ready(150)
        # Others made i2 the most popular item, so nothing but the dislike keeps it from fan's list.
        others = [_event(f"other{n}", item, "like", n) for n in range(3) for item in ("i2", "i5", "i6")]
        mine = [_event("fan", "i1", "like", 10), _event("fan", "i2", "dislike", 11), _event("fan", "i3", "click", 12)]
        status, body = _post_when_writable(serve.url, others + mine)
        assert status == 202 and body["accepted"] == len(others + mine), body
        status, body = post_events(serve.url, [_event("fan", "i4", "click", 13), _event("fan", "i4", "teleport", 14)])
        assert status == 400 and (body["reason"], body["index"], body["field"]) == \
            ("unknown_event_type", 1, "event_type"), body
        publisher = EventPublisher(settings)
        publisher.publish_raw(json.dumps(_event("fan", "i4", "teleport", 15)).encode(), key=b"fan")
        publisher.flush()

        def serving_applied() -> dict | None:
            view = _get(f"{serve.url}/users/fan")
            return view if view and view["events_applied"] == 3 else None

        assert wait_until(serving_applied, timeout=60), _get(f"{serve.url}/users/fan")
        view = serving_applied()
        assert view["counts"] == {"like": 1, "dislike": 1, "click": 1} and view["rejected"] == ["i2"]
        assert wait_until(lambda: "i1" in _recommended(serve.url, "fan", include_seen="true"), timeout=60)
        assert "i2" not in _recommended(serve.url, "fan", include_seen="true")
        assert {"i1", "i2", "i3"}.isdisjoint(_recommended(serve.url, "fan"))
        assert wait_until(lambda: sum(s.applied for s in read_states(settings).values()) >= 12, timeout=120)
        fan = read_states(settings)["fan"]
        assert fan.counts == {"like": 1, "dislike": 1, "click": 1} and list(fan.rejected) == ["i2"]
        letters = read_dlq(settings, expected=1)
    assert [dict(m.headers())["reason"] for m in letters] == [b"unknown_event_type"]
