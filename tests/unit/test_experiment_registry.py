"""Serving's experiment registry and service on real parts, without a broker: records in, answers out.

Records are applied as the experiments feed applies them (:meth:`ExperimentRegistry.apply_record`);
model versions are real files loaded through every check; the answers come from the real
recommender service over a replica fed real events.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid

import numpy as np
import pytest
from prometheus_client import REGISTRY

from serving.experiments import ExperimentRegistry
from serving.model_holder import ModelHolder
from serving.recommender_service import RecommenderService
from serving.request_model import parse_request
from serving.state_replica import StateReplica
from streamrec.contracts import model_store
from streamrec.contracts.experiments import Experiment, parse_spec
from streamrec.settings import Settings

DIM = 8
ITEMS = [str(i) for i in range(60)]
USERS = [f"u{i}" for i in range(40)]


def vectors(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((len(ITEMS), DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class Serving:
    """Replica, holder, registry and service as serving wires them, on one event loop."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.replica = StateReplica(settings)
        self.holder = ModelHolder(settings, self.replica)
        self.registry = ExperimentRegistry(settings, self.holder, self.replica.arm_quality)
        self.service = RecommenderService(settings, self.replica, self.holder, self.registry)
        self.offset = 0
        self.announcements: dict[int, model_store.Announcement] = {}

    async def publish(self, version: int) -> None:
        ann = model_store.write_version(self.settings.state_dir / "models", version, ITEMS, vectors(version), {})
        ann = ann.signed(self.settings.model_signing_key)
        self.announcements[version] = ann
        await self.holder.install(model_store.load_version(ann), ann)

    def events(self) -> None:
        rng = np.random.default_rng(0)
        for n, user in enumerate(USERS):
            batch = [{"user_id": user, "item_id": str(i), "event_type": "click", "timestamp": 1.7e9 + n}
                     for i in rng.choice(len(ITEMS), 5, replace=False)]
            assert self.replica.apply_events(0, n, json.dumps(batch).encode()) == 5

    def record(self, experiment: Experiment, key: str | None = None, sign: bool = True) -> str:
        signed = experiment.signed(self.settings.model_signing_key) if sign else experiment
        return self.raw((key or experiment.name).encode(), signed.encode())

    def raw(self, key: bytes | None, value: bytes | None) -> str:
        self.offset += 1
        return self.registry.apply_record(self.offset, key, value)

    def ask(self, user: str, **options) -> dict:
        return self.service.recommend(parse_request({"user_id": user, "k": 5, **options}, self.settings))


@pytest.fixture
def serving(tmp_path):
    settings = Settings(vector_dim=DIM, partitions=1, state_dir=tmp_path, serving_max_experiments=2,
                        model_signing_key="the-key")
    s = Serving(settings)
    yield s
    s.holder.close()


def live(spec: dict, at: float = 100.0) -> Experiment:
    return dataclasses.replace(parse_spec(spec), created_at=at, updated_at=at)


def two_arms(name: str, **second) -> dict:
    return {"name": name, "arms": [{"name": "control", "share": 0.5},
                                   {"name": "treated", "share": 0.5, **second}]}


def sample(name: str, metric: str, arm: str) -> float | None:
    return REGISTRY.get_sample_value(f"streamrec_serving_experiment_{metric}", {"experiment": name, "arm": arm})


def records(outcome: str) -> float:
    return REGISTRY.get_sample_value("streamrec_serving_experiment_records_total", {"outcome": outcome}) or 0.0


def test_a_record_assigns_users_and_every_answer_names_its_arm(serving):
    async def main():
        await serving.publish(1)
        serving.events()
        name = f"e-{uuid.uuid4().hex[:6]}"
        assert serving.record(live(two_arms(name, diversity=1.0, exploration=0.0))) == "applied"
        answers = {u: serving.ask(u) for u in USERS}
        assert {a["experiment"] for a in answers.values()} == {name}
        assert {a["arm"] for a in answers.values()} == {"control", "treated"}
        # Per-arm series exist; each arm counted its own answers.
        counts = {arm: sample(name, "requests_total", arm) for arm in ("control", "treated")}
        assert sum(counts.values()) == len(USERS) and min(counts.values()) > 0
        assert sample(name, "catalogue_coverage_ratio", "treated") > 0
        for user, answer in answers.items():
            assert answer["arm"] == serving.registry.experiments[name].arm_for(user).name
            if answer["arm"] == "treated":   # the arm's options replace the defaults...
                assert answer["items"] == serving.ask(user, diversity=1.0, exploration=0.0)["items"]
                # ...and an option the request names itself wins over the arm's.
                assert answer["items"] != serving.ask(user, diversity=0.0, exploration=0.0)["items"]
        # The next event of a user scores the list their arm served, in that arm only.
        user = next(u for u, a in answers.items() if a["arm"] == "treated")
        hit = serving.ask(user)["items"][0]["item_id"]
        serving.replica.apply_events(0, 1000, json.dumps({"user_id": user, "item_id": hit, "event_type": "click",
                                                          "timestamp": 1.7e9 + 1000}).encode()) == 1
        assert sample(name, "online_hit_rate", "treated") == 1.0
        assert sample(name, "scored_lists", "treated") == 1.0 and sample(name, "scored_lists", "control") == 0.0

    asyncio.run(main())


def test_a_user_in_no_experiment_gets_the_defaults_and_nulls(serving):
    serving.events()
    answer = serving.ask("u1")
    assert answer["experiment"] is None and answer["arm"] is None
    name = f"e-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "arms": [{"name": "a", "share": 0.1}, {"name": "b", "share": 0.1}]}
    assert serving.record(live(spec)) == "applied"
    out = [u for u in USERS if serving.registry.experiments[name].arm_for(u) is None]
    assert out and all(serving.ask(u)["arm"] is None for u in out)


def test_forged_invalid_and_stale_records_are_counted_and_change_nothing(serving):
    name = f"e-{uuid.uuid4().hex[:6]}"
    before = {o: records(o) for o in ("unsigned", "bad_signature", "invalid", "stale")}
    assert serving.record(live(two_arms(name)), sign=False) == "unsigned"
    forged = dataclasses.replace(live(two_arms(name)).signed("a guessed key"))
    assert serving.record(forged, sign=False) == "bad_signature"
    assert serving.raw(name.encode(), b"\x00 not json") == "invalid"
    assert serving.raw(name.encode(), None) == "invalid"
    assert serving.raw(None, live(two_arms(name)).signed("the-key").encode()) == "invalid"
    assert serving.record(live(two_arms(name)), key="another-name") == "invalid"
    assert name not in serving.registry.experiments and serving.registry.assign("u1") is None
    for outcome, count in before.items():
        assert records(outcome) == count + (4 if outcome == "invalid" else 0 if outcome == "stale" else 1)
    # A stop cannot be undone by replaying the older record that started the experiment.
    started = live(two_arms(name))
    assert serving.record(started) == "applied"
    assert serving.record(started.stopped(200.0)) == "applied"
    assert serving.record(started) == "stale"
    assert not serving.registry.experiments[name].live and serving.registry.assign("u1") is None
    assert serving.registry.position == serving.offset   # every record was taken, none stopped the feed


def test_live_experiments_are_capped_and_stopping_one_removes_its_series(serving):
    names = [f"e-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    small = lambda n: {"name": n, "arms": [{"name": "a", "share": 0.2}, {"name": "b", "share": 0.2}]}  # noqa: E731
    assert serving.record(live(small(names[0]), 1.0)) == "applied"
    assert serving.record(live(small(names[1]), 2.0)) == "applied"
    assert serving.record(live(small(names[2]), 3.0)) == "over_capacity"     # serving_max_experiments=2
    assert [e.name for e in serving.registry.ordered] == names[:2]
    serving.registry.served(serving.registry.assign(next(u for u in USERS if serving.registry.assign(u))),
                            "x", ["1"], 10)
    assert sample(names[0], "requests_total", "a") is not None
    assert serving.record(serving.registry.experiments[names[0]].stopped(10.0)) == "applied"
    for arm in ("a", "b"):
        assert sample(names[0], "requests_total", arm) is None and sample(names[0], "online_hit_rate", arm) is None
    assert serving.registry.arm_quality.keys() == [(names[1], "a"), (names[1], "b")]
    assert serving.record(live(small(names[2]), 11.0)) == "applied"           # a slot is free again
    listing = serving.registry.listing()
    assert [(e["name"], e["status"]) for e in listing["experiments"]] == [
        (names[1], "live"), (names[2], "live"), (names[0], "stopped")]


def test_an_arm_pinning_a_version_answers_from_it_while_others_get_the_newest(serving):
    async def main():
        await serving.publish(1)
        await serving.publish(2)
        serving.events()
        name = f"e-{uuid.uuid4().hex[:6]}"
        spec = live(two_arms(name, model_version=1))
        arms = (spec.arms[0], dataclasses.replace(spec.arms[1], model=serving.announcements[1]))
        assert serving.record(dataclasses.replace(spec, arms=arms)) == "applied"
        assert serving.registry.not_ready() == [f"experiment {name!r} arm 'treated': loading pinned model version 1"]
        for _ in range(200):
            if not serving.registry.not_ready():
                break
            await asyncio.sleep(0.02)
        assert serving.registry.not_ready() == [] and 1 in serving.holder.pinned
        versions = {serving.ask(u)["arm"]: serving.ask(u)["model_version"] for u in USERS}
        assert versions == {"treated": 1, "control": 2}
        np.testing.assert_allclose(serving.holder.bundle_for(1).vectors, vectors(1), rtol=1e-6)
        assert serving.registry.view(serving.registry.experiments[name])["arms"][1]["model_loaded"] is True
        # Stopped: the pinned version is released, everyone gets the newest.
        assert serving.record(serving.registry.experiments[name].stopped(300.0)) == "applied"
        assert 1 not in serving.holder.pinned
        assert {serving.ask(u)["model_version"] for u in USERS} == {2}

    asyncio.run(main())


def test_a_pin_that_cannot_load_is_reported_and_the_arm_answers_from_the_current_version(serving):
    async def main():
        await serving.publish(2)
        serving.events()
        name = f"e-{uuid.uuid4().hex[:6]}"
        missing = dataclasses.replace(serving.announcements[2], version=7,
                                      path=str(serving.settings.state_dir / "models" / "model-v000007.safetensors"))
        spec = live(two_arms(name, model_version=7))
        arms = (spec.arms[0], dataclasses.replace(spec.arms[1], model=missing.signed("the-key")))
        failed = records("pin_failed")
        assert serving.record(dataclasses.replace(spec, arms=arms)) == "applied"
        for _ in range(200):
            if not serving.registry.not_ready():
                break
            await asyncio.sleep(0.02)
        assert records("pin_failed") == failed + 1
        [note] = serving.registry.notes()
        assert "version 7 cannot be loaded" in note and "treated" in note
        treated = [u for u in USERS if serving.ask(u)["arm"] == "treated"]
        assert treated and {serving.ask(u)["model_version"] for u in treated} == {2}

    asyncio.run(main())


def test_the_admin_routes_answer_503_while_serving_has_no_producer(serving):
    from aiohttp import ClientSession, web

    from serving.experiments_api import ExperimentWriter
    from serving.http_api import build_app
    from streamrec.kafka.embedded import free_port

    settings = serving.settings.replace(serving_admin_token="t0ken")
    service = RecommenderService(settings, serving.replica, serving.holder, serving.registry)

    async def main():
        app = build_app(service, lambda: [], experiment_writer=ExperimentWriter(settings, serving.registry))
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url, auth = f"http://127.0.0.1:{port}/admin/experiments", {"Authorization": "Bearer t0ken"}
        try:
            async with ClientSession() as session:
                async with session.post(url, json=two_arms("x")) as r:
                    assert r.status == 401                               # no token
                async with session.post(url, json=two_arms("x"), headers=auth) as r:
                    assert r.status == 503 and "producer" in (await r.json())["error"]
                async with session.post(url, json=two_arms("bad name"), headers=auth) as r:
                    assert r.status == 400 and (await r.json())["field"] == "name"   # checked before writing
                async with session.get(url, headers=auth) as r:
                    assert r.status == 200 and (await r.json())["experiments"] == []
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert serving.registry.experiments == {}
