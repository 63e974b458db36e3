"""The system's own variants behind the recommender contract, for the in-process harness.

These replay what the running system does, without Kafka, in the harness's event order:

``system-full``
    The continual learner (:class:`learner.trainer.ContinualTrainer`: replay buffer,
    gated cycles) scores with the user encoder over the user's freshest history (what the
    streams state holds), and serving's ranking pipeline (:mod:`streamrec.ranking.pipeline`)
    does the rest: the online item-to-item co-occurrence score over the same history
    (:class:`streamrec.state.cooccurrence.Cooccurrence`) blended in with weight
    ``cooccurrence_weight`` (how it was chosen: ``docs/evaluation-tuning.md``), the top
    ``serving_candidates`` by that blend, re-ranked with the serving defaults
    (``serving_diversity``, ``serving_exploration``). It also records, for the same requests,
    the lists re-ranking with diversity weights ``sweep`` (no exploration) would have served:
    the accuracy-diversity curve at no extra training cost (offline replay: what is served
    does not feed back into what is learned). To bound its cost the sweep covers every
    ``sweep_every``-th request (default 4); weight 0 (relevance order, i.e. the learner
    without re-ranking) covers every request.
``system-full-norerank``
    The same learner, lists ranked by relevance only. Registered for separate runs; the
    default ``streamrec evaluate`` gets the same numbers for free from ``system-full``'s
    diversity-0 sweep point.
``system-model-only``
    ``system-full-norerank`` without the co-occurrence blend: the two-tower model alone (the
    ablation that shows what each scorer contributes).
``system-no-replay``
    The learner with every mini-batch drawn from the recent window (``recent_fraction=1``),
    with the co-occurrence blend.
``system-static``
    The learner trains on the first ``eval_static_warmup_events`` events, then its weights
    freeze, and so do the co-occurrence counts; the user encoder and co-occurrence scorer
    still read each user's freshest history (state is not learning).
``system-online-vectors``
    No learner: each user's vector is :class:`streamrec.state.user_state.UserState`'s decayed mean
    of :class:`streamrec.state.item_vectors.ItemVectors` (the deterministic vectors every process
    uses before a model is published), blended with the online co-occurrence score, as
    serving does without a model.

Harness-specific choices: the learner sees events in chunks of ``observe_batch`` (as its
Kafka consumer does) and trains only by event count and drift — the wall-clock trigger
``learner_train_every_s`` is off so runs are reproducible. Users without history get
time-decayed popularity (serving's trending list: only items some event named, event-type
weights, ties in first-seen order). Exploration draws its per-request seeds from one
generator seeded by the run's seed, where serving hashes the user's state.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from learner import content_encoder
from streamrec.baselines.decayed_popular import DecayedPopular
from streamrec.state.cooccurrence import Cooccurrence
from streamrec.contracts.events import Event
from streamrec.state.item_vectors import ItemVectors
from streamrec.contracts.items import Item
from streamrec.ranking.pipeline import Exploration, candidates, fetch_size, rank, relevance
from streamrec.ranking.recommender import Recommender
from streamrec.settings import Settings
from learner.trainer import ContinualTrainer
from streamrec.state.user_state import UserState, note_reaction

SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)


@functools.lru_cache(maxsize=1)
def shared_encoder(cache_dir: str) -> "content_encoder.ContentEncoder | None":
    """One text encoder for every variant of a run (loading MiniLM once is the slow part)."""
    return content_encoder.ContentEncoder(cache_dir=cache_dir) if content_encoder.available() else None


class SystemVariant(Recommender):
    """Shared machinery: per-user recent history, trending fallback, candidate re-ranking."""

    learns_negative_events = True   # they weigh every event by the deployment's semantics, as serving does

    def __init__(self, name: str, settings: Settings | None = None, seed: int = 0, diversity: float = 0.0,
                 exploration: float = 0.0, sweep: Sequence[float] = (), sweep_every: int = 4,
                 cooccurrence: bool = False, cooccurrence_until: int | None = None):
        super().__init__()
        self.name = name
        self.settings = (settings or Settings.from_env()).replace(learner_seed=seed, serving_seed=seed)
        self.seed = seed
        self.diversity, self.exploration, self.sweep = diversity, exploration, tuple(sweep)
        self.sweep_every = max(1, sweep_every)
        self.repeatable = exploration <= 0
        self.histories: dict[str, list[tuple[str, str, float]]] = {}
        self.semantics = self.settings.semantics
        self.trending = DecayedPopular(self.settings.popularity_half_life_s, semantics=self.semantics)
        # Per user, the items whose newest event was negative: they lend co-occurrence no evidence
        # (the harness keeps them out of every method's lists, as serving does).
        self.rejected: dict[str, dict[str, None]] = {}
        # Per catalogue row: when an event first named the item (-1: never). Serving's trending
        # holds only such items and breaks ties in this order; the cold-start list does too.
        self.first_seen = np.zeros(0, dtype=np.int64)
        self._items_seen = 0
        self.exposure = np.zeros(0, dtype=np.float64)
        self.vectors = np.zeros((0, self.settings.vector_dim), dtype=np.float32)  # catalogue order
        # diversity weight -> [(request number, rows)]: what that weight would have served.
        self.sweep_lists: dict[float, list[tuple[int, np.ndarray]]] = {w: [] for w in self.sweep}
        self._requests = 0
        self._rng = np.random.default_rng(seed + 0x5EED)
        s = self.settings
        # The online co-occurrence scorer (None: the model's score alone). Its rows follow the
        # catalogue's; it stops learning after ``cooccurrence_until`` events (static freezes it).
        self.cooccurrence = Cooccurrence.from_settings(s) if cooccurrence and s.cooccurrence_weight > 0 else None
        self.cooccurrence_until = cooccurrence_until
        self._learned = 0

    def _on_catalogue(self) -> None:
        self.trending.set_catalogue(self.item_ids)
        if self.cooccurrence is not None:
            self.cooccurrence.rows(self.item_ids[len(self.cooccurrence):])
        if len(self.first_seen) < len(self.item_ids):
            self.first_seen = np.concatenate([self.first_seen,
                                              np.full(len(self.item_ids) - len(self.first_seen), -1)])
        if len(self.exposure) < len(self.item_ids):
            self.exposure = np.concatenate([self.exposure, np.zeros(len(self.item_ids) - len(self.exposure))])

    def learn_many(self, events: Sequence[Event]) -> None:
        limit = self.settings.recent_items
        for e in events:
            row = self.row(e.item_id)
            if self.first_seen[row] < 0:
                self.first_seen[row], self._items_seen = self._items_seen, self._items_seen + 1
            history = self.histories.setdefault(e.user_id, [])
            if self.cooccurrence is not None and (self.cooccurrence_until is None
                                                  or self._learned < self.cooccurrence_until):
                self.cooccurrence.learn_event(e, self.semantics)
            self._learned += 1
            self._note_reaction(e)
            history.append((e.item_id, e.event_type, e.timestamp))
            if len(history) > limit:
                del history[: len(history) - limit]
        self.trending.learn_many(events)
        self._learn(events)

    def learn_one(self, event: Event) -> None:
        self.learn_many([event])

    def _note_reaction(self, event: Event) -> None:
        weight = self.semantics.weight_of(event)
        if weight < 0 or event.user_id in self.rejected:
            note_reaction(self.rejected.setdefault(event.user_id, {}), event.item_id, weight,
                          self.settings.seen_items)

    def _learn(self, events: Sequence[Event]) -> None:
        """Hook: model learning (user histories and trending are already updated)."""

    def user_vectors(self, user_ids: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        n = len(self.item_ids)
        co = None
        if self.cooccurrence is not None:
            co = self.cooccurrence.scores([self.evidence(u) for u in user_ids])[:, :n]
        scores = relevance(self.user_vectors(user_ids) @ self.vectors[:n].T, co, self.settings.cooccurrence_weight)
        cold = np.array([not self.histories.get(u) for u in user_ids])
        if cold.any():
            scores[cold] = self.trending.scores[:n]
        return scores

    def evidence(self, user_id: str) -> list[str]:
        """The user's recent items that lend co-occurrence evidence: all but the rejected ones."""
        rejected = self.rejected.get(user_id, {})
        return [i for i, _, _ in self.histories.get(user_id, []) if i not in rejected]

    def recommend_rows(self, user_ids, k, excludes):
        """Serving's ranking pipeline (:mod:`streamrec.ranking.pipeline`), stages 1-2 for the
        whole block of users at once, then :func:`~streamrec.ranking.pipeline.rank` per request."""
        scores = np.array(self.score_many(user_ids), dtype=np.float64)
        excluded = [self.exclusion_rows(x) for x in excludes]
        fetch = fetch_size(self.settings.serving_candidates, k)
        pools = candidates(scores, excluded, fetch)
        out = []
        for r, u in enumerate(user_ids):
            pool = pools[r] if self.histories.get(u) else self.trending_rows(excluded[r], fetch)
            ids, rel, vec = [self.item_ids[j] for j in pool], scores[r, pool], self.vectors[pool]
            every = self._requests % self.sweep_every == 0
            for w in self.sweep:
                if every or w <= 0:   # weight 0 costs nothing: kept on every request
                    self.sweep_lists[w].append((self._requests, self._rows(rank(ids, rel, vec, k=k, diversity=w))))
            rows = self._rows(self._rank(ids, rel, vec, k, scores[r], excluded[r]))
            self.exposure[rows] += 1
            out.append(rows)
            self._requests += 1
        return out

    def _rank(self, ids: list[str], rel: np.ndarray, vec: np.ndarray, k: int, scores: np.ndarray,
              excluded: np.ndarray) -> list:
        """The list served: this variant's diversity and exploration, exposure as served so far."""
        exploring = self.exploration > 0
        # Candidates never hold an excluded row; only exploration's catalogue sample needs the ids.
        exclude = {self.item_ids[j] for j in excluded} if exploring else frozenset()
        explore = Exploration(self.item_ids, lambda rows: self.exposure[rows], lambda rows: scores[rows],
                              new=lambda rows: self.first_seen[rows] < 0)

        def trending(n: int, taken: set) -> list[tuple[str, float]]:
            skip = np.union1d(excluded, self.exclusion_rows(taken))
            return [(self.item_ids[j], float(self.trending.scores[j])) for j in self.trending_rows(skip, n)]

        seed = int(self._rng.integers(2 ** 63)) if exploring else 0
        return rank(ids, rel, vec, k=k, diversity=self.diversity, exploration=self.exploration, seed=seed,
                    exclude=exclude, explore=explore, trending=trending)

    def _rows(self, ranked: list) -> np.ndarray:
        return np.fromiter((self.item_index[r.item_id] for r in ranked), dtype=np.int64, count=len(ranked))

    def trending_rows(self, excluded: np.ndarray, size: int) -> np.ndarray:
        """Serving's cold-start candidates: items any event named, by decayed popularity, ties
        in first-seen order (:meth:`streamrec.state.popularity.DecayedPopularity.top`). Then, unlike
        serving (whose trending holds only items some event named, so before the first ``k``
        distinct items it answers fewer), never-seen items in catalogue order: the recommender
        contract asks for ``k`` items even before any learning."""
        n = len(self.item_ids)
        seen = self.first_seen[:n] >= 0
        rows = np.setdiff1d(np.flatnonzero(seen), excluded)
        rows = rows[np.lexsort((self.first_seen[rows], -self.trending.scores[rows]))][:size]
        if len(rows) < size:
            rows = np.concatenate([rows, np.setdiff1d(np.flatnonzero(~seen), excluded)[: size - len(rows)]])
        return rows


class LearnerVariant(SystemVariant):
    """The continual learner's two-tower model; see the module docstring for the variants."""

    def __init__(self, name: str, settings: Settings | None = None, seed: int = 0, freeze_after: int | None = None,
                 observe_batch: int = 1000, **kwargs):
        super().__init__(name, settings, seed, **kwargs)
        self.settings = self.settings.replace(learner_train_every_s=0.0)
        self.freeze_after, self.observe_batch = freeze_after, observe_batch
        self.trainer: ContinualTrainer | None = None
        self.pending: list[Event] = []
        self.observed = 0
        self.cycles: list[dict] = []
        self.encoder = None

    def set_catalogue(self, item_ids, items=None) -> None:
        super().set_catalogue(item_ids, items)
        if self.trainer is None:
            encoder = shared_encoder(str(self.settings.state_dir / "content-cache")) \
                if self.settings.learner_use_text else None
            catalogue = [self.items.get(i) or Item(i, i) for i in self.item_ids]
            self.trainer = ContinualTrainer(self.settings, items=catalogue, encoder=encoder)
            self._refresh()

    def _on_catalogue(self) -> None:
        super()._on_catalogue()
        if self.trainer is not None and len(self.vectors) < len(self.item_ids):
            # A new item: the model gets its content vector, serving its (untrained) row.
            self.trainer.add_items([self.items.get(i) or Item(i, i) for i in self.item_ids[len(self.vectors):]])
            self._refresh()

    def _refresh(self) -> None:
        self.encoder = self.trainer.user_encoder()
        ids, vectors = self.trainer.item_vectors()
        for item_id in ids:
            self.row(item_id)
        index = {item_id: r for r, item_id in enumerate(ids)}
        self.vectors = np.zeros((len(self.item_ids), vectors.shape[1]), dtype=np.float32)
        known = [r for r, i in enumerate(self.item_ids) if i in index]
        self.vectors[known] = vectors[[index[self.item_ids[r]] for r in known]]

    def _learn(self, events: Sequence[Event]) -> None:
        if self.freeze_after is not None:
            events = events[: max(self.freeze_after - self.observed, 0)]
        trained = False
        for e in events:
            self.pending.append(e)
            self.observed += 1
            frozen_now = self.observed == self.freeze_after
            if len(self.pending) >= self.observe_batch or frozen_now:
                trained |= self._observe(final=frozen_now)
        if trained or len(self.item_ids) != len(self.vectors):
            self._refresh()

    def _observe(self, final: bool) -> bool:
        """Hand the pending events to the learner and run the cycles it asks for."""
        self.trainer.observe(self.pending)
        self.pending = []
        trained = False
        while self.trainer.should_train() or (final and self.trainer.pending_count):
            result = self.trainer.train_cycle()
            self.cycles.append({"events": self.observed, "decision": result.decision,
                                "probe": result.probe, "duration_s": result.duration_s})
            trained = True
            if result.decision == "skip":
                break
        return trained

    def user_vectors(self, user_ids: Sequence[str]) -> np.ndarray:
        return self.encoder.encode([self.histories.get(u, []) for u in user_ids])


class OnlineVectorsVariant(SystemVariant):
    """No learner: UserState's decayed-mean vectors over the deterministic item vectors."""

    def __init__(self, name: str = "system-online-vectors", settings: Settings | None = None, seed: int = 0,
                 **kwargs):
        super().__init__(name, settings, seed, **kwargs)
        self.item_vectors = ItemVectors(self.settings.vector_dim)
        self.states: dict[str, UserState] = {}
        self.offset = 0

    def _on_catalogue(self) -> None:
        super()._on_catalogue()
        self.vectors = self.item_vectors.lookup(self.item_ids)

    def _learn(self, events: Sequence[Event]) -> None:
        s = self.settings
        for e in events:
            state = self.states.setdefault(e.user_id, UserState.empty(s.vector_dim))
            state.apply([e], self.item_vectors.lookup([e.item_id]), [(0, self.offset, 0)], semantics=self.semantics,
                        half_life=s.user_vector_half_life_s, recent_limit=s.recent_items, dedup_limit=s.dedup_ids)
            self.offset += 1

    def user_vectors(self, user_ids: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(user_ids), self.settings.vector_dim), dtype=np.float32)
        for r, u in enumerate(user_ids):
            state = self.states.get(u)
            if state is not None:
                out[r] = state.vector
        return out




def _settings() -> Settings:
    return Settings.from_env()


SYSTEM_VARIANTS = {
    "system-online-vectors": lambda seed=0: OnlineVectorsVariant(seed=seed, cooccurrence=True),
    "system-static": lambda seed=0: LearnerVariant(
        "system-static", _settings(), seed, freeze_after=_settings().eval_static_warmup_events,
        cooccurrence=True, cooccurrence_until=_settings().eval_static_warmup_events),
    "system-no-replay": lambda seed=0: LearnerVariant(
        "system-no-replay", _settings().replace(learner_recent_fraction=1.0), seed, cooccurrence=True),
    "system-model-only": lambda seed=0: LearnerVariant("system-model-only", _settings(), seed),
    "system-full-norerank": lambda seed=0: LearnerVariant("system-full-norerank", _settings(), seed,
                                                          cooccurrence=True),
    "system-full": lambda seed=0: LearnerVariant(
        "system-full", _settings(), seed, diversity=_settings().serving_diversity,
        exploration=_settings().serving_exploration, sweep=SWEEP, cooccurrence=True),
}
