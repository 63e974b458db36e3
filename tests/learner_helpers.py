"""Helpers shared by the learner's tests."""
from __future__ import annotations

from typing import Callable

from streamrec.settings import Settings


def small_settings(**changes) -> Settings:
    """A small, fast, deterministic learner configuration (no timers, no drift)."""
    base = dict(learner_use_text=False, learner_train_every_events=1000, learner_train_every_s=0.0,
                learner_min_events=50, learner_batches_per_cycle=20, learner_batch_size=128,
                learner_holdout_events=200, learner_probe_size=100, learner_drift_delta=0.0,
                learner_reservoir_size=5000, learner_recent_window=1000, learner_seed=0)
    base.update(changes)
    return Settings(**base)


def users_held(trainer, owner_of_item: Callable[[str], str]) -> set[str]:
    """Every user a ``ContinualTrainer`` holds anything of: examples in the replay buffer, the
    events waiting for a cycle or the probe (told by their items, whose owner ``owner_of_item``
    names), history in the interaction log, or an ``event_id`` window."""
    stores = [trainer.buffer.reservoir_rows(), trainer.buffer.recent_rows(), *trainer.pending]
    stores += [trainer.probe] if trainer.probe is not None else []
    rows = {int(i) for store in stores for i in store["target"]}
    rows |= {i for u in trainer.log.user_index.values() for i, _, _ in trainer.log.recent[u]}
    return ({owner_of_item(trainer.item_ids[i]) for i in rows} | set(trainer.log.user_index)
            | set(trainer.event_ids.windows))
