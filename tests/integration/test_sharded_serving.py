"""Sharded serving end to end: two real ``streamrec serve`` processes (instance 0/2 and 1/2) and a
streams worker on the embedded broker.

Each instance applies exactly the events of its partitions' users and adopts only their
changelog records, learns the rest for item-side state only, and answers for every user (the
other instance's forwarded, over HTTP and over the request topic); a read-your-writes token
works through a forward; once one instance is stopped, requests for its users are a clear 503
at the other, and its own users are still answered.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness.chaos.restart import counter
from harness.polling import wait_or_fail
from serving.forwarding import INSTANCE
from streamrec.client import TopicRecClient
from streamrec.contracts.events import owner_partition
from tests.integration.test_events_http import post_events
from tests.processes import Proc

pytestmark = pytest.mark.integration

PARTITIONS = 4
USERS = [f"shard-user-{n}" for n in range(120)]
EVENTS_PER_USER = 5


def get(url: str) -> tuple[int, dict, str | None]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.load(r), r.headers.get(INSTANCE)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers.get(INSTANCE)


def owner(user: str) -> int:
    return owner_partition(user, PARTITIONS) % 2


def history() -> list[dict]:
    return [{"user_id": user, "item_id": f"item-{(n * 7 + j) % 40}", "event_type": "click",
             "timestamp": 1.7e9 + n * 10 + j} for n, user in enumerate(USERS) for j in range(EVENTS_PER_USER)]


def _post(url: str, events: list[dict]) -> None:
    """POST ``events``, again while serving's producer is still starting (/readyz does not wait for
    it: the request-topic app joins its group after the replica is ready); nothing is written then."""
    def written() -> bool:
        status, answer = post_events(url, events)
        assert status == 202 or (status == 503 and "not running" in answer["error"]), answer
        return status == 202

    wait_or_fail(written, 120, f"{url} to take events", interval=1.0)


def _check_shares(servings: list[Proc]) -> None:
    """Each instance applied its users' events only, learned the others' item-side, holds its users only."""
    total = len(USERS) * EVENTS_PER_USER
    applied = lambda i: counter(servings[i].url, "streamrec_serving_events_applied_total")   # noqa: E731
    wait_or_fail(lambda: applied(0) + applied(1) >= total, 90, "both instances to apply every event once")
    for i, proc in enumerate(servings):
        share = sum(EVENTS_PER_USER for user in USERS if owner(user) == i)
        assert 0 < share < total
        assert applied(i) == share
        wait_or_fail(lambda: counter(proc.url, "streamrec_serving_events_item_side_only_total") == total - share,
                     60, f"instance {i} to learn the other instance's events item-side")
        assert counter(proc.url, "streamrec_serving_owned_partitions") == PARTITIONS / 2
        # The streams worker's changelog holds every user; an instance adopts its own users' only.
        wait_or_fail(lambda: counter(proc.url, "streamrec_serving_replica_records_total") > 0, 60,
                     f"instance {i} to read the changelog")
        assert counter(proc.url, "streamrec_serving_replica_users") == sum(owner(u) == i for u in USERS)


def _check_every_user_answered_everywhere(urls: list[str]) -> None:
    for user in USERS:
        for url in urls:
            status, answer, served_by = get(f"{url}/recommendations?user_id={user}&k=5")
            assert (status, served_by) == (200, f"{owner(user)}/2") and answer["state_time"] is not None
            status, view, served_by = get(f"{url}/users/{user}")
            assert (status, served_by) == (200, f"{owner(user)}/2")
            assert view["counts"] == {"click": EVENTS_PER_USER}


def _check_read_your_writes_through_a_forward(urls: list[str]) -> None:
    buyer = next(u for u in USERS if owner(u) == 1)
    for round_ in range(3):
        item = f"item-{round_}"        # in the catalogue the others' events make: a candidate
        status, written = post_events(urls[0], [{"user_id": buyer, "item_id": item, "event_type": "purchase",
                                                 "timestamp": time.time()}])
        assert status == 202
        query = urllib.parse.urlencode({"user_id": buyer, "k": 50, "after": written["token"]})
        status, answer, served_by = get(f"{urls[0]}/recommendations?{query}")
        assert (status, served_by, answer["stale"]) == (200, "1/2", False)
        assert item not in {i["item_id"] for i in answer["items"]}
        assert get(f"{urls[0]}/users/{buyer}")[1]["counts"]["purchase"] == round_ + 1


def _check_topic_requests(settings, users: list[str]) -> None:
    with TopicRecClient(settings, timeout=20) as client:
        # The group may still be settling after two joins: ask until requests are answered.
        wait_or_fail(lambda: _answers(client, users[0]), 120, "the request topic to be answered")
        for user in users:
            answer = client.recommend(user, k=5)
            assert answer["user_id"] == user and answer["state_time"] is not None   # the owner's state


def _answers(client: TopicRecClient, user: str) -> bool:
    try:
        return client.recommend(user, k=3)["state_time"] is not None
    except Exception:
        return False


def test_two_instances_share_the_users_and_answer_for_all_of_them(settings):
    settings = settings.replace(partitions=PARTITIONS, serving_read_your_writes_wait_s=5.0,
                                serving_forward_timeout_s=10.0)
    worker = Proc("streams", settings, "streams_web_port")
    servings = [Proc("serve", settings.replace(serving_instance=f"{i}/2"), "http_port") for i in range(2)]
    urls = [p.url for p in servings]
    for proc in servings:
        proc.extra_env["STREAMREC_SERVING_PEERS"] = ",".join(urls)
    try:
        worker.start()
        for proc in servings:
            proc.start()
        for proc in (worker, *servings):
            proc.wait_ready(150)
        body = history()
        for start in range(0, len(body), 100):
            _post(urls[start // 100 % 2], body[start:start + 100])
        _check_shares(servings)
        _check_every_user_answered_everywhere(urls)
        _check_read_your_writes_through_a_forward(urls)
        _check_topic_requests(settings, [next(u for u in USERS if owner(u) == i) for i in (0, 1)] + USERS[:6])

        servings[1].stop()
        theirs, mine = (next(u for u in USERS if owner(u) == i) for i in (1, 0))
        for path in (f"/recommendations?user_id={theirs}", f"/users/{theirs}"):
            status, error, _ = get(urls[0] + path)
            assert status == 503 and f"serving instance 1 ({urls[1]})" in error["error"]
        assert get(f"{urls[0]}/recommendations?user_id={mine}")[0] == 200
    finally:
        for proc in (*servings, worker):
            proc.stop()
