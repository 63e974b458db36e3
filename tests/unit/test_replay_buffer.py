import numpy as np
import pytest
from scipy.stats import chisquare

from learner.replay_buffer import ReplayBuffer

COLUMNS = {"x": ((), np.int64), "pair": ((2,), np.float32)}


def fill(seed: int, n: int = 2000, size: int = 100, chunks=(1, 7, 50, 333)) -> ReplayBuffer:
    buf = ReplayBuffer(COLUMNS, reservoir_size=size, recent_size=10, seed=seed)
    rng = np.random.default_rng(seed + 10_000)
    start = 0
    while start < n:  # uneven batch sizes: the result must not depend on how events were batched
        k = min(int(rng.choice(chunks)), n - start)
        xs = np.arange(start, start + k)
        buf.add({"x": xs, "pair": np.stack([xs, -xs], axis=1)})
        start += k
    return buf


def inclusion_counts(reservoirs: list[np.ndarray], n: int, buckets: int) -> np.ndarray:
    counts = np.zeros(buckets)
    for kept in reservoirs:
        np.add.at(counts, kept * buckets // n, 1)
    return counts


def test_reservoir_keeps_a_uniform_sample_of_all_history():
    n, size, trials, buckets = 2000, 100, 300, 20
    kept = [fill(seed, n, size).reservoir_rows()["x"] for seed in range(trials)]
    assert all(len(np.unique(k)) == size for k in kept)  # a sample without duplicates
    counts = inclusion_counts(kept, n, buckets)
    assert chisquare(counts).pvalue > 0.001  # every stretch of history equally represented


def test_the_uniformity_test_detects_a_biased_sample():
    # Keeping the first `size` items (a common bug) must fail the same test.
    n, size, trials, buckets = 2000, 100, 300, 20
    biased = [np.arange(size) for _ in range(trials)]
    assert chisquare(inclusion_counts(biased, n, buckets)).pvalue < 1e-6


def test_rows_stay_together():
    buf = fill(0)
    rows = buf.reservoir_rows()
    assert (rows["pair"][:, 0] == rows["x"]).all() and (rows["pair"][:, 1] == -rows["x"]).all()


def test_recent_window_holds_the_newest_examples_in_order():
    buf = fill(3, n=1234)
    assert buf.recent_rows()["x"].tolist() == list(range(1224, 1234))


def test_sample_mixes_recent_and_replayed_at_the_requested_ratio():
    buf = ReplayBuffer(COLUMNS, reservoir_size=1000, recent_size=100, seed=1)
    buf.add({"x": np.arange(10_000), "pair": np.zeros((10_000, 2))})
    batch = buf.sample(200, recent_fraction=0.25)
    recent = batch["x"] >= 9900
    assert recent[:50].all()
    # The replayed part comes from all of history, mostly older than the window.
    assert (batch["x"][50:] < 9900).mean() > 0.9


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(ValueError):
        ReplayBuffer(COLUMNS, 10, 10).sample(4)


def test_state_round_trip_continues_identically():
    buf = fill(5)
    arrays, meta = buf.state_arrays()
    copy = ReplayBuffer.from_state(arrays, meta)
    more = {"x": np.arange(2000, 2600), "pair": np.zeros((600, 2))}
    buf.add(more)
    copy.add(more)
    for name in COLUMNS:
        assert np.array_equal(buf.reservoir_rows()[name], copy.reservoir_rows()[name])
    assert np.array_equal(buf.sample(64)["x"], copy.sample(64)["x"])
