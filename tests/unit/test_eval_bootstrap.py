"""The cluster bootstrap behind the evaluation's 95% intervals: resampling users, paired differences."""
from __future__ import annotations

import numpy as np
import pytest

from harness.evaluation.bootstrap import UserBootstrap


def requests(n_users: int, per_user: int, seed: int = 0, p: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Users with ``per_user`` requests each, hits drawn with a per-user rate around ``p``."""
    rng = np.random.default_rng(seed)
    rate = np.clip(rng.normal(p, 0.1, n_users), 0, 1)
    users = np.repeat(np.arange(n_users), per_user)
    return users, (rng.random(len(users)) < rate[users]).astype(float)


def test_interval_contains_the_mean_and_is_deterministic_under_its_seed():
    users, hits = requests(300, 8)
    low, high = UserBootstrap(users, 1000, seed=0).interval(hits)
    assert low[0] < hits.mean() < high[0]
    again = UserBootstrap(users, 1000, seed=0).interval(hits)
    other = UserBootstrap(users, 1000, seed=1).interval(hits)
    assert np.array_equal(low, again[0]) and np.array_equal(high, again[1])
    assert (low[0], high[0]) != (other[0][0], other[1][0])


def test_interval_narrows_with_more_users():
    width = []
    for n_users in (50, 500, 5000):
        users, hits = requests(n_users, 5)
        low, high = UserBootstrap(users, 500).interval(hits)
        width.append(high[0] - low[0])
    assert width[0] > width[1] > width[2]
    # About 1/sqrt(10) per tenfold: the interval is not an artefact of the resample count.
    assert width[1] / width[0] == pytest.approx(10 ** -0.5, rel=0.35)


def test_users_not_requests_are_resampled():
    """Repeating each user's one request ten times adds no evidence, so the interval must
    not narrow: it is exactly that of one request per user."""
    users, hits = requests(200, 1)
    once = UserBootstrap(users, 400).interval(hits)
    tenfold = UserBootstrap(np.repeat(users, 10), 400).interval(np.repeat(hits, 10))
    assert np.allclose(once, tenfold)


def test_paired_difference_of_a_method_with_itself_is_exactly_zero():
    users, hits = requests(100, 6)
    values = np.stack([hits, hits * 0.5], axis=1)       # two metrics at once
    point, low, high = UserBootstrap(users, 300).difference(values, values)
    assert point.tolist() == [0.0, 0.0] and low.tolist() == [0.0, 0.0] and high.tolist() == [0.0, 0.0]


def test_pairing_removes_what_both_methods_share():
    """B hits wherever A does plus on 2% more requests: unpaired intervals of the two means
    overlap, but the paired difference is clearly above zero."""
    users, a = requests(300, 10, seed=4)
    extra = np.random.default_rng(5).random(len(a)) < 0.02
    b = np.maximum(a, extra)
    boot = UserBootstrap(users, 1000)
    (low_a,), (high_a,) = boot.interval(a)
    (low_b,), (high_b,) = boot.interval(b)
    assert low_b < high_a                                 # the marginal intervals overlap
    (point,), (low,), (high,) = boot.difference(b, a)
    assert 0 < low <= point <= high


def test_a_mask_keeps_only_its_requests_and_an_empty_one_has_no_interval():
    users = np.array([0, 0, 1, 1, 2, 2])
    hits = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    boot = UserBootstrap(users, 200)
    first = np.array([True, False, True, False, True, False])
    low, high = boot.interval(hits, first)
    assert 0 <= low[0] <= hits[first].mean() <= high[0] <= 1
    low, high = boot.interval(hits, np.zeros(6, dtype=bool))
    assert np.isnan(low[0]) and np.isnan(high[0])
