"""The continual trainer: in-process, no Kafka, deterministic under a seed.

The learner process feeds it from Kafka; the evaluation harness feeds it synchronously in
the same event order as the baselines. One cycle:

1. the events observed since the last cycle are split: the newest
   ``learner_holdout_events`` (at most a fifth) are held out, the rest enter the replay
   buffer (reservoir over all history + recent window);
2. a *candidate* (a copy of the current model and its optimiser state) is fine-tuned for
   ``learner_batches_per_cycle`` mini-batches, each mixing recent and replayed examples;
3. the gate scores candidate and current on the held-out events and on the fixed
   forgetting probe; an accepted candidate becomes current. The held-out events then join
   the buffer, so they are trained on in the next cycle.

Every observed event is first scored by the current model (prequential HR@10), which feeds
the ADWIN drift monitor: a drop starts a cycle early.

Interface (stable, used by the evaluation harness)
--------------------------------------------------
``ContinualTrainer(settings, items=(), encoder=None)``
``observe(events, offsets=None) -> ObserveResult``
``add_items(items) -> list[str]`` (ids new to the model)
``should_train(now=None) -> bool``
``train_cycle() -> CycleResult``
``recommend(history, k=10, exclude=()) -> list[tuple[str, float]]``; ``recommend_many(histories, k, excludes)``
``item_vectors() -> tuple[list[str], np.ndarray]``; ``user_encoder() -> UserEncoder``

The loss (``learner_loss``, default in-batch softmax with logQ correction) and the content
and ID-dropout choices were measured with ``harness.learner_measure``; the numbers and how
they were taken are in docs/evaluation.md. The torch steps themselves (tensors from
examples, fine-tuning, target ranks) are in :mod:`learner.fine_tune`.

Examples
--------
>>> from streamrec.settings import Settings
>>> from streamrec.contracts.events import Event
>>> t = ContinualTrainer(Settings(learner_use_text=False, learner_min_events=4, learner_train_every_events=10))
>>> _ = t.observe([Event("u", str(i % 5), "click", 100.0 + i) for i in range(20)])
>>> t.should_train(), t.train_cycle().decision in ("accept", "refuse")
(True, True)
"""
from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from learner import content_encoder
from learner.drift import DriftMonitor
from learner.fine_tune import fine_tune, target_ranks_under
from learner.gate import EvaluationGate, GateDecision, metrics_from_ranks
from learner.interaction_log import InteractionLog, example_columns, no_exclusions, without_users
from learner.model import TwoTower
from learner.ranking_loss import LOSSES
from learner.replay_buffer import ReplayBuffer
from streamrec.contracts.events import Event
from streamrec.contracts.items import Item
from streamrec.ranking.user_encoder import UserEncoder, snapshot_metadata
from streamrec.settings import Settings
from streamrec.state.item_rows import ItemRows, grow_rows
from streamrec.state.dedup import DedupIndex

log = logging.getLogger(__name__)

@dataclass
class ObserveResult:
    events: int
    scored: int   # events whose user had a history, so the current model could rank them
    hits: int     # of those, how many targets were in the current model's top 10


@dataclass
class CycleResult:
    decision: str                      # accept, refuse or skip
    reason: str = ""
    new_events: int = 0
    holdout_events: int = 0
    batches: int = 0
    loss_first: float = float("nan")
    loss_last: float = float("nan")
    candidate: dict = field(default_factory=dict)
    current: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)  # forgetting probe of the model current after the cycle
    duration_s: float = 0.0
    drift_triggered: bool = False

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"


class ContinualTrainer:
    def __init__(self, settings: Settings, items: Iterable[Item] = (),
                 encoder: content_encoder.ContentEncoder | None = None):
        s = self.settings = settings
        if s.learner_loss not in LOSSES:
            raise ValueError(f"learner_loss={s.learner_loss!r}: choose one of {', '.join(LOSSES)}")
        self.sequence_length = max(1, min(s.learner_sequence_length, s.recent_items))
        if s.learner_torch_threads > 0:
            torch.set_num_threads(s.learner_torch_threads)
        if encoder is None and s.learner_use_text and content_encoder.available():
            encoder = content_encoder.ContentEncoder(cache_dir=s.state_dir / "content-cache")
        elif not s.learner_use_text:
            encoder = None
        self.encoder = encoder
        # Event semantics (streamrec.contracts.semantics): the user tower embeds the declared types in
        # declaration order (0: padding, or a type not declared); negative events are history, not targets.
        self.semantics = s.semantics
        self.type_index = {t: i + 1 for i, t in enumerate(self.semantics.types)}
        self.model = TwoTower(s.vector_dim, len(self.type_index), text_dim=encoder.dim if encoder is not None else 0,
                              ext_dim=s.learner_item_embedding_dim, capacity=1024, seed=s.learner_seed)
        self.optimizer_state = torch.optim.Adam(self.model.parameters(), lr=s.learner_learning_rate).state_dict()
        self.set_item_rows(ItemRows())
        self.item_counts = np.zeros(1024, np.float64)
        self._content_keys: dict[str, str] = {}
        self.log = InteractionLog(self.sequence_length)
        self.buffer = ReplayBuffer(example_columns(self.sequence_length), s.learner_reservoir_size,
                                   s.learner_recent_window, seed=s.learner_seed)
        self.pending: list[dict[str, np.ndarray]] = []
        self.pending_count = 0
        self.probe: dict[str, np.ndarray] | None = None
        self.rng = np.random.default_rng(s.learner_seed + 1)
        self.gate = EvaluationGate(s.learner_gate_tolerance)
        self.drift = DriftMonitor(s.learner_drift_delta)
        self.generation = 0          # accepted cycles
        self.events_seen = 0
        self.offsets: dict[str, int] = {}  # "topic:partition" -> next offset to consume
        self.event_ids = DedupIndex(s.dedup_ids)  # the event_id rule streams and serving apply
        self.users_forgotten = 0   # forget_user calls: a cycle compares it before and after training
        self.last_cycle_time = time.monotonic()
        self.catalogue_changed_at: float | None = None
        self.last_result: CycleResult | None = None
        self._matrix: torch.Tensor | None = None  # current model's item vectors, cached
        self._encoder: UserEncoder | None = None  # the current model as serving sees it, cached
        self.lock = threading.RLock()
        items = list(items)
        if items:
            self.add_items(items)

    # -- catalogue -------------------------------------------------------------------------
    def _rows_for(self, item_ids: Sequence[str]) -> np.ndarray:
        before = len(self.item_ids)
        rows = self.catalogue_rows.rows(item_ids)
        n = len(self.item_ids)
        if n > before:
            self.model.items.grow(n)
            self.item_counts = grow_rows(self.item_counts, n)
            self._matrix = self._encoder = None
        return rows

    def set_item_rows(self, rows: ItemRows) -> None:
        """Adopt an item registry (a new one, or one rebuilt from a checkpoint)."""
        self.catalogue_rows = rows
        self.item_ids, self.item_index = rows.ids, rows.index   # aliases: they grow in place

    def add_items(self, items: Iterable[Item]) -> list[str]:
        """Add or update catalogue items; their content vectors are encoded outside the lock."""
        items = [it for it in items if self._content_keys.get(it.item_id) != self._content_key(it)]
        if not items:
            return []
        texts = self.encoder.encode([it.content() for it in items]) if self.encoder is not None else None
        ext_dim = self.settings.learner_item_embedding_dim
        with self.lock:
            new = [it.item_id for it in items if it.item_id not in self.item_index]
            rows = torch.from_numpy(self._rows_for([it.item_id for it in items]))
            with torch.no_grad():
                if texts is not None:
                    self.model.items.text[rows] = torch.from_numpy(texts)
                if ext_dim:
                    for row, it in zip(rows.tolist(), items):
                        if it.embedding is not None and len(it.embedding) == ext_dim:
                            self.model.items.ext[row] = torch.tensor(it.embedding, dtype=torch.float32)
            for it in items:
                self._content_keys[it.item_id] = self._content_key(it)
            self._matrix = self._encoder = None
            self.catalogue_changed_at = self.catalogue_changed_at or time.monotonic()
        return new

    @staticmethod
    def _content_key(item: Item) -> str:
        text = f"{item.content()}\x00{item.embedding!r}"
        return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()

    # -- the stream ------------------------------------------------------------------------
    def current_matrix(self) -> torch.Tensor:
        with self.lock:
            if self._matrix is None or len(self._matrix) != len(self.item_ids):
                with torch.no_grad():
                    self._matrix = self.model.items.all(len(self.item_ids)).detach().clone()
            return self._matrix

    def observe(self, events: Sequence[Event], offsets: dict[str, int] | None = None) -> ObserveResult:
        """Score events with the current model (prequential), then remember them for training."""
        if not events:
            if offsets:
                with self.lock:
                    self.offsets.update(offsets)
            return ObserveResult(0, 0, 0)
        with self.lock:
            rows = self._rows_for([e.item_id for e in events])
            types = np.fromiter((self.type_index.get(e.event_type, 0) for e in events), np.int64, len(events))
            times = np.fromiter((e.timestamp for e in events), np.float64, len(events))
            # Every event is history (and seen); only the others are examples: a negative event's
            # item is nothing to train towards, nor to score the model on.
            examples = self.log.record([e.user_id for e in events], rows, types, times)
            positive = self.semantics.weights_of(events) >= 0
            if not positive.all():
                examples = {k: v[positive] for k, v in examples.items()}
            np.add.at(self.item_counts, rows[positive], 1.0)
            scored = examples["length"] > 0
            hits = 0
            if scored.any():
                subset = {k: v[scored] for k, v in examples.items()}
                ranks = self._ranks(self.model, subset, self.current_matrix())
                outcomes = (ranks < 10).astype(np.float64)
                hits = int(outcomes.sum())
                for hit in outcomes:
                    self.drift.update(hit)
            self.pending.append(examples)
            self.pending_count += len(examples["target"])
            self.events_seen += len(events)
            if offsets:
                self.offsets.update(offsets)
            return ObserveResult(len(events), int(scored.sum()), hits)

    def forget_user(self, user_id: str, offsets: dict[str, int] | None = None) -> int:
        """Forget one user (a verified deletion); returns the examples removed.

        Their history and examples leave the interaction log, the replay buffer, the events
        waiting for the next cycle and the forgetting probe, and their ``event_id`` window
        goes, so no later cycle trains on them and the next checkpoint holds none of them
        (item counts, sums over all users, keep them). ``offsets`` (the position after the
        deletion) are recorded under the same lock, so a checkpoint never holds one without
        the other. A cycle training while this runs refuses its candidate if its batches held
        the user (see :meth:`train_cycle`). The model has no per-user parameters: versions
        trained before stay as they are.
        """
        with self.lock:
            self.event_ids.forget(user_id)
            row = self.log.forget(user_id)
            removed = 0
            if row is not None:
                rows = np.array([row])
                removed += self.buffer.drop("user", rows)
                kept = [without_users(p, rows) for p in self.pending]
                removed += self.pending_count - sum(len(p["target"]) for p in kept)
                self.pending = [p for p in kept if len(p["target"])]
                self.pending_count = sum(len(p["target"]) for p in self.pending)
                if self.probe is not None:
                    probe = without_users(self.probe, rows)
                    removed += len(self.probe["target"]) - len(probe["target"])
                    self.probe = probe
            if offsets:
                self.offsets.update(offsets)
            self.users_forgotten += 1
            return removed

    def should_train(self, now: float | None = None) -> bool:
        s, n = self.settings, self.pending_count
        if n < max(1, s.learner_min_events):
            return False
        if s.learner_train_every_events and n >= s.learner_train_every_events:
            return True
        if self.drift.triggered:
            return True
        now = time.monotonic() if now is None else now
        return bool(s.learner_train_every_s) and now - self.last_cycle_time >= s.learner_train_every_s

    # -- scoring ---------------------------------------------------------------------------
    def _ranks(self, model: TwoTower, examples: dict[str, np.ndarray], matrix: torch.Tensor) -> np.ndarray:
        """Rank of each example's target under ``model``, the items its user had excluded (none
        when the repeat policy allows them, as serving then does)."""
        exclusions = no_exclusions if self.semantics.allow_repeats else self.log.exclusions
        return target_ranks_under(model, examples, matrix, exclusions)

    def _evaluate(self, model: TwoTower, examples: dict[str, np.ndarray] | None, n_items: int) -> dict:
        if examples is None or len(examples["target"]) == 0:
            return metrics_from_ranks(np.zeros(0, np.int64))
        with torch.no_grad():
            matrix = model.items.all(n_items)
        return metrics_from_ranks(self._ranks(model, examples, matrix))

    # -- training --------------------------------------------------------------------------
    def train_cycle(self) -> CycleResult:
        started = time.monotonic()
        s = self.settings
        with self.lock:
            drift = self.drift.triggered
            self.drift.acknowledge()
            self.last_cycle_time = started
            if not self.pending:
                return CycleResult("skip", "no new events")
            new = {k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]}
            self.pending, self.pending_count = [], 0
            n_new = len(new["target"])
            n_hold = min(s.learner_holdout_events, n_new // 5)
            holdout = {k: v[n_new - n_hold:] for k, v in new.items()}
            self.buffer.add({k: v[: n_new - n_hold] for k, v in new.items()})
            if self.probe is None and len(self.buffer) >= max(s.learner_probe_size, 1) * 2:
                pick = self.rng.choice(len(self.buffer), s.learner_probe_size, replace=False)
                self.probe = {k: v[np.sort(pick)].copy() for k, v in self.buffer.reservoir_rows().items()}
            n_items = len(self.item_ids)
            batches = [self.buffer.sample(s.learner_batch_size, s.learner_recent_fraction, self.rng)
                       for _ in range(s.learner_batches_per_cycle)] if self.buffer.recent_count else []
            forgotten_before = self.users_forgotten
            candidate = copy.deepcopy(self.model)
            optimizer_state = copy.deepcopy(self.optimizer_state)
            log_prob = np.log(np.maximum(self.item_counts[:n_items], 1.0) / max(self.item_counts.sum(), 1.0))
            loss_rng = np.random.default_rng(self.rng.integers(2**63))
        losses = self._fit(candidate, optimizer_state, batches, n_items, torch.from_numpy(log_prob).float(), loss_rng)
        with self.lock:
            self._catch_up(candidate, n_items)
            tainted = False
            if self.users_forgotten != forgotten_before:   # a user deleted while it trained: theirs go
                forgotten = np.fromiter(self.log.forgotten, np.int64)
                holdout = without_users(holdout, forgotten)
                tainted = any(np.isin(b["user"], forgotten).any() for b in batches)
            n_items = len(self.item_ids)
            cand_scores = self._evaluate(candidate, holdout, n_items)
            curr_scores = self._evaluate(self.model, holdout, n_items)
            decision: GateDecision = self.gate.decide(cand_scores, curr_scores,
                                                      losses[-1] if losses else None)
            if tainted:
                decision = GateDecision("refuse", "a user in its training batches was deleted while it trained")
            if decision.accepted:
                self.model, self.optimizer_state = candidate, optimizer_state
                self.generation += 1
                self._matrix = self._encoder = None
            self.buffer.add(holdout)
            probe = self._evaluate(self.model, self.probe, n_items) if self.probe is not None else {}
            result = CycleResult(decision.decision, decision.reason, n_new, n_hold, len(batches),
                                 losses[0] if losses else float("nan"), losses[-1] if losses else float("nan"),
                                 cand_scores, curr_scores, probe, time.monotonic() - started, drift)
            self.last_result = result
        log.info("cycle: %s (%s), %d new events, loss %.4f -> %.4f, candidate %s, current %s, %.2fs",
                 result.decision, result.reason, n_new, result.loss_first, result.loss_last,
                 cand_scores, curr_scores, result.duration_s)
        return result

    def _fit(self, model: TwoTower, optimizer_state: dict, batches: list, n_items: int,
             log_prob: torch.Tensor, rng: np.random.Generator) -> list[float]:
        s = self.settings
        return fine_tune(model, optimizer_state, batches, n_items, log_prob, rng, loss=s.learner_loss,
                         learning_rate=s.learner_learning_rate, id_dropout=s.learner_id_dropout)

    def _catch_up(self, candidate: TwoTower, trained_items: int) -> None:
        """Give the candidate the items (and content) that arrived while it trained."""
        n = len(self.item_ids)
        candidate.items.grow(n)
        with torch.no_grad():
            candidate.items.text[:n] = self.model.items.text[:n]
            candidate.items.ext[:n] = self.model.items.ext[:n]
            # Items the candidate never trained on keep the current model's initial rows.
            candidate.items.id_embedding[trained_items:n] = self.model.items.id_embedding[trained_items:n]

    # -- outputs ---------------------------------------------------------------------------
    def item_vectors(self) -> tuple[list[str], np.ndarray]:
        with self.lock:
            return list(self.item_ids), self.current_matrix().numpy().copy()

    def export(self) -> tuple[list[str], np.ndarray, dict[str, np.ndarray], dict]:
        """What a published version carries: ids, item vectors, user-tower tensors, metadata."""
        with self.lock:
            ids, vectors = self.item_vectors()
            return ids, vectors, self.model.user_tensors(), snapshot_metadata(self.sequence_length,
                                                                              self.semantics.types)

    def user_encoder(self) -> UserEncoder:
        """The current model's user tower in numpy, exactly what serving builds from a snapshot."""
        with self.lock:
            if self._encoder is None or len(self._encoder.item_index) != len(self.item_ids):
                ids, vectors, tensors, meta = self.export()
                self._encoder = UserEncoder(ids, vectors, tensors, self.sequence_length,
                                            meta["user_encoder"]["event_types"])
            return self._encoder

    def recommend(self, history: Sequence[tuple[str, str, float]], k: int = 10,
                  exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """Top ``k`` items for a history of (item_id, event_type, timestamp), oldest first."""
        return self.recommend_many([history], k, [exclude])[0]

    def recommend_many(self, histories: Sequence[Sequence[tuple[str, str, float]]], k: int = 10,
                       excludes: Sequence[Iterable[str]] | None = None) -> list[list[tuple[str, float]]]:
        """:meth:`recommend` for a batch of users (one matrix product)."""
        encoder = self.user_encoder()
        users = encoder.encode([list(h) for h in histories])
        ids = list(encoder.item_index)
        scores = users @ encoder.item_vectors[:-1].T
        for row, exclude in enumerate(excludes or ()):
            cols = [encoder.item_index[i] for i in exclude if i in encoder.item_index]
            scores[row, cols] = -np.inf
        k = min(k, scores.shape[1])
        if k <= 0:
            return [[] for _ in histories]
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for row, cand in enumerate(top):
            cand = cand[np.argsort(-scores[row, cand], kind="stable")]
            out.append([(ids[j], float(scores[row, j])) for j in cand if np.isfinite(scores[row, j])])
        return out

