"""The request's filter: which items an answer may hold (the ranking pipeline's filter stage).

A request may restrict its answer by item ids (``require_items``), by tags (``require_tags``:
at least one of them; ``exclude_tags``: none of them) and by the items' ``attributes`` (item
contract version 3) with ``filters``, an object of one condition per attribute::

    {"category": "books"}                          equality
    {"category": {"in": ["books", "music"]}}       set membership (``not_in``: outside the set)
    {"price": {"gte": 5, "lt": 20}}                numeric range (``gt``, ``gte``, ``lt``, ``lte``)
    {"used": {"ne": true}}                         inequality

Every condition must hold. Values compare by type and value: ``"1"``, ``1`` and ``true`` are
three different values; ranges compare numbers only. An item lacking the attribute matches no
positive condition (``eq``, ``in``, a range) and every negative one (``ne``, ``not_in``).
:func:`parse_filters` validates hostile input and raises :class:`FilterError` naming the field
(``filters``, ``filters.<attribute>`` or ``filters.<attribute>.<operator>``).

:class:`ItemFilter` is the whole filter of one request over the catalogue: ``allows(item_id)``
is the predicate the pipeline's :func:`~streamrec.ranking.pipeline.rank` applies to every
stage (candidates, exploration, top-up), and :meth:`ItemFilter.bounded_ids` lists the only
items that can pass when the filter names them (required items, or a positive attribute
condition: only items carrying the attribute), which is what lets serving score exactly the
matching items of a selective filter instead of hoping the nearest neighbours hold enough.

Examples
--------
>>> from streamrec.contracts.items import Item
>>> from streamrec.state.catalogue import Catalogue
>>> catalogue = Catalogue()
>>> for item_id, attrs in [("a", {"category": "books", "price": 12}), ("b", {"category": "books", "price": 25}),
...                        ("c", {"category": "music", "price": 8}), ("d", {})]:
...     catalogue.apply(item_id, Item(item_id, item_id, attributes=attrs))
>>> cheap_books = parse_filters({"category": "books", "price": {"lt": 20}})
>>> f = ItemFilter.build(catalogue, attributes=cheap_books)
>>> [i for i in "abcd" if f.allows(i)], f.bounded_ids()
(['a'], ['a'])
>>> f = ItemFilter.build(catalogue, attributes=parse_filters({"category": {"not_in": ["books"]}}))
>>> [i for i in "abcd" if f.allows(i)], f.bounded_ids()       # d lacks it: not in the set
(['c', 'd'], None)
>>> parse_filters({"price": {"between": [1, 2]}})
Traceback (most recent call last):
...
streamrec.ranking.filters.FilterError: filters.price: unknown operator 'between' (known: eq, ne, in, not_in, gt, gte, lt, lte)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from streamrec.contracts.fields import FieldError
from streamrec.contracts.items import Scalar, attribute_name_problem, scalar_problem
from streamrec.state.catalogue import Catalogue
from streamrec.state.item_attributes import COMPARISONS, ItemAttributes

OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")
NEGATIVE = frozenset({"ne", "not_in"})   # an item lacking the attribute satisfies these, and only these
# Bounds on one request's filters: they are evaluated per request, so a client may not make
# one request cost as much as many.
MAX_FILTERED_ATTRIBUTES = 16
MAX_VALUES = 1000
_EXAMPLE = '{"category": "books", "price": {"lt": 20}}'


class FilterError(FieldError):
    """A malformed filter; ``field`` names where (``filters``, ``filters.<attribute>[.<operator>]``)."""


@dataclass(frozen=True)
class Condition:
    """One operator on one attribute; ``operand`` is a scalar, or a tuple of them for ``in``/``not_in``."""

    name: str
    op: str
    operand: Scalar | tuple[Scalar, ...]

    @property
    def positive(self) -> bool:
        return self.op not in NEGATIVE

    def rows(self, attributes: ItemAttributes) -> np.ndarray:
        """The rows of ``attributes`` that satisfy this condition (for a negative one: that fail it)."""
        if self.op in COMPARISONS:
            return attributes.compare_rows(self.name, self.op, self.operand)
        values = self.operand if self.op in ("in", "not_in") else (self.operand,)
        return attributes.equal_rows(self.name, values)


@dataclass(frozen=True)
class Selection:
    """The items of one :class:`ItemAttributes` an :class:`AttributeFilter` lets through."""

    attributes: ItemAttributes
    mask: np.ndarray     # per row of ``attributes`` when selected
    bounded: bool        # only rows can pass: items carrying no attribute fail a positive condition

    def allows(self, item_id: str) -> bool:
        row = self.attributes.row(item_id)
        if row is None or row >= len(self.mask):   # no attributes (or none when selected)
            return not self.bounded
        return bool(self.mask[row])

    def passing(self, n_items: int) -> int:
        """How many of ``n_items`` (the catalogue's size) pass, as far as the rows tell."""
        return int(self.mask.sum()) if self.bounded else max(n_items - int((~self.mask).sum()), 0)

    def matching_ids(self) -> list[str] | None:
        """Every id that passes, in row order; None when the set is not bounded."""
        if not self.bounded:
            return None
        ids = self.attributes.ids
        return [ids[r] for r in np.flatnonzero(self.mask)]


@dataclass(frozen=True)
class AttributeFilter:
    """A request's ``filters``: every condition must hold."""

    conditions: tuple[Condition, ...]

    def select(self, attributes: ItemAttributes) -> Selection:
        """Evaluate every condition over ``attributes`` at once (a few numpy passes)."""
        mask = np.ones(len(attributes), dtype=bool)
        for condition in self.conditions:
            rows = condition.rows(attributes)
            if condition.positive:
                hit = np.zeros(len(mask), dtype=bool)
                hit[rows] = True
                mask &= hit
            else:
                mask[rows] = False
        return Selection(attributes, mask, any(c.positive for c in self.conditions))


def _scalar(value: Any, where: str) -> Scalar:
    problem = scalar_problem(value)
    if problem is not None:
        raise FilterError(where, problem[1])
    return value


def _operand(op: str, value: Any, where: str) -> Scalar | tuple[Scalar, ...]:
    if op in COMPARISONS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FilterError(where, "must be a finite number")
        return _scalar(value, where)
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise FilterError(where, "must be a list of values")
        if len(value) > MAX_VALUES:
            raise FilterError(where, f"at most {MAX_VALUES} values")
        return tuple(_scalar(v, where) for v in value)
    return _scalar(value, where)


def _conditions(name: str, condition: Any, where: str) -> list[Condition]:
    if isinstance(condition, list):
        raise FilterError(where, 'a list is ambiguous: write {"in": [...]} for membership')
    if not isinstance(condition, dict):
        return [Condition(name, "eq", _scalar(condition, where))]
    if not condition:
        raise FilterError(where, f"names no operator (known: {', '.join(OPERATORS)})")
    out = []
    for op, operand in condition.items():
        if op not in OPERATORS:
            raise FilterError(where, f"unknown operator {str(op)[:32]!r} (known: {', '.join(OPERATORS)})")
        out.append(Condition(name, op, _operand(op, operand, f"{where}.{op}")))
    return out


def parse_filters(doc: Any, field: str = "filters") -> AttributeFilter:
    """Validate a request's ``filters`` object into an :class:`AttributeFilter`, or raise :class:`FilterError`."""
    if not isinstance(doc, dict):
        raise FilterError(field, f"must be an object of attribute conditions, such as {_EXAMPLE}")
    if len(doc) > MAX_FILTERED_ATTRIBUTES:
        raise FilterError(field, f"at most {MAX_FILTERED_ATTRIBUTES} attributes")
    conditions: list[Condition] = []
    for name, condition in doc.items():
        problem = attribute_name_problem(name)
        if problem is not None:
            raise FilterError(field, problem)
        conditions += _conditions(name, condition, f"{field}.{name}")
    return AttributeFilter(tuple(conditions))


@dataclass(frozen=True)
class ItemFilter:
    """One request's whole filter over the catalogue: required ids, tags and attributes."""

    catalogue: Catalogue
    require_items: frozenset[str] = frozenset()
    exclude_tags: frozenset[str] = frozenset()
    require_tags: frozenset[str] = frozenset()    # an item must carry at least one of them
    selection: Selection | None = None

    @classmethod
    def build(cls, catalogue: Catalogue, *, require_items: frozenset[str] = frozenset(),
              exclude_tags: frozenset[str] = frozenset(), require_tags: frozenset[str] = frozenset(),
              attributes: AttributeFilter | None = None) -> "ItemFilter | None":
        """The filter of these constraints, None when there are none (everything passes)."""
        if not (require_items or exclude_tags or require_tags or (attributes and attributes.conditions)):
            return None
        selection = attributes.select(catalogue.attributes) if attributes and attributes.conditions else None
        return cls(catalogue, require_items, exclude_tags, require_tags, selection)

    def allows(self, item_id: str) -> bool:
        """Whether ``item_id`` may be in the answer."""
        if self.require_items and item_id not in self.require_items:
            return False
        if self.exclude_tags or self.require_tags:
            item = self.catalogue.get(item_id)
            tags = item.tags if item is not None else ()
            if self.exclude_tags and not self.exclude_tags.isdisjoint(tags):
                return False
            if self.require_tags and self.require_tags.isdisjoint(tags):
                return False
        return self.selection is None or self.selection.allows(item_id)

    def bounded_ids(self, limit: int | None = None) -> list[str] | None:
        """The ids that pass, when the filter names the only ones that can; else None.

        Required items bound it, and so does a positive attribute condition (only items
        carrying the attribute can match). None too when more than ``limit`` would have to be
        listed, so a caller can fall back to a widened search for a filter that passes many.
        """
        selection = self.selection
        if self.require_items:
            ids = sorted(self.require_items)
        elif selection is not None and selection.bounded:
            if limit is not None and int(selection.mask.sum()) > limit:
                return None
            ids = selection.matching_ids()
            if not (self.exclude_tags or self.require_tags):
                return ids   # the selection is the whole filter: no need to check each id
        else:
            return None
        if limit is not None and len(ids) > limit:
            return None
        return [i for i in ids if self.allows(i)]

    def passing_share(self, n_items: int) -> float:
        """Estimated share of ``n_items`` that pass: how much wider a search must go (1.0 when unknown)."""
        if n_items <= 0:
            return 1.0
        if self.require_items:
            return min(len(self.require_items) / n_items, 1.0)
        if self.selection is not None:
            return min(self.selection.passing(n_items) / n_items, 1.0)
        return 1.0


__all__ = ["AttributeFilter", "Condition", "FilterError", "ItemFilter", "MAX_FILTERED_ATTRIBUTES", "MAX_VALUES",
           "NEGATIVE", "OPERATORS", "Selection", "parse_filters"]
