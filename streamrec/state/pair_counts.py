"""Where item-item co-occurrence counts live: an exact dense matrix, or bounded top-K lists.

:class:`~streamrec.state.cooccurrence.Cooccurrence` counts pairs into one of these stores.
Both hold, per item row ``i``, the decayed count ``C[i, j]`` of each pair; they differ in
what they keep:

* :class:`DensePairs`: every pair, in an ``n x n`` float32 matrix (exact; 400 MB at 10,000
  items, so only for catalogues up to a cap).
* :class:`TopKPairs`: per item its ``neighbours`` strongest pairs, maintained with Filtered
  Space-Saving (Homem and Carvalho, 2010): a pair outside an item's list is first counted in
  a small hashed counter of that list, and enters the list once that count outweighs the
  list's weakest entry, which leaves its count in its own counter. Memory is constant per
  item and one update costs ``O(len(others) * neighbours)`` however big the catalogue is. A
  kept pair's true count lies between its count since it entered and that plus the count it
  inherited (its error); it is reported as the midpoint, the estimate closest to the exact
  counts on MovieLens (docs/evaluation.md). While an item has at most ``neighbours``
  partners, its list is exact.

Examples
--------
>>> dense, lists = DensePairs(), TopKPairs(neighbours=2)
>>> for store in (dense, lists):
...     store.grow(4)
...     store.add(0, np.array([1, 2, 3]), 1.0)          # item 0 met items 1, 2 and 3
...     store.add(1, np.array([0]), 1.0)                # item 1 met item 0 again
>>> dense.row_sums(np.array([0]), np.array([1.0]), 4).tolist()
[0.0, 2.0, 1.0, 1.0]
>>> rows, sums = lists.neighbour_sums(np.array([0]), np.array([1.0]))
>>> dict(zip(rows.tolist(), sums.tolist()))            # two kept; 3 waits in a hashed counter
{1: 2.0, 2: 1.0}
"""
from __future__ import annotations

import numpy as np

from streamrec.state.item_rows import grow_rows

EMPTY = -1
#: Hashed counters per list, as a multiple of ``neighbours``.
FILTER_FACTOR = 4


class DensePairs:
    """Every pair's count in a dense float32 matrix (rows grow by doubling)."""

    def __init__(self, capacity: int = 1024):
        self.pairs = np.zeros((capacity, capacity), dtype=np.float32)

    def memory_bytes(self, n: int) -> int:
        return n * n * self.pairs.itemsize

    def grow(self, n: int) -> None:
        if n > len(self.pairs):
            size = len(grow_rows(self.pairs[:, 0], n))
            pairs = np.zeros((size, size), dtype=np.float32)
            pairs[: len(self.pairs), : len(self.pairs)] = self.pairs
            self.pairs = pairs

    def rescale(self, n: int, factor: float) -> None:
        self.pairs[:n, :n] /= np.float32(factor)

    def add(self, row: int, others: np.ndarray, w: float) -> None:
        """Count the pairs (row, other) for each distinct ``other``, both ways."""
        self.pairs[row, others] += np.float32(w)
        self.pairs[others, row] += np.float32(w)

    def row_sums(self, rows: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
        """``sum_k weights[k] * C[rows[k], :n]`` (float32 arithmetic, as a dense row)."""
        return weights.astype(np.float32) @ self.pairs[rows, :n]

    def neighbour_sums(self, rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sums = self.row_sums(rows, weights, len(self.pairs)).astype(np.float64)
        found = np.flatnonzero(sums > 0)
        return found, sums[found]

    def top(self, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``row``'s ``k`` largest counts (partners, counts), the largest first."""
        counts = self.pairs[row]
        k = min(k, int(np.count_nonzero(counts)))
        partners = np.argpartition(-counts, k - 1)[:k] if k else np.zeros(0, np.int64)
        partners = partners[np.argsort(-counts[partners], kind="stable")]
        return partners, counts[partners]


class TopKPairs:
    """Per item, its ``neighbours`` strongest pairs (Filtered Space-Saving)."""

    def __init__(self, neighbours: int = 100, capacity: int = 1024):
        if neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, got {neighbours}")
        self.neighbours = neighbours
        self.filter_size = FILTER_FACTOR * neighbours
        self.partners = np.full((capacity, neighbours), EMPTY, dtype=np.int32)
        self.counts = np.zeros((capacity, neighbours), dtype=np.float32)
        self.errors = np.zeros((capacity, neighbours), dtype=np.float32)
        self.filters = np.zeros((capacity, self.filter_size), dtype=np.float32)

    @classmethod
    def from_dense(cls, dense: DensePairs, n: int, neighbours: int) -> "TopKPairs":
        """The exact top ``neighbours`` of each of the first ``n`` rows of ``dense``."""
        out = cls(neighbours, capacity=max(n, 1))
        for row in range(n):
            partners, counts = dense.top(row, neighbours)
            out.partners[row, : len(partners)], out.counts[row, : len(counts)] = partners, counts
        return out

    def memory_bytes(self, n: int) -> int:
        per_item = self.neighbours * (self.partners.itemsize + self.counts.itemsize + self.errors.itemsize) \
            + self.filter_size * self.filters.itemsize
        return n * per_item

    def grow(self, n: int) -> None:
        if n > len(self.partners):
            self.partners = grow_rows(self.partners, n, EMPTY)
            self.counts, self.errors = grow_rows(self.counts, n), grow_rows(self.errors, n)
            self.filters = grow_rows(self.filters, n)

    def rescale(self, n: int, factor: float) -> None:
        for array in (self.counts, self.errors, self.filters):
            array[:n] /= np.float32(factor)

    def add(self, row: int, others: np.ndarray, w: float) -> None:
        """Count the pairs (row, other) for each distinct ``other``, in both items' lists."""
        self._one_into_many(others, row, w)
        self._many_into_one(row, others, w)

    def _slots(self, rows: np.ndarray, partners: np.ndarray) -> np.ndarray:
        """Hashed counter of ``partners`` in the lists of ``rows``."""
        mixed = (partners.astype(np.uint64) * np.uint64(0x9E3779B1)) ^ (rows.astype(np.uint64) * np.uint64(0x85EBCA77))
        return ((mixed >> np.uint64(7)) % np.uint64(self.filter_size)).astype(np.int64)

    def _one_into_many(self, rows: np.ndarray, partner: int, w: float) -> None:
        w32 = np.float32(w)
        hit = self.partners[rows] == partner                        # (m, neighbours)
        found = hit.any(axis=1)
        if found.any():
            self.counts[rows[found], hit[found].argmax(axis=1)] += w32
        missing = rows[~found]
        if not len(missing):
            return
        slot = self._slots(missing, np.full(len(missing), partner))
        value = self.filters[missing, slot] + w32
        weakest = self.counts[missing].argmin(axis=1)
        enter = value > self.counts[missing, weakest]
        self.filters[missing[~enter], slot[~enter]] = value[~enter]
        self._replace(missing[enter], weakest[enter], np.full(int(enter.sum()), partner), value[enter], w32)

    def _many_into_one(self, row: int, partners: np.ndarray, w: float) -> None:
        """The batch form of adding ``partners`` one at a time: the candidates with the highest
        hashed counts take the places of the weakest entries they outweigh."""
        w32 = np.float32(w)
        hit = self.partners[row][None, :] == partners[:, None]       # (m, neighbours)
        found = hit.any(axis=1)
        if found.any():
            self.counts[row, hit[found].argmax(axis=1)] += w32
        missing = partners[~found]
        if not len(missing):
            return
        rows = np.full(len(missing), row, dtype=np.int64)
        slot = self._slots(rows, missing)
        value = self.filters[row, slot] + w32
        order = np.argsort(-value, kind="stable")[: self.neighbours]
        weakest = np.argsort(self.counts[row], kind="stable")[: len(order)]
        enter = value[order] > self.counts[row, weakest]
        take = order[enter]
        stay = np.ones(len(missing), dtype=bool)
        stay[take] = False
        np.add.at(self.filters[row], slot[stay], w32)
        self._replace(rows[: len(take)], weakest[enter], missing[take], value[take], w32)

    def _replace(self, rows: np.ndarray, positions: np.ndarray, partners: np.ndarray,
                 values: np.ndarray, w32: np.float32) -> None:
        """Put ``partners`` in place of the entries at ``positions``; the entries leaving keep
        their counts in their hashed counters (an upper bound, as Space-Saving's are)."""
        if not len(rows):
            return
        gone = self.partners[rows, positions]
        used = gone != EMPTY
        if used.any():
            r = rows[used]
            np.maximum.at(self.filters, (r, self._slots(r, gone[used])), self.counts[r, positions[used]])
        self.partners[rows, positions] = partners
        self.errors[rows, positions] = values - w32
        self.counts[rows, positions] = values

    def neighbour_sums(self, rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(partners, sums)``: ``sum_k weights[k] * C[rows[k], partner]`` over the lists of ``rows``."""
        partners = self.partners[rows].ravel()
        estimate = self.counts[rows] - np.float32(0.5) * self.errors[rows]   # the midpoint of the bounds
        evidence = (estimate.astype(np.float64) * weights[:, None]).ravel()
        keep = (partners != EMPTY) & (evidence > 0)
        found, at = np.unique(partners[keep], return_inverse=True)
        return found.astype(np.int64), np.bincount(at, weights=evidence[keep], minlength=len(found))


__all__ = ["DensePairs", "TopKPairs"]
