"""Set operations on arrays of item rows, sized for one request.

numpy's ``union1d``, ``unique`` and ``isin`` are general (any dtype, hashing or a full
sort of both inputs, several temporaries); a request combines a few hundred nearest
neighbours with a few thousand co-occurrence rows, where they cost a few hundred
microseconds each, a large share of an answer. These do the same on int64 row numbers with
one sort and binary search.

Examples
--------
>>> import numpy as np
>>> distinct(np.array([5, 1, 5, 3])).tolist()
[1, 3, 5]
>>> member(np.array([1, 3, 5]), np.array([3, 4, 5, 0])).tolist()
[True, False, True, False]
"""
from __future__ import annotations

import numpy as np


def distinct(rows: np.ndarray) -> np.ndarray:
    """The distinct values of ``rows``, sorted (``np.unique`` for int64 rows)."""
    out = np.sort(np.asarray(rows, dtype=np.int64))
    if len(out) < 2:
        return out
    keep = np.empty(len(out), dtype=bool)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


def member(sorted_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per element of ``rows``, whether it is in ``sorted_rows`` (sorted ascending): ``np.isin``."""
    rows = np.asarray(rows)
    if not len(sorted_rows) or not len(rows):
        return np.zeros(len(rows), dtype=bool)
    at = np.searchsorted(sorted_rows, rows)
    np.minimum(at, len(sorted_rows) - 1, out=at)
    return sorted_rows[at] == rows


__all__ = ["distinct", "member"]
