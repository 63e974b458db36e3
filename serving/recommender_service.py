"""The recommend logic shared by the HTTP API and the request-topic agent.

One call, :meth:`RecommenderService.recommend`, turns a validated request into the response
contract (docs/architecture.md, Serving)::

    {"request_id", "user_id", "items": [{"item_id", "score", "reason", "reason_kind",
     "title"?, "reason_title"?}], "model_version", "state_time", "served_at", "experiment", "arm"}

* ``reason`` is the item id in the user's recent history that most supports the item
  (``reason_kind`` ``"history"``), or one of ``"trending"``, ``"new"``, ``"explore"``
  (``reason_kind`` the same word), so an id that happens to be spelled "trending" stays
  unambiguous.
* ``state_time`` is the event time of the newest event applied for that user (null for an
  unknown user, who gets trending items, never an error).
* ``experiment`` and ``arm`` name the live experiment arm that answered (both null for a user
  in no experiment): the arm's options replace serving's defaults where the request names
  none itself (:func:`chosen_option`), and an arm pinning a model version answers from it
  (:meth:`ModelHolder.bundle_for`; ``model_version`` says which version answered).

Steps: find the user's experiment arm (:meth:`serving.experiments.ExperimentRegistry.assign`),
read the model bundle once (a swap mid-request cannot affect this request), compute
the user vector (the model's user encoder over the freshest history, else the online
vector), then run the one ranking pipeline (:mod:`streamrec.ranking.pipeline`, which the
evaluation's system variants run too): candidates with the seen items excluded (unless
repeats are allowed: ``include_seen``, default ``STREAMREC_REPEAT_CONSUMPTION``), the items
the user rejected with a negative event (always), and the items the catalogue says may not
be served (retired by a tombstone, unavailable, expired at this instant:
:meth:`RecommenderService.unservable`), the
request's filters (:class:`streamrec.ranking.filters.ItemFilter`: item ids, tags, item
attributes), re-ranking (MMR diversity, exploration, reasons), a top-up
from trending when a small catalogue runs out; finally record exposure so exploration
favours what has been shown least.

Candidates. With co-occurrence on (``cooccurrence_weight`` > 0, the default) and a user
with history, the candidates are the model's nearest items (faiss) and the items the
user's recent items co-occurred with, ranked by the blend of the standardised model score
and the weighted co-occurrence score
(:func:`streamrec.ranking.pipeline.blended_candidates`): no request scores every item, and
with the flat index the list is the exact top of the blend over the catalogue. Otherwise
candidates are the faiss search by inner product, or for a user without a vector the
trending list. Either way the response's ``score`` is the relevance the list was ranked by.

Filters. A filter that names its matching items (required ids, a positive attribute
condition) and matches at most ``serving_hnsw_threshold`` of them has exactly those scored
(:func:`streamrec.ranking.pipeline.scanned_candidates`): the exact index scores that many
items for every request of a catalogue that size, so it costs no more than that, and it
finds ``k`` items whenever ``k`` match, where the nearest neighbours of an HNSW search may
hold none. A filter passing more widens the search by its share of the catalogue, and
scans its matching items after all when the widened search still leaves fewer than ``k``
(a user who saw most of them, an uneven share). Widening alone was not enough: no factor
guarantees ``k`` matches among an approximate search's neighbours.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

import numpy as np

from serving import metrics
from serving.experiments import ExperimentRegistry, Placement
from serving.model_holder import ModelBundle, ModelHolder
from serving.request_model import RecRequest, RequestError
from serving.state_replica import StateReplica
from streamrec.contracts.experiments import Arm
from streamrec.contracts.items import CATALOGUE, EVENTS_ONLY
from streamrec.ranking.filters import ItemFilter
from streamrec.ranking.pipeline import Exploration, blended_candidates, fetch_size, rank, scanned_candidates
from streamrec.ranking.rerank import EXPLORE, NEW, TRENDING, Ranked
from streamrec.settings import Settings
from streamrec.state.user_state import UserState

HISTORY_FOR_REASONS = 20     # most recent history items considered as a reason
ENCODER_CACHE = 50_000       # users whose encoder output is cached (keyed by state and version)
CO_ROW_MAPS = 8              # model versions whose co-occurrence row maps are kept


def chosen_option(requested, arm: Arm | None, name: str, default):
    """One option of a request: what the request names, else what its experiment arm sets, else the default.

    >>> chosen_option(None, Arm("a", 0.5, diversity=0.6), "diversity", 0.2), chosen_option(0.0, None, "diversity", 0.2)
    (0.6, 0.0)
    """
    if requested is not None:
        return requested
    value = getattr(arm, name) if arm is not None else None
    return default if value is None else value


class RecommenderService:
    """Answers recommendation, similar-items and user-state requests from replica + model."""

    def __init__(self, settings: Settings, replica: StateReplica, holder: ModelHolder,
                 experiments: ExperimentRegistry | None = None):
        self.settings = settings
        self.replica = replica
        self.holder = holder
        self.experiments = experiments   # None: no experiments, every user gets the defaults
        self.exposure: dict[str, int] = {}
        self._encoded: OrderedDict[str, tuple[int, int, np.ndarray]] = OrderedDict()
        self._co_rows: dict[int, tuple[ModelBundle, np.ndarray]] = {}   # version -> (bundle, co-occurrence row -> row)
        self.clock = time.time   # wall clock, what expires_at is compared with (tests set their own)

    # --- user vector ------------------------------------------------------------------------
    def user_vector(self, bundle: ModelBundle, user_id: str, state: UserState) -> np.ndarray | None:
        encoder = bundle.user_encoder
        if encoder is not None and state.recent:
            cached = self._encoded.get(user_id)
            if cached is not None and cached[0] == state.applied and cached[1] == bundle.version:
                self._encoded.move_to_end(user_id)
                return cached[2]
            try:
                vector = np.asarray(encoder.encode([list(state.recent)]), dtype=np.float32)[0]
            except Exception:
                metrics.MODEL_ERRORS.labels("encoder").inc()
                vector = None
            if vector is not None and vector.shape == (bundle.index.dim,) and np.isfinite(vector).all():
                self._encoded[user_id] = (state.applied, bundle.version, vector)
                if len(self._encoded) > ENCODER_CACHE:
                    self._encoded.popitem(last=False)
                return vector
        vector = state.vector
        if vector.shape != (bundle.index.dim,) or not np.any(vector):
            return None
        return vector

    # --- recommendations ----------------------------------------------------------------------
    def item_filter(self, req: RecRequest) -> ItemFilter | None:
        """The request's filter over the catalogue (None: it has none)."""
        return ItemFilter.build(self.replica.catalogue, require_items=req.require_items,
                                exclude_tags=req.exclude_tags, require_tags=req.require_tags,
                                attributes=req.filters)

    def _seed(self, req: RecRequest, state: UserState | None) -> int:
        if req.seed is not None:
            return req.seed
        # Same user, same state, same answer; it changes as the user's state does.
        text = f"{self.settings.serving_seed}/{req.user_id}/{state.applied if state else 0}"
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")

    def _exploration(self, bundle: ModelBundle, user_vector: np.ndarray | None) -> Exploration:
        def scores(rows: np.ndarray) -> np.ndarray:
            return bundle.vectors[rows] @ user_vector if user_vector is not None else np.zeros(len(rows))

        def exposure(rows: np.ndarray) -> np.ndarray:
            return np.fromiter((self.exposure.get(bundle.ids[r], 0) for r in rows), dtype=np.float64,
                               count=len(rows))

        return Exploration(bundle.ids, exposure, scores,
                           new=lambda rows: self.replica.trending.counts([bundle.ids[r] for r in rows]) == 0)

    def recommend(self, req: RecRequest) -> dict:
        placement = self.experiments.assign(req.user_id) if self.experiments is not None else None
        arm = placement[1] if placement is not None else None
        # Read once: this request's version (its arm's pinned one, else the newest), whatever swaps.
        bundle = self.holder.bundle_for(arm.model_version if arm is not None else None)
        state = self.replica.users.get(req.user_id)
        history, exclude = self._history_and_exclusions(req, state)
        user_vector = self.user_vector(bundle, req.user_id, state) if state is not None else None
        item_filter = self.item_filter(req)

        if user_vector is not None and len(bundle.index):
            weight = chosen_option(None, arm, "cooccurrence_weight", self.settings.cooccurrence_weight)
            rows, scores = self._candidates(bundle, user_vector, history, exclude, item_filter, req.k, weight)
            cand_ids, cand_vectors = [bundle.ids[r] for r in rows], bundle.vectors[rows]
            recent = list(dict.fromkeys(reversed(history)))[:HISTORY_FOR_REASONS]
            recent = [i for i in recent if i in bundle.index]
            hist_vectors = bundle.vectors[bundle.index.rows(recent)]
        else:
            metrics.COLD_START.inc()
            cand_ids, scores = self._trending_candidates(exclude, item_filter, req.k)
            cand_vectors = self._vectors_or_zeros(bundle, cand_ids)
            recent, hist_vectors = [], None

        ranked = rank(cand_ids, scores, cand_vectors, k=req.k,
                      diversity=chosen_option(req.diversity, arm, "diversity", self.settings.serving_diversity),
                      exploration=chosen_option(req.exploration, arm, "exploration",
                                                self.settings.serving_exploration),
                      seed=self._seed(req, state), exclude=exclude,
                      allowed=item_filter.allows if item_filter is not None else None,
                      history_ids=recent, history_vectors=hist_vectors,
                      explore=self._exploration(bundle, user_vector), trending=self.replica.trending.top)
        self._record(req.user_id, bundle, [r.item_id for r in ranked], placement)
        return {"request_id": req.request_id, "user_id": req.user_id,
                "items": [self._item_json(r) for r in ranked], "model_version": bundle.version,
                "state_time": (state.last_event_time or None) if state is not None else None,
                "served_at": time.time(), "experiment": placement[0].name if placement is not None else None,
                "arm": arm.name if arm is not None else None}

    def _record(self, user_id: str, bundle: ModelBundle, items: list[str], placement: Placement | None) -> None:
        """Exposure (exploration favours the least shown) and the online metrics, overall and of the arm."""
        for item_id in items:
            self.exposure[item_id] = self.exposure.get(item_id, 0) + 1
        self.replica.quality.set_catalogue_size(len(bundle.index))
        self.replica.quality.served(user_id, items)
        if placement is not None:
            self.experiments.served(placement, user_id, items, len(bundle.index))

    def _candidates(self, bundle: ModelBundle, user_vector: np.ndarray, history: list[str], exclude: set[str],
                    item_filter: ItemFilter | None, k: int, weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Stage 2 for a user with a vector: ``(bundle rows, relevance)``, best first; the model's
        score alone, or blended with co-occurrence at ``weight`` (> 0).

        A filter that names at most ``serving_hnsw_threshold`` matching items has exactly those
        scored (no more work than the exact index does for a catalogue of that size); one that
        passes more widens the search by its share of the catalogue, and if even that leaves
        fewer than ``k`` matching candidates (HNSW recall, an uneven share) its matching items
        are scanned after all, so ``k`` items come back whenever ``k`` match.
        """
        evidence = self._cooccurrence_evidence(bundle, history) if history and weight > 0 else None
        candidates = self.settings.serving_candidates
        fetch = fetch_size(candidates, k)
        if item_filter is not None:
            within = item_filter.bounded_ids(self.settings.serving_hnsw_threshold)
            if within is not None:
                return self._scan(bundle, user_vector, within, exclude, evidence, fetch, weight)
            fetch = fetch_size(candidates, k, True, item_filter.passing_share(len(bundle.index)))
        if evidence is None:
            rows, scores = bundle.index.search_rows(user_vector, fetch, [exclude])[0]
        else:
            rows, scores = blended_candidates(bundle.index, user_vector, *evidence, weight, exclude, fetch)
        if item_filter is not None and sum(item_filter.allows(bundle.ids[r]) for r in rows) < k:
            within = item_filter.bounded_ids()
            if within is not None:
                return self._scan(bundle, user_vector, within, exclude, evidence, fetch, weight)
        return rows, scores

    def _scan(self, bundle: ModelBundle, user_vector: np.ndarray, ids: list[str], exclude: set[str],
              evidence: tuple[np.ndarray, np.ndarray] | None, fetch: int, weight: float) -> tuple[np.ndarray, np.ndarray]:
        rows = bundle.index.rows(i for i in ids if i not in exclude)
        return scanned_candidates(bundle.index, user_vector, rows, fetch, evidence, weight)

    def _trending_candidates(self, exclude: set[str], item_filter: ItemFilter | None,
                             k: int) -> tuple[list[str], np.ndarray]:
        """Stage 2 without a user vector: the trending list (of the matching items, when a filter names them)."""
        trending = self.replica.trending
        within = item_filter.bounded_ids(self.settings.serving_hnsw_threshold) if item_filter is not None else None
        fetch = fetch_size(self.settings.serving_candidates, k, item_filter is not None)
        top = trending.top(fetch, exclude) if within is None else trending.top_among(within, fetch, exclude)
        return [i for i, _ in top], np.array([s for _, s in top], dtype=np.float64)

    def _history_and_exclusions(self, req: RecRequest, state: UserState | None) -> tuple[list[str], set[str]]:
        """The user's recent items that speak for candidates and reasons, and every item the answer
        must leave out.

        Items the user rejected (a negative event) are left out of both: they are never recommended
        back, even with ``include_seen``, and lend no co-occurrence evidence. Seen items are left out
        unless the request's ``include_seen`` (default: the repeat policy) allows them. Items that may
        not be served (retired, unavailable, expired) are excluded too, so every stage drops them:
        candidates, trending, exploration and top-up.
        """
        exclude = set(req.exclude_items) | self.unservable()
        if state is None:
            return [], exclude
        rejected = state.rejected
        history = [i for i, _, _ in state.recent if i not in rejected]
        include_seen = self.settings.semantics.allow_repeats if req.include_seen is None else req.include_seen
        if not include_seen:
            exclude |= state.seen.keys() | {i for i, _, _ in state.recent}
        return history, exclude | rejected.keys()

    def _cooccurrence_evidence(self, bundle: ModelBundle, history: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """``(bundle rows, scores)`` of the items with co-occurrence evidence for ``history``;
        None when co-occurrence is off."""
        co = self.replica.cooccurrence
        if co is None:
            return None
        cached = self._co_rows.get(bundle.version)
        if cached is None or cached[0] is not bundle:
            # co-occurrence row -> bundle row (-1: not in this version), built once per version
            # (kept for the few versions answered at once: the newest and those experiment arms pin).
            co_rows = co.rows(bundle.ids)
            to_bundle = np.full(len(co), -1, dtype=np.int64)
            to_bundle[co_rows] = np.arange(len(bundle.ids))
            if len(self._co_rows) >= CO_ROW_MAPS:
                self._co_rows.clear()
            cached = self._co_rows[bundle.version] = (bundle, to_bundle)
        rows, scores = co.neighbour_scores(history)
        to_bundle = cached[1]
        rows, scores = rows[rows < len(to_bundle)], scores[rows < len(to_bundle)]   # items newer than the map
        known = to_bundle[rows] >= 0
        return to_bundle[rows][known], scores[known]

    @staticmethod
    def _vectors_or_zeros(bundle: ModelBundle, ids: list[str]) -> np.ndarray:
        out = np.zeros((len(ids), bundle.index.dim), dtype=np.float32)
        for j, i in enumerate(ids):
            row = bundle.index.row_of.get(i)
            if row is not None:
                out[j] = bundle.vectors[row]
        return out

    def _item_json(self, r: Ranked) -> dict:
        kind = r.reason if r.reason in (TRENDING, NEW, EXPLORE) else "history"
        out = {"item_id": r.item_id, "score": round(float(r.score), 6), "reason": r.reason, "reason_kind": kind}
        title = self.replica.title(r.item_id)
        if title:
            out["title"] = title
        if kind == "history":
            reason_title = self.replica.title(r.reason)
            if reason_title:
                out["reason_title"] = reason_title
        return out

    # --- other reads ------------------------------------------------------------------------
    def unservable(self) -> frozenset[str]:
        """Ids no answer may hold now: retired, unavailable or expired (see :mod:`streamrec.state.catalogue`)."""
        return self.replica.catalogue.blocked(self.clock())

    def similar(self, item_id: str, k: int) -> dict:
        bundle = self.holder.current
        blocked = self.unservable()
        if item_id in blocked:
            raise RequestError("item_id", f"item {item_id[:64]!r} is "
                                          f"{self.replica.catalogue.status(item_id, self.clock())}", status=404)
        if item_id not in bundle.index:
            raise RequestError("item_id", f"item {item_id[:64]!r} is not in model version {bundle.version}",
                               status=404)
        items = [self.replica.with_title({"item_id": other, "score": round(score, 6), "reason": item_id,
                                           "reason_kind": "similar"}, other)
                 for other, score in bundle.index.similar(item_id, k, blocked)]
        return self.replica.with_title({"item_id": item_id, "items": items, "model_version": bundle.version,
                                         "served_at": time.time()}, item_id)

    def item(self, item_id: str) -> dict:
        """What ``GET /items/{item_id}`` shows: the catalogue entry, its status and index membership.

        ``status`` is ``catalogue`` (servable), ``unavailable``, ``expired``, ``retired`` (a
        tombstone), or ``events_only`` for an id no item message named but events did (served
        with its id and no title). An id neither named is a 404.
        """
        bundle = self.holder.current
        status = self.replica.catalogue.status(item_id, self.clock())
        interactions = self.replica.trending.count(item_id)
        if status is None:
            if not interactions and item_id not in bundle.index:
                raise RequestError("item_id", f"unknown item {item_id[:64]!r}", status=404)
            status = EVENTS_ONLY
        known = self.replica.catalogue.get(item_id)
        body = known.to_dict() if known is not None else {"item_id": item_id}
        body.pop("embedding", None)
        body.update({"status": status, "servable": status in (CATALOGUE, EVENTS_ONLY),
                     "in_index": item_id in bundle.index, "model_version": bundle.version,
                     "interactions": interactions})
        return body

    def user(self, user_id: str) -> dict:
        view = self.replica.user_view(user_id)
        if view is None:
            raise RequestError("user_id", f"no state for user {user_id[:64]!r} (recommendations for "
                                          "unknown users are trending items)", status=404)
        bundle = self.holder.current
        state = self.replica.users[user_id]
        vector = self.user_vector(bundle, user_id, state)
        view["model_version"] = bundle.version
        view["serving_vector_norm"] = float(np.linalg.norm(vector)) if vector is not None else None
        view["serving_vector_source"] = ("user_encoder" if bundle.user_encoder is not None and state.recent
                                         else "online")
        return view
