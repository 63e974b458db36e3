"""The item contract (topic ``items``, key ``item_id``, compacted), version 3.

A message is keyed by its ``item_id``. Its value is either an item (a JSON object) or null:
a **tombstone**, which retires the item (it leaves every answer). An item may say it is not
available (``"available": false``) or until when it is (``"expires_at"``, epoch seconds);
:meth:`Item.servable_at` is the one rule every consumer applies to decide whether an item
may be served. Every consumer reads a message with :func:`decode_item_message`, so they all
agree on which messages are items, which are tombstones and which are invalid (the streams
worker dead-letters those to ``items-dlq``).

*Version 2 (2026-12-02)*: ``available`` and ``expires_at`` are new; a tombstone retires an
item (it used to change nothing); the key must equal ``item_id``; ``title``, ``text``,
``tags`` and ``timestamp`` are type-checked instead of converted (a title of ``null`` was the
text ``"None"``). Version 1 items are valid version 2 items.

*Version 3 (2026-12-02)*: ``attributes`` is new: an object of at most :data:`MAX_ATTRIBUTES`
scalars (a string of at most :data:`MAX_ATTRIBUTE_TEXT` characters, a finite number, or a
boolean) under names of 1..:data:`MAX_ATTRIBUTE_NAME` printable characters, which requests
filter on (:mod:`streamrec.ranking.filters`). :func:`scalar_problem` is the one rule of what
an attribute value (and so a filter's operand) may be. Version 2 items are valid version 3 items.

Examples
--------
>>> item = Item.from_dict({"item_id": 7, "title": "Heat (1995)", "tags": ["Crime"]})
>>> item.content()
'Heat (1995). Crime'
>>> Item("7", "Heat", expires_at=100.0).servable_at(99.0), Item("7", "Heat", expires_at=100.0).servable_at(100.0)
(True, False)
>>> Item.from_dict({"item_id": 7, "attributes": {"price": 12.5, "format": "paperback"}}).attributes["price"]
12.5
>>> decode_item_message(b"7", None)                      # a tombstone
ItemMessage(item_id='7', item=None)
>>> decode_item_message(b"8", b'{"item_id": 7}')
Traceback (most recent call last):
...
streamrec.contracts.items.InvalidItem: key_mismatch: the key '8' is not the item_id '7'
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Mapping, Union

# What GET /items/{id} says of an item (serving adds EVENTS_ONLY for an id only events named).
CATALOGUE, UNAVAILABLE, EXPIRED, RETIRED, EVENTS_ONLY = "catalogue", "unavailable", "expired", "retired", "events_only"

# Reason codes of items-dlq records (the ``reason`` header).
ITEM_REASONS = ("bad_json", "not_an_object", "missing_field", "bad_type", "bad_id", "non_finite", "key_mismatch")

# Bounds of an item's ``attributes``: every serving process keeps them for every item.
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_NAME = 64
MAX_ATTRIBUTE_TEXT = 256

#: An attribute value: a string, a finite number or a boolean (a boolean is never a number here).
Scalar = Union[str, int, float, bool]


class InvalidItem(ValueError):
    """An ``items`` message that is neither an item nor a tombstone; ``reason`` is a code of :data:`ITEM_REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Item:
    """The item contract (topic ``items``, key ``item_id``, compacted)."""

    item_id: str
    title: str
    text: str = ""
    tags: tuple[str, ...] = ()
    timestamp: float = 0.0
    embedding: tuple[float, ...] | None = None
    available: bool = True
    expires_at: float | None = None   # epoch seconds (wall clock): not served from then on
    # Not hashed (a dict cannot be); equal items still compare equal.
    attributes: Mapping[str, Scalar] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict:
        d = {"item_id": self.item_id, "title": self.title, "text": self.text,
             "tags": list(self.tags), "timestamp": self.timestamp}
        if self.embedding is not None:
            d["embedding"] = list(self.embedding)
        # Written only when they differ from the default, so a version 1 item reads the same.
        if not self.available:
            d["available"] = False
        if self.expires_at is not None:
            d["expires_at"] = self.expires_at
        if self.attributes:
            d["attributes"] = dict(self.attributes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Item":
        emb = d.get("embedding")
        expires = d.get("expires_at")
        return cls(item_id=str(d["item_id"]), title=str(d.get("title") or ""), text=str(d.get("text") or ""),
                   tags=tuple(str(t) for t in d.get("tags") or ()), timestamp=float(d.get("timestamp") or 0.0),
                   embedding=tuple(float(x) for x in emb) if emb else None,
                   available=d.get("available") is not False,
                   expires_at=float(expires) if expires is not None else None,
                   attributes=dict(d.get("attributes") or {}))

    def content(self) -> str:
        """The text a content encoder reads: title, description and tags."""
        parts = [self.title, self.text, ", ".join(self.tags)]
        return ". ".join(p for p in parts if p)

    def status_at(self, now: float) -> str:
        """:data:`CATALOGUE` when servable at ``now`` (epoch seconds), else why not."""
        if not self.available:
            return UNAVAILABLE
        if self.expires_at is not None and now >= self.expires_at:
            return EXPIRED
        return CATALOGUE

    def servable_at(self, now: float) -> bool:
        """The one rule: available, and ``now`` (epoch seconds) before ``expires_at`` if it has one."""
        return self.status_at(now) == CATALOGUE


@dataclass(frozen=True)
class ItemMessage:
    """One decoded ``items`` message: an item, or a tombstone (``item`` None) for ``item_id``."""

    item_id: str
    item: Item | None


def _finite(x) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:   # an integer no float can hold
        return False


def scalar_problem(value: object) -> tuple[str, str] | None:
    """None when ``value`` may be an attribute value, else ``(reason, what it must be)``.

    >>> scalar_problem("books"), scalar_problem(True), scalar_problem(float("nan"))
    (None, None, ('non_finite', 'must be a finite number'))
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return None if len(value) <= MAX_ATTRIBUTE_TEXT else (
            "bad_type", f"must be a string of at most {MAX_ATTRIBUTE_TEXT} characters")
    if isinstance(value, (int, float)):
        return None if _finite(value) else ("non_finite", "must be a finite number")
    return "bad_type", "must be a string, a finite number or true/false"


def attribute_name_problem(name: object) -> str | None:
    """None when ``name`` may name an attribute, else what it must be."""
    if isinstance(name, str) and 0 < len(name) <= MAX_ATTRIBUTE_NAME and name.isprintable():
        return None
    return f"attribute names must be 1..{MAX_ATTRIBUTE_NAME} printable characters"


def _check_attributes(attributes: object) -> None:
    if attributes is None:
        return
    if not isinstance(attributes, dict):
        raise InvalidItem("bad_type", "attributes must be an object of scalars")
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidItem("bad_type", f"attributes: at most {MAX_ATTRIBUTES} of them")
    for name, value in attributes.items():
        problem = attribute_name_problem(name)
        if problem is not None:
            raise InvalidItem("bad_type", f"attributes: {problem}")
        value_problem = scalar_problem(value)
        if value_problem is not None:
            raise InvalidItem(value_problem[0], f"attributes.{name}: {value_problem[1]}")


def _check_id(item_id: str, max_id_length: int) -> None:
    if not 0 < len(item_id) <= max_id_length or not item_id.isprintable():
        raise InvalidItem("bad_id", f"item_id must be 1..{max_id_length} printable characters")


def _check_fields(doc: dict, max_embedding: int) -> None:
    """Type checks of the optional fields (the id is checked by the caller)."""
    for name in ("title", "text"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise InvalidItem("bad_type", f"{name} must be a string")
    tags = doc.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise InvalidItem("bad_type", "tags must be a list of strings")
    if doc.get("available") is not None and not isinstance(doc["available"], bool):
        raise InvalidItem("bad_type", "available must be true or false")
    for name in ("timestamp", "expires_at"):
        value = doc.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidItem("bad_type", f"{name} must be a number of epoch seconds")
        if not _finite(value):
            raise InvalidItem("non_finite", f"{name} must be finite")
    emb = doc.get("embedding")
    if emb is not None:
        if not isinstance(emb, list) or not 0 < len(emb) <= max_embedding or not all(map(_finite, emb)):
            raise InvalidItem("bad_type", f"embedding must be a list of 1..{max_embedding} finite numbers")
    _check_attributes(doc.get("attributes"))


def parse_item(raw: bytes, max_embedding: int = 4096, max_id_length: int = 256) -> Item:
    """Decode and validate one item value; raises :class:`InvalidItem` with a reason.

    Every input ends in an :class:`Item` or :class:`InvalidItem`, never another exception:
    JSON nested too deep, integers no float can hold and oversized ids included.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidItem("bad_json", str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise InvalidItem("not_an_object", "an item is a JSON object")
    if doc.get("item_id") in (None, ""):
        raise InvalidItem("missing_field", "item_id is required")
    if not isinstance(doc["item_id"], (str, int)) or isinstance(doc["item_id"], bool):
        raise InvalidItem("bad_type", "item_id must be a string or an integer")
    if isinstance(doc["item_id"], int) and abs(doc["item_id"]) >= 10 ** max_id_length:
        raise InvalidItem("bad_id", f"item_id must be 1..{max_id_length} printable characters")
    _check_id(str(doc["item_id"]), max_id_length)
    _check_fields(doc, max_embedding)
    try:
        return Item.from_dict(doc)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidItem("bad_type", str(exc)[:200]) from None


def decode_item_message(key: bytes | str | None, raw: bytes | None, max_embedding: int = 4096,
                        max_id_length: int = 256) -> ItemMessage:
    """The one reading of an ``items`` message: an item, a tombstone, or :class:`InvalidItem`.

    The key must be the item's id: compaction keeps the newest value per key, so an item
    written under another key (or none) could never be retired by its tombstone and would
    come back after every restart.
    """
    if key is None:
        raise InvalidItem("key_mismatch", "the message has no key (items are keyed by item_id)")
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidItem("bad_id", "the key is not UTF-8") from None
    if raw is None:
        _check_id(key, max_id_length)
        return ItemMessage(key, None)
    item = parse_item(raw, max_embedding, max_id_length)
    if item.item_id != key:
        raise InvalidItem("key_mismatch", f"the key {key[:64]!r} is not the item_id {item.item_id[:64]!r}")
    return ItemMessage(item.item_id, item)
