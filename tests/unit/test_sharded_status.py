"""`streamrec up --serving-instances N` and `streamrec status` with sharded serving: the instances'
names, ports and settings; status finds every instance through the run file and shows each one's
share (real prometheus_client registries behind real HTTP endpoints)."""
from __future__ import annotations

import asyncio
import doctest
import os

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from harness.metrics_scrape import SystemView, scrape_all
from harness.serving_instances import serving_instances
from harness.status import default_targets, serving_rows
from serving.ownership import Ownership
from streamrec.kafka.runfile import write_run_file
from streamrec.settings import Settings
from tests.unit.test_status import MetricsServer


def test_the_examples_in_the_docstring_hold():
    import harness.serving_instances

    assert doctest.testmod(harness.serving_instances).failed == 0


def test_up_gives_each_instance_its_place_its_port_and_every_peer():
    settings = Settings(http_port=9100, partitions=4, http_host="0.0.0.0")
    instances = serving_instances(settings, 3)
    assert [(i.name, i.port) for i in instances] == [("serving-0", 9100), ("serving-1", 9101), ("serving-2", 9102)]
    for n, instance in enumerate(instances):
        own = Ownership.from_settings(Settings.from_env({**settings.to_env(), **instance.env}))
        assert (own.instance, own.instances, own.peers[n]) == (n, 3, f"http://127.0.0.1:{9100 + n}")
    assert serving_instances(settings, 1)[0].env == {}      # one instance: today's settings exactly
    with pytest.raises(ValueError, match="more than the 4 partitions"):
        serving_instances(settings, 5)


def _instance_registry(applied: int, item_side: int, users: int) -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("streamrec_serving_events_applied", "a", registry=reg).inc(applied)
    Counter("streamrec_serving_events_item_side_only", "i", registry=reg).inc(item_side)
    Gauge("streamrec_serving_replica_users", "u", registry=reg).set(users)
    Counter("streamrec_serving_forwarded", "f", ["route", "outcome"], registry=reg).labels(
        route="recommendations", outcome="answered").inc(5)
    return reg


def test_status_finds_every_instance_in_the_run_file_and_shows_each_ones_share(tmp_path, monkeypatch):
    from streamrec.kafka import runfile

    # A run file counts while its writer is a live streamrec command: this test process stands for one.
    monkeypatch.setattr(runfile, "is_streamrec_process", lambda pid: pid == os.getpid())
    assert default_targets(Settings(state_dir=tmp_path))["serving"] == ["http://127.0.0.1:8080"]   # no run file
    with MetricsServer(_instance_registry(600, 400, 60)) as a, MetricsServer(_instance_registry(400, 600, 40)) as b:
        write_run_file(tmp_path, bootstrap_servers="127.0.0.1:1", broker_pid=None,
                       urls={"streams": "http://127.0.0.1:1", "serving-0": a.url, "serving-1": b.url})
        targets = default_targets(Settings(state_dir=tmp_path))
        view = SystemView()
        view.update(asyncio.run(scrape_all([("serving", url) for url in targets["serving"]])))
    assert targets["serving"] == [a.url, b.url] and targets["streams"] == ["http://127.0.0.1:1"]
    rows = dict(serving_rows(view))
    first, second = sorted([a.url, b.url])
    shares = {a.url: ("600", "400", "60"), b.url: ("400", "600", "40")}
    assert rows["applied per instance"] == f"{shares[first][0]} / {shares[second][0]}"
    assert rows["item-side only"] == f"{shares[first][1]} / {shares[second][1]}"
    assert rows["users per instance"] == f"{shares[first][2]} / {shares[second][2]}"
    assert "total 10" in rows["forwarded"]


def test_one_serving_instance_shows_no_shard_rows():
    view = SystemView()
    with MetricsServer(_instance_registry(10, 0, 1)) as a:
        view.update(asyncio.run(scrape_all([("serving", a.url)])))
    assert "applied per instance" not in dict(serving_rows(view))
