"""Helpers shared by the tests of serving's admin API: calls with a token, a catalogue and versions."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

from streamrec.contracts import model_store
from streamrec.contracts.topics import ITEMS, MODEL_UPDATES
from streamrec.settings import Settings


def call(url: str, method: str = "GET", token: str | None = None, body: bytes | dict | None = None,
         auth: str | None = None):
    """``(status, headers, JSON body)`` of one HTTP call; ``auth`` is a whole Authorization header."""
    headers = {"Authorization": auth or f"Bearer {token}"} if (token or auth) else {}
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, dict(exc.headers), json.loads(raw) if raw.startswith(b"{") else raw


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` random unit vectors of ``dim`` (float32), the same for the same seed."""
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def publish_catalogue_and_versions(settings: Settings, producer, ids: list[str], versions=(1, 2)) -> None:
    """The items ``ids`` and one model version per seed in ``versions`` (vectors seeded by the
    version, signed under the settings' key), produced but not flushed."""
    dim = settings.vector_dim
    for i in ids:
        producer.produce(settings.topic(ITEMS), key=i.encode(), value=json.dumps({"item_id": i}).encode())
    for version in versions:
        ann = model_store.write_version(settings.state_dir / "models", version, ids,
                                        unit_vectors(len(ids), dim, version), {})
        producer.produce(settings.topic(MODEL_UPDATES), key=model_store.MODEL_KEY,
                         value=ann.signed(settings.model_signing_key).encode())
