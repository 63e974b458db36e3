"""`streamrec status` against real HTTP endpoints serving real prometheus_client registries."""
from __future__ import annotations

import asyncio
import threading

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streamrec.kafka.embedded import free_port
from harness.metrics_scrape import Scrape, SystemView, histogram_quantile, scrape_all
from streamrec.observability.health import add_health_routes
from harness.status import arm_rows, main, serving_rows


class MetricsServer:
    """A tiny aiohttp server (its own thread and loop) with the processes' shared routes."""

    def __init__(self, registry: CollectorRegistry, reasons: list[str] | None = None):
        self.registry, self.reasons = registry, reasons or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()

    def _serve(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        add_health_routes(app, lambda: list(self.reasons), registry=self.registry)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self):
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def streams_registry():
    reg = CollectorRegistry()
    m = {
        "consumed": Counter("streamrec_streams_events_consumed_total", "c", registry=reg),
        "applied": Counter("streamrec_streams_events_applied_total", "a", registry=reg),
        "rejected": Counter("streamrec_streams_events_rejected_total", "r", ["reason"], registry=reg),
        "lag": Gauge("streamrec_streams_consumer_lag_messages", "l", ["topic", "partition"], registry=reg),
        "latency": Histogram("streamrec_streams_apply_latency_seconds", "h",
                             buckets=(0.01, 0.1, 1.0), registry=reg),
    }
    m["consumed"].inc(1200)
    m["applied"].inc(1187)
    m["rejected"].labels(reason="bad_json").inc(13)
    m["lag"].labels(topic="events", partition="0").set(40)
    m["lag"].labels(topic="events", partition="1").set(2)
    for _ in range(10):
        m["latency"].observe(0.05)
    return reg, m


def serving_registry():
    reg = CollectorRegistry()
    Gauge("streamrec_serving_online_hit_rate", "hr", registry=reg).set(0.125)
    Gauge("streamrec_serving_online_ndcg", "ndcg", registry=reg).set(0.0625)
    Gauge("streamrec_serving_exposure_gini", "g", registry=reg).set(0.875)
    Gauge("streamrec_serving_model_version", "v", registry=reg).set(7)
    req = Counter("streamrec_serving_requests", "r", ["path", "route", "outcome"], registry=reg)
    req.labels(path="http", route="/recommendations", outcome="ok").inc(50)
    req.labels(path="http", route="/recommendations", outcome="error").inc(3)
    return reg


def test_once_shows_every_process(capsys):
    streams_reg, _ = streams_registry()
    learner_reg = CollectorRegistry()
    Gauge("streamrec_learner_training_loss", "loss", registry=learner_reg).set(0.4321)
    with MetricsServer(streams_reg) as s, MetricsServer(learner_reg, ["no model yet"]) as l, \
            MetricsServer(serving_registry()) as v:
        rc = main(["--once", "--streams-url", s.url, "--learner-url", l.url, "--serving-url", v.url])
    out = capsys.readouterr().out
    assert rc == 0
    assert "3/3 endpoints up" in out
    assert "not ready" in out and "no model yet" in out          # learner's /readyz said 503
    assert "1.19k" in out                                          # events applied total
    assert "42 msgs (worst partition 40)" in out                   # lag summed over partitions
    assert "0.432" in out                                          # training loss
    assert "0.125" in out and "0.0625" in out and "0.875" in out   # HR@10, NDCG@10, Gini
    # errors: DLQ'd events and failed requests
    assert "streamrec_streams_events_rejected_total" in out
    assert "outcome=error" in out


def test_once_with_a_down_endpoint(capsys):
    streams_reg, _ = streams_registry()
    dead = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    with MetricsServer(streams_reg) as s:
        rc = main(["--once", "--timeout", "1", "--streams-url", s.url,
                   "--learner-url", dead, "--serving-url", dead])
    out = capsys.readouterr().out
    assert rc == 1
    assert "1/3 endpoints up" in out
    assert "down" in out and "cannot connect" in out
    assert "1.19k" in out   # the live process is still shown


def test_replicas_are_summed_and_rates_come_from_two_scrapes():
    reg1, m1 = streams_registry()
    reg2, m2 = streams_registry()
    with MetricsServer(reg1) as a, MetricsServer(reg2) as b:
        targets = [("streams", a.url), ("streams", b.url)]
        view = SystemView()
        view.update(asyncio.run(scrape_all(targets)))
        applied = view.find("streams", "events applied total")
        assert applied == "streamrec_streams_events_applied_total"
        assert view.total("streams", applied) == 2 * 1187
        assert view.rate("streams", applied) is None   # one scrape: no rate yet
        m1["applied"].inc(100)
        m2["applied"].inc(300)
        m1["rejected"].labels(reason="too_large").inc(5)
        for _ in range(10):
            m1["latency"].observe(0.5)
        second = asyncio.run(scrape_all(targets))
    # Rates are increases over each endpoint's own interval: pin the interval to read them exactly.
    for s in second:
        s.at = view.current[(s.role, s.url)].at + 2.0
    view.update(second)
    assert view.rate("streams", applied) == pytest.approx(200.0)
    rejected = view.find("streams", "rejected total")
    assert view.rate_by_label("streams", rejected, "reason") == pytest.approx(
        {"bad_json": 0.0, "too_large": 2.5})
    # p50 of the 10 new observations (all in the 0.1-1.0 bucket), not of all 30 so far
    assert view.quantile("streams", "streamrec_streams_apply_latency_seconds", 0.5) == pytest.approx(0.55)


def test_counter_reset_and_vanished_replica():
    page = "# TYPE x_total counter\nx_total 100\n"
    view = SystemView()
    view.update([Scrape.from_text("streams", "u1", page, at=0.0), Scrape.from_text("streams", "u2", page, at=0.0)])
    restarted = "# TYPE x_total counter\nx_total 10\n"   # process restarted: counter went down
    view.update([Scrape.from_text("streams", "u1", restarted, at=5.0)])
    assert view.rate("streams", "x_total") == pytest.approx(2.0)   # 10 since the reset, over 5 s
    assert [s.url for s in view.endpoints()] == ["u1"]


def test_histogram_quantile_edges():
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {1.0: 0, float("inf"): 0}) is None
    assert histogram_quantile(0.99, {1.0: 1, float("inf"): 100}) == 1.0   # rank in +Inf: largest bound
    assert histogram_quantile(0.25, {1.0: 4, 2.0: 4, float("inf"): 4}) == pytest.approx(0.25)


def test_metrics_table_lists_what_the_modules_export(capsys):
    from harness.metric_catalogue import process_metrics

    catalogue = process_metrics()
    assert main(["--metrics-table"]) == 0
    out = capsys.readouterr().out
    for infos in catalogue.values():
        for info in infos:
            assert f"`{info.exposed_name}`" in out


def test_experiment_arms_get_rows_of_their_own_and_leave_the_overall_figures_alone(capsys):
    reg = serving_registry()
    arm = ["experiment", "arm"]
    hit = Gauge("streamrec_serving_experiment_online_hit_rate", "hr", arm, registry=reg)
    gini = Gauge("streamrec_serving_experiment_exposure_gini", "g", arm, registry=reg)
    requests = Counter("streamrec_serving_experiment_requests", "r", arm, registry=reg)
    for name, hr, g, n in (("control", 0.3125, 0.5, 40), ("diverse", 0.4375, 0.25, 24)):
        hit.labels("div", name).set(hr)
        gini.labels("div", name).set(g)
        requests.labels("div", name).inc(n)
    with MetricsServer(reg) as v:
        view = SystemView()
        view.update(asyncio.run(scrape_all([("serving", v.url)])))
        rc = main(["--once", "--serving-url", v.url, "--streams-url", v.url, "--learner-url", v.url])
    out = capsys.readouterr().out
    rows = {row[1]: row for row in arm_rows(view)}
    assert set(rows) == {"control", "diverse"} and rows["control"][0] == "div"
    assert rows["control"][3] == "0.3125" and rows["diverse"][3] == "0.4375"     # HR@10
    assert rows["diverse"][7] == "0.25" and "total 24" in rows["diverse"][2]       # Gini, requests
    # The overall rows still read the overall series (0.125 HR@10), not an arm's.
    assert dict(serving_rows(view))["online HR@10"] == "0.125"
    assert dict(serving_rows(view))["exposure Gini"] == "0.875"
    assert rc == 0 and "experiments (per arm)" in out and "0.4375" in out


def test_no_arm_table_without_experiments(capsys):
    with MetricsServer(serving_registry()) as v:
        main(["--once", "--serving-url", v.url, "--streams-url", v.url, "--learner-url", v.url])
    assert "experiments (per arm)" not in capsys.readouterr().out
