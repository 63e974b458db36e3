"""One conformance suite that every recommender — baselines and system variants — runs.

The parametrisation comes from :func:`harness.evaluation.methods.available_methods`, so a
method registered there is held to the same contract without touching this file.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness.evaluation.methods import available_methods
from streamrec.contracts.events import Event
from streamrec.ranking.recommender import Recommender, top_k_rows

METHODS = available_methods()
K = 10


@pytest.fixture(scope="module")
def stream(ml100k):
    """The first 600 MovieLens 100K events and the full catalogue."""
    head = ml100k.head(600)
    return head.events, [it.item_id for it in ml100k.items], ml100k.items


def trained(name: str, stream, seed: int = 0) -> Recommender:
    events, catalogue, items = stream
    rec = METHODS[name](seed=seed)
    rec.set_catalogue(catalogue, items)
    rec.learn_many(events)
    return rec


@pytest.fixture(params=sorted(METHODS))
def name(request) -> str:
    return request.param


def test_is_a_recommender_with_a_name(name):
    rec = METHODS[name](seed=0)
    assert isinstance(rec, Recommender)
    assert isinstance(rec.name, str) and rec.name


def test_returns_k_distinct_catalogue_items(name, stream):
    events, catalogue, _ = stream
    rec = trained(name, stream)
    for user in {e.user_id for e in events[:50]}:
        items = rec.recommend(user, K)
        assert len(items) == K
        assert len(set(items)) == K
        assert set(items) <= set(catalogue)


def test_never_returns_excluded_items(name, stream):
    events, catalogue, _ = stream
    rec = trained(name, stream)
    user = events[-1].user_id
    first = rec.recommend(user, K)
    # Excluding what it just recommended (plus the user's history) must yield other items.
    exclude = set(first) | {e.item_id for e in events if e.user_id == user}
    second = rec.recommend(user, K, exclude=exclude)
    assert len(second) == K and not set(second) & exclude
    rows = np.array([rec.item_index[i] for i in exclude])
    third = rec.recommend(user, K, exclude=rows)
    assert len(third) == K and not set(third) & exclude
    if rec.repeatable:
        assert third == second


def test_fewer_than_k_when_the_catalogue_is_nearly_excluded(name, stream):
    _, catalogue, _ = stream
    rec = trained(name, stream)
    keep = set(catalogue[:3])
    out = rec.recommend("1", K, exclude=set(catalogue) - keep)
    assert set(out) == keep


def test_unknown_user_gets_a_list(name, stream):
    rec = trained(name, stream)
    items = rec.recommend("never-seen-user", K)
    assert len(items) == K and len(set(items)) == K


def test_before_any_learning(name, stream):
    _, catalogue, items = stream
    rec = METHODS[name](seed=0)
    rec.set_catalogue(catalogue, items)
    assert len(rec.recommend("u", K)) == K


def test_deterministic_under_a_seed(name, stream):
    events, _, _ = stream
    users = sorted({e.user_id for e in events[:30]})
    a = trained(name, stream, seed=3).recommend_many(users, K)
    b = trained(name, stream, seed=3).recommend_many(users, K)
    assert a == b


def test_batch_agrees_with_one_at_a_time(name, stream):
    events, _, _ = stream
    rec = trained(name, stream)
    users = sorted({e.user_id for e in events[:30]})[:8]
    excludes = [{e.item_id for e in events if e.user_id == u} for u in users]
    batch = rec.recommend_many(users, K, excludes)
    single = [rec.recommend(u, K, x) for u, x in zip(users, excludes)]
    if rec.repeatable:
        assert batch == single
    else:
        assert all(len(b) == K and not set(b) & x for b, x in zip(batch, excludes))


def test_items_outside_the_catalogue_become_recommendable(name, stream):
    _, catalogue, items = stream
    rec = METHODS[name](seed=0)
    rec.set_catalogue(catalogue[:20], items[:20])
    rec.learn_many([Event(f"u{j}", "brand-new", "rating", 1.0e9 + j, 5.0) for j in range(5)])
    assert "brand-new" in rec.item_ids
    out = rec.recommend("u0", K, exclude={"brand-new"})
    assert "brand-new" not in out and len(out) == K


def test_top_k_rows_breaks_ties_towards_lower_columns():
    scores = np.array([[1.0, 3.0, 3.0, -np.inf, 0.0]])
    assert top_k_rows(scores, 3)[0].tolist() == [1, 2, 0]
    assert top_k_rows(scores, 5)[0].tolist() == [1, 2, 0, 4]
