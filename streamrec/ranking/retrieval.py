"""Nearest-neighbour retrieval over item vectors with faiss, kept apart from any model.

A :class:`VectorIndex` is built once from (ids, vectors) and never changes afterwards, so a
serving process can build the next one in a worker thread and swap a single reference: a
request that started on the old index finishes on it. Scores are inner products (the
models score a user against an item with a dot product).

The index type is picked by size: exact ``IndexFlatIP`` up to ``hnsw_threshold`` items
(at 10,000 x 32 one query costs well under a millisecond), ``IndexHNSWFlat`` with the
inner-product metric above it, where an exact scan would dominate the request time.

Exclusion (items a user already had) is done by over-fetching ``k + len(exclude)`` and
filtering, which is exact for the flat index and keeps the faiss call a plain search.

Examples
--------
>>> import numpy as np
>>> index = VectorIndex.build(["a", "b", "c"], np.eye(3, dtype=np.float32))
>>> index.search(np.array([[0.0, 1.0, 0.2]], dtype=np.float32), k=2)[0]
[('b', 1.0), ('c', 0.2...)]
>>> index.search(np.array([[0.0, 1.0, 0.2]], dtype=np.float32), k=1, exclude=[{"b"}])[0]
[('c', 0.2...)]
>>> sorted(i for i, _ in index.similar("a", k=2))
['b', 'c']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import faiss
import numpy as np

from streamrec.ranking.row_sets import member

DEFAULT_HNSW_THRESHOLD = 100_000


@dataclass(frozen=True)
class VectorIndex:
    """An immutable faiss index over item vectors, with its id mapping."""

    ids: tuple[str, ...]
    vectors: np.ndarray            # float32 (n, dim), row i is ids[i]; read-only
    row_of: dict[str, int]
    faiss_index: faiss.Index
    kind: str                      # "flat" or "hnsw"
    # Mean and second moment (``V.T @ V / n``) of the vectors: the mean and spread of any
    # query's scores over the whole catalogue without scoring it (:meth:`score_moments`).
    mean: np.ndarray
    second_moment: np.ndarray

    @classmethod
    def build(cls, ids: Sequence[str], vectors: np.ndarray, *,
              hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD, hnsw_m: int = 32,
              ef_search: int = 128, ef_construction: int = 80) -> "VectorIndex":
        """Index ``vectors`` (one row per id); exact up to ``hnsw_threshold`` rows, HNSW above."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(f"vectors {vectors.shape} do not match {len(ids)} ids")
        if not np.isfinite(vectors).all():
            raise ValueError("item vectors must be finite")
        row_of = {item_id: row for row, item_id in enumerate(ids)}
        if len(row_of) != len(ids):
            raise ValueError("item ids must be unique")
        dim = vectors.shape[1]
        if len(ids) > hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            kind = "hnsw"
        else:
            index = faiss.IndexFlatIP(dim)
            kind = "flat"
        if len(ids):
            index.add(vectors)
        vectors.setflags(write=False)
        as64 = vectors.astype(np.float64)
        n = max(len(ids), 1)
        return cls(tuple(ids), vectors, row_of, index, kind, as64.sum(axis=0) / n, as64.T @ as64 / n)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.row_of

    def score_moments(self, user_vector: np.ndarray) -> tuple[float, float]:
        """Mean and standard deviation of ``user_vector``'s inner products with every item.

        ``E[s] = u . mean`` and ``Var[s] = u' M u - E[s]^2`` with ``M`` the second moment: what
        ``(vectors @ u).mean()`` and ``.std()`` give, in ``O(dim^2)`` instead of ``O(n dim)``.
        """
        u = np.asarray(user_vector, dtype=np.float64)
        mean = float(u @ self.mean)
        return mean, float(np.sqrt(max(float(u @ self.second_moment @ u) - mean * mean, 0.0)))

    def rows(self, item_ids: Iterable[str]) -> np.ndarray:
        """Row numbers of the ids this index holds (unknown ids are skipped)."""
        row_of = self.row_of
        return np.fromiter((row_of[i] for i in item_ids if i in row_of), dtype=np.int64)

    def search_rows(self, user_vectors: np.ndarray, k: int,
                    exclude: Sequence[Iterable[str]] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Like :meth:`search` but returns (rows, scores) arrays per query, best first."""
        queries = np.ascontiguousarray(np.atleast_2d(user_vectors), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"query dim {queries.shape[1]} != index dim {self.dim}")
        exclude_sets = [set(e) for e in exclude] if exclude is not None else [set()] * len(queries)
        if len(exclude_sets) != len(queries):
            raise ValueError("one exclusion set per query")
        n = len(self.ids)
        if n == 0 or k <= 0:
            empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
            return [empty for _ in range(len(queries))]
        fetch = min(n, k + max((len(e) for e in exclude_sets), default=0))
        scores, rows = self.faiss_index.search(queries, fetch)
        out = []
        for q, excluded in enumerate(exclude_sets):
            r, s = rows[q], scores[q]
            keep = r >= 0   # HNSW pads with -1 when it finds fewer than asked
            if excluded:
                keep &= ~member(np.sort(self.rows(excluded)), r)
            out.append((r[keep][:k].astype(np.int64), s[keep][:k]))
        return out

    def search(self, user_vectors: np.ndarray, k: int,
               exclude: Sequence[Iterable[str]] | None = None) -> list[list[tuple[str, float]]]:
        """Top ``k`` (item_id, inner product) per query row, skipping each query's ``exclude``."""
        ids = self.ids
        return [[(ids[r], float(s)) for r, s in zip(rows, scores)]
                for rows, scores in self.search_rows(user_vectors, k, exclude)]

    def similar(self, item_id: str, k: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """Items nearest to ``item_id``'s own vector (the item itself left out)."""
        row = self.row_of[item_id]
        return self.search(self.vectors[row:row + 1], k, [set(exclude) | {item_id}])[0]
