"""The recommendation request: its fields, their validation, and the error a client sees.

One parser serves both paths: HTTP query strings (every value a string), HTTP JSON bodies
and request-topic messages (JSON values). Every problem raises :class:`RequestError` naming
the offending field, so a client is told what to fix, never just "bad request".

Examples
--------
>>> from streamrec.settings import Settings
>>> r = parse_request({"user_id": 196, "k": "5", "exclude_tags": "Horror,War"}, Settings())
>>> r.user_id, r.k, sorted(r.exclude_tags)
('196', 5, ['Horror', 'War'])
>>> parse_request({"user_id": "u", "filters": {"price": {"lt": 20}}}, Settings()).filters.conditions
(Condition(name='price', op='lt', operand=20),)
>>> try:
...     parse_request({"user_id": "u", "k": 0}, Settings())
... except RequestError as exc:
...     print(exc.to_dict())
{'error': 'must be between 1 and 200', 'field': 'k'}

Bodies (HTTP and topic) are decoded by :func:`decode_object`, which refuses nesting deeper
than :data:`MAX_DEPTH` before handing the text to :mod:`json` (whose decoder recurses, so a
body nested thousands of levels deep would otherwise raise ``RecursionError``):

>>> try:
...     decode_object(b'{"user_id": "u", "x": ' + b"[" * 40 + b"]" * 40 + b"}")
... except BodyTooDeep as exc:
...     print(exc.to_dict(), exc.envelope())
{'error': 'nested deeper than 32 levels', 'field': 'body'} {'user_id': 'u', 'x': None}
"""
from __future__ import annotations

import json
import math
import re
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from streamrec.contracts.consistency import parse_token
from streamrec.contracts.items import MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTE_TEXT
from streamrec.ranking.filters import (MAX_FILTERED_ATTRIBUTES, MAX_VALUES, NEGATIVE, OPERATORS, AttributeFilter,
                                       FilterError, parse_filters)
from streamrec.settings import Settings

MAX_LIST = 1000
MAX_REQUEST_ID = 128
FIELDS = ("request_id", "user_id", "k", "exclude_items", "require_items", "exclude_tags", "require_tags",
          "filters", "diversity", "exploration", "seed", "include_seen", "after")
# The request topic answers in arrival order from one agent, so it does not wait for writes.
TOPIC_FIELDS = tuple(f for f in FIELDS if f != "after") + ("reply_to",)
# A valid request is an object holding lists of ids, or filters holding lists: depth 4. The bound leaves room for
# clients that wrap requests, while keeping the json decoder far from the recursion limit.
MAX_DEPTH = 32
# A string (terminated or not, so the scan stays linear on any input) or a bracket.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"?'
_TOKEN = re.compile(_STRING + r'|[\[\]{}]', re.S)
_ESCAPE = re.compile(r"\\.", re.S)


class RequestError(ValueError):
    """A client error: ``field`` names what is wrong (None when it is the whole request)."""

    def __init__(self, field: str | None, message: str, status: int = 400):
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.message, self.status = field, message, status

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


class BodyTooDeep(RequestError):
    """A body nested deeper than :data:`MAX_DEPTH`; :meth:`envelope` still finds its top-level fields."""

    def __init__(self, text: str):
        super().__init__("body", f"nested deeper than {MAX_DEPTH} levels")
        self._text = text

    def envelope(self) -> dict[str, Any]:
        """The top-level fields, every container value replaced by None ({} if there is no object).

        The request topic uses it to reply to ``reply_to`` with the ``request_id`` even when the
        request itself cannot be decoded.
        """
        text, parts, depth, last = self._text, [], 0, 0
        for match in _TOKEN.finditer(text):
            c = match.group()[0]
            if c in "[{":
                depth += 1
                if depth == 2:   # a value of the top-level object: keep its place, drop its content
                    parts += [text[last:match.start()], "null"]
            elif c in "]}":
                depth -= 1
                if depth == 1:
                    last = match.end()
        # Cut off inside a value (an unterminated deep body): the fields before it still count.
        parts.append(text[last:] if depth <= 1 else "}")
        try:
            doc = json.loads("".join(parts))
        except (ValueError, RecursionError):
            return {}
        return doc if isinstance(doc, dict) else {}


def _depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON ``text``, by linear scans (no recursion).

    Escapes go first, so the quotes left delimit strings; the brackets outside strings (every
    other segment between quotes) are summed. Text after a stray backslash outside a string
    may be misread, but the json decoder fails at that backslash before reaching it.
    """
    if "\\" in text:
        text = _ESCAPE.sub("", text)
    outside = np.frombuffer("".join(text.split('"')[::2]).encode("utf-8", "replace"), np.uint8)
    steps = (outside == ord("[")).astype(np.int32) + (outside == ord("{")) - (outside == ord("]")) \
        - (outside == ord("}"))
    return int(np.cumsum(steps).max(initial=0))


def _parse_int(digits: str) -> int | float:
    # Past Python's digit limit int() raises a ValueError that would blame the whole body; as a
    # float (then +-inf) the number reaches its field's check, which names the field.
    return int(digits) if len(digits) <= sys.get_int_max_str_digits() else float(digits)


def decode_object(raw: bytes | str) -> dict[str, Any]:
    """Decode a request body into a JSON object, or raise :class:`RequestError` naming ``body``.

    Never recurses deeper than :data:`MAX_DEPTH` (:class:`BodyTooDeep` past it).
    """
    try:
        text = raw.decode(json.detect_encoding(raw)) if isinstance(raw, bytes) else raw
    except (UnicodeDecodeError, LookupError) as exc:
        raise RequestError("body", f"not valid JSON: {str(exc)[:120]}") from None
    # Counting brackets first keeps the scan off the common path: few brackets, shallow body.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise BodyTooDeep(text)
    try:
        doc = json.loads(text, parse_int=_parse_int)
    except ValueError as exc:
        raise RequestError("body", f"not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict):
        raise RequestError("body", "must be a JSON object")
    return doc


@dataclass(frozen=True)
class RecRequest:
    request_id: str
    user_id: str
    k: int
    exclude_items: frozenset[str] = frozenset()
    require_items: frozenset[str] = frozenset()   # candidates restricted to these (re-ranking a set)
    exclude_tags: frozenset[str] = frozenset()
    require_tags: frozenset[str] = frozenset()    # an item must carry at least one of them
    filters: AttributeFilter | None = None        # conditions on the items' attributes
    diversity: float | None = None
    exploration: float | None = None
    seed: int | None = None
    include_seen: bool | None = None   # None: STREAMREC_REPEAT_CONSUMPTION says (allow: True)
    # A consistency token's positions: answer once serving applied ``events`` up to them.
    after: tuple[tuple[int, int], ...] | None = None


def _ident(value: Any, field: str, max_len: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RequestError(field, "must be a string or an integer")
    text = str(value)
    if not text or len(text) > max_len or not text.isprintable():
        raise RequestError(field, f"must be 1..{max_len} printable characters")
    return text


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise RequestError(field, "must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(field, "must be an integer")
    if not low <= value <= high:
        raise RequestError(field, f"must be between {low} and {high}")
    return value


def _fraction(value: Any, field: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise RequestError(field, "must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise RequestError(field, "must be a finite number")
    # Compared before any float(): a JSON integer of 400 digits does not fit a float.
    if not 0 <= value <= 1:
        raise RequestError(field, "must be between 0 and 1")
    return float(value)


def _id_set(value: Any, field: str, max_len: int) -> frozenset[str]:
    if isinstance(value, str):   # query strings: comma-separated
        value = [v for v in value.split(",") if v]
    if not isinstance(value, list):
        raise RequestError(field, "must be a list of ids (or a comma-separated string)")
    if len(value) > MAX_LIST:
        raise RequestError(field, f"at most {MAX_LIST} entries")
    return frozenset(_ident(v, field, max_len) for v in value)


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes")
    raise RequestError(field, "must be true or false")


def _filters(value: Any) -> AttributeFilter:
    if isinstance(value, str):   # a query string carries the object as JSON text
        try:
            value = decode_object(value)
        except RequestError as exc:
            raise RequestError("filters", f"{exc.message} (a JSON object such as "
                                          '{"category": "books"})') from None
    try:
        return parse_filters(value)
    except FilterError as exc:
        raise RequestError(exc.field, exc.message) from None


def filters_schema() -> dict:
    """The OpenAPI 3.0 schema of ``filters``: what :func:`streamrec.ranking.filters.parse_filters` accepts."""
    scalars = [{"type": "string", "maxLength": MAX_ATTRIBUTE_TEXT}, {"type": "number"}, {"type": "boolean"}]
    values = {"type": "array", "maxItems": MAX_VALUES, "items": {"oneOf": scalars}}
    number = {"type": "number"}
    operators = {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": {
        "eq": {"oneOf": scalars}, "ne": {"oneOf": scalars}, "in": values, "not_in": values,
        "gt": number, "gte": number, "lt": number, "lte": number}}
    assert set(operators["properties"]) == set(OPERATORS)
    return {"type": "object", "maxProperties": MAX_FILTERED_ATTRIBUTES,
            "additionalProperties": {"oneOf": scalars + [operators]},
            "example": {"category": {"in": ["books", "music"]}, "price": {"gte": 5, "lt": 20}},
            "description": (
                "Conditions on the items' attributes (item contract version 3), one per attribute name "
                f"(1..{MAX_ATTRIBUTE_NAME} printable characters); every one must hold. A value is equality; "
                "an object combines operators: eq, ne, in, not_in (lists of values), gt, gte, lt, lte (numbers). "
                "Values compare by type and value (\"1\", 1 and true differ). An item lacking the attribute "
                f"satisfies only {' and '.join(sorted(NEGATIVE))}. In a query string: the object as JSON text. "
                "A malformed filter is a 400 naming filters, filters.<attribute> or filters.<attribute>.<operator>.")}


def after_positions(value: Any, partitions: int) -> tuple[tuple[int, int], ...]:
    """A consistency token given as ``after`` (:class:`RequestError` naming ``after`` if it is bad)."""
    if not isinstance(value, str):
        raise RequestError("after", "must be a consistency token string such as p0:17,p3:9")
    try:
        positions = parse_token(value)
    except ValueError as exc:
        raise RequestError("after", str(exc)) from None
    beyond = [p for p in positions if p >= partitions]
    if beyond:
        raise RequestError("after", f"partition {beyond[0]} does not exist (events has {partitions})")
    return tuple(sorted(positions.items()))


def parse_request(doc: Any, settings: Settings, *, allowed: tuple[str, ...] = FIELDS) -> RecRequest:
    """Validate a request document (JSON object or query mapping) into a :class:`RecRequest`."""
    if not isinstance(doc, Mapping):
        raise RequestError(None, "the request must be a JSON object")
    unknown = sorted(str(k) for k in doc if k not in allowed)
    if unknown:
        raise RequestError(unknown[0][:64], f"unknown field (known: {', '.join(allowed)})")
    max_id = settings.max_id_length
    if doc.get("user_id") is None or doc.get("user_id") == "":
        raise RequestError("user_id", "is required")
    request_id = doc.get("request_id")
    request_id = uuid.uuid4().hex if request_id in (None, "") else _ident(request_id, "request_id",
                                                                         MAX_REQUEST_ID)
    opt = {}
    if doc.get("diversity") is not None:
        opt["diversity"] = _fraction(doc["diversity"], "diversity")
    if doc.get("exploration") is not None:
        opt["exploration"] = _fraction(doc["exploration"], "exploration")
    if doc.get("seed") is not None:
        opt["seed"] = _int(doc["seed"], "seed", 0, 2**63 - 1)
    if doc.get("include_seen") is not None:
        opt["include_seen"] = _bool(doc["include_seen"], "include_seen")
    if doc.get("after") is not None:
        opt["after"] = after_positions(doc["after"], settings.partitions)
    for name in ("exclude_items", "require_items", "exclude_tags", "require_tags"):
        if doc.get(name) is not None:
            opt[name] = _id_set(doc[name], name, max_id)
    if doc.get("filters") is not None:
        opt["filters"] = _filters(doc["filters"])
    k = doc.get("k")
    k = settings.serving_default_k if k in (None, "") else _int(k, "k", 1, settings.serving_max_k)
    return RecRequest(request_id=request_id, user_id=_ident(doc["user_id"], "user_id", max_id), k=k, **opt)
