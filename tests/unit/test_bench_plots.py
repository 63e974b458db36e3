"""Benchmark plots are drawn from the JSON alone, one PNG per benchmark, and `streamrec
report` redraws them; latency quantiles are the plain percentiles."""
import json

import numpy as np
import pytest

from harness.bench.plots import latency_quantiles, write_bench_plot
from harness.evaluation.report import main as report_main

Q = latency_quantiles(np.linspace(1.0, 50.0, 500))

RESULTS = {
    "streams": {"benchmark": "streams", "date": "2026-11-30",
                "ingest": [{"pack": 1, "users": 10_000, "events": 20_000, "raw_consumer_events_per_s": 680_000,
                            "streams_events_per_s": 6_000, "ratio": 0.0088},
                           {"pack": 100, "users": 10_000, "events": 100_000, "raw_consumer_events_per_s": 3_250_000,
                            "streams_events_per_s": 29_000, "ratio": 0.0089}],
                "freshness": {"rate_per_s": 1000.0, "events": 500, "observed": 500, "p50_ms": 25.5, "p99_ms": 49.5,
                              "quantiles_ms": Q},
                "memory": [{"users": 10_000, "events": 30_000, "state_bytes_per_user": 481, "rss_bytes_per_user": 490,
                            "in_process_events_per_s": 40_000},
                           {"users": 100_000, "events": 300_000, "state_bytes_per_user": 481,
                            "rss_bytes_per_user": 495, "in_process_events_per_s": 30_000}]},
    "serving": {"benchmark": "serving", "date": "2026-11-30", "items": 10_000, "index": "flat", "users": 2_000,
                "rows": [{"path": "http", "target_rate": 500.0, "quantiles_ms": Q},
                         {"path": "topic", "target_rate": 200.0, "quantiles_ms": None},
                         {"path": "http_overload", "target_rate": 1600.0, "quantiles_ms": Q, "shed_quantiles_ms": Q}],
                "targets": {"http_p99_ms": 10.0, "event_to_visible_p99_ms": 100.0,
                            "overload_accepted_p99_ms": 250.0, "overload_shed_p99_ms": 20.0}},
    "learner": {"benchmark": "learner", "date": "2026-11-30", "cycles": 3, "mean_cycle_s": 0.9,
                "versions_published": 3, "versions_seen_by_serving": 2,
                "per_version": [{"version": 1, "announced_after_s": 5.0, "announce_to_swap_ms": 120.0},
                                {"version": 2, "announced_after_s": 9.5, "announce_to_swap_ms": 95.0},
                                {"version": 3, "announced_after_s": 14.0, "announce_to_swap_ms": None}]},
}


def test_latency_quantiles_are_percentiles_from_min_to_max():
    q = latency_quantiles([4.0, 1.0, 3.0, 2.0, 5.0])
    assert len(q) == 101 and q[0] == 1.0 and q[50] == 3.0 and q[100] == 5.0
    assert q == sorted(q)
    assert latency_quantiles([]) is None


@pytest.mark.parametrize("kind", sorted(RESULTS))
def test_each_benchmark_draws_one_png_next_to_its_json(tmp_path, kind):
    json_path = tmp_path / f"bench-{kind}.json"
    json_path.write_text(json.dumps(RESULTS[kind]))
    png = write_bench_plot(RESULTS[kind], json_path)
    assert png == tmp_path / f"bench-{kind}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_report_redraws_a_bench_result_and_refuses_unknown_documents(tmp_path, capsys):
    json_path = tmp_path / "bench-serving.json"
    json_path.write_text(json.dumps(RESULTS["serving"]))
    assert report_main([str(json_path), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "bench-serving.png").exists()
    with pytest.raises(ValueError, match="not a streamrec bench result"):
        write_bench_plot({"benchmark": "nope"}, json_path)
