"""The synthetic generator: power-law popularity and drifting interests, deterministically."""
import numpy as np

from harness.synthetic import _topic_at_each_event, generate


def test_deterministic_sorted_and_power_law():
    a = generate(users=500, items=400, events=20000, seed=3)
    b = generate(users=500, items=400, events=20000, seed=3)
    assert (a.item_ids == b.item_ids).all() and (a.user_ids == b.user_ids).all()
    assert (np.diff(a.timestamps) >= 0).all()
    _, counts = np.unique(a.item_ids, return_counts=True)
    top = np.sort(counts)[::-1]
    # Zipf: the top 10% of items take far more than 10% of events.
    assert top[: len(top) // 10].sum() > 0.4 * top.sum()


def test_topic_follows_the_last_move_of_each_user():
    who = np.array([0, 1, 0, 0, 1, 0])
    moves = np.array([False, False, True, False, True, False])
    new = np.array([9, 9, 5, 9, 7, 9])
    initial = np.random.default_rng(1).integers(0, 20, 2)
    got = _topic_at_each_event(who, moves, new, users=2, topics=20, seed=0)
    assert got.tolist() == [initial[0], initial[1], 5, 5, 7, 5]


def _topic_overlap(ds) -> float:
    """Mean over users of the overlap between the topics of their first and second halves."""
    topic = {it.item_id: it.tags[0] for it in ds.items}
    scores = []
    for u in np.unique(ds.user_ids):
        items = ds.item_ids[ds.user_ids == u]
        if len(items) < 20:
            continue
        a = {topic[i] for i in items[: len(items) // 2]}
        b = {topic[i] for i in items[len(items) // 2:]}
        scores.append(len(a & b) / len(a | b))
    return float(np.mean(scores))


def test_drift_changes_what_users_consume():
    kw = dict(users=50, items=300, events=20000, topics=10, focus=1.0, seed=0)
    assert _topic_overlap(generate(drift=0.0, **kw)) > 0.9
    assert _topic_overlap(generate(drift=0.02, **kw)) < 0.7
