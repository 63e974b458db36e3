"""Item vectors as the streams worker and serving see them: a matrix and an id index.

Before any model is published every item gets a deterministic pseudo-random unit vector
seeded by a hash of its id, so every process (and every restart) agrees on it without
coordination. A published model replaces the matrix wholesale (:meth:`replace`); items the
model does not know yet keep their deterministic vector until the next version.

Examples
--------
>>> iv = ItemVectors(dim=8)
>>> a = iv.lookup(["x", "y", "x"])
>>> a.shape, bool((a[0] == a[2]).all())
((3, 8), True)
>>> bool((ItemVectors(dim=8).lookup(["x"])[0] == a[0]).all())   # same id, same vector
True
"""
from __future__ import annotations

import hashlib
import threading
from typing import Iterable, Sequence

import numpy as np

from streamrec.state.item_rows import RowIndexed, grow_rows


def deterministic_vector(item_id: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class ItemVectors(RowIndexed):
    """An append-only id → row index over a float32 matrix, swapped whole on a new model."""

    def __init__(self, dim: int, capacity: int = 1024):
        self.dim = dim
        self.version = 0  # 0: deterministic initialisation, no model yet
        self._reset_rows()
        self._matrix = np.zeros((capacity, dim), dtype=np.float32)
        self._lock = threading.Lock()

    @property
    def matrix(self) -> np.ndarray:
        return self._matrix[: len(self._ids)]

    def rows(self, item_ids: Iterable[str]) -> np.ndarray:
        """Row numbers for ids, adding deterministic vectors for ids never seen."""
        index = self._index
        missing = [i for i in dict.fromkeys(item_ids) if i not in index]
        if missing:
            with self._lock:
                for item_id in missing:
                    self._add(item_id, deterministic_vector(item_id, self.dim))
        return np.fromiter((index[i] for i in item_ids), dtype=np.int64)

    def lookup(self, item_ids: Sequence[str]) -> np.ndarray:
        rows = self.rows(item_ids)  # may grow the matrix: index it only afterwards
        return self._matrix[rows]

    def _add(self, item_id: str, vector: np.ndarray) -> None:
        row = self._rows.add(item_id)
        self._matrix = grow_rows(self._matrix, row + 1)
        self._matrix[row] = vector

    def replace(self, item_ids: Sequence[str], matrix: np.ndarray, version: int) -> None:
        """Adopt a published model's vectors; unknown ids keep their deterministic vector."""
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.shape != (len(item_ids), self.dim):
            raise ValueError(f"matrix {matrix.shape} does not match {len(item_ids)} ids x dim {self.dim}")
        with self._lock:
            known = dict(zip(self._ids, self._matrix[: len(self._ids)]))
            self._reset_rows()
            self._matrix = np.zeros((max(len(item_ids) + len(known), 16), self.dim), dtype=np.float32)
            for item_id, vector in zip(item_ids, matrix):
                self._add(item_id, vector)
            for item_id, vector in known.items():
                if item_id not in self._index:
                    self._add(item_id, vector)
            self.version = version
