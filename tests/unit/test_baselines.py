"""Behaviour of each baseline beyond the shared contract: the rule it claims to implement."""
from __future__ import annotations

import numpy as np
import pytest
from river import optim, reco

from streamrec.baselines import DecayedPopular, ISGD, ItemKNN, MostPopular, RiverBiasedMF, RiverFunkMF
from streamrec.contracts.events import Event


def ev(u, i, t=0.0, v=None):
    return Event(u, i, "rating", t, v)


def test_popular_counts_and_excludes():
    rec = MostPopular()
    rec.set_catalogue("abcd")
    rec.learn_many([ev("u", "c"), ev("v", "c"), ev("w", "b"), ev("x", "c")])
    assert rec.recommend("z", 3) == ["c", "b", "a"]
    assert rec.counts[:4].tolist() == [0, 1, 3, 0]


def test_decayed_popular_matches_closed_form_and_survives_rebasing():
    hl = 10.0
    rec = DecayedPopular(half_life_s=hl)
    rec.set_catalogue("ab")
    # 1,200 half-lives apart forces a rebase (2**1200 would overflow the old anchor's scale).
    rec.learn_many([ev("u", "a", 0.0), ev("u", "a", 5.0)])
    rec.learn_one(ev("v", "b", 12000.0))
    rec.learn_one(ev("v", "a", 12010.0))
    now = 12010.0
    assert rec.popularity.anchor > 0
    expected_a = 2 ** (-(now - 0) / hl) + 2 ** (-(now - 5) / hl) + 1.0
    expected_b = 2 ** (-(now - 12000) / hl)
    assert rec.decayed_scores(now) == pytest.approx([expected_a, expected_b])
    assert rec.recommend("x", 2) == ["a", "b"]


def test_item_knn_cosine_scores_by_hand():
    rec = ItemKNN(history=10, recency_decay=1.0)
    rec.set_catalogue("abcd")
    rec.learn_many([ev("u", "a"), ev("u", "b"), ev("v", "a"), ev("v", "c"), ev("w", "a"), ev("w", "b")])
    # counts a=3, b=2, c=1; C[a,b]=2, C[a,c]=1; an item is not its own neighbour.
    sims = rec.similarity_rows(np.array([0]))[0]
    assert sims[:4] == pytest.approx([0.0, 2 / np.sqrt(6), 1 / np.sqrt(3), 0.0])
    # v had a and c: b scores sim(a,b) + sim(c,b) = 2/sqrt(6) > d (no co-occurrence).
    assert rec.recommend("v", 2, exclude={"a", "c"}) == ["b", "d"]


def test_item_knn_repeats_add_no_pairs():
    rec = ItemKNN()
    rec.set_catalogue("ab")
    rec.learn_many([ev("u", "a"), ev("u", "b"), ev("u", "a")])
    assert rec.cooc[0, 1] == 1 and rec.counts[:2].tolist() == [1, 1]
    assert rec.user_items.rows("u").tolist() == [1, 0]      # a moved to the newest end


def test_item_knn_refuses_huge_catalogues():
    rec = ItemKNN(max_items=3)
    with pytest.raises(ValueError, match="max_items"):
        rec.set_catalogue("abcd")


@pytest.mark.parametrize("cls", [RiverBiasedMF, RiverFunkMF])
def test_river_mirror_ranks_like_predict_one(cls):
    rng = np.random.default_rng(0)
    rec = cls(seed=5)
    items = [str(i) for i in range(30)]
    rec.set_catalogue(items)
    for t in range(400):
        rec.learn_one(ev(f"u{rng.integers(8)}", items[rng.integers(30)], float(t), float(rng.integers(1, 6))))
    user = "u3"
    predicted = np.array([rec.model.predict_one(user, i) for i in items])   # River's own scoring
    mirrored = rec.score_many([user])[0]
    # Same up to the per-user constant (global mean + user bias) that ranking ignores.
    assert np.allclose(predicted - mirrored, (predicted - mirrored)[0])
    assert rec.recommend(user, 5) == [items[j] for j in np.argsort(-predicted, kind="stable")[:5]]


def test_river_wrapper_uses_the_river_model():
    rec = RiverBiasedMF(seed=1)
    assert isinstance(rec.model, reco.BiasedMF)
    assert isinstance(RiverFunkMF().model, reco.FunkMF)
    assert isinstance(rec.model.latent_optimizer, optim.SGD)


def test_isgd_update_follows_the_paper():
    rec = ISGD(n_factors=3, lr=0.1, l2=0.01, seed=0)
    rec.set_catalogue("ab")
    rec.learn_one(ev("u", "a"))              # creates u
    a = rec.user_factors[0].copy()
    b = rec.item_factors[0].copy()
    rec.learn_one(ev("u", "a"))
    err = 1 - a @ b
    assert rec.user_factors[0] == pytest.approx(a + 0.1 * (err * b - 0.01 * a))
    assert rec.item_factors[0] == pytest.approx(b + 0.1 * (err * a - 0.01 * b))


def test_isgd_ranks_by_closeness_to_one():
    rec = ISGD(n_factors=2, seed=0)
    rec.set_catalogue("abc")
    rec.learn_one(ev("u", "a"))
    rec.user_factors[0] = [1.0, 0.0]
    rec.item_factors[:3] = [[3.0, 0.0], [0.9, 0.0], [-0.5, 0.0]]   # predictions 3, 0.9, -0.5
    assert rec.recommend("u", 3) == ["b", "c", "a"]                 # |1-p|: 0.1, 1.5, 2
