"""Request filters on item attributes, end to end: items with attributes published on the
embedded broker, a real `streamrec serve` process answering from a published model through an
HNSW index, over HTTP (POST body, GET query) and the request topic. The few matching items lie
farthest from the user, where no nearest-neighbour search of the whole catalogue finds them:
the answers hold them anyway, and malformed filters are 400s (error replies on the topic)
naming the field."""
from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pytest
from confluent_kafka import Producer

from harness.polling import wait_until
from harness.processes import Proc
from tests.processes import json_request
from streamrec.client import RecClient, RecRequestError, TopicRecClient
from streamrec.contracts import model_store
from streamrec.contracts.events import encode_events
from streamrec.contracts.topics import EVENTS, ITEMS, MODEL_UPDATES
from streamrec.kafka.config import ensure_topics, producer_config

pytestmark = pytest.mark.integration

N_ITEMS = 400
DIM = 8
RARE = [f"i{j}" for j in range(0, N_ITEMS, 80)]     # 5 items of category "rare"


def _item(j: int) -> dict:
    return {"item_id": f"i{j}", "title": f"Item {j}", "attributes": {
        "category": "rare" if f"i{j}" in RARE else "common", "price": j % 50, "used": j % 2 == 1}}


def _vectors() -> np.ndarray:
    """Random unit vectors, except that the rare items point away from the reader's items (i1, i2)."""
    vectors = np.random.default_rng(11).standard_normal((N_ITEMS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    away = -(vectors[1] + vectors[2]) / np.linalg.norm(vectors[1] + vectors[2])
    for n, item in enumerate(RARE):
        vectors[int(item[1:])] = away + 0.01 * n
    return vectors


def http(url: str, body: dict | None = None) -> tuple[int, dict]:
    if body is None:
        return json_request(url)
    return json_request(url, "POST", json.dumps(body).encode(), {"Content-Type": "application/json"})


def _ids(answer: dict) -> list[str]:
    return [entry["item_id"] for entry in answer["items"]]


@pytest.fixture
def serving(settings):
    settings = settings.replace(partitions=2, vector_dim=DIM, serving_index_refresh_s=0.1,
                                serving_hnsw_threshold=100, serving_exploration=0.0)
    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    for j in range(N_ITEMS):
        producer.produce(settings.topic(ITEMS), key=f"i{j}".encode(), value=json.dumps(_item(j)).encode())
    # An item whose attributes break the contract: skipped by serving (the streams worker
    # dead-letters it: test_item_lifecycle), without costing the valid items around it.
    producer.produce(settings.topic(ITEMS), key=b"bad", value=b'{"item_id": "bad", "attributes": {"p": [1]}}')
    for t, item in enumerate(["i1", "i2"]):
        producer.produce(settings.topic(EVENTS), key=b"reader", value=encode_events(
            [{"user_id": "reader", "item_id": item, "event_type": "click", "timestamp": 1.7e9 + t}]))
    ann = model_store.write_version(settings.state_dir / "models", 1, [f"i{j}" for j in range(N_ITEMS)],
                                    _vectors(), {})
    producer.produce(settings.topic(MODEL_UPDATES), key=model_store.MODEL_KEY, value=ann.encode())
    assert producer.flush(10) == 0
    with Proc("serve", settings, "http_port") as proc:
        proc.wait_ready(120)
        base = proc.url
        assert wait_until(lambda: http(f"{base}/recommendations?user_id=reader&k=1")[1].get("model_version") == 1
                          and http(f"{base}/users/reader")[0] == 200
                          and http(f"{base}/items/i{N_ITEMS - 1}")[1].get("attributes"), timeout=60)
        yield proc


def test_filtered_answers_over_http_and_the_request_topic(serving):
    base, client = serving.url, RecClient(serving.url, timeout=10)
    # The rare items are the reader's least relevant: an unfiltered list never shows them.
    assert not set(_ids(client.recommend("reader", k=50))) & set(RARE)
    assert sorted(_ids(client.recommend("reader", k=5, filters={"category": "rare"}))) == sorted(RARE)
    cheap_new = client.recommend("reader", k=8, filters={"price": {"gte": 10, "lt": 13}, "used": False})
    assert len(cheap_new["items"]) == 8
    for item_id in _ids(cheap_new):
        attributes = http(f"{base}/items/{item_id}")[1]["attributes"]
        assert 10 <= attributes["price"] < 13 and attributes["used"] is False
    some = _ids(client.recommend("reader", k=20, filters={"category": {"in": ["rare", "none"]},
                                                          "price": {"not_in": [0]}}))
    assert sorted(some) == sorted(RARE[1:])                       # i0 has price 0
    query = urllib.parse.urlencode({"user_id": "nobody", "k": 3, "filters": json.dumps({"category": "rare"})})
    status, answer = http(f"{base}/recommendations?{query}")
    assert status == 200 and len(answer["items"]) == 3 and set(_ids(answer)) <= set(RARE)
    with TopicRecClient(serving.settings, timeout=20) as topic:
        answer = topic.recommend("reader", k=5, filters={"category": "rare"})
        assert sorted(_ids(answer)) == sorted(RARE)
        reply = topic.request_raw(json.dumps({"request_id": "bad-op", "user_id": "reader",
                                              "filters": {"price": {"between": [1, 2]}}}).encode(), "bad-op")
        assert (reply["field"], reply["status"]) == ("filters.price", 400) and "between" in reply["error"]
    assert http(f"{base}/items/bad")[0] == 404


def test_the_command_line_passes_filters(serving, capsys):
    from harness.recommend_cli import main

    assert main(["--user", "reader", "--k", "5", "--url", serving.url, "--json",
                 "--filters", json.dumps({"category": "rare"})]) == 0
    assert sorted(_ids(json.loads(capsys.readouterr().out))) == sorted(RARE)
    with pytest.raises(SystemExit) as caught:                      # not a JSON object: a usage error
        main(["--user", "reader", "--url", serving.url, "--filters", "category=rare"])
    assert caught.value.code == 2
    assert main(["--user", "reader", "--url", serving.url, "--filters", '{"price": {"lt": "x"}}']) == 1
    assert "filters.price.lt" in capsys.readouterr().err


def test_malformed_filters_are_400s_naming_the_field(serving):
    client = RecClient(serving.url, timeout=10)
    for filters, field in [("books", "filters"), ({"price": {"lt": "cheap"}}, "filters.price.lt"),
                           ({"category": ["rare"]}, "filters.category"), ({"price": float("inf")}, "filters.price"),
                           ({"category": {"in": ["x"] * 1001}}, "filters.category.in")]:
        with pytest.raises(RecRequestError) as caught:
            client.recommend("reader", k=5, filters=filters)
        assert (caught.value.status, caught.value.field) == (400, field), filters
    assert http(f"{serving.url}/recommendations?user_id=reader&filters=%7B")[1]["field"] == "filters"
    assert client.recommend("reader", k=5, filters={"category": "rare"})["items"]   # still answering
