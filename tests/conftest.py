"""Shared fixtures: one embedded broker per test session, isolated topics per test.

Tests never mock Kafka: integration tests get a real Tansu broker on loopback and a
``settings`` whose topic prefix is unique to the test, so tests sharing the broker never
see each other's messages.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest

from streamrec.kafka.embedded import EmbeddedBroker
from streamrec.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("STREAMREC_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = EmbeddedBroker(log_file=tmp_path_factory.mktemp("broker") / "tansu.log").start()
    yield b
    b.stop()


@pytest.fixture
def settings(broker, tmp_path) -> Settings:
    """Settings on the session broker with a topic prefix and state dir of this test's own."""
    return Settings(bootstrap_servers=broker.bootstrap_servers,
                    topic_prefix=f"t{uuid.uuid4().hex[:8]}-", state_dir=tmp_path / "state",
                    data_dir=DATA_DIR, session_timeout_s=6.0)


@pytest.fixture(scope="session")
def ml100k():
    from harness.datasets import load_movielens_100k

    return load_movielens_100k(DATA_DIR)


@pytest.fixture
def restore_root_logger():
    """Put the root logger's handlers and level back after a test that configures logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
