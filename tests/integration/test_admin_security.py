"""Security of serving: the token-guarded admin API, checksum-verified models, size limits."""
from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pytest
from confluent_kafka import Producer

from serving.process import ServingThread
from tests.admin_helpers import call, publish_catalogue_and_versions, unit_vectors
from streamrec.contracts import model_store
from streamrec.kafka.embedded import free_port
from streamrec.client import TopicRecClient
from streamrec.kafka.config import ensure_topics, producer_config
from streamrec.settings import Settings
from streamrec.contracts.topics import MODEL_UPDATES

pytestmark = pytest.mark.integration

TOKEN = "s3cret-" + uuid.uuid4().hex
DIM = 8
IDS = [str(i) for i in range(40)]


def vectors(seed: int) -> np.ndarray:
    return unit_vectors(len(IDS), DIM, seed)


@pytest.fixture(scope="module")
def env(broker, tmp_path_factory):
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}-",
                        state_dir=tmp_path_factory.mktemp("admin") / "state", partitions=2, vector_dim=DIM,
                        http_port=free_port(), serving_admin_token=TOKEN, serving_max_body_bytes=2048)
    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    publish_catalogue_and_versions(settings, producer, IDS)
    assert producer.flush(10) == 0
    serving = ServingThread(settings).start(60, agent=True)
    assert serving.process.holder.current.version == 2
    yield settings, serving, producer
    serving.stop()


def test_admin_api_refuses_without_the_bearer_token(env):
    _, serving, _ = env
    for method, path in (("GET", "/admin/models"), ("POST", "/admin/models/1/activate"), ("POST", "/admin/reload")):
        for kwargs in ({}, {"token": "wrong"}, {"token": TOKEN[:-1]}, {"auth": f"Basic {TOKEN}"}, {"auth": TOKEN}):
            status, headers, body = call(serving.url + path, method, **kwargs)
            assert status == 401, (path, kwargs)
            assert headers.get("WWW-Authenticate", "").startswith("Bearer")
            assert body["field"] == "Authorization"
    assert serving.process.holder.current.version == 2   # nothing happened


def test_rollback_promote_and_reload_with_the_token(env):
    _, serving, _ = env
    status, _, state = call(serving.url + "/admin/models", token=TOKEN)
    assert status == 200 and [a["version"] for a in state["announced"]] == [1, 2]
    status, _, state = call(serving.url + "/admin/models/1/activate", "POST", token=TOKEN)
    assert status == 200 and state["serving"]["version"] == 1
    assert serving.process.holder.current.version == 1
    np.testing.assert_allclose(serving.process.holder.current.vectors, vectors(1), rtol=1e-6)
    status, _, state = call(serving.url + "/admin/reload", "POST", token=TOKEN)
    assert status == 200 and state["serving"]["version"] == 2
    status, _, body = call(serving.url + "/admin/models/99/activate", "POST", token=TOKEN)
    assert status == 404 and body["field"] == "version"
    status, _, body = call(serving.url + "/admin/models/abc/activate", "POST", token=TOKEN)
    assert status == 400 and body["field"] == "version"


def test_tampered_model_file_is_refused_and_the_previous_version_kept(env):
    settings, serving, producer = env
    holder = serving.process.holder
    assert holder.current.version == 2
    # Rollback to a file changed after it was announced: same announcement, other bytes.
    path = holder.announcements[1].path
    data = bytearray(open(path, "rb").read())
    data[-4] ^= 0xFF   # a bit flip inside the tensor data
    open(path, "wb").write(bytes(data))
    status, _, body = call(serving.url + "/admin/models/1/activate", "POST", token=TOKEN)
    assert status == 409 and "sha256" in body["error"]
    assert holder.current.version == 2
    # A new version whose file is swapped between writing and announcing: never loaded.
    ann = model_store.write_version(settings.state_dir / "models", 3, IDS, vectors(3), {})
    model_store.write_version(settings.state_dir / "evil", 3, IDS, vectors(666), {})
    import shutil
    shutil.copy(settings.state_dir / "evil" / "model-v000003.safetensors", ann.path)
    producer.produce(settings.topic(MODEL_UPDATES), key=model_store.MODEL_KEY, value=ann.encode())
    assert producer.flush(10) == 0
    serving.call(_wait(lambda: holder.last_error is not None and "version 3" in holder.last_error))
    assert "sha256" in holder.last_error
    assert holder.current.version == 2
    np.testing.assert_allclose(holder.current.vectors, vectors(2), rtol=1e-6)


async def _wait(predicate, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    assert predicate()


def test_admin_api_does_not_exist_without_a_token(env):
    from aiohttp import ClientSession, web

    from serving.http_api import build_app
    from serving.model_holder import ModelHolder
    from serving.recommender_service import RecommenderService
    from serving.state_replica import StateReplica

    settings = env[0].replace(serving_admin_token=None)

    async def main():
        replica = StateReplica(settings)
        holder = ModelHolder(settings, replica)
        runner = web.AppRunner(build_app(RecommenderService(settings, replica, holder), lambda: []))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with ClientSession() as session:
                for method, path in (("GET", "/admin/models"), ("POST", "/admin/reload")):
                    async with session.request(method, f"http://127.0.0.1:{port}{path}",
                                               headers={"Authorization": "Bearer "}) as r:
                        assert r.status == 404
        finally:
            await runner.cleanup()
            holder.close()

    asyncio.run(main())


def test_request_size_limits_on_http_and_request_topic(env):
    settings, serving, _ = env
    big = json.dumps({"user_id": "u", "request_id": "big", "exclude_items": ["x" * 100] * 40}).encode()
    assert len(big) > settings.serving_max_body_bytes
    status, _, body = call(serving.url + "/recommendations", "POST", body=big)
    assert status == 413 and body["field"] == "body"
    with TopicRecClient(settings, timeout=15) as client:
        # Not parsed at all, so the error reply cannot carry the request_id (null, like non-JSON).
        reply = client.request_raw(big, None, b"u")
        assert reply["status"] == 413 and reply["field"] == "body"
        ok = client.recommend("u", k=3)      # the agent is still there
        assert len(ok["items"]) == 3
