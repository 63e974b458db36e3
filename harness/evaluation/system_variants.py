"""The system's own variants behind the recommender contract, for the in-process harness.

These replay what the running system does, without Kafka, in the harness's event order:

``system-full``
    The continual learner (:class:`learner.trainer.ContinualTrainer`: replay buffer,
    gated cycles) scores with the user encoder over the user's freshest history (what the
    streams state holds), blends in the online item-to-item co-occurrence score over the same
    history (:class:`streamrec.state.cooccurrence.Cooccurrence`, :func:`~streamrec.state.cooccurrence.blend`
    with weight ``cooccurrence_weight``; see "Tuning" below), takes the top
    ``serving_candidates`` by that blended score (serving's exact candidate search, see
    :mod:`serving.recommender_service`), and re-ranks them with
    :func:`streamrec.ranking.rerank.rerank` using the serving defaults (``serving_diversity``,
    ``serving_exploration``). It also records, for the same requests, the lists re-ranking
    with diversity weights ``sweep`` (no exploration) would have served: the
    accuracy-diversity curve at no extra training cost (offline replay: what is served does
    not feed back into what is learned). To bound its cost the sweep covers every
    ``sweep_every``-th request (default 4); weight 0 (relevance order, i.e. the learner
    without re-ranking) costs nothing and covers every request.
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

Tuning (what was chosen on which events). Only the first 50,000 MovieLens 100K events
(the first half of the stream) were used, with ``system-full-norerank``, seed 0:
``cooccurrence_weight`` 0.3 / 0.6 / 1.0 / 1.5 / 3.0 / 10.0 gave HR@10 0.1862 / 0.1909 /
0.1917 / 0.1912 / 0.1888 / 0.1858 (model alone 0.1627, item-kNN 0.1681 on the same
slice), so 1.0. Also checked there and left at their defaults: a 30-day half-life on the
counts (0.1915) and a 10-item scoring history (0.1906). The co-occurrence window (50) is
the streams state's ``recent_items``; the scoring history (20) and recency decay (0.8) are
item-kNN's defaults, which that baseline's author chose on the whole stream (see
:mod:`streamrec.baselines.item_knn`) — so the two share those two values.
Learner settings checked on the same slice with the blend and *not* adopted (all within
0.003 of the defaults' 0.1917, i.e. within run-to-run noise, and they would change the real
learner): learning rate 0.006 / 0.01 (0.1936 / 0.1938), 120 batches per cycle (0.1948,
twice the training cost), a cycle every 2,000 events with rate 0.006 (0.1946).

Harness-specific choices: the learner sees events in chunks of ``observe_batch`` (as its
Kafka consumer does) and trains only by event count and drift — the wall-clock trigger
``learner_train_every_s`` is off so runs are reproducible. Users without history get
time-decayed popularity (serving's trending list: only items some event named, event-type
weights, ties in first-seen order).
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from learner import content_encoder
from streamrec.baselines.decayed_popular import DecayedPopular
from streamrec.state.cooccurrence import Cooccurrence, blend
from streamrec.contracts.events import Event
from streamrec.state.item_vectors import ItemVectors
from streamrec.contracts.items import Item
from streamrec.ranking.recommender import Recommender, top_k_rows
from streamrec.ranking.rerank import rerank
from streamrec.settings import Settings
from learner.trainer import ContinualTrainer
from streamrec.state.user_state import UserState

SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)
# Catalogue items sampled per request as exploration candidates (as serving does).
EXPLORE_SAMPLE = 64


@functools.lru_cache(maxsize=1)
def shared_encoder(cache_dir: str) -> "content_encoder.ContentEncoder | None":
    """One text encoder for every variant of a run (loading MiniLM takes ~10 s)."""
    return content_encoder.ContentEncoder(cache_dir=cache_dir) if content_encoder.available() else None


class SystemVariant(Recommender):
    """Shared machinery: per-user recent history, trending fallback, candidate re-ranking."""

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
        self.trending = DecayedPopular(self.settings.popularity_half_life_s, weights=self.settings.weights)
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
        self.event_weights = s.weights
        # The online co-occurrence scorer (None: the model's score alone). Its rows follow the
        # catalogue's; it stops learning after ``cooccurrence_until`` events (static freezes it).
        self.cooccurrence = Cooccurrence(s.cooccurrence_window, s.cooccurrence_history, s.cooccurrence_recency_decay,
                                         s.cooccurrence_half_life_s) if cooccurrence and s.cooccurrence_weight > 0 else None
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
                self.cooccurrence.learn(e.user_id, e.item_id, e.timestamp, self.event_weights.get(e.event_type, 1.0))
            self._learned += 1
            history.append((e.item_id, e.event_type, e.timestamp))
            if len(history) > limit:
                del history[: len(history) - limit]
        self.trending.learn_many(events)
        self._learn(events)

    def learn_one(self, event: Event) -> None:
        self.learn_many([event])

    def _learn(self, events: Sequence[Event]) -> None:
        """Hook: model learning (user histories and trending are already updated)."""

    def user_vectors(self, user_ids: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        n = len(self.item_ids)
        scores = self.user_vectors(user_ids) @ self.vectors[:n].T
        if self.cooccurrence is not None:
            co = self.cooccurrence.scores([[i for i, _, _ in self.histories.get(u, [])] for u in user_ids])
            scores = blend(scores, co[:, :n], self.settings.cooccurrence_weight)
        cold = np.array([not self.histories.get(u) for u in user_ids])
        if cold.any():
            scores[cold] = self.trending.scores[:n]
        return scores

    def recommend_rows(self, user_ids, k, excludes):
        scores = np.array(self.score_many(user_ids), dtype=np.float64)
        excluded = [self.exclusion_rows(x) for x in excludes]
        for r, rows in enumerate(excluded):
            scores[r, rows] = -np.inf
        fetch = max(self.settings.serving_candidates, 4 * k)
        pools = top_k_rows(scores, fetch)
        for r, u in enumerate(user_ids):
            if not self.histories.get(u):
                pools[r] = self.trending_rows(excluded[r], fetch)
        out = []
        for r, pool in enumerate(pools):
            rel, vec = scores[r, pool], self.vectors[pool]
            every = self._requests % self.sweep_every == 0
            for w in self.sweep:
                if every or w <= 0:   # weight 0 costs nothing: kept on every request
                    self.sweep_lists[w].append((self._requests, pool[self._mmr(rel, vec, k, w)]))
            rows = pool[self._mmr(rel, vec, k, self.diversity)]
            rows = self._explore(rows, excluded[r], k)
            self.exposure[rows] += 1
            out.append(rows)
            self._requests += 1
        return out

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

    def _mmr(self, rel: np.ndarray, vec: np.ndarray, k: int, diversity: float) -> np.ndarray:
        if diversity <= 0:
            return np.arange(min(k, len(rel)))     # candidates are already in relevance order
        ranked = rerank([str(j) for j in range(len(rel))], rel, vec, k=k, diversity=diversity)
        return np.array([int(r.item_id) for r in ranked], dtype=np.int64)

    def _explore(self, rows: np.ndarray, excluded: np.ndarray, k: int) -> np.ndarray:
        """Serving's exploration: the tail slots go to a seeded draw from a random catalogue
        sample, weighted ``1 / (1 + exposure)^2`` (least shown first); the first slot stays."""
        n_explore = min(int(self.exploration * k + self._rng.random()) if self.exploration > 0 else 0,
                        len(rows) - 1)
        if n_explore <= 0:
            return rows
        keep = rows[: len(rows) - n_explore]
        sample = self._rng.choice(len(self.item_ids), size=min(EXPLORE_SAMPLE, len(self.item_ids)), replace=False)
        sample = np.setdiff1d(sample, np.concatenate([keep, excluded]))
        if not len(sample):
            return rows
        weights = 1.0 / (1.0 + self.exposure[sample]) ** 2
        drawn = self._rng.choice(sample, size=min(n_explore, len(sample)), replace=False, p=weights / weights.sum())
        return np.concatenate([keep, drawn, rows[len(keep) + len(drawn):]])[:k]


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
            state.apply([e], self.item_vectors.lookup([e.item_id]), [(0, self.offset, 0)], weights=s.weights,
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
