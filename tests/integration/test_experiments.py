"""Experiments end to end: the admin API, real serving on the embedded broker, a restart.

One serving process (HTTP and request agent) runs for the module with an admin token and a
signing key; it holds two published model versions and the state of :data:`USERS`. Each test
stops the experiments it creates, so the next starts with every user unenrolled.
"""
from __future__ import annotations

import json
import urllib.request
import uuid

import numpy as np
import pytest
from confluent_kafka import Producer

from harness.polling import wait_or_fail, wait_until
from serving.process import ServingThread
from tests.admin_helpers import call as admin_call
from tests.admin_helpers import publish_catalogue_and_versions
from streamrec.client import TopicRecClient
from streamrec.contracts.events import encode_events
from streamrec.contracts.experiments import bucket
from streamrec.contracts.topics import EVENTS, EXPERIMENTS
from streamrec.kafka.config import ensure_topics, producer_config
from streamrec.kafka.embedded import free_port
from streamrec.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "admin-" + uuid.uuid4().hex
KEY = "signing-" + uuid.uuid4().hex
DIM = 8
IDS = [str(i) for i in range(60)]
USERS = [f"user-{i}" for i in range(40)]


def call(url: str, method: str = "GET", body: dict | bytes | None = None, token: str | None = TOKEN):
    status, _, answer = admin_call(url, method, token, body)
    return status, answer


@pytest.fixture(scope="module")
def env(broker, tmp_path_factory):
    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}-",
                        state_dir=tmp_path_factory.mktemp("experiments") / "state", partitions=2, vector_dim=DIM,
                        http_port=free_port(), serving_admin_token=TOKEN, model_signing_key=KEY)
    ensure_topics(settings)
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    publish_catalogue_and_versions(settings, producer, IDS)
    rng = np.random.default_rng(0)
    for n, user in enumerate(USERS):
        events = [{"user_id": user, "item_id": str(i), "event_type": "click", "timestamp": 1.7e9 + n}
                  for i in rng.choice(len(IDS), 6, replace=False)]
        producer.produce(settings.topic(EVENTS), key=user.encode(), value=encode_events(events))
    assert producer.flush(10) == 0
    state = {"settings": settings, "producer": producer, "serving": ServingThread(settings).start(60)}
    try:
        replica = state["serving"].process.replica
        wait_or_fail(lambda: all(u in replica.users for u in USERS), 60, "every user's state in serving")
        yield state
    finally:
        state["serving"].stop()


def spec(name: str, **treated) -> dict:
    return {"name": name, "description": "test", "arms": [
        {"name": "plain", "share": 0.5, "diversity": 0.0, "exploration": 0.0},
        {"name": "treated", "share": 0.5, **treated}]}


def ask(serving: ServingThread, user: str, **options) -> dict:
    status, body = call(serving.url + "/recommendations", "POST", {"user_id": user, "k": 5, **options}, token=None)
    assert status == 200, body
    return body


def stop(serving: ServingThread, name: str) -> None:
    status, body = call(f"{serving.url}/admin/experiments/{name}/stop", "POST")
    assert status == 200 and body["status"] == "stopped", body


def metric(serving: ServingThread, name: str, labels: dict[str, str]) -> float | None:
    with urllib.request.urlopen(serving.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{selector}}} "):
            return float(line.split()[-1])
    return None


def test_the_experiment_routes_need_the_bearer_token(env):
    url = env["serving"].url
    for method, path, body in (("GET", "/admin/experiments", None), ("POST", "/admin/experiments", spec("x")),
                               ("GET", "/admin/experiments/x", None), ("POST", "/admin/experiments/x/stop", None)):
        for token in (None, "wrong", TOKEN[:-1]):
            status, answer = call(url + path, method, body, token=token)
            assert status == 401 and answer["field"] == "Authorization", (path, token)
    assert call(url + "/admin/experiments")[1]["experiments"] == []      # nothing was created


def test_arms_answer_with_their_options_and_say_so(env):
    serving = env["serving"]
    name = f"div-{uuid.uuid4().hex[:6]}"
    status, created = call(serving.url + "/admin/experiments", "POST", spec(name, diversity=1.0, exploration=0.0))
    assert status == 201 and created["status"] == "live", created
    assert [a["name"] for a in created["arms"]] == ["plain", "treated"]
    arms = {}
    for user in USERS:
        answer = ask(serving, user)
        assert answer["experiment"] == name
        # The arm is the contract's: the blake2b bucket against the shares, in the listed order.
        assert answer["arm"] == ("plain" if bucket(name, user) < 0.5 else "treated")
        arms[user] = answer
    assert {a["arm"] for a in arms.values()} == {"plain", "treated"}
    changed = 0
    for user, answer in arms.items():
        diverse = ask(serving, user, diversity=1.0, exploration=0.0)["items"]
        relevant = ask(serving, user, diversity=0.0, exploration=0.0)["items"]
        assert answer["items"] == (relevant if answer["arm"] == "plain" else diverse)
        changed += answer["arm"] == "treated" and diverse != relevant
    assert changed > 0   # the arms' lists really differ
    with TopicRecClient(env["settings"], timeout=30) as client:   # the request topic says it too
        reply = client.recommend(USERS[0], k=5)
        assert reply["experiment"] == name and reply["arm"] == arms[USERS[0]]["arm"]
    # Per-arm metrics: requests, sample size, coverage, as Prometheus series labelled by arm.
    requests = {arm: metric(serving, "streamrec_serving_experiment_requests_total",
                            {"experiment": name, "arm": arm}) for arm in ("plain", "treated")}
    assert all(r and r > 0 for r in requests.values()) and sum(requests.values()) >= 3 * len(USERS)
    coverage = metric(serving, "streamrec_serving_experiment_catalogue_coverage_ratio",
                      {"experiment": name, "arm": "treated"})
    assert coverage is not None and 0 < coverage <= 1
    status, shown = call(f"{serving.url}/admin/experiments/{name}")
    assert status == 200 and shown["arms"][1]["metrics"]["requests"] == requests["treated"]
    stop(serving, name)
    assert ask(serving, USERS[0])["experiment"] is None and ask(serving, USERS[0])["arm"] is None
    assert metric(serving, "streamrec_serving_experiment_requests_total", {"experiment": name, "arm": "plain"}) is None


def test_bad_specs_are_refused_naming_the_field(env):
    url = env["serving"].url + "/admin/experiments"
    for body, status, field in (
            (spec("x", share=0.7), 400, "arms"),                      # 0.5 + 0.7 > 1
            (spec("x bad name"), 400, "name"),
            (spec("x", diversity=2), 400, "arms[1].diversity"),
            (spec("x", model_version=99), 400, "arms[1].model_version"),   # not a version serving keeps
            ({"name": "x", "arms": [{"name": "a", "share": 1.0}]}, 400, "arms"),
            ({**spec("x"), "owner": "me"}, 400, "owner"),
            (b"{not json", 400, "body")):
        code, answer = call(url, "POST", body)
        assert (code, answer["field"]) == (status, field), (body, answer)
    name = f"dup-{uuid.uuid4().hex[:6]}"
    small = {"name": name, "arms": [{"name": "a", "share": 0.1}, {"name": "b", "share": 0.1}]}
    assert call(url, "POST", small)[0] == 201
    code, answer = call(url, "POST", small)
    assert code == 409 and answer["field"] == "name"
    assert call(f"{url}/no-such/stop", "POST")[0] == 404
    full = f"full-{uuid.uuid4().hex[:6]}"
    assert call(url, "POST", spec(full))[0] == 201                  # shares 0.5 + 0.5: every user enrolled
    code, answer = call(url, "POST", spec(f"late-{uuid.uuid4().hex[:6]}"))
    assert code == 409 and answer["field"] == "arms" and full in answer["error"]   # it would get nobody
    for live in (name, full):
        stop(env["serving"], live)
    code, listing = call(url)
    assert code == 200 and listing["live"] == 0
    assert [e["status"] for e in listing["experiments"] if e["name"] == name] == ["stopped"]


def test_a_forged_record_on_the_topic_is_counted_and_ignored(env):
    serving, producer, settings = env["serving"], env["producer"], env["settings"]
    name = f"forged-{uuid.uuid4().hex[:6]}"
    record = {"name": name, "description": "", "created_at": 1.0, "updated_at": 1.0, "stopped_at": None,
              "arms": [{"name": "a", "share": 0.5, "diversity": 1.0}, {"name": "b", "share": 0.5}], "hmac": ""}
    before = metric(serving, "streamrec_serving_experiment_records_total", {"outcome": "unsigned"}) or 0.0
    producer.produce(settings.topic(EXPERIMENTS), key=name.encode(), value=json.dumps(record).encode(), partition=0)
    producer.produce(settings.topic(EXPERIMENTS), key=b"junk", value=b"\xff not a record", partition=0)
    assert producer.flush(10) == 0
    assert wait_until(lambda: (metric(serving, "streamrec_serving_experiment_records_total",
                                      {"outcome": "unsigned"}) or 0.0) > before, 30)
    assert name not in [e["name"] for e in call(serving.url + "/admin/experiments")[1]["experiments"]]
    assert ask(serving, USERS[0])["experiment"] is None
    assert call(serving.url + "/readyz", token=None)[0] == 200


def test_a_pinned_version_and_the_experiment_survive_a_restart(env):
    serving = env["serving"]
    assert serving.process.holder.current.version == 2
    name = f"pin-{uuid.uuid4().hex[:6]}"
    status, created = call(serving.url + "/admin/experiments", "POST", spec(name, model_version=1))
    assert status == 201 and created["arms"][1]["model_loaded"] is True, created
    before = {user: ask(serving, user) for user in USERS}
    assert {(a["arm"], a["model_version"]) for a in before.values()} == {("plain", 2), ("treated", 1)}

    serving.stop()                                      # a new process on the same topics
    env["serving"] = serving = ServingThread(env["settings"].replace(http_port=free_port())).start(60)
    # Ready means the pinned version is loaded again, from the announcement the record carries.
    assert serving.process.not_ready() == [] and 1 in serving.process.holder.pinned
    status, listing = call(serving.url + "/admin/experiments")
    live = [e for e in listing["experiments"] if e["status"] == "live"]
    assert [e["name"] for e in live] == [name] and live[0]["arms"][1]["model_loaded"] is True
    wait_or_fail(lambda: all(u in serving.process.replica.users for u in USERS), 60, "users replicated again")
    for user, answer in before.items():
        again = ask(serving, user)
        assert (again["experiment"], again["arm"], again["model_version"]) == (
            name, answer["arm"], answer["model_version"])
    stop(serving, name)
    assert 1 not in serving.process.holder.pinned
