"""The one ranking pipeline (streamrec.ranking.pipeline): exact candidates, filters everywhere,
exploration for the least shown, trending top-up — and the evaluation's variants serve through it."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from streamrec.contracts.events import Event
from streamrec.ranking.pipeline import (MAX_WIDEN, Exploration, blended_candidates, candidates, fetch_size, rank,
                                        relevance, scanned_candidates)
from streamrec.ranking.retrieval import VectorIndex
from streamrec.ranking.rerank import EXPLORE, NEW
from streamrec.settings import Settings

IDS = [f"i{j:02d}" for j in range(40)]


def _exploration(exposure: np.ndarray, new: np.ndarray | None = None) -> Exploration:
    return Exploration(IDS, lambda rows: exposure[rows], lambda rows: np.zeros(len(rows)),
                       new=None if new is None else (lambda rows: new[rows]))


def test_candidates_are_the_exact_best_of_what_is_not_excluded():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(3, 40))
    excluded = [np.array([int(np.argmax(scores[0]))]), np.arange(0, 40, 2), np.zeros(0, dtype=np.int64)]
    before = scores.copy()
    for r, rows in enumerate(candidates(scores, excluded, fetch=7)):
        allowed = np.setdiff1d(np.arange(40), excluded[r])
        assert rows.tolist() == allowed[np.argsort(-scores[r, allowed])][:7].tolist()
    assert np.array_equal(scores, before)            # the caller's scores are left alone
    assert candidates(scores, [np.arange(40)] * 3, fetch=7)[0].size == 0


def test_relevance_is_the_model_alone_without_cooccurrence_and_blended_with_it():
    model = np.array([[1.0, 2.0, 3.0]])
    assert np.array_equal(relevance(model), model)
    assert relevance(model, np.array([[9.0, 0.0, 0.0]]), 5.0).argmax() == 0
    assert fetch_size(100, 10) == 100 and fetch_size(100, 50) == 200 and fetch_size(100, 10, True) == 400


def test_a_filter_passing_a_small_share_widens_the_search_up_to_a_bound():
    assert fetch_size(100, 10, True, passing_share=0.25) == 400 * 4
    assert fetch_size(100, 10, True, passing_share=0.3) == 400 * 4      # rounded up: 1 / 0.3 -> 4
    assert fetch_size(100, 10, True, passing_share=1e-9) == fetch_size(100, 10, True, 0.0) == 400 * MAX_WIDEN
    assert fetch_size(100, 10, False, passing_share=0.01) == 100         # unfiltered: the share is moot


def test_filter_and_exclusions_hold_for_candidates_exploration_and_top_up():
    allowed = {i for j, i in enumerate(IDS) if j % 3}          # every third item filtered out
    exclude = {"i01", "i02", "i04"}
    trending = lambda n, taken: [(i, 1.0) for i in reversed(IDS) if i not in taken][:n]  # noqa: E731
    cand = [i for i in IDS[:12] if i not in exclude]
    for seed, exploration in [(s, 0.4) for s in range(30)] + [(0, 0.0)]:
        ranked = rank(cand, np.linspace(1, 0, len(cand)), np.eye(40)[: len(cand)], k=15, diversity=0.3,
                      exploration=exploration, seed=seed, exclude=exclude, allowed=allowed.__contains__,
                      explore=_exploration(np.zeros(40)), trending=trending)
        got = [r.item_id for r in ranked]
        assert len(got) == 15 == len(set(got))
        assert set(got) <= allowed and not set(got) & exclude
        assert got[0] == "i05"                               # the most relevant allowed candidate
    # Without exploration the 5 allowed candidates run out: trending fills the rest, in its order.
    assert got[5:] == [i for i in reversed(IDS) if i in allowed and i not in got[:5]][:10]


def test_exploration_favours_the_least_shown_and_a_seed_reproduces_the_answer():
    exposure = np.full(40, 1000.0)
    exposure[30:] = 0                                      # only i30..i39 never shown
    new = np.zeros(40, dtype=bool)
    new[35:] = True
    cand, scores, vectors = IDS[:20], np.linspace(1, 0, 20), np.eye(40)[:20]
    explored = []
    for seed in range(40):
        ranked = rank(cand, scores, vectors, k=10, diversity=0.0, exploration=0.3, seed=seed,
                      explore=_exploration(exposure, new))
        again = rank(cand, scores, vectors, k=10, diversity=0.0, exploration=0.3, seed=seed,
                     explore=_exploration(exposure, new))
        assert ranked == again and ranked[0].item_id == "i00"
        explored += [r for r in ranked if r.reason in (NEW, EXPLORE)]
        assert not {r.item_id for r in ranked if r.reason in (NEW, EXPLORE)} & set(cand[:10])
    assert len(explored) >= 80                             # 0.3 of 10 slots, 40 requests
    least_shown = [r for r in explored if int(r.item_id[1:]) >= 30]
    assert len(least_shown) / len(explored) > 0.9
    assert all((r.reason == NEW) == (int(r.item_id[1:]) >= 35) for r in explored)


def test_without_exploration_the_list_is_the_relevance_order():
    ranked = rank(IDS[:20], np.linspace(1, 0, 20), np.eye(40)[:20], k=5, diversity=0.0, exploration=0.0,
                  explore=_exploration(np.zeros(40)))
    assert [r.item_id for r in ranked] == IDS[:5]


def test_the_evaluation_variant_serves_through_the_pipeline_with_exploration():
    from harness.evaluation.system_variants import OnlineVectorsVariant

    settings = Settings(vector_dim=8, serving_candidates=10)
    plain = OnlineVectorsVariant(settings=settings)
    exploring = OnlineVectorsVariant(settings=settings, exploration=0.5)
    events = [Event(f"u{j % 5}", IDS[(7 * j) % 40], "click", float(j)) for j in range(60)]
    for rec in (plain, exploring):
        rec.set_catalogue(IDS)
        rec.learn_many(events)
    users = [f"u{j}" for j in range(5)]
    seen = [{e.item_id for e in events if e.user_id == u} for u in users]
    relevance_order = plain.recommend_rows(users, 10, seen)
    served = exploring.recommend_rows(users, 10, seen)
    for rows, order, had in zip(served, relevance_order, seen):
        ids = {IDS[j] for j in rows}
        assert len(rows) == 10 and not ids & had
        assert rows[0] == order[0]                         # the first slot stays with relevance
    assert any(set(s.tolist()) != set(o.tolist()) for s, o in zip(served, relevance_order))
    assert exploring.exposure.sum() == 50 and not exploring.repeatable


@hypothesis_settings(max_examples=60, deadline=None)
@given(n=st.integers(5, 300), fetch=st.integers(1, 40), weight=st.sampled_from([0.0, 0.5, 3.0]),
       n_evidence=st.integers(0, 30), n_excluded=st.integers(0, 10), seed=st.integers(0, 2 ** 16))
def test_blended_candidates_are_the_dense_candidates_without_scoring_the_catalogue(
        n, fetch, weight, n_evidence, n_excluded, seed):
    """The candidate form (faiss nearest + co-occurrence items, closed-form statistics) picks
    the same rows, in the same order, with the same relevance as blending every item."""
    rng = np.random.default_rng(seed)
    ids = [f"i{j}" for j in range(n)]
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    index = VectorIndex.build(ids, vectors)
    user = rng.normal(size=8).astype(np.float32)
    co_rows = np.sort(rng.choice(n, size=min(n_evidence, n), replace=False))
    co_scores = rng.exponential(size=len(co_rows))
    excluded = set(rng.choice(ids, size=min(n_excluded, n - 1), replace=False).tolist())
    dense_co = np.zeros(n)
    dense_co[co_rows] = co_scores
    dense = relevance((vectors @ user)[None, :], dense_co[None, :], weight)[0]
    expected = candidates(dense[None, :], [index.rows(excluded)], fetch)[0]
    rows, scores = blended_candidates(index, user, co_rows, co_scores, weight, excluded, fetch)
    assert rows.tolist() == expected.tolist()
    np.testing.assert_allclose(scores, dense[expected], rtol=1e-6, atol=1e-6)


@hypothesis_settings(max_examples=60, deadline=None)
@given(n=st.integers(5, 300), fetch=st.integers(1, 40), weight=st.sampled_from([None, 0.0, 0.5, 3.0]),
       n_evidence=st.integers(0, 30), n_matching=st.integers(0, 60), seed=st.integers(0, 2 ** 16))
def test_scanned_candidates_are_the_dense_candidates_of_the_matching_rows(
        n, fetch, weight, n_evidence, n_matching, seed):
    """Scoring a filter's matching rows one by one gives what the dense stage gives with every
    other row excluded: same rows, same order, same relevance (the model alone without evidence)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    index = VectorIndex.build([f"i{j}" for j in range(n)], vectors)
    user = rng.normal(size=8).astype(np.float32)
    matching = rng.choice(n, size=min(n_matching, n), replace=False)
    co_rows = np.sort(rng.choice(n, size=min(n_evidence, n), replace=False))
    co_scores = rng.exponential(size=len(co_rows))
    dense_co = np.zeros(n)
    dense_co[co_rows] = co_scores
    model = (vectors @ user).astype(np.float64)
    dense = model if weight is None else relevance(model[None, :], dense_co[None, :], weight)[0]
    expected = candidates(dense[None, :], [np.setdiff1d(np.arange(n), matching)], fetch)[0]
    evidence = None if weight is None else (co_rows, co_scores)
    rows, scores = scanned_candidates(index, user, matching, fetch, evidence, weight or 0.0)
    assert rows.tolist() == expected.tolist()
    np.testing.assert_allclose(scores, dense[expected], rtol=1e-5, atol=1e-5)
