"""Item ids and their row numbers: the one registry every per-item array is indexed by.

Serving's popularity, co-occurrence and item vectors, the recommender contract and the
learner's trainer each keep numpy arrays with one row per item. Rows are handed out in
first-seen order and never move, so an array grows at its end (:func:`grow_rows`, capacity
doubling) and the catalogue grows without a restart.

Examples
--------
>>> rows = ItemRows()
>>> rows.rows(["b", "a", "b"]).tolist(), rows.ids, len(rows)
([0, 1, 0], ['b', 'a'], 2)
>>> rows.get("a"), rows.get("zzz")
(1, None)
>>> grow_rows(np.zeros(2), 3).shape
(4,)
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


class ItemRows:
    """``ids`` (row order) and ``index`` (id -> row); both only ever grow."""

    def __init__(self, ids: Iterable[str] = ()):
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        for item_id in ids:
            self.add(item_id)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.index

    def get(self, item_id: str, default: int | None = None) -> int | None:
        return self.index.get(item_id, default)

    def add(self, item_id: str) -> int:
        """The row of ``item_id``, giving it the next free row if it is new."""
        row = self.index.get(item_id)
        if row is None:
            row = self.index[item_id] = len(self.ids)
            self.ids.append(item_id)
        return row

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``item_ids`` (in their order), adding the new ones."""
        add = self.add
        return np.fromiter((add(i) for i in item_ids), dtype=np.int64, count=len(item_ids))


class RowIndexed:
    """Base of a per-item store whose arrays are indexed by the rows of one :class:`ItemRows`.

    It holds the registry (``_rows``, with ``_index`` and ``_ids`` aliases for hot loops) and
    gives the store its length and ids; the store keeps its own arrays and grows them
    (:func:`grow_rows`) as rows are handed out.
    """

    _rows: ItemRows
    _index: dict[str, int]
    _ids: list[str]

    def _reset_rows(self) -> None:
        """Start a new, empty row registry."""
        self._rows = ItemRows()
        self._index, self._ids = self._rows.index, self._rows.ids   # aliases: they grow in place

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """Item ids in row order (first seen first)."""
        return self._ids


def grow_rows(array: np.ndarray, n_rows: int, fill: float = 0.0) -> np.ndarray:
    """``array`` with at least ``n_rows`` rows (doubling, new rows set to ``fill``)."""
    if len(array) >= n_rows:
        return array
    grown = np.full((max(n_rows, 2 * len(array)),) + array.shape[1:], fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown
