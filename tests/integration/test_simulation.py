"""A tiny closed loop on the real broker and processes: metrics computed, choices flowed back."""
from __future__ import annotations

import asyncio
import json
import math

import pytest

from streamrec.kafka.changelog import read_topic
from harness.simulation.cli import print_report
from harness.simulation.loop import Arm, SimulationConfig, run_simulation
from harness.simulation.plots import plot_results
from streamrec.contracts.experiments import bucket
from streamrec.contracts.topics import EVENTS

pytestmark = pytest.mark.integration

PER_ROUND = ("utility_chosen", "utility_list", "choice_rate", "coverage", "gini", "entropy", "jaccard", "ild",
             "utility_oracle", "coverage_cumulative")


def test_tiny_closed_loop(settings, ml100k, tmp_path):
    config = SimulationConfig(users=20, rounds=3, k=5, seed=3, warmup_fraction=0.05, learner=False,
                              arms=[Arm("plain", 0.0, 0.0), Arm("diverse", 0.6, 0.3)], visible_timeout=20.0)
    doc = run_simulation(config, settings.replace(partitions=2), ml100k, tmp_path / "run")

    assert set(doc["arms"]) == {"plain", "diverse"} and len(doc["user_ids"]) == 20
    for name, rounds in doc["arms"].items():
        assert [r["round"] for r in rounds] == [0, 1, 2]
        for r in rounds:
            for key in PER_ROUND:
                assert math.isfinite(r[key]), (name, key, r)
            assert 1.0 <= r["utility_list"] <= 5.0 and 0.0 <= r["jaccard"] <= 1.0
            assert r["served_per_list"] == 5 and r["not_visible"] == 0
        assert rounds[-1]["coverage_cumulative"] >= rounds[0]["coverage"]
        assert sum(r["events"] for r in rounds) > 0   # at least someone chose something

        # Every choice went back through Kafka as a click with a unique id.
        arm_settings = settings.replace(topic_prefix=doc["topic_prefixes"][name])
        messages = asyncio.run(read_topic(arm_settings, arm_settings.topic(EVENTS)))
        clicks = [e for m in messages for e in _events(m.value) if e.get("event_type") == "click"]
        assert len(clicks) == sum(r["events"] for r in rounds)
        assert len({c["event_id"] for c in clicks}) == len(clicks)
        assert {c["user_id"] for c in clicks} <= set(doc["user_ids"])

    plots = plot_results(doc, tmp_path / "out")
    assert all(p.stat().st_size > 0 for p in plots)
    print_report(doc)
    json.dumps(doc)   # JSON-ready


def _events(value: bytes) -> list[dict]:
    doc = json.loads(value)
    return doc if isinstance(doc, list) else [doc]


def test_closed_loop_with_the_learner(settings, ml100k, tmp_path):
    """The learner process in the loop: rounds are answered by a trained model version."""
    fast_learner = settings.replace(partitions=2, learner_use_text=False, learner_batches_per_cycle=10,
                                    learner_batch_size=128, learner_min_events=10, learner_holdout_events=50)
    config = SimulationConfig(users=20, rounds=3, k=5, seed=1, warmup_fraction=0.05, learner=True, streams=False,
                              learn_every=15, arms=[Arm("plain", 0.0, 0.0)], visible_timeout=30.0,
                              first_model_timeout=120.0)
    doc = run_simulation(config, fast_learner, ml100k, tmp_path / "run")
    rounds = doc["arms"]["plain"]
    assert all(r["model_version_min"] >= 1 for r in rounds)        # a published model answered
    assert rounds[-1]["learner_cycles"] >= 1
    assert all(math.isfinite(r["utility_list"]) and r["not_visible"] == 0 for r in rounds)


def test_arms_of_one_experiment_on_one_system(settings, ml100k, tmp_path):
    """--experiment: serving splits the users between the arms; each is scored on its own users."""
    config = SimulationConfig(users=30, rounds=2, k=5, seed=3, warmup_fraction=0.05, learner=False,
                              experiment="sim-div", arms=[Arm("plain", 0.0, 0.0), Arm("diverse", 1.0, 0.3)],
                              visible_timeout=20.0)
    doc = run_simulation(config, settings.replace(partitions=2), ml100k, tmp_path / "run")

    users = doc["experiment"]["users"]
    assert sorted(users["plain"] + users["diverse"]) == sorted(doc["user_ids"])
    for arm, ids in users.items():   # the split is the experiment contract's
        assert ids and all((bucket("sim-div", u) < 0.5) == (arm == "plain") for u in ids)
    assert len(set(doc["topic_prefixes"].values())) == 1                      # one system
    serving = doc["experiment"]["serving"]
    for name, rounds in doc["arms"].items():
        assert [r["round"] for r in rounds] == [0, 1]
        for r in rounds:
            assert r["wrong_arm"] == 0 and r["users"] == len(users[name]) and r["not_visible"] == 0
            assert r["served_per_list"] == 5 and math.isfinite(r["utility_list"])
        # Serving counted exactly the simulator's requests of this arm, in this arm.
        assert serving[name]["requests"] == len(rounds) * len(users[name])
    arm_settings = settings.replace(topic_prefix=doc["topic_prefixes"]["plain"])
    messages = asyncio.run(read_topic(arm_settings, arm_settings.topic(EVENTS)))
    clicks = [e for m in messages for e in _events(m.value) if e.get("event_type") == "click"]
    for name, ids in users.items():
        mine = [c for c in clicks if c["event_id"].startswith(f"sim-{name}-")]
        assert len(mine) == sum(r["events"] for r in doc["arms"][name]) and {c["user_id"] for c in mine} <= set(ids)
    print_report(doc)
    json.dumps(doc)
