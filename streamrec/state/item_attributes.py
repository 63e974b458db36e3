"""Every catalogue item's attributes, kept per attribute as columns over item rows.

A request filter (:mod:`streamrec.ranking.filters`) asks which items have an attribute equal
to some values, or inside a numeric range. Asked item by item, that is a Python loop over the
catalogue per request; asked here, it is a few numpy comparisons over the items that carry
the attribute. Each attribute name has one sparse column: a slot per item that ever carried
it, holding the item's row (:class:`~streamrec.state.item_rows.ItemRows`), its value as a
number (NaN: not a number) and as a code (-1: not a string or boolean). Strings and booleans
are coded by a per-attribute vocabulary keyed by type and value, so ``"1"``, ``1`` and
``true`` never equal one another; numbers compare as 64-bit floats (integers beyond 2**53
may compare equal to a neighbour). An item replaced without an attribute has its slot
cleared (it matches nothing), so memory grows with the attribute values ever published,
bounded per item by the item contract (:data:`streamrec.contracts.items.MAX_ATTRIBUTES`).

Examples
--------
>>> store = ItemAttributes()
>>> store.set("a", {"category": "books", "price": 12.0})
>>> store.set("b", {"category": "music", "price": 30, "used": True})
>>> store.set("c", {"category": "books"})
>>> [store.ids[r] for r in store.equal_rows("category", ["books"])]
['a', 'c']
>>> [store.ids[r] for r in store.compare_rows("price", "lt", 20)], store.equal_rows("used", [1]).tolist()
(['a'], [])
>>> store.set("a", None)                                     # retired: it matches nothing any more
>>> [store.ids[r] for r in store.equal_rows("category", ["books"])]
['c']
"""
from __future__ import annotations

import operator
from typing import Iterable, Mapping

import numpy as np

from streamrec.contracts.items import Scalar
from streamrec.state.item_rows import RowIndexed, grow_rows

#: The numeric comparisons a column answers, by the name a filter gives them.
COMPARISONS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _code_key(value: Scalar) -> tuple[str, Scalar] | None:
    """The vocabulary key of a string or boolean (None for a number)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return ("str", value)
    return None


class _Column:
    """One attribute: per slot, the item row, its number (NaN if none) and its code (-1 if none)."""

    def __init__(self) -> None:
        self.rows = np.zeros(8, dtype=np.int64)
        self.numbers = np.full(8, np.nan)
        self.codes = np.full(8, -1, dtype=np.int32)
        self.used = 0
        self.slot_of: dict[int, int] = {}
        self.vocabulary: dict[tuple[str, Scalar], int] = {}

    def set(self, row: int, value: Scalar) -> None:
        slot = self.slot_of.get(row)
        if slot is None:
            slot = self.slot_of[row] = self.used
            self.used += 1
            self.rows = grow_rows(self.rows, self.used)
            self.numbers = grow_rows(self.numbers, self.used, np.nan)
            self.codes = grow_rows(self.codes, self.used, -1)
            self.rows[slot] = row
        key = _code_key(value)
        if key is None:
            self.numbers[slot], self.codes[slot] = float(value), -1
        else:
            self.numbers[slot] = np.nan
            self.codes[slot] = self.vocabulary.setdefault(key, len(self.vocabulary))

    def clear(self, row: int) -> None:
        slot = self.slot_of.get(row)
        if slot is not None:
            self.numbers[slot], self.codes[slot] = np.nan, -1

    def equal(self, values: Iterable[Scalar]) -> np.ndarray:
        """Rows whose value equals one of ``values`` (strings and booleans by type and value)."""
        used = self.used
        hit = np.zeros(used, dtype=bool)
        codes, numbers = [], []
        for value in values:
            key = _code_key(value)
            if key is None:
                numbers.append(float(value))
            elif key in self.vocabulary:
                codes.append(self.vocabulary[key])
        if codes:
            hit |= np.isin(self.codes[:used], codes)
        if numbers:
            hit |= np.isin(self.numbers[:used], numbers)   # NaN (no number) equals nothing
        return self.rows[:used][hit]

    def compare(self, op: str, bound: float) -> np.ndarray:
        """Rows whose number stands in relation ``op`` to ``bound`` (no number: never)."""
        used = self.used
        with np.errstate(invalid="ignore"):
            hit = COMPARISONS[op](self.numbers[:used], float(bound))
        return self.rows[:used][hit]


class ItemAttributes(RowIndexed):
    """Each item's attributes, queried per attribute with vectorised comparisons.

    Rows are this store's own (:attr:`ids`, :meth:`row`); an item that never carried an
    attribute has no row, and matches no equality or range.
    """

    def __init__(self) -> None:
        self._reset_rows()
        self._columns: dict[str, _Column] = {}
        self._names: dict[int, tuple[str, ...]] = {}   # row -> the attribute names it carries now

    def set(self, item_id: str, attributes: Mapping[str, Scalar] | None) -> None:
        """The attributes ``item_id`` carries from now on (None or empty: none, as when retired)."""
        row = self._rows.add(item_id) if attributes else self._rows.get(item_id)
        if row is None:
            return
        attributes = attributes or {}
        for name in self._names.pop(row, ()):
            if name not in attributes:
                self._columns[name].clear(row)
        for name, value in attributes.items():
            column = self._columns.get(name)
            if column is None:
                column = self._columns[name] = _Column()
            column.set(row, value)
        if attributes:
            self._names[row] = tuple(attributes)

    def row(self, item_id: str) -> int | None:
        """The row of ``item_id``, None if it never carried an attribute."""
        return self._rows.get(item_id)

    def equal_rows(self, name: str, values: Iterable[Scalar]) -> np.ndarray:
        """Rows whose ``name`` equals one of ``values``."""
        column = self._columns.get(name)
        return column.equal(values) if column is not None else np.zeros(0, dtype=np.int64)

    def compare_rows(self, name: str, op: str, bound: float) -> np.ndarray:
        """Rows whose ``name`` is a number ``op`` (``gt``, ``gte``, ``lt``, ``lte``) ``bound``."""
        column = self._columns.get(name)
        return column.compare(op, bound) if column is not None else np.zeros(0, dtype=np.int64)


__all__ = ["COMPARISONS", "ItemAttributes"]
