"""Re-ranking: seen items removed, MMR diversity, seeded exploration, reasons."""
import numpy as np
from hypothesis import given, settings, strategies as st

from streamrec.ranking.rerank import ExplorePool, exploration_slots, mmr, rerank


def _setup(n=40, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return [f"c{j}" for j in range(n)], rng.random(n), vectors


def _pool(n=30):
    ids = [f"p{j}" for j in range(n)]
    exposure = np.arange(n, dtype=np.float64)
    return ExplorePool(ids, np.zeros(n), 1.0 / (1.0 + exposure) ** 2, np.array([j % 3 == 0 for j in range(n)]))


def test_zero_diversity_is_plain_relevance_order():
    ids, rel, vectors = _setup()
    out = rerank(ids, rel, vectors, k=10, diversity=0.0)
    assert [r.item_id for r in out] == [ids[j] for j in np.argsort(-rel)[:10]]


def test_seen_and_excluded_items_are_removed():
    ids, rel, vectors = _setup()
    best = [ids[j] for j in np.argsort(-rel)[:3]]
    out = rerank(ids, rel, vectors, k=10, diversity=0.3, exclude=set(best))
    assert len(out) == 10 and not set(best) & {r.item_id for r in out}


def test_diversity_lowers_similarity_within_the_list():
    ids, rel, vectors = _setup(n=200)
    # Near-duplicates of the best item crowd the top of the relevance order.
    top = int(np.argmax(rel))
    for j in np.argsort(-rel)[1:6]:
        vectors[j] = vectors[top] + 0.01 * vectors[j]

    def mean_similarity(picks):
        v = vectors[picks] / np.linalg.norm(vectors[picks], axis=1, keepdims=True)
        sims = v @ v.T
        return (sims.sum() - len(picks)) / (len(picks) * (len(picks) - 1))

    plain, diverse = mmr(rel, vectors, 10, 0.0), mmr(rel, vectors, 10, 0.5)
    assert plain[0] == diverse[0] == top
    assert mean_similarity(diverse) < mean_similarity(plain)


def test_exploration_is_deterministic_under_a_seed_and_takes_slots():
    ids, rel, vectors = _setup()
    args = dict(k=10, diversity=0.2, exploration=0.3, explore_pool=_pool())
    a, b = rerank(ids, rel, vectors, seed=5, **args), rerank(ids, rel, vectors, seed=5, **args)
    assert a == b
    explored = [r for r in a if r.reason in ("new", "explore")]
    assert len(explored) == 3 and a[0].reason not in ("new", "explore")
    assert all((r.reason == "new") == (int(r.item_id[1:]) % 3 == 0) for r in explored)
    different = {tuple(r.item_id for r in rerank(ids, rel, vectors, seed=s, **args)) for s in range(10)}
    assert len(different) > 1


def test_exploration_favours_the_least_exposed():
    counts = np.zeros(30)
    rng_seeds = range(300)
    ids, rel, vectors = _setup()
    for seed in rng_seeds:
        for r in rerank(ids, rel, vectors, k=10, diversity=0.0, exploration=0.2, seed=seed, explore_pool=_pool()):
            if r.item_id.startswith("p"):
                counts[int(r.item_id[1:])] += 1
    assert counts[:5].sum() > counts[5:].sum()


def test_reason_is_the_most_similar_history_item_or_trending():
    vectors = np.array([[1, 0], [0, 1]], dtype=np.float32)
    history = np.array([[0.1, 1.0], [1.0, 0.1]], dtype=np.float32)
    out = rerank(["x", "y"], np.array([1.0, 0.5]), vectors, k=2, diversity=0.0,
                 history_ids=["h-y", "h-x"], history_vectors=history)
    assert [(r.item_id, r.reason) for r in out] == [("x", "h-x"), ("y", "h-y")]
    assert {r.reason for r in rerank(["x", "y"], np.array([1.0, 0.5]), vectors, k=2, diversity=0.0)} == {"trending"}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 30), k=st.integers(1, 15), diversity=st.floats(0, 1), exploration=st.floats(0, 1),
       seed=st.integers(0, 2**32), n_pool=st.integers(0, 10))
def test_rerank_returns_unique_allowed_items(n, k, diversity, exploration, seed, n_pool):
    ids, rel, vectors = _setup(n=n, seed=seed % 1000)
    exclude = set(ids[:2])
    pool = _pool(n_pool) if n_pool else None
    out = rerank(ids, rel, vectors, k=k, diversity=diversity, exploration=exploration, seed=seed,
                 exclude=exclude, explore_pool=pool)
    got = [r.item_id for r in out]
    assert len(got) == len(set(got)) <= k and not exclude & set(got)
    assert len(got) == min(k, len(ids) - len(exclude & set(ids)) + n_pool)


def test_exploration_slots():
    rng = np.random.default_rng(0)
    assert exploration_slots(10, 0.0, rng) == 0 and exploration_slots(1, 1.0, rng) == 0
    assert exploration_slots(10, 1.0, rng) == 9
    draws = [exploration_slots(10, 0.15, np.random.default_rng(s)) for s in range(400)]
    assert set(draws) == {1, 2} and 0.4 < np.mean(draws) - 1 < 0.6
