"""Every evaluation metric against values computed by hand on tiny inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.evaluation import metrics


def test_accuracy_on_four_requests():
    ranks = np.array([0, 2, -1, 9])          # hit at 1st, 3rd, miss, 10th
    assert metrics.hit_rate(ranks) == pytest.approx(3 / 4)
    assert metrics.mrr(ranks) == pytest.approx((1 + 1 / 3 + 0 + 1 / 10) / 4)
    assert metrics.ndcg(ranks) == pytest.approx((1 + 1 / math.log2(4) + 0 + 1 / math.log2(11)) / 4)


def test_accuracy_all_misses_and_empty():
    assert metrics.hit_rate(np.array([-1, -1])) == 0.0
    assert metrics.ndcg(np.array([-1])) == 0.0 and metrics.mrr(np.array([-1])) == 0.0
    assert math.isnan(metrics.hit_rate(np.array([], dtype=int)))


def test_exposure_ignores_padding():
    lists = np.array([[0, 1, -1], [1, 3, -1]])
    assert metrics.exposure(lists, 5).tolist() == [1, 2, 0, 1, 0]
    assert metrics.coverage(lists, 5) == pytest.approx(3 / 5)


def test_gini_extremes_and_a_hand_case():
    assert metrics.gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert metrics.gini(np.array([0, 0, 0, 8])) == pytest.approx(3 / 4)     # (n-1)/n
    # sorted [1, 2, 3]: sum((2i-n-1) x_i) = -2*1 + 0*2 + 2*3 = 4; / (3 * 6)
    assert metrics.gini(np.array([3, 1, 2])) == pytest.approx(4 / 18)


def test_entropy_in_bits():
    assert metrics.entropy(np.array([1, 1, 1, 1])) == pytest.approx(2.0)
    assert metrics.entropy(np.array([4, 0, 0])) == pytest.approx(0.0)
    # p = (1/2, 1/4, 1/4): 0.5*1 + 2 * 0.25*2 = 1.5
    assert metrics.entropy(np.array([2, 1, 1, 0])) == pytest.approx(1.5)


def test_intra_list_diversity_by_hand():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    # list 1: items 0,1 orthogonal -> distance 1.
    # list 2: items 0,1,2: d(0,1)=1, d(0,2)=d(1,2)=1-1/sqrt(2) -> mean of three pairs.
    # list 3: a single item -> not counted.  list 4: item 3 has a zero vector -> distance 1.
    lists = np.array([[0, 1, -1], [0, 1, 2], [2, -1, -1], [3, 0, -1]])
    d = 1 - 1 / math.sqrt(2)
    expected = (1.0 + (1 + 2 * d) / 3 + 1.0) / 3
    assert metrics.intra_list_diversity(lists, vectors) == pytest.approx(expected)
    # chunking must not change the answer
    assert metrics.intra_list_diversity(lists, vectors, chunk=1) == pytest.approx(expected)


def test_identical_items_have_no_diversity():
    vectors = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert metrics.intra_list_diversity(np.array([[0, 1]]), vectors) == pytest.approx(0.0)


def test_novelty_is_mean_self_information():
    p = np.array([0.5, 0.25, 0.125])
    lists = np.array([[0, 1], [2, -1]])
    # list means: (1 + 2)/2 = 1.5 and 3; mean over lists 2.25
    assert metrics.novelty(lists, p) == pytest.approx(2.25)


def test_windows_partition_the_requests():
    assert metrics.window_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert metrics.window_bounds(2, 5) == [(0, 1), (1, 2)]
    ranks = np.array([0, -1, -1, -1])
    lists = np.array([[0], [1], [1], [1]])
    w = metrics.per_window(ranks, lists, n_items=2, windows=2)
    assert [x["hr"] for x in w] == [0.5, 0.0]
    assert [x["coverage"] for x in w] == [1.0, 0.5]
    assert (w[0]["start"], w[0]["end"], w[1]["start"], w[1]["end"]) == (0, 2, 2, 4)


def test_summarise_has_every_metric():
    out = metrics.summarise(np.array([1, -1]), np.array([[0, 1], [1, 2]]), 4,
                            item_vectors=np.eye(4), item_probability=np.full(4, 0.25))
    assert out["hr"] == 0.5 and out["requests"] == 2
    assert out["coverage"] == 0.75 and out["ild"] == pytest.approx(1.0) and out["novelty"] == pytest.approx(2.0)
    assert set(out) >= {"ndcg", "mrr", "gini", "entropy"}


def test_next_items_metrics_by_hand():
    # Request 1: list [5, 6, 7, 8], relevant {6, 8, 3}: slots 2 and 4 hold relevant items.
    #   recall 2/3, precision 2/4, AP = (1/2 + 2/4) / min(3, 4) = 1/3.
    # Request 2: list [4, 9, -1, -1] (two items served), relevant {4}: slot 1.
    #   recall 1, precision 1/4 (k is the list length, whatever was served), AP = 1 / 1.
    # Request 3: list [1, 2, 3, 0], relevant {9, 10}: nothing. recall 0, precision 0, AP 0.
    lists = np.array([[5, 6, 7, 8], [4, 9, -1, -1], [1, 2, 3, 0]])
    relevant = np.array([[6, 8, 3], [4, -1, -1], [9, 10, -1]])
    assert metrics.recall(lists, relevant) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert metrics.precision(lists, relevant) == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert metrics.mean_average_precision(lists, relevant) == pytest.approx((1 / 3 + 1 + 0) / 3)


def test_average_precision_rewards_relevant_items_placed_first():
    relevant = np.array([[1, 2]])
    first = metrics.mean_average_precision(np.array([[1, 2, 7, 8]]), relevant)
    last = metrics.mean_average_precision(np.array([[7, 8, 1, 2]]), relevant)
    assert first == pytest.approx(1.0)
    assert last == pytest.approx((1 / 3 + 2 / 4) / 2)
    # Recall and precision do not see the order.
    assert metrics.recall(np.array([[1, 2, 7, 8]]), relevant) == metrics.recall(np.array([[7, 8, 1, 2]]), relevant)


def test_padding_never_counts_as_relevant():
    lists = np.array([[3, -1, -1]])
    relevant = np.array([[5, -1, -1]])
    assert not metrics.relevant_slots(lists, relevant).any()
    assert metrics.recall(lists, relevant) == 0.0 and metrics.mean_average_precision(lists, relevant) == 0.0


def test_with_one_relevant_item_the_set_metrics_are_the_next_item_metrics():
    rng = np.random.default_rng(3)
    lists = np.stack([rng.permutation(30)[:10] for _ in range(200)])
    targets = rng.integers(0, 30, 200)
    hit = lists == targets[:, None]
    ranks = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    relevant = targets[:, None]
    assert metrics.recall(lists, relevant) == pytest.approx(metrics.hit_rate(ranks))
    assert metrics.precision(lists, relevant) == pytest.approx(metrics.hit_rate(ranks) / 10)
    assert metrics.mean_average_precision(lists, relevant) == pytest.approx(metrics.mrr(ranks))


def test_summarise_adds_the_set_metrics_only_with_relevant_items():
    ranks, lists = np.array([0, -1]), np.array([[4, 1], [2, 3]])
    assert "recall" not in metrics.summarise(ranks, lists, 5)
    out = metrics.summarise(ranks, lists, 5, relevant=np.array([[4, 3], [0, -1]]))
    assert out["recall"] == pytest.approx(0.25) and out["precision"] == pytest.approx(0.25)
    assert out["map"] == pytest.approx(0.25)     # (1/1) / min(2, 2) = 0.5, then 0
