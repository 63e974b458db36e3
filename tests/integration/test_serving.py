"""Serving end to end on the embedded broker, with real faiss and a real Faust agent.

One serving process (HTTP and request agent) runs for the whole module in its own thread;
each test uses its own users and items so the tests do not depend on one another's order,
except that model versions only go up.
"""
from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
from confluent_kafka import Producer

from harness.polling import wait_until
from serving.process import ServingThread
from tests.processes import json_request
from streamrec.contracts import model_store
from streamrec.kafka.embedded import free_port
from streamrec.client import AsyncRecClient, RecClient, TopicRecClient
from streamrec.contracts.events import encode_events
from streamrec.kafka.config import ensure_topics, producer_config
from streamrec.settings import Settings
from streamrec.contracts.topics import EVENTS, ITEMS, MODEL_UPDATES

pytestmark = pytest.mark.integration

N_ITEMS = 200
DIM = 16


@dataclass
class Env:
    settings: Settings
    serving: ServingThread
    producer: Producer
    ids: list[str]
    vectors: np.ndarray

    @property
    def process(self):
        return self.serving.process

    def events(self, user_id: str, item_ids: list[str], t0: float = 1.7e9) -> None:
        for j, item_id in enumerate(item_ids):
            self.producer.produce(self.settings.topic(EVENTS), key=user_id.encode(), value=encode_events(
                [{"user_id": user_id, "item_id": item_id, "event_type": "click", "timestamp": t0 + j}]))
        assert self.producer.flush(10) == 0   # acknowledged by the broker

    def publish_model(self, ids: list[str], vectors: np.ndarray) -> int:
        version = self.process.holder.current.version + 1
        ann = model_store.write_version(self.settings.state_dir / "models", version, ids, vectors, {})
        self.producer.produce(self.settings.topic(MODEL_UPDATES), key=model_store.MODEL_KEY, value=ann.encode())
        assert self.producer.flush(10) == 0
        return version


# Serving runs in this process, so its state changes within milliseconds: poll often.
wait_for = partial(wait_until, timeout=60.0, interval=0.02)


def http(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict]:
    return json_request(url, method, body)


@pytest.fixture(scope="module")
def env(broker, tmp_path_factory):
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}-",
                        state_dir=tmp_path_factory.mktemp("serving") / "state", partitions=2, vector_dim=DIM,
                        http_port=free_port(), serving_index_refresh_s=0.1, serving_max_body_bytes=4096,
                        # These tests check answers, not admission (test_reliability_serving does): bursts of
                        # 20 concurrent requests must not be shed on a machine other work keeps busy.
                        serving_queue_target_s=5.0, serving_queue_timeout_s=10.0)
    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    ids = [str(i) for i in range(N_ITEMS)]
    for i in ids:
        item = {"item_id": i, "title": f"Item {i}", "tags": ["Drama" if int(i) % 2 == 0 else "Comedy"]}
        producer.produce(settings.topic(ITEMS), key=i.encode(), value=json.dumps(item).encode())
    vectors = np.random.default_rng(7).standard_normal((N_ITEMS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ann = model_store.write_version(settings.state_dir / "models", 1, ids, vectors, {})
    producer.produce(settings.topic(MODEL_UPDATES), key=model_store.MODEL_KEY, value=ann.encode())
    assert producer.flush(10) == 0
    serving = ServingThread(settings).start(60, agent=True)
    environment = Env(settings, serving, producer, ids, vectors)
    assert environment.process.holder.current.version == 1
    assert len(environment.process.replica.catalogue) == N_ITEMS
    yield environment
    serving.stop()


def test_unknown_user_gets_trending(env):
    for n, item_id in ((12, "7"), (8, "8")):
        for u in range(n):
            env.events(f"fan-{item_id}-{u}", [item_id])
    assert wait_for(lambda: env.process.replica.trending.count("8") == 8)
    response = RecClient(env.serving.url).recommend("never-seen", k=2, exploration=0.0)
    assert [i["item_id"] for i in response["items"]] == ["7", "8"]
    assert {i["reason"] for i in response["items"]} == {"trending"}
    assert response["state_time"] is None and response["model_version"] == 1


def test_events_then_recommendations_reflect_them(env):
    client = RecClient(env.serving.url)
    history = ["10", "11", "12", "13", "14"]
    env.events("alice", history)
    assert wait_for(lambda: client_state(env, "alice", 5))
    first = client.recommend("alice", k=10, exploration=0.0, diversity=0.0)
    recommended = [i["item_id"] for i in first["items"]]
    assert len(recommended) == 10 and not set(recommended) & set(history)
    assert {i["reason"] for i in first["items"]} <= set(history)
    assert all(i["title"] == f"Item {i['item_id']}" for i in first["items"])
    before = env.process.replica.users["alice"].vector.copy()

    top = recommended[0]
    env.events("alice", [top], t0=1.76e9)
    assert wait_for(lambda: client_state(env, "alice", 6))
    second = client.recommend("alice", k=10, exploration=0.0, diversity=0.0)
    assert top not in [i["item_id"] for i in second["items"]]
    assert second["state_time"] == 1.76e9
    after = env.process.replica.users["alice"].vector
    assert not np.allclose(before, after)
    # The vector moved towards the consumed item.
    assert float(after @ env.vectors[int(top)]) > float(before @ env.vectors[int(top)])
    view = client.user("alice")
    assert view["recent"][0]["item_id"] == top and view["last_event_time"] == 1.76e9
    assert view["counts"] == {"click": 6} and view["vector_norm"] > 0


def client_state(env: Env, user_id: str, applied: int) -> bool:
    state = env.process.replica.users.get(user_id)
    return state is not None and state.applied >= applied


def test_bad_http_requests_get_4xx_naming_the_field(env):
    base = env.serving.url
    cases = [
        ("GET", "/recommendations", None, 400, "user_id"),
        ("GET", "/recommendations?user_id=a&k=0", None, 400, "k"),
        ("GET", "/recommendations?user_id=a&k=abc", None, 400, "k"),
        ("GET", "/recommendations?user_id=a&k=100000", None, 400, "k"),
        ("GET", "/recommendations?user_id=a&diversity=2", None, 400, "diversity"),
        ("GET", "/recommendations?user_id=a&exploration=nan", None, 400, "exploration"),
        ("GET", "/recommendations?user_id=a&bogus=1", None, 400, "bogus"),
        ("GET", "/recommendations?user_id=%01", None, 400, "user_id"),
        ("POST", "/recommendations", b"not json", 400, "body"),
        ("POST", "/recommendations", b"[1, 2]", 400, "body"),
        ("POST", "/recommendations", b'{"user_id": {"x": 1}}', 400, "user_id"),
        ("POST", "/recommendations", b'{"user_id": "a", "exclude_items": 5}', 400, "exclude_items"),
        ("POST", "/recommendations", b'{"user_id": "a", "k": true}', 400, "k"),
        ("POST", "/recommendations", b'{"user_id": "a", "pad": "' + b"x" * 5000 + b'"}', 413, "body"),
        ("GET", "/items/no-such-item/similar", None, 404, "item_id"),
        ("GET", "/items/1/similar?k=-3", None, 400, "k"),
        ("GET", "/users/no-such-user", None, 404, "user_id"),
    ]
    for method, path, body, status, field in cases:
        got_status, doc = http(base + path, method, body)
        assert (got_status, doc.get("field")) == (status, field), (method, path, doc)
        assert doc["error"]
    status, doc = http(base + "/no/such/route")
    assert status == 404 and "error" in doc
    assert http(base + "/healthz")[0] == 200
    assert http(base + "/readyz") == (200, {"ready": True, "reasons": [], "notes": []})
    status, spec = http(base + "/openapi.json")
    assert status == 200 and "/recommendations" in spec["paths"]
    metrics = urllib.request.urlopen(base + "/metrics").read().decode()
    assert 'streamrec_serving_requests_total{outcome="client_error",path="http",route="recommendations"}' in metrics


def test_post_options_filter_and_exclude(env):
    client = RecClient(env.serving.url)
    env.events("dora", ["30", "31"])
    assert wait_for(lambda: client_state(env, "dora", 2))
    response = client.recommend("dora", k=8, require_tags=["Comedy"], exclude_items=["1", "3"], exploration=0.0)
    ids = [i["item_id"] for i in response["items"]]
    assert len(ids) == 8 and all(int(i) % 2 == 1 for i in ids) and not {"1", "3", "30", "31"} & set(ids)


def test_bad_topic_requests_get_error_replies(env):
    s = env.settings
    with TopicRecClient(s, timeout=20) as client:
        reply = client.request_raw(b"{not json", None)
        assert reply["field"] == "body" and reply["status"] == 400
        reply = client.request_raw(json.dumps({"request_id": "no-user"}).encode(), "no-user")
        assert reply["field"] == "user_id"
        reply = client.request_raw(json.dumps({"request_id": "bad-k", "user_id": "a", "k": -1}).encode(), "bad-k")
        assert reply["field"] == "k" and reply["user_id"] == "a"
        reply = client.request_raw(json.dumps({"request_id": "evil", "user_id": "a",
                                               "reply_to": s.topic(EVENTS)}).encode(), "evil")
        assert reply["field"] == "reply_to"
        good = client.recommend("never-seen-either", k=3)
        assert len(good["items"]) == 3 and good["model_version"] >= 1 and "error" not in good


def test_model_swap_under_concurrent_requests_loses_none(env):
    results: list = []

    async def load(stop_after_version: int) -> None:
        async with AsyncRecClient(env.serving.url, timeout=10) as client:
            while True:
                batch = await asyncio.gather(*(client.recommend(f"fan-7-{j % 12}", k=5) for j in range(20)),
                                             return_exceptions=True)
                results.extend(batch)
                if env.process.holder.current.version >= stop_after_version and len(results) >= 200:
                    return

    async def main() -> None:
        target = env.process.holder.current.version + 2
        task = asyncio.create_task(load(target))
        await asyncio.sleep(0.05)
        for _ in range(2):
            noisy = env.vectors + 0.01 * np.random.default_rng(len(results)).standard_normal(env.vectors.shape)
            version = await asyncio.to_thread(env.publish_model, env.ids, noisy.astype(np.float32))
            # The next swap only once this one happened: a fixed pause raced the install on a busy machine.
            for _ in range(600):
                if env.process.holder.current.version >= version:
                    break
                await asyncio.sleep(0.05)
        await asyncio.wait_for(task, 60)

    asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    versions = {r["model_version"] for r in results}
    assert len(versions) >= 2          # answers came from more than one version...
    assert all(len(r["items"]) == 5 for r in results)   # ...and every one of them is complete


def test_new_item_is_retrievable_from_its_content_vector(env):
    item = {"item_id": "fresh-1", "title": "A brand new item", "tags": ["Drama"]}
    env.producer.produce(env.settings.topic(ITEMS), key=b"fresh-1", value=json.dumps(item).encode())
    env.producer.flush(10)
    assert wait_for(lambda: "fresh-1" in env.process.replica.catalogue)
    assert http(env.serving.url + "/items/fresh-1/similar")[0] == 404   # not in the model yet

    # The learner's next version carries the new item's content vector: next to item 20.
    content = env.vectors[20] + 0.05 * env.vectors[21]
    ids, vectors = env.ids + ["fresh-1"], np.vstack([env.vectors, content / np.linalg.norm(content)])
    version = env.publish_model(ids, vectors.astype(np.float32))
    assert wait_for(lambda: env.process.holder.current.version == version)

    similar = RecClient(env.serving.url).similar("fresh-1", k=3)
    assert similar["items"][0]["item_id"] == "20" and similar["title"] == "A brand new item"
    env.events("carol", ["20"])
    assert wait_for(lambda: client_state(env, "carol", 1))
    response = RecClient(env.serving.url).recommend("carol", k=5, exploration=0.0, diversity=0.0)
    assert response["items"][0]["item_id"] == "fresh-1"
    assert response["items"][0]["reason"] == "20" and response["items"][0]["reason_title"] == "Item 20"
    assert http(env.serving.url + "/items/fresh-1")[1]["interactions"] == 0
