"""Read-your-writes on a real serving process and the embedded broker: a recommendation asked
``after=`` the token of a ``POST /events`` is answered from a replica that has applied that
write (the item just bought is excluded, ``stale`` is false); a token serving cannot reach in
the wait is answered anyway and marked ``stale``; a bad token is a 400."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from serving.process import ServingThread
from streamrec.kafka.embedded import free_port
from tests.integration.test_events_http import post_events

pytestmark = pytest.mark.integration


def recommend(url: str, **query) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/recommendations?{urllib.parse.urlencode(query)}", timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_an_answer_after_a_write_reflects_it_and_one_that_cannot_says_stale(settings):
    settings = settings.replace(http_port=free_port(), partitions=2, serving_read_your_writes_wait_s=0.5)
    serving = ServingThread(settings, topic_agent=False).start(60)
    try:
        history = [{"user_id": "buyer", "item_id": f"i{n}", "event_type": "click", "timestamp": 1.7e9 + n}
                   for n in range(5)]
        for n in range(20):   # a catalogue others use, so "bought" is a candidate for the buyer
            history += [{"user_id": f"other-{n}", "item_id": item, "event_type": "click",
                         "timestamp": 1.7e9 + 10 + n} for item in ("i0", "bought")]
        assert post_events(serving.url, history)[0] == 202
        # Every round: write the purchase, ask at once with its token: it is never recommended back
        # (in round 0 "bought" is trending and new to the buyer, so only the applied write hides it).
        for round_ in range(5):
            item = "bought" if round_ == 0 else f"bought-{round_}"
            status, written = post_events(serving.url, {"user_id": "buyer", "item_id": item,
                                                        "event_type": "purchase", "timestamp": time.time()})
            assert status == 202
            status, answer = recommend(serving.url, user_id="buyer", k=50, after=written["token"])
            assert status == 200 and answer["stale"] is False
            assert item not in {i["item_id"] for i in answer["items"]}
            user = json.load(urllib.request.urlopen(f"{serving.url}/users/buyer", timeout=10))
            assert user["counts"].get("purchase") == round_ + 1
        # An offset no write reached: answered after the wait, and says so.
        [partition] = {int(p[1:].split(":")[0]) for p in written["token"].split(",")}
        status, answer = recommend(serving.url, user_id="buyer", k=5, after=f"p{partition}:999999")
        assert status == 200 and answer["stale"] is True
        assert "stale" not in recommend(serving.url, user_id="buyer", k=5)[1]   # only when asked after=
        status, error = recommend(serving.url, user_id="buyer", after="p7:1")   # no partition 7
        assert status == 400 and error["field"] == "after"
        status, error = recommend(serving.url, user_id="buyer", after="zero")
        assert status == 400 and error["field"] == "after"
    finally:
        serving.stop()
