"""Pure pieces the real/fast agreement rests on: trending tie order on both sides, the agreement summary."""
from __future__ import annotations

import numpy as np

from streamrec.state.popularity import DecayedPopularity
from harness.evaluation.prequential import MethodRun, plan_stream
from harness.evaluation.real_path import agreement
from harness.evaluation.system_variants import OnlineVectorsVariant
from streamrec.contracts.events import Event
from streamrec.settings import Settings


def test_serving_trending_breaks_ties_in_first_seen_order_beyond_the_fetch():
    ids = [f"i{j:03d}" for j in range(300)]
    t = DecayedPopularity(half_life=100.0)
    t.add(ids, [5.0] * len(ids), [1.0] * len(ids))      # 300 items of equal mass
    t.add(["i250"], [5.0], [1.0])                          # one more popular than the rest
    assert [i for i, _ in t.top(6)] == ["i250", "i000", "i001", "i002", "i003", "i004"]
    assert [i for i, _ in t.top(3, exclude={"i000"})] == ["i250", "i001", "i002"]


def test_fast_cold_start_list_is_serving_trending_then_padding():
    rec = OnlineVectorsVariant(settings=Settings(vector_dim=8))
    rec.set_catalogue(["a", "b", "c", "d", "e"])
    # "d" then "b" first seen at the same time (a tie), "c" seen twice: c, then d before b.
    rec.learn_many([Event("u1", "d", "click", 10.0), Event("u2", "b", "click", 10.0),
                    Event("u3", "c", "click", 10.0), Event("u4", "c", "click", 10.0)])
    assert rec.recommend("cold", k=5) == ["c", "d", "b", "a", "e"]   # then never-seen, catalogue order
    assert rec.recommend("cold", k=2, exclude={"c"}) == ["d", "b"]


def test_agreement_counts_warm_and_cold_requests_separately(ml100k):
    plan = plan_stream(ml100k, limit=40, block=1)
    n = plan.n_scored
    lists = np.tile(np.arange(10), (n, 1))
    ranks = np.full(n, -1)
    other_lists, other_ranks = lists.copy(), ranks.copy()
    cold = np.flatnonzero(plan.prior[plan.scored] == 0)
    warm = np.flatnonzero(plan.prior[plan.scored] > 0)
    other_lists[cold[0], 0] = 99                 # one cold list differs, same miss
    other_ranks[warm[0]] = 3                     # one warm request hits in the other run
    a = agreement(MethodRun("a", ranks, lists, 0, 0), MethodRun("b", other_ranks, other_lists, 0, 0), plan)
    assert a["requests"] == n and a["warm_requests"] == len(warm)
    assert a["same_hit"] == (n - 1) / n and a["same_hit_cold"] == 1.0
    assert a["same_list_cold"] == (len(cold) - 1) / len(cold) and a["same_list_warm"] == 1.0
    assert a["hr"] == [0.0, 1 / n]
