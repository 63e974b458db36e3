"""The item contract (topic ``items``, key ``item_id``, compacted).

Examples
--------
>>> item = Item.from_dict({"item_id": 7, "title": "Heat (1995)", "tags": ["Crime"]})
>>> item.content()
'Heat (1995). Crime'
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass


class InvalidItem(ValueError):
    pass


@dataclass(frozen=True)
class Item:
    """The item contract (topic ``items``, key ``item_id``, compacted)."""

    item_id: str
    title: str
    text: str = ""
    tags: tuple[str, ...] = ()
    timestamp: float = 0.0
    embedding: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        d = {"item_id": self.item_id, "title": self.title, "text": self.text,
             "tags": list(self.tags), "timestamp": self.timestamp}
        if self.embedding is not None:
            d["embedding"] = list(self.embedding)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Item":
        emb = d.get("embedding")
        return cls(item_id=str(d["item_id"]), title=str(d.get("title", "")), text=str(d.get("text", "")),
                   tags=tuple(str(t) for t in d.get("tags") or ()), timestamp=float(d.get("timestamp") or 0.0),
                   embedding=tuple(float(x) for x in emb) if emb else None)

    def content(self) -> str:
        """The text a content encoder reads: title, description and tags."""
        parts = [self.title, self.text, ", ".join(self.tags)]
        return ". ".join(p for p in parts if p)


def _finite(x) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:   # an integer no float can hold
        return False


def parse_item(raw: bytes, max_embedding: int = 4096, max_id_length: int = 256) -> Item:
    """Decode and validate one ``items`` message; raises :class:`InvalidItem` with a reason.

    Every input ends in an :class:`Item` or :class:`InvalidItem`, never another exception:
    JSON nested too deep, integers no float can hold and oversized ids included.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidItem(f"bad_json: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or doc.get("item_id") in (None, ""):
        raise InvalidItem("missing_field: item_id is required")
    if not isinstance(doc["item_id"], (str, int)) or isinstance(doc["item_id"], bool):
        raise InvalidItem("bad_type: item_id must be a string or an integer")
    item_id = str(doc["item_id"])
    if len(item_id) > max_id_length or not item_id.isprintable():
        raise InvalidItem(f"bad_id: item_id must be 1..{max_id_length} printable characters")
    if not isinstance(doc.get("tags") or [], list):
        raise InvalidItem("bad_type: tags must be a list of strings")
    emb = doc.get("embedding")
    if emb is not None:
        if not isinstance(emb, list) or not 0 < len(emb) <= max_embedding or not all(map(_finite, emb)):
            raise InvalidItem("bad_type: embedding must be a list of finite numbers")
    try:
        return Item.from_dict(doc)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidItem(f"bad_type: {str(exc)[:200]}") from None
