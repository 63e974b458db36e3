"""Helpers shared by the learner's tests."""
from __future__ import annotations

from streamrec.settings import Settings


def small_settings(**changes) -> Settings:
    """A small, fast, deterministic learner configuration (no timers, no drift)."""
    base = dict(learner_use_text=False, learner_train_every_events=1000, learner_train_every_s=0.0,
                learner_min_events=50, learner_batches_per_cycle=20, learner_batch_size=128,
                learner_holdout_events=200, learner_probe_size=100, learner_drift_delta=0.0,
                learner_reservoir_size=5000, learner_recent_window=1000, learner_seed=0)
    base.update(changes)
    return Settings(**base)
