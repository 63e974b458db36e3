"""The one ranking pipeline: serving's answers and the evaluation's system variants run it.

One request goes through these stages, in order:

1. **Relevance** (:func:`relevance`): the model's score of every catalogue item, blended
   with the online co-occurrence score of the user's recent items when co-occurrence is on
   (:func:`streamrec.state.cooccurrence.blend`).
2. **Candidates** (:func:`candidates`): the exact best :func:`fetch_size` items by that
   relevance, excluded items out (seen ones, and the items the catalogue says may not be
   served: retired, unavailable, expired). :func:`blended_candidates` finds the same items
   without scoring the catalogue: the union of the model's nearest items (faiss) and the
   items with co-occurrence evidence, blended with catalogue statistics computed in closed
   form (the evaluation, which scores blocks of users over a small catalogue, uses the dense
   form; serving the candidate form). A user without history gets the trending list, in the
   same order.
3. **Filters** (:func:`rank`'s ``allowed``, :class:`streamrec.ranking.filters.ItemFilter`):
   the request's item, tag and attribute constraints. A filter that names the only items
   that can pass (required items, a positive attribute condition) may instead bound stage 2:
   :func:`scanned_candidates` scores exactly those items, so a selective filter still finds
   ``k`` items when ``k`` match; a filter that passes many widens the search
   (:func:`fetch_size`).
4. **Re-rank** (:func:`rank`, :func:`streamrec.ranking.rerank.rerank`): MMR diversity,
   seeded exploration slots drawn from :class:`Exploration` (a sample of the catalogue,
   least shown first), reasons.
5. **Top-up** (:func:`rank`'s ``trending``): a list that ran out of candidates (a small
   catalogue, strict filters) is filled from the trending list.

What differs between the callers stays with them: where vectors, histories, exposure and
trending come from, and batching. Serving ranks one request at a time; the evaluation
computes stages 1-2 for a block of users at once and runs :func:`rank` per request.

Examples
--------
>>> import numpy as np
>>> ids = ["a", "b", "c", "d"]
>>> vectors = np.eye(4, dtype=np.float32)
>>> scores = relevance(np.array([[0.1, 0.9, 0.5, 0.7]]))
>>> rows = candidates(scores, [np.array([1])], fetch=3)[0]     # "b" was seen
>>> [ids[r] for r in rows]
['d', 'c', 'a']
>>> ranked = rank([ids[r] for r in rows], scores[0, rows], vectors[rows], k=2, diversity=0.0,
...               allowed=lambda i: i != "d")
>>> [r.item_id for r in ranked]
['c', 'a']
>>> trending = lambda n, taken: [(i, 1.0) for i in ("d", "e", "f") if i not in taken][:n]
>>> [r.item_id for r in rank(["a"], np.array([1.0]), vectors[:1], k=3, diversity=0.0,
...                          trending=trending)]                 # one candidate: topped up
['a', 'd', 'e']
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from streamrec.ranking.recommender import top_k_rows
from streamrec.ranking.rerank import TRENDING, ExplorePool, Ranked, rerank
from streamrec.ranking.retrieval import VectorIndex
from streamrec.ranking.row_sets import distinct, member
from streamrec.state.cooccurrence import blend

# Catalogue items sampled per request as exploration candidates (bounds the cost on big catalogues).
EXPLORE_SAMPLE = 64
# Filters drop candidates after retrieval, so a filtered request retrieves this many times more.
FILTERED_FETCH = 4
# At most this many times more again for a filter that lets a small share through (past it,
# serving scans the matching items: :func:`scanned_candidates`).
MAX_WIDEN = 32
# Trending items asked for beyond the shortfall, since filters may drop some of them.
TOP_UP_SPARE = 50

#: ``trending(n, taken)``: up to ``n`` ``(item_id, score)`` pairs, most trending first, none in ``taken``.
Trending = Callable[[int, set], Iterable[tuple[str, float]]]


@dataclass
class Exploration:
    """Where a request's exploration slots draw from: the caller's catalogue, by row.

    ``exposure(rows)`` is how often each row was served so far, ``scores(rows)`` the relevance
    reported for a row drawn, ``new(rows)`` whether no event named it yet (its reason is then
    ``"new"`` rather than ``"explore"``).
    """

    ids: Sequence[str]
    exposure: Callable[[np.ndarray], np.ndarray]
    scores: Callable[[np.ndarray], np.ndarray]
    new: Callable[[np.ndarray], np.ndarray] | None = None

    def pool(self, seed: int, skip: Callable[[str], bool]) -> ExplorePool | None:
        """A seeded sample of the catalogue without the items ``skip`` names, least shown first."""
        n = len(self.ids)
        if n == 0:
            return None
        rng = np.random.default_rng(seed ^ 0x5EED)
        rows = rng.choice(n, size=min(n, EXPLORE_SAMPLE), replace=False)
        ids = [self.ids[r] for r in rows]
        keep = [j for j, i in enumerate(ids) if not skip(i)]
        if not keep:
            return None
        rows, ids = rows[keep], [ids[j] for j in keep]
        shown = np.asarray(self.exposure(rows), dtype=np.float64)
        new = np.asarray(self.new(rows), dtype=bool) if self.new is not None else np.zeros(len(ids), dtype=bool)
        # Least shown first, most strongly: weight 1 / (1 + exposure)^2.
        return ExplorePool(ids, np.asarray(self.scores(rows)), 1.0 / (1.0 + shown) ** 2, new)


def fetch_size(candidates: int, k: int, filtered: bool = False, passing_share: float = 1.0) -> int:
    """Candidates retrieved for a list of ``k``: ``candidates``, at least ``4 k``, more when filtered.

    A filter that lets only ``passing_share`` of the catalogue through widens the search by
    up to :data:`MAX_WIDEN` times more, so about as many matching items are expected among
    the candidates as an unfiltered request gets.
    """
    widen = min(math.ceil(1.0 / max(passing_share, 1.0 / MAX_WIDEN)), MAX_WIDEN) if filtered else 1
    return max(candidates, 4 * k) * (FILTERED_FETCH if filtered else 1) * widen


def relevance(model_scores: np.ndarray, cooccurrence_scores: np.ndarray | None = None,
              weight: float = 0.0) -> np.ndarray:
    """Per row (user) and column (item): the model's score, blended with co-occurrence when given."""
    if cooccurrence_scores is None:
        return np.asarray(model_scores)
    return blend(model_scores, cooccurrence_scores, weight)


def candidates(scores: np.ndarray, excluded: Sequence[np.ndarray], fetch: int) -> list[np.ndarray]:
    """Per row of ``scores``, the best ``fetch`` columns not in that row's ``excluded``, best first.

    Exact (like a flat index), ties towards the lower column; ``scores`` is left as it was.
    """
    scores = np.array(scores, dtype=np.float64)
    for r, rows in enumerate(excluded):
        if len(rows):
            scores[r, rows] = -np.inf
    return top_k_rows(scores, fetch)


def _blend_rows(index: VectorIndex, user_vector: np.ndarray, co_rows: np.ndarray, co_scores: np.ndarray,
                weight: float, rows: np.ndarray) -> np.ndarray:
    """:func:`relevance` of the sorted, distinct ``rows`` of ``index``: the model's score standardised
    over the catalogue (closed form) plus ``weight`` times the standardised co-occurrence score."""
    n = len(index)
    mean, spread = index.score_moments(user_vector)
    spread = max(spread, 1e-12)
    co_scores = np.asarray(co_scores, dtype=np.float64)
    co_mean = co_scores.sum() / n
    co_spread = max(float(np.sqrt(max((co_scores ** 2).sum() / n - co_mean ** 2, 0.0))), 1e-12)
    inside = member(rows, co_rows)
    co = np.zeros(len(rows))
    co[np.searchsorted(rows, co_rows[inside])] = co_scores[inside]
    model = (index.vectors[rows] @ np.asarray(user_vector, dtype=np.float32)).astype(np.float64)
    return (model - mean) / spread + (weight * co / co_spread if weight > 0 else 0.0)


def blended_candidates(index: VectorIndex, user_vector: np.ndarray, co_rows: np.ndarray, co_scores: np.ndarray,
                       weight: float, exclude: set[str], fetch: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`candidates` of :func:`relevance` for one user, without scoring every item.

    ``co_rows``/``co_scores`` are the items with co-occurrence evidence (index rows; every
    other item scores 0 there). Candidates are the ``fetch`` nearest items by the model
    (``index``'s search, ``exclude`` left out) and the co-occurrence items; the blend's
    per-catalogue mean and spread come from :meth:`VectorIndex.score_moments` and the
    sparse co-occurrence row. With an exact index this is exactly the dense stage: an item
    outside both sets has no co-occurrence score and a model score below ``fetch`` items
    inside them. Returns ``(rows, relevance)``, best first, ties towards the lower row.
    """
    nearest, _ = index.search_rows(user_vector, fetch, [exclude])[0]
    evidence = ~member(np.sort(index.rows(exclude)), co_rows)
    rows = distinct(np.concatenate([nearest, co_rows[evidence]]))
    blended = _blend_rows(index, user_vector, co_rows, co_scores, weight, rows)
    best = np.lexsort((rows, -blended))[:fetch]
    return rows[best], blended[best]


def scanned_candidates(index: VectorIndex, user_vector: np.ndarray, rows: np.ndarray, fetch: int,
                       evidence: tuple[np.ndarray, np.ndarray] | None = None,
                       weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The best ``fetch`` of ``rows`` (the items a filter lets through), every one scored exactly.

    What :func:`candidates` gives when every item outside ``rows`` is excluded: a selective
    filter's matching items are scored one by one instead of hoping the nearest neighbours
    of the whole catalogue hold enough of them. The relevance is the one the search path
    ranks by: the model's inner product, or with co-occurrence ``evidence`` (``(co_rows,
    co_scores)`` as for :func:`blended_candidates`) the blend. Returns ``(rows, relevance)``,
    best first, ties towards the lower row.
    """
    rows = distinct(rows)
    if evidence is None:
        scores = (index.vectors[rows] @ np.asarray(user_vector, dtype=np.float32)).astype(np.float64)
    else:
        scores = _blend_rows(index, user_vector, *evidence, weight, rows)
    best = np.lexsort((rows, -scores))[:fetch]
    return rows[best], scores[best]


def rank(candidate_ids: Sequence[str], scores: np.ndarray, vectors: np.ndarray, *, k: int,
         diversity: float, exploration: float = 0.0, seed: int = 0,
         exclude: set[str] | frozenset[str] = frozenset(), allowed: Callable[[str], bool] | None = None,
         history_ids: Sequence[str] = (), history_vectors: np.ndarray | None = None,
         explore: Exploration | None = None, trending: Trending | None = None) -> list[Ranked]:
    """Stages 3-5 for one request: filter the candidates, re-rank them, top up from trending.

    ``candidate_ids``, ``scores`` and ``vectors`` are aligned, in relevance order. ``exclude``
    never appears in the answer, whichever stage would bring it (candidates, exploration,
    top-up): callers put there what the user had and what may not be served at all
    (:meth:`streamrec.state.catalogue.Catalogue.blocked`); ``allowed`` (None: everything) is the request's filter, and
    applies to exploration and top-up items too. Exploration happens only with ``explore``
    and ``exploration > 0``; the same ``seed`` gives the same answer.
    """
    if allowed is not None:
        keep = [j for j, i in enumerate(candidate_ids) if allowed(i)]
        candidate_ids = [candidate_ids[j] for j in keep]
        scores, vectors = np.asarray(scores)[keep], np.asarray(vectors)[keep]
    pool = None
    if explore is not None and exploration > 0:
        # The most relevant k stay out of the pool: exploration is for what relevance would not show.
        taken = set(exclude) | set(candidate_ids[:k])
        pool = explore.pool(seed, lambda i: i in taken or (allowed is not None and not allowed(i)))
    ranked = rerank(candidate_ids, scores, vectors, k=k, diversity=diversity, exploration=exploration,
                    seed=seed, exclude=exclude, history_ids=history_ids, history_vectors=history_vectors,
                    explore_pool=pool)
    if trending is not None and len(ranked) < k:
        taken = set(exclude) | {r.item_id for r in ranked}
        ranked += [Ranked(i, s, TRENDING) for i, s in trending(k - len(ranked) + TOP_UP_SPARE, taken)
                   if allowed is None or allowed(i)][: k - len(ranked)]
    return ranked


__all__ = ["EXPLORE_SAMPLE", "Exploration", "blended_candidates", "candidates", "fetch_size", "rank",
           "relevance", "scanned_candidates"]
