"""The prequential protocol: order, exclusions, blocks, repeats, warm-up, and the results file."""
from __future__ import annotations

import json

import numpy as np
import pytest

from streamrec.baselines import ItemKNN, MostPopular
from harness.datasets import Dataset
from harness.evaluation import cli, report
from harness.evaluation.analysis import RequestAnalysis
from harness.evaluation.prequential import plan_stream, prequential, run_method
from streamrec.contracts.items import Item


def toy(rows: list[tuple[str, str]]) -> Dataset:
    n = len(rows)
    return Dataset("toy", np.array([u for u, _ in rows]), np.array([i for _, i in rows]),
                   np.arange(n, dtype=np.float64), np.ones(n, dtype=np.float32),
                   [Item(i, f"item {i}", tags=(("odd",) if int(i) % 2 else ("even",))) for i in "0123"])


def test_popular_by_hand():
    # e0 (u,0): no counts, ties by row -> [0,1,2], rank 0.   e1 (v,0): {0:1} -> [0,1,2], rank 0.
    # e2 (v,1): v had 0 -> [1,2,3], rank 0.   e3 (w,0): {0:2,1:1} -> [0,1,2], rank 0.
    # e4 (w,3): w had 0 -> [1,2,3], item 3 at rank 2.
    ds = toy([("u", "0"), ("v", "0"), ("v", "1"), ("w", "0"), ("w", "3")])
    run = run_method(MostPopular(), plan_stream(ds, block=1), k=3)
    assert run.ranks.tolist() == [0, 0, 0, 0, 2]
    assert run.lists[4].tolist() == [1, 2, 3]       # w already had 0


def test_exclusions_are_the_users_earlier_items():
    ds = toy([("u", "0"), ("u", "1"), ("u", "2"), ("u", "3")])
    run = run_method(MostPopular(), plan_stream(ds, block=1), k=4)
    for j, served in enumerate(run.lists):
        kept = served[served >= 0]
        assert not set(kept.tolist()) & set(range(j))   # items 0..j-1 are u's history
        assert len(kept) == 4 - j


def test_repeats_are_learned_not_scored_and_warmup_is_not_scored():
    ds = toy([("u", "0"), ("u", "0"), ("v", "1"), ("v", "2")])
    plan = plan_stream(ds, warmup=1)
    assert plan.scored.tolist() == [False, False, True, True] and plan.repeats == 1


def test_blocks_hold_distinct_users_and_respect_the_limit():
    ds = toy([("a", "0"), ("b", "0"), ("c", "0"), ("a", "1"), ("d", "1"), ("e", "2"), ("f", "3")])
    plan = plan_stream(ds, block=3)
    assert plan.blocks == [(0, 3), (3, 6), (6, 7)]
    assert plan_stream(ds, block=1).blocks == [(j, j + 1) for j in range(7)]


def test_batching_barely_changes_results(ml100k):
    """Batching only delays other users' events by at most a block, so item-kNN's ranks
    under blocks of 64 must agree with the strict one-event protocol almost everywhere."""
    ds = ml100k.head(3000)
    strict = run_method(ItemKNN(), plan_stream(ds, block=1))
    batched = run_method(ItemKNN(), plan_stream(ds, block=64))
    assert len(strict.ranks) == len(batched.ranks) == 3000
    agree = (strict.ranks == batched.ranks).mean()
    assert agree > 0.9


def test_results_document_and_report(ml100k, tmp_path, capsys):
    doc = prequential(ml100k, {"popular": MostPopular(), "item-knn": ItemKNN()}, limit=5000, windows=4)
    assert doc["protocol"]["scored"] == 5000 and doc["protocol"]["catalogue"] == 1682
    for name in ("popular", "item-knn"):
        assert len(doc["methods"][name]["windows"]) == 4
        assert 0 <= doc["methods"][name]["overall"]["hr"] <= 1
    # Item-kNN beats popularity on the first 5,000 events.
    assert doc["methods"]["item-knn"]["overall"]["hr"] > doc["methods"]["popular"]["overall"]["hr"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert report.main([str(path)]) == 0
    assert (tmp_path / "r-over-time.png").stat().st_size > 0
    assert "item-knn" in capsys.readouterr().out


def test_cli_writes_json_and_plots(tmp_path, capsys):
    from tests.conftest import DATA_DIR

    code = cli.main(["--dataset", "ml-100k", "--data-dir", str(DATA_DIR), "--limit", "800",
                     "--methods", "popular,isgd", "--out", str(tmp_path)])
    assert code == 0
    doc = json.loads((tmp_path / "evaluate-ml-100k.json").read_text())
    assert list(doc["methods"]) == ["popular", "isgd"]
    assert (tmp_path / "evaluate-ml-100k-over-time.png").exists()
    assert doc["protocol"]["next_items"] == 10 and doc["protocol"]["cold_events"] == 5
    assert doc["protocol"]["bootstrap"]["resamples"] == 1000 and doc["differences"]["reference"] == "popular"
    assert "1,682 rows read" in (tmp_path / "evaluate-ml-100k.md").read_text()
    assert (tmp_path / "evaluate-ml-100k-windows.csv").read_text().startswith("window,first_event,last_event")
    assert cli.main(["--dataset", "ml-100k", "--data-dir", str(DATA_DIR), "--limit", "300", "--methods", "popular",
                     "--next-items", "1", "--cold-events", "2", "--bootstrap", "0", "--no-plots",
                     "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "evaluate-ml-100k.json").read_text())
    overall = doc["methods"]["popular"]["overall"]
    assert overall["recall"] == overall["hr"] and doc["protocol"]["cold_events"] == 2
    assert doc["methods"]["popular"]["intervals"] == {}
    assert cli.main(["--methods", "nope", "--out", str(tmp_path)]) == 2


def test_sweep_plot_when_present(tmp_path):
    doc = {"dataset": "toy", "protocol": {"k": 10},
           "methods": {"m": {"overall": {"hr": 0.1, "ild": 0.5}, "windows": []}},
           "sweeps": {"m": [{"diversity_weight": w, "hr": 0.1 - w / 20, "ild": 0.5 + w / 5} for w in (0, 0.5, 1)]}}
    paths = report.write_plots(doc, tmp_path, "s")
    assert [p.name for p in paths] == ["s-over-time.png", "s-accuracy-diversity.png"]


def test_a_method_that_cannot_hold_the_catalogue_is_skipped_with_its_reason_and_the_rest_run():
    ds = toy([("u", "0"), ("v", "0"), ("v", "1"), ("w", "0"), ("w", "3")])
    doc = prequential(ds, {"popular": MostPopular(), "item-knn": ItemKNN(max_items=2)}, k=3)
    assert list(doc["methods"]) == ["popular"]
    assert "max_items=2" in doc["skipped"]["item-knn"]


def test_cold_requests_are_those_of_users_with_few_earlier_events():
    # u's events: 0, 1, 1 (a repeat: learned, not scored, but an earlier event), 2, 3.
    ds = toy([("u", "0"), ("u", "1"), ("v", "0"), ("u", "1"), ("u", "2"), ("u", "3"), ("v", "1")])
    plan = plan_stream(ds)
    assert plan.earlier.tolist() == [0, 1, 0, 2, 3, 4, 1]
    analysis = RequestAnalysis.of(plan, next_items=3, cold_events=3, resamples=0)
    # Scored: events 0, 1, 2, 4, 5, 6 (event 3 is the repeat).
    assert analysis.cold.tolist() == [True, True, True, False, False, True]
    # Relevant: the request's item, then the user's next new items (the repeat is not one).
    assert analysis.relevant.tolist() == [[0, 1, 2], [1, 2, 3], [0, 1, -1], [2, 3, -1], [3, -1, -1], [1, -1, -1]]


def test_results_hold_intervals_segments_and_differences_with_the_best_baseline(ml100k):
    methods = {"popular": MostPopular(), "item-knn": ItemKNN(), "knn-again": ItemKNN()}
    doc = prequential(ml100k, methods, limit=3000, windows=3, cold_events=5, bootstrap=200)
    p = doc["protocol"]
    assert p["cold_requests"] + p["warm_requests"] == p["scored"] == 3000
    assert p["bootstrap"]["resamples"] == 200 and p["bootstrap"]["users"] == len(set(ml100k.user_ids[:3000]))
    for result in doc["methods"].values():
        for key in ("hr", "ndcg", "mrr", "recall", "precision", "map"):
            low, high = result["intervals"][key]
            assert low <= result["overall"][key] <= high
        cold, warm = result["segments"]["cold"], result["segments"]["warm"]
        assert cold["requests"] + warm["requests"] == 3000
        # The overall mean is the request-weighted mean of the two segments.
        assert (cold["hr"] * cold["requests"] + warm["hr"] * warm["requests"]) / 3000 == \
            pytest.approx(result["overall"]["hr"])
    differences = doc["differences"]
    assert differences["reference"] == "item-knn" and set(differences["methods"]) == {"popular", "knn-again"}
    same = differences["methods"]["knn-again"]       # the same deterministic method: exactly 0
    assert all(v["difference"] == 0 and v["interval"] == [0, 0] for seg in same.values() for v in seg.values())
    worse = differences["methods"]["popular"]["overall"]["hr"]
    assert worse["difference"] == pytest.approx(doc["methods"]["popular"]["overall"]["hr"]
                                                - doc["methods"]["item-knn"]["overall"]["hr"])
    assert worse["interval"][0] <= worse["difference"] <= worse["interval"][1]


def test_windows_say_where_they_are_in_the_stream():
    ds = toy([("u", "0"), ("u", "0"), ("v", "1"), ("v", "2"), ("w", "3"), ("w", "1")])
    doc = prequential(ds, {"popular": MostPopular()}, k=2, windows=2, bootstrap=0)
    windows = doc["methods"]["popular"]["windows"]
    # Scored requests are events 0, 2, 3, 4, 5 (event 1 repeats); windows of 2 and 3 requests.
    assert [(w["first_event"], w["last_event"]) for w in windows] == [(0, 2), (3, 5)]
    assert [(w["t_start"], w["t_end"]) for w in windows] == [(0.0, 2.0), (3.0, 5.0)]
    assert doc["methods"]["popular"]["intervals"] == {} and doc["protocol"]["bootstrap"] is None
