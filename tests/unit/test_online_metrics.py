"""Online HR/NDCG and exposure diversity, checked against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from streamrec.observability.online_metrics import (
    ExposureWindow,
    OnlineAccuracy,
    OnlineQuality,
    exposure_coverage,
    exposure_entropy,
    exposure_gini,
    hits_and_gains,
)

LOG2_3 = math.log2(3)


# --- pure arithmetic ----------------------------------------------------------------------

def test_hits_and_gains_rank_by_rank():
    lists = np.array([["a", "b", "c", "d"]] * 5, dtype=object)
    hits, gains = hits_and_gains(lists, np.array(["a", "b", "c", "d", "z"], dtype=object), k=3)
    assert hits.tolist() == [True, True, True, False, False]
    # ranks 0,1,2 -> 1/log2(2), 1/log2(3), 1/log2(4)=0.5; "d" is at rank 3, beyond k=3
    assert gains == pytest.approx([1.0, 1 / LOG2_3, 0.5, 0.0, 0.0])


def test_hits_and_gains_does_not_truncate_string_targets():
    # A fixed-width "<U1" list array must not turn target "bb" into "b".
    hits, _ = hits_and_gains(np.array([["a", "b"]]), np.array(["bb"]), k=2)
    assert hits.tolist() == [False]


def test_hits_and_gains_padding_never_matches():
    lists = np.array([["a", None, None]], dtype=object)
    hits, gains = hits_and_gains(lists, np.array(["x"], dtype=object), k=3)
    assert hits.tolist() == [False] and gains.tolist() == [0.0]


def test_entropy_by_hand():
    assert exposure_entropy(np.array([5])) == 0.0                # one item takes all
    assert exposure_entropy(np.array([1, 1, 1, 1])) == pytest.approx(2.0)  # log2(4)
    # p = (1/2, 1/4, 1/4): 1/2*1 + 2 * 1/4*2 = 1.5 bits; zeros ignored
    assert exposure_entropy(np.array([2, 0, 1, 1])) == pytest.approx(1.5)
    assert math.isnan(exposure_entropy(np.zeros(3)))


def test_gini_by_hand():
    assert exposure_gini(np.array([3, 3, 3])) == pytest.approx(0.0)
    # all exposure on one of 4 items: sorted (0,0,0,4): 2*4*4/(4*4) - 5/4 = 0.75 = (n-1)/n
    assert exposure_gini(np.array([4]), catalogue_size=4) == pytest.approx(0.75)
    # (1, 2, 3): 2*(1*1+2*2+3*3)/(3*6) - 4/3 = 28/18 - 24/18 = 2/9
    assert exposure_gini(np.array([3, 1, 2])) == pytest.approx(2 / 9)
    # the same exposure looks less even once never-shown catalogue items count
    assert exposure_gini(np.array([3, 1, 2]), catalogue_size=6) > exposure_gini(np.array([3, 1, 2]))
    assert math.isnan(exposure_gini(np.array([0, 0])))


def test_coverage_by_hand():
    assert exposure_coverage(np.array([1, 0, 7, 0]), catalogue_size=10) == pytest.approx(0.2)
    assert exposure_coverage(np.array([1, 1, 1]), catalogue_size=2) == 1.0  # capped
    assert math.isnan(exposure_coverage(np.array([1]), catalogue_size=0))


# --- OnlineAccuracy -----------------------------------------------------------------------

def test_accuracy_scores_next_event_once():
    acc = OnlineAccuracy(k=10, window=100)
    acc.served(["u1", "u2", "u3"], [["a", "b", "c"], ["x", "y"], ["p"]])
    # u1 hits at rank 2, u2 misses, u9 was never served, u1's second event finds nothing pending
    scored = acc.observe(["u1", "u2", "u9", "u1"], ["c", "q", "a", "a"])
    assert scored == 2
    assert acc.count == 2 and acc.pending == 1 and acc.scored_total == 2
    assert acc.hit_rate == pytest.approx(0.5)
    assert acc.ndcg == pytest.approx((0.5 + 0.0) / 2)


def test_accuracy_empty_is_nan():
    acc = OnlineAccuracy()
    assert math.isnan(acc.hit_rate) and math.isnan(acc.ndcg) and acc.count == 0


def test_accuracy_cutoff_k_truncates_served_lists():
    acc = OnlineAccuracy(k=2, window=10)
    acc.served(["u"], [["a", "b", "c"]])
    acc.observe(["u"], ["c"])
    assert acc.hit_rate == 0.0


def test_accuracy_window_slides_over_last_outcomes():
    acc = OnlineAccuracy(k=10, window=3)
    outcomes = ["a", "a", "z", "z", "b"]  # hit@0, hit@0, miss, miss, hit@1
    for target in outcomes:
        acc.served(["u"], [["a", "b"]])
        acc.observe(["u"], [target])
    assert acc.count == 3 and acc.scored_total == 5
    assert acc.hit_rate == pytest.approx(1 / 3)            # last three: miss, miss, hit
    assert acc.ndcg == pytest.approx((1 / LOG2_3) / 3)


def test_accuracy_batch_larger_than_window_keeps_the_newest():
    acc = OnlineAccuracy(k=1, window=2)
    users = [f"u{i}" for i in range(5)]
    acc.served(users, [["a"]] * 5)
    acc.observe(users, ["z", "z", "z", "a", "a"])
    assert acc.count == 2 and acc.hit_rate == 1.0


def test_accuracy_reserve_replaces_unscored_list():
    acc = OnlineAccuracy(k=10, window=10)
    acc.served(["u"], [["a"]])
    acc.served(["u"], [["b"]])
    acc.observe(["u"], ["b"])
    assert acc.hit_rate == 1.0 and acc.dropped_total == 1


def test_accuracy_max_pending_evicts_oldest():
    acc = OnlineAccuracy(k=10, window=10, max_pending=2)
    acc.served(["u1", "u2", "u3"], [["a"], ["a"], ["a"]])
    assert acc.pending == 2 and acc.dropped_total == 1
    assert acc.observe(["u1", "u2", "u3"], ["a", "a", "a"]) == 2   # u1 was evicted


def test_accuracy_ttl_drops_stale_lists():
    acc = OnlineAccuracy(k=10, window=10, ttl_s=60)
    acc.served(["old", "new"], [["a"], ["a"]], now=1000.0)
    acc.served(["new"], [["a"]], now=1100.0)
    assert acc.observe(["old", "new"], ["a", "a"], now=1130.0) == 1
    assert acc.count == 1 and acc.dropped_total == 2  # old expired, new's first list replaced


# --- ExposureWindow -----------------------------------------------------------------------

def test_exposure_by_hand():
    exp = ExposureWindow(window=10, catalogue_size=5)
    exp.served([["a", "b"], ["a", "c"]])        # a:2 b:1 c:1, two of five never shown
    assert exp.impressions == 4
    assert exp.entropy() == pytest.approx(1.5)
    assert exp.coverage() == pytest.approx(3 / 5)
    # sorted (0,0,1,1,2), ranks 3,4,5: 2*(3+4+10)/(5*4) - 6/5 = 1.7 - 1.2 = 0.5
    assert exp.gini() == pytest.approx(0.5)


def test_exposure_window_slides_out_old_lists():
    exp = ExposureWindow(window=2, catalogue_size=4)
    exp.served([["a", "b"]])
    exp.served([["a"], ["a"]])                  # ["a", "b"] slides out
    assert exp.impressions == 2 and exp.lists_total == 3
    assert exp.entropy() == 0.0
    assert exp.coverage() == pytest.approx(1 / 4)
    assert exp.gini() == pytest.approx(0.75)


def test_exposure_unknown_catalogue():
    exp = ExposureWindow(window=5)
    assert math.isnan(exp.entropy()) and math.isnan(exp.gini())
    exp.served([["a", "b"]])
    assert math.isnan(exp.coverage())
    assert exp.gini() == pytest.approx(0.0)     # over the items seen so far
    exp.set_catalogue_size(4)
    assert exp.coverage() == pytest.approx(0.5)


def test_exposure_grows_past_initial_capacity():
    exp = ExposureWindow(window=10_000, catalogue_size=3000)
    exp.served([[f"i{j}" for j in range(i, i + 10)] for i in range(0, 3000, 10)])
    assert exp.impressions == 3000 and exp.coverage() == 1.0
    assert exp.entropy() == pytest.approx(math.log2(3000))
    assert exp.gini() == pytest.approx(0.0, abs=1e-12)


def test_constructor_rejects_nonsense():
    with pytest.raises(ValueError):
        OnlineAccuracy(k=0)
    with pytest.raises(ValueError):
        ExposureWindow(window=0)


def test_online_quality_gauges_read_the_windows_at_scrape_time():
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry()
    quality = OnlineQuality(k=10, catalogue_size=10)
    names = ("hit_rate", "ndcg", "entropy", "gini", "coverage")
    quality.bind(**{n: Gauge(f"q_{n}", n, registry=reg) for n in names})
    assert math.isnan(reg.get_sample_value("q_hit_rate"))     # nothing scored yet
    quality.served("u1", ["a", "b", "c", "d"])
    quality.served("u2", ["a", "b", "c", "d"])
    quality.observe(["u1", "u2"], ["b", "z"])                 # hit at rank 1, miss
    assert reg.get_sample_value("q_hit_rate") == pytest.approx(0.5)
    assert reg.get_sample_value("q_ndcg") == pytest.approx(0.5 / LOG2_3)
    assert reg.get_sample_value("q_entropy") == pytest.approx(2.0)   # 4 items, 2 impressions each
    assert reg.get_sample_value("q_coverage") == pytest.approx(0.4)
    # (0 x6, 2 x4) over 10: ranks 7..10 -> 2*2*(7+8+9+10)/(10*8) - 11/10 = 1.7 - 1.1 = 0.6
    assert reg.get_sample_value("q_gini") == pytest.approx(0.6)
