"""Event semantics a deployment sets: its event types and their weights, what ``value`` does,
and whether a user's past items may be recommended again.

Three settings describe them (:class:`streamrec.settings.Settings`, read by every process
that reads events, and by the evaluation): ``STREAMREC_EVENT_WEIGHTS`` declares the event
types the contract accepts and the signal weight of each, ``STREAMREC_VALUE_RULE`` what an
event's ``value`` does to that weight, ``STREAMREC_REPEAT_CONSUMPTION`` the repeat policy.
:func:`event_semantics` parses them into one :class:`EventSemantics`, and every consumer asks
that object, so the streams worker, serving, the learner and the evaluation cannot disagree:

* **which types exist**: the event contract accepts exactly the declared types
  (:func:`streamrec.contracts.events.validate`; any other is dead-lettered as
  ``unknown_event_type``); the learner's user tower embeds them in declaration order;
* **what an event weighs** (:meth:`EventSemantics.weight`): its type's weight, changed by
  the value rule when the event carries a value;
* **negative events** (a weight below zero: ``dislike``, ``skip``, ``return``, or a rating
  under the threshold) push the item away: the online user vector moves away from it
  (:meth:`streamrec.state.user_state.UserState.apply`), co-occurrence and popularity do not
  count it, the learner does not train on it as a target, and the item joins the user's
  *rejected* items, never recommended back to them (a later positive event takes it out);
* **repeats** (:attr:`EventSemantics.allow_repeats`): ``exclude`` (the default) never
  recommends a user an item they had; ``allow`` does (serving's default for a request's
  ``include_seen``), and the evaluation then scores events on items the user had.

The defaults (:data:`DEFAULT_EVENT_WEIGHTS`, ``ignore``, ``exclude``) are the behaviour the
system had before these settings existed.

Examples
--------
>>> s = event_semantics("view=0.5,click=1,dislike=-1", "threshold:3")
>>> s.types, s.weight("view", None), s.weight("click", 2.0), s.weight("click", 4.0)
(('view', 'click', 'dislike'), 0.5, -1.0, 1.0)
>>> s.weight("dislike", None), s.allow_repeats
(-1.0, False)
>>> event_semantics("view=1", "scale:5").weight("view", 30.0)   # dwell time, clipped at 5
5.0
>>> event_semantics("Like=1")
Traceback (most recent call last):
ValueError: event type 'Like' must be a lowercase letter then up to 31 lowercase letters, digits, _ or -
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Protocol, Sequence

import numpy as np

DEFAULT_EVENT_WEIGHTS = "view=0.5,click=1,add_to_cart=2,purchase=3,rating=1"
TYPE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
VALUE_RULES = ("ignore", "threshold:<t>", "scale", "scale:<max>")
REPEAT_POLICIES = ("exclude", "allow")
# The learner stores a type as a small integer (int8, 0 for padding): room for this many.
MAX_EVENT_TYPES = 100
# ``scale`` without a bound: a value (a dwell time, a quantity) counts at most this many times.
DEFAULT_SCALE_MAX = 10.0


class Weighed(Protocol):
    """What a weight is read from: an event's type and its value (None: the event has none)."""

    event_type: str
    value: float | None


@dataclass(frozen=True)
class ValueRule:
    """What an event's ``value`` does to its type's weight.

    ``ignore``: nothing. ``threshold`` (``parameter`` = t): a value below t makes the weight
    negative (its magnitude kept), at or above t leaves it. ``scale`` (``parameter`` = max):
    the weight times the value clipped to [0, max]. An event without a value keeps its
    type's weight under every rule.
    """

    kind: str = "ignore"
    parameter: float = 0.0

    def __str__(self) -> str:
        """The rule as ``STREAMREC_VALUE_RULE`` spells it."""
        return self.kind if self.kind == "ignore" else f"{self.kind}:{self.parameter:g}"

    def apply(self, weight: float, value: float | None) -> float:
        if value is None or self.kind == "ignore":
            return weight
        if self.kind == "threshold":
            return -abs(weight) if value < self.parameter else weight
        return weight * min(max(value, 0.0), self.parameter)


def _number(text: str, what: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text.strip()!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{what}: {text.strip()!r} is not a finite number")
    return number


def parse_event_weights(spec: str) -> dict[str, float]:
    """``"view=0.5,click=1"`` -> ``{"view": 0.5, "click": 1.0}``, in declaration order.

    Raises ValueError naming the part at fault: a malformed pair, a type name that is not
    :data:`TYPE_NAME`, a type declared twice, a weight that is not a finite number.
    """
    out: dict[str, float] = {}
    for part in spec.split(","):
        name, equals, value = part.partition("=")
        name = name.strip()
        if not equals:
            raise ValueError(f"{part.strip()!r} is not name=weight")
        if not TYPE_NAME.fullmatch(name):
            raise ValueError(f"event type {name!r} must be a lowercase letter then up to 31 lowercase "
                             "letters, digits, _ or -")
        if name in out:
            raise ValueError(f"event type {name!r} is declared twice")
        out[name] = _number(value, f"weight of {name!r}")
    if len(out) > MAX_EVENT_TYPES:
        raise ValueError(f"{len(out)} event types declared; at most {MAX_EVENT_TYPES}")
    return out


def parse_value_rule(spec: str) -> ValueRule:
    """``ignore``, ``threshold:<t>``, ``scale`` or ``scale:<max>`` (max > 0) as a :class:`ValueRule`."""
    kind, colon, parameter = spec.strip().partition(":")
    if kind == "ignore" and not colon:
        return ValueRule()
    if kind == "threshold" and colon:
        return ValueRule("threshold", _number(parameter, "threshold"))
    if kind == "scale":
        bound = _number(parameter, "scale bound") if colon else DEFAULT_SCALE_MAX
        if bound <= 0:
            raise ValueError(f"scale bound must be positive, got {bound}")
        return ValueRule("scale", bound)
    raise ValueError(f"value rule {spec!r} is not one of {', '.join(VALUE_RULES)}")


@dataclass(frozen=True)
class EventSemantics:
    """The parsed semantics; build one with :func:`event_semantics` (cached per settings)."""

    declared: tuple[tuple[str, float], ...]
    value_rule: ValueRule = ValueRule()
    repeat: str = "exclude"
    _weights: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_weights", dict(self.declared))   # the hot path's lookup

    @property
    def types(self) -> tuple[str, ...]:
        """The declared event types, in declaration order (the learner's type embedding order)."""
        return tuple(name for name, _ in self.declared)

    @property
    def allow_repeats(self) -> bool:
        """Whether items a user already had may be recommended to them again."""
        return self.repeat == "allow"

    def accepts(self, event_type: str) -> bool:
        return event_type in self._weights

    def weight(self, event_type: str, value: float | None) -> float:
        """An event's signal weight: its type's (1 for a type not declared), then the value rule."""
        return self.value_rule.apply(self._weights.get(event_type, 1.0), value)

    def weight_of(self, event: Weighed) -> float:
        return self.weight(event.event_type, event.value)

    def weights_of(self, events: Iterable[Weighed]) -> np.ndarray:
        """:meth:`weight_of` of each event, as float64."""
        return np.fromiter((self.weight(e.event_type, e.value) for e in events), dtype=np.float64)

    def to_dict(self) -> dict:
        """The semantics as the settings spell them (what a results file records)."""
        return {"event_weights": dict(self.declared), "value_rule": str(self.value_rule), "repeat": self.repeat}

    def negative(self, event: Weighed) -> bool:
        """True when the event pushes its item away (a weight below zero)."""
        return self.weight_of(event) < 0


@lru_cache(maxsize=64)
def event_semantics(event_weights: str = DEFAULT_EVENT_WEIGHTS, value_rule: str = "ignore",
                    repeat: str = "exclude") -> EventSemantics:
    """The :class:`EventSemantics` three setting values describe; ValueError names what is wrong."""
    return EventSemantics(tuple(parse_event_weights(event_weights).items()), parse_value_rule(value_rule),
                          check_repeat_policy(repeat))


def popularity_weights(events: Sequence[Weighed], semantics: EventSemantics | None) -> np.ndarray:
    """What each event adds to its item's popularity: 1 each without ``semantics``, else its
    weight, and nothing when that is negative."""
    if semantics is None:
        return np.ones(len(events), dtype=np.float64)
    return np.maximum(semantics.weights_of(events), 0.0)


def check_repeat_policy(repeat: str) -> str:
    """``repeat`` when it is one of :data:`REPEAT_POLICIES`, else ValueError."""
    if repeat not in REPEAT_POLICIES:
        raise ValueError(f"repeat policy {repeat!r} is not one of {', '.join(REPEAT_POLICIES)}")
    return repeat


__all__ = ["DEFAULT_EVENT_WEIGHTS", "EventSemantics", "ValueRule", "check_repeat_policy", "event_semantics",
           "parse_event_weights", "parse_value_rule", "popularity_weights"]
