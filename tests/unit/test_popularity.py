"""The one decayed popularity: closed form, rebasing, late events, and the baseline built on it."""
from __future__ import annotations

import numpy as np
import pytest

from streamrec.baselines import DecayedPopular
from streamrec.contracts.events import Event
from streamrec.contracts.semantics import event_semantics
from streamrec.state.popularity import DecayedPopularity


def test_scores_match_the_closed_form_across_a_rebase_and_a_late_event():
    hl = 10.0
    p = DecayedPopularity(half_life=hl)
    p.add(["a", "a"], [0.0, 5.0], [1.0, 2.0])
    p.add(["b"], [6000.0], [1.0])            # 600 half-lives on: the anchor must move
    assert p.anchor == 6000.0
    p.add(["a", "b"], [6010.0, 5990.0], [1.0, 3.0])    # b's second event is late
    now = 6010.0
    expected = {"a": 2 ** (-now / hl) + 2 * 2 ** (-(now - 5) / hl) + 1.0,
                "b": 2 ** (-(now - 6000) / hl) + 3 * 2 ** (-(now - 5990) / hl)}
    assert p.ids == ["a", "b"]
    assert p.at(now) == pytest.approx([expected["a"], expected["b"]])
    assert p.top(2) == [pytest.approx(("b", expected["b"])), pytest.approx(("a", expected["a"]))]
    assert p.counts(["a", "b", "c"]).tolist() == [3, 2, 0]
    assert np.isfinite(p.mass).all()


def test_rows_follow_registration_order_and_arrays_grow():
    p = DecayedPopularity(half_life=1.0, capacity=2)
    assert p.rows(["x", "y", "z", "x"]).tolist() == [0, 1, 2, 0]
    p.add(["z"], [0.0], [1.0])
    assert p.mass.tolist() == [0.0, 0.0, 1.0] and p.top(5) == [("z", 1.0), ("x", 0.0), ("y", 0.0)]


def test_baseline_scores_are_the_popularity_of_its_catalogue_rows():
    rec = DecayedPopular(half_life_s=10.0, semantics=event_semantics("click=1,purchase=3"))
    rec.set_catalogue(["a", "b", "c"])
    rec.learn_many([Event("u", "c", "click", 0.0), Event("u", "new", "purchase", 10.0)])
    rec.learn_one(Event("v", "b", "click", 10.0))
    assert rec.item_ids == rec.popularity.ids == ["a", "b", "c", "new"]
    # The same events, straight into the popularity, rank the same items first.
    p = DecayedPopularity(half_life=10.0)
    p.add(["c", "new", "b"], [0.0, 10.0, 10.0], [1.0, 3.0, 1.0])
    assert rec.recommend("anyone", k=3) == [i for i, _ in p.top(3)] == ["new", "b", "c"]
    assert rec.decayed_scores(10.0)[1:] == pytest.approx([1.0, 0.5, 3.0])
