"""The online co-occurrence scorer and its blend with model scores."""
import numpy as np
import pytest

from streamrec.baselines.item_knn import ItemKNN
from streamrec.state.cooccurrence import Cooccurrence, blend
from streamrec.contracts.events import Event


def _stream(n_users=30, n_items=25, per_user=8, seed=3):
    rng = np.random.default_rng(seed)
    events, t = [], 0.0
    for _ in range(n_users * per_user):
        t += 60.0
        events.append(Event(f"u{rng.integers(n_users)}", f"i{rng.integers(n_items)}", "click", t))
    return events


@pytest.mark.parametrize("max_dense_items", [10_000, 0])   # the dense matrix; lists that never fill
def test_unwindowed_undecayed_scores_equal_item_knn(max_dense_items):
    events = _stream()
    knn = ItemKNN(history=20, recency_decay=0.8)
    items = sorted({e.item_id for e in events})
    knn.set_catalogue(items)
    co = Cooccurrence(window=10_000, history=20, recency_decay=0.8, max_dense_items=max_dense_items,
                      neighbours=len(items))
    co.rows(items)
    histories: dict[str, list[str]] = {}
    for e in events:
        co.learn(e.user_id, e.item_id, e.timestamp)
        histories.setdefault(e.user_id, []).append(e.item_id)
        knn.learn_one(e)
    users = sorted(histories)
    # ItemKNN adds a popularity tie-break below 1e-9; otherwise the same cosine sums.
    np.testing.assert_allclose(co.scores([histories[u] for u in users]), knn.score_many(users), atol=1e-6)


def test_window_limits_pairs_and_repeats_add_nothing():
    co = Cooccurrence(window=1)
    for item in ("a", "b", "c"):          # c meets only b (the newest) in the window
        co.learn("u", item, 1.0)
    rows = co.rows(["a", "b", "c"])
    pairs = co.store.pairs
    assert pairs[rows[2], rows[1]] == 1 and pairs[rows[2], rows[0]] == 0
    before = pairs.copy(), co.counts.copy()
    co.learn("u", "c", 2.0)               # c is already the user's newest item
    np.testing.assert_array_equal(co.store.pairs, before[0])
    np.testing.assert_array_equal(co.counts, before[1])


def test_half_life_discounts_old_evidence():
    co = Cooccurrence(window=5, history=1, half_life_s=100.0)
    for user, item, t in (("u1", "a", 0.0), ("u1", "old", 0.0), ("u2", "a", 100.0), ("u2", "new", 100.0)):
        co.learn(user, item, t)
    s = co.scores([["a"]])[0]
    rows = co.rows(["old", "new"])
    assert s[rows[1]] > s[rows[0]] > 0
    undecayed = Cooccurrence(window=5, history=1)
    for user, item, t in (("u1", "a", 0.0), ("u1", "old", 0.0), ("u2", "a", 100.0), ("u2", "new", 100.0)):
        undecayed.learn(user, item, t)
    s = undecayed.scores([["a"]])[0]
    assert s[rows[1]] == s[rows[0]]


def test_rescaling_keeps_similarities():
    co = Cooccurrence(window=5, half_life_s=1.0)
    for t in range(0, 60, 3):   # 2**60 would overflow the scale without rescaling
        co.learn(f"u{t}", "a", float(t))
        co.learn(f"u{t}", f"i{t}", float(t))
    s = co.scores([["a"]])[0]
    assert np.all(np.isfinite(s)) and s[co.rows(["i57"])[0]] > s[co.rows(["i54"])[0]] > 0


def test_past_the_dense_cap_each_item_keeps_its_strongest_pairs_and_scoring_goes_on():
    co = Cooccurrence(window=10, capacity=2, max_dense_items=4, neighbours=2)
    for user in range(5):                 # a-b five times, a-c twice, a-d once
        for item in ("a", "b") + (("c",) if user < 2 else ()) + (("d",) if user < 1 else ()):
            co.learn(f"u{user}", item, 1.0)
    assert not co.bounded
    before = co.neighbour_scores(["a"])
    co.learn("u9", "e", 2.0)              # a fifth item: the matrix becomes lists of two
    assert co.bounded and len(co) == 5
    rows, scores = co.neighbour_scores(["a"])
    kept = dict(zip((co.item_ids[r] for r in rows), scores))
    assert set(kept) == {"b", "c"}        # d, the weakest, is the one that went
    expected = dict(zip((co.item_ids[r] for r in before[0]), before[1]))
    assert kept == pytest.approx({i: expected[i] for i in ("b", "c")})
    co.learn("u9", "a", 3.0)              # and it keeps learning: a enters e's (empty) list,
    assert {co.item_ids[r] for r in co.neighbour_scores(["e"])[0]} == {"a"}
    assert set(co.item_ids[r] for r in co.neighbour_scores(["a"])[0]) == {"b", "c"}   # not a's full one yet


def test_bounded_memory_per_item_does_not_grow_with_the_catalogue():
    per_item = []
    for n_items in (200, 2_000):
        co = Cooccurrence(window=20, max_dense_items=0, neighbours=16)
        rng = np.random.default_rng(0)
        for k in range(4_000):
            co.learn(f"u{rng.integers(300)}", f"i{rng.integers(n_items)}", float(k))
        per_item.append(co.memory_bytes() / len(co))
    assert per_item[0] == per_item[1]


def test_bounded_lists_find_the_planted_heavy_partners_among_noise():
    """Baskets of four neighbouring items plus two random ones: each item's six strong partners
    (the three on either side) must survive in lists of eight, among the ~200 items it meets."""
    rng = np.random.default_rng(7)
    n_items = 300
    co = Cooccurrence(window=6, max_dense_items=0, neighbours=8)
    for session in range(6_000):
        anchor = int(rng.integers(n_items))
        basket = [(anchor + d) % n_items for d in range(4)] + rng.integers(n_items, size=2).tolist()
        for item in rng.permutation(basket):
            co.learn(f"s{session}", f"i{item}", float(session))
    recovered = 0
    for i in range(n_items):
        rows, scores = co.neighbour_scores([f"i{i}"])
        top = {co.item_ids[r] for r in rows[np.argsort(-scores)[:6]]}
        recovered += len(top & {f"i{(i + d) % n_items}" for d in (-3, -2, -1, 1, 2, 3)})
    assert recovered / (n_items * 6) > 0.95


def test_blend_weight_zero_is_model_order_and_weight_moves_evidence_up():
    model = np.array([[0.1, 0.5, 0.9, 0.3]])
    co = np.array([[0.0, 0.0, 0.0, 2.0]])
    assert np.argsort(-blend(model, co, 0.0)[0]).tolist() == [2, 1, 3, 0]
    assert np.argmax(blend(model, co, 2.0)[0]) == 3
    # No co-occurrence evidence: the model's order stands.
    assert np.argsort(-blend(model, np.zeros_like(co), 5.0)[0]).tolist() == [2, 1, 3, 0]


def _reference_counts(events, window: int) -> tuple[dict, dict]:
    """The definition, spelled out: a new item pairs once with each of the user's ``window``
    most recent distinct earlier items; an item already among them adds nothing."""
    pairs: dict[tuple[str, str], float] = {}
    counts: dict[str, float] = {}
    histories: dict[str, list[str]] = {}
    for e in events:
        prior = histories.setdefault(e.user_id, [])
        recent = list(dict.fromkeys(reversed(prior)))[:window]
        prior.append(e.item_id)
        if e.item_id in recent:
            continue
        counts[e.item_id] = counts.get(e.item_id, 0.0) + 1.0
        for other in recent:
            for key in ((e.item_id, other), (other, e.item_id)):
                pairs[key] = pairs.get(key, 0.0) + 1.0
    assert any(len(set(h)) < len(h) for h in histories.values())      # the stream had repeats
    return pairs, counts


def test_learn_per_user_equals_the_definition_with_explicit_histories():
    events = _stream(n_users=12, n_items=15, per_user=10, seed=5)   # small catalogue: repeats occur
    by_user = Cooccurrence(window=4)
    for e in events:
        by_user.learn(e.user_id, e.item_id, e.timestamp)
    pairs, counts = _reference_counts(events, window=4)
    items = sorted({e.item_id for e in events})
    a = by_user.rows(items)
    expected = np.array([[pairs.get((i, j), 0.0) for j in items] for i in items])
    np.testing.assert_array_equal(by_user.store.pairs[np.ix_(a, a)], expected)
    np.testing.assert_array_equal(by_user.counts[a], [counts.get(i, 0.0) for i in items])
    assert all(len(by_user.recent.rows(e.user_id)) <= 4 for e in events)
