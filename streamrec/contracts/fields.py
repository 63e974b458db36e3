"""The field rules every record on ``events`` is checked with: identifiers and numbers.

An event (:mod:`streamrec.contracts.events`) and a user deletion
(:mod:`streamrec.contracts.deletion`) name users the same way, so both check their fields
here, and a field that breaks a rule raises :class:`InvalidEvent` with the reason code the
dead letter carries.

Examples
--------
>>> identifier({"user_id": 196}, "user_id", 256)
'196'
>>> try:
...     number({"timestamp": float("nan")}, "timestamp")
... except InvalidEvent as exc:
...     exc.reason, exc.field
('non_finite', 'timestamp')
"""
from __future__ import annotations

import math


class FieldError(ValueError):
    """A request part that breaks its rule: ``field`` names where (an API answers 400 naming it),
    ``message`` says why. Request filters and experiment specs raise their own kinds of it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class InvalidEvent(ValueError):
    """One record fails the contract: ``reason`` (a dead-letter reason code), ``detail``, and
    the ``field`` at fault when one is (``POST /events`` names it to the client)."""

    def __init__(self, reason: str, detail: str, field: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.field = reason, detail, field


def identifier(obj: dict, name: str, max_len: int) -> str:
    """``obj[name]`` as an id: a string or an integer, 1..``max_len`` printable characters."""
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise InvalidEvent("bad_type", f"{name} must be a string or an integer, got {type(v).__name__}", name)
    s = v if isinstance(v, str) else str(v)
    if not s or len(s) > max_len or not s.isprintable():
        raise InvalidEvent("bad_id", f"{name} must be 1..{max_len} printable characters", name)
    return s


def number(obj: dict, name: str) -> float:
    """``obj[name]`` as a finite 64-bit float."""
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidEvent("bad_type", f"{name} must be a number, got {type(v).__name__}", name)
    try:
        f = float(v)
    except OverflowError:   # JSON integers are unbounded; a float is not
        raise InvalidEvent("number_too_large", f"{name} does not fit a 64-bit float", name) from None
    if not math.isfinite(f):
        raise InvalidEvent("non_finite", f"{name} must be finite", name)
    return f
