"""Experiments: named, deterministic splits of users between arms that answer differently.

An **experiment** has a name and two or more **arms**. Each arm takes a share of the users
and may set the options its users are answered with: ``diversity`` and ``exploration`` (the
re-ranking of :mod:`streamrec.ranking.pipeline`), ``cooccurrence_weight`` (the blend weight
of co-occurrence with the model's score) and ``model_version`` (answer from that published
version instead of the newest). An option an arm leaves out keeps serving's default, and an
option a request names itself wins over the arm's (the client asked for it explicitly).

**Assignment** is a pure function of the experiment's name and the user id, the same on
every serving instance and after every restart (:func:`bucket`): the blake2b hash of
``name + "\\x00" + user_id`` as a number in [0, 1). Arm ``i`` owns the interval from the sum
of the shares before it to that sum plus its own share, in the order the arms are listed;
a bucket past the sum of all shares (when they sum to less than 1) is not enrolled and gets
serving's defaults. Hashes under different names are independent, so two experiments split
the users independently of each other.

**Several live experiments**: a user is in at most one. The oldest live experiment (by
``created_at``, then name: :func:`precedence`) that enrols the user takes them; a newer one
sees only the users no older one enrolled, which, the hashes being independent, leaves its
arms comparable with each other.

**Records** (topic ``experiments``: compacted, one partition, key = the name, written by
serving's admin API) hold the spec plus ``created_at``, ``updated_at``, ``stopped_at`` (null
while live), for an arm pinning a version the announcement of that version (``model``: what
any serving instance needs to load and verify it, even once ``model-updates`` has been
compacted past it) and, when ``STREAMREC_MODEL_SIGNING_KEY`` is set, an HMAC like a model
announcement's (:mod:`streamrec.contracts.signing`). Stopping writes the record again with
``stopped_at`` set.

Examples
--------
>>> exp = parse_spec({"name": "div", "arms": [{"name": "control", "share": 0.5},
...                                          {"name": "diverse", "share": 0.5, "diversity": 0.6}]})
>>> [(a.name, a.share, a.options()) for a in exp.arms]
[('control', 0.5, {}), ('diverse', 0.5, {'diversity': 0.6})]
>>> exp.arm_for("196").name == exp.arm_for("196").name     # deterministic
True
>>> try:
...     parse_spec({"name": "div", "arms": [{"name": "a", "share": 0.7}, {"name": "b", "share": 0.6}]})
... except SpecError as exc:
...     print(exc.field, "-", exc.message)
arms - the shares sum to 1.3; at most 1
>>> decode_record(exp.encode()) == exp
True
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from streamrec.contracts.fields import FieldError
from streamrec.contracts.model_store import Announcement
from streamrec.contracts.signing import canonical, sign, signature_problem

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ARM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MAX_DESCRIPTION = 500
MAX_RECORD_BYTES = 65_536
MAX_COOCCURRENCE_WEIGHT = 100.0
# Sums of shares are compared with this slack (0.1 + 0.2 + 0.7 must count as 1).
SHARE_SLACK = 1e-9
OPTIONS = ("diversity", "exploration", "cooccurrence_weight", "model_version")
SPEC_ARM_FIELDS = ("name", "share", *OPTIONS)
SPEC_FIELDS = ("name", "description", "arms")
RECORD_FIELDS = (*SPEC_FIELDS, "created_at", "updated_at", "stopped_at", "hmac")


class SpecError(FieldError):
    """An experiment spec or record that is not valid; ``field`` names what is wrong (``arms[1].share``)."""


@dataclass(frozen=True)
class Arm:
    """One arm: its share of the users and the options its users are answered with (None: the default)."""

    name: str
    share: float
    diversity: float | None = None
    exploration: float | None = None
    cooccurrence_weight: float | None = None
    model_version: int | None = None
    model: Announcement | None = None   # the pinned version's announcement (records only)

    def options(self) -> dict[str, Any]:
        """The options this arm sets (those it leaves to serving's defaults are absent)."""
        return {name: getattr(self, name) for name in OPTIONS if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "share": self.share, **self.options()}
        if self.model is not None:
            out["model"] = dataclasses.asdict(self.model)
        return out


@dataclass(frozen=True)
class Experiment:
    """A named split of users between arms; a record of the ``experiments`` topic."""

    name: str
    arms: tuple[Arm, ...]
    description: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    stopped_at: float | None = None
    hmac: str = ""

    @property
    def live(self) -> bool:
        return self.stopped_at is None

    @property
    def enrolled_share(self) -> float:
        """Share of all users the experiment enrols (the sum of its arms' shares)."""
        return math.fsum(a.share for a in self.arms)

    def arm_for(self, user_id: str) -> Arm | None:
        """The arm ``user_id`` is in, or None when the experiment does not enrol them."""
        point, upper = bucket(self.name, user_id), 0.0
        for arm in self.arms:
            upper += arm.share
            if point < upper:
                return arm
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "arms": [a.to_dict() for a in self.arms],
                "created_at": self.created_at, "updated_at": self.updated_at, "stopped_at": self.stopped_at,
                "hmac": self.hmac}

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    def signing_payload(self) -> bytes:
        """What the HMAC covers: every field but the HMAC, canonical JSON."""
        fields = self.to_dict()
        fields.pop("hmac")
        return canonical(fields)

    def signed(self, key: str | None) -> "Experiment":
        """This record with its HMAC under ``key`` (unchanged, unsigned, when no key is set)."""
        return dataclasses.replace(self, hmac=sign(key, self.signing_payload())) if key else self

    def signature_problem(self, key: str | None) -> str | None:
        """``unsigned`` or ``bad_signature`` when ``key`` is set and the HMAC does not match; else None."""
        return signature_problem(key, self.signing_payload(), self.hmac)

    def stopped(self, at: float) -> "Experiment":
        """The record that stops this experiment (unsigned: sign it again)."""
        return dataclasses.replace(self, stopped_at=at, updated_at=at, hmac="")


def bucket(experiment: str, user_id: str) -> float:
    """Where ``user_id`` falls in ``experiment``: a number in [0, 1), uniform over users.

    >>> 0.0 <= bucket("div", "196") < 1.0, bucket("div", "196") == bucket("div", "196")
    (True, True)
    """
    text = f"{experiment}\x00{user_id}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2.0 ** 64


def precedence(experiments: Iterable[Experiment]) -> list[Experiment]:
    """Live experiments in the order they claim users: oldest first (``created_at``, then name)."""
    return sorted((e for e in experiments if e.live), key=lambda e: (e.created_at, e.name))


def assign(ordered: Sequence[Experiment], user_id: str) -> tuple[Experiment, Arm] | None:
    """The experiment and arm ``user_id`` is answered by: the first of ``ordered`` (see
    :func:`precedence`) that enrols them, or None (serving's defaults)."""
    for experiment in ordered:
        arm = experiment.arm_for(user_id)
        if arm is not None:
            return experiment, arm
    return None


# --- validation ----------------------------------------------------------------------------

def _number(value: Any, field: str, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise SpecError(field, "must be a finite number")
    if value > high or value < low or (low_open and value == low):
        raise SpecError(field, f"must be {'above' if low_open else 'at least'} {low:g} and at most {high:g}")
    return float(value)


def _name(value: Any, field: str, pattern: re.Pattern, longest: int) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise SpecError(field, f"must be 1-{longest} characters: letters, digits, '_', '.', '-'")
    return value


def _fields(doc: Any, field: str, allowed: Sequence[str]) -> dict:
    if not isinstance(doc, dict):
        raise SpecError(field, "must be a JSON object")
    unknown = sorted(str(k) for k in doc if k not in allowed)
    if unknown:
        where = f"{field}." if field != "body" else ""
        raise SpecError(f"{where}{unknown[0][:64]}", f"unknown field (known: {', '.join(allowed)})")
    return doc


def _arm(doc: Any, field: str, record: bool) -> Arm:
    doc = _fields(doc, field, (*SPEC_ARM_FIELDS, "model") if record else SPEC_ARM_FIELDS)
    if "share" not in doc:
        raise SpecError(f"{field}.share", "is required")
    values: dict[str, Any] = {"name": _name(doc.get("name"), f"{field}.name", ARM_NAME, 32),
                              "share": _number(doc["share"], f"{field}.share", 0.0, 1.0, low_open=True)}
    for option, high in (("diversity", 1.0), ("exploration", 1.0), ("cooccurrence_weight", MAX_COOCCURRENCE_WEIGHT)):
        if doc.get(option) is not None:
            values[option] = _number(doc[option], f"{field}.{option}", 0.0, high)
    version = doc.get("model_version")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 2 ** 53:
            raise SpecError(f"{field}.model_version", "must be a published version number (an integer from 1)")
        values["model_version"] = version
    if record and (version is not None or doc.get("model") is not None):
        values["model"] = _pinned(doc.get("model"), version, f"{field}.model")
    return Arm(**values)


def _pinned(doc: Any, version: int | None, field: str) -> Announcement:
    try:
        announcement = Announcement.from_dict(doc)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise SpecError(field, "must be the announcement of the pinned model version") from None
    if announcement.version != version:
        raise SpecError(field, f"announces version {announcement.version}, the arm pins {version}")
    return announcement


def _arms(value: Any, max_arms: int, record: bool) -> tuple[Arm, ...]:
    if not isinstance(value, list) or not 2 <= len(value) <= max_arms:
        raise SpecError("arms", f"must be a list of 2 to {max_arms} arms")
    arms = tuple(_arm(doc, f"arms[{i}]", record) for i, doc in enumerate(value))
    names = [a.name for a in arms]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SpecError(f"arms[{i}].name", f"arm {name!r} is named twice")
    total = math.fsum(a.share for a in arms)
    if total > 1.0 + SHARE_SLACK:
        raise SpecError("arms", f"the shares sum to {total:g}; at most 1")
    return arms


def parse_spec(doc: Any, max_arms: int = 4) -> Experiment:
    """Validate what a client asks for (``name``, ``description``, ``arms``) into an :class:`Experiment`.

    Raises :class:`SpecError` naming the first field that is wrong. Times are left at 0: the
    writer stamps them.
    """
    doc = _fields(doc, "body", SPEC_FIELDS)
    return _experiment(doc, max_arms, record=False)


def _experiment(doc: dict, max_arms: int, record: bool) -> Experiment:
    name = _name(doc.get("name"), "name", NAME, 64)
    description = "" if doc.get("description") is None else doc["description"]
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise SpecError("description", f"must be text of at most {MAX_DESCRIPTION} characters")
    return Experiment(name=name, arms=_arms(doc.get("arms"), max_arms, record), description=description)


def decode_record(raw: bytes | None, max_arms: int = 4) -> Experiment:
    """Decode and validate one ``experiments`` record (not its signature: see :meth:`Experiment.signature_problem`).

    Raises :class:`SpecError` for anything that is not a valid record.
    """
    if raw is None or len(raw) > MAX_RECORD_BYTES:
        raise SpecError("body", f"must be a JSON object of at most {MAX_RECORD_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise SpecError("body", "not valid JSON") from None
    doc = _fields(doc, "body", RECORD_FIELDS)
    experiment = _experiment(doc, max_arms, record=True)   # a pin without its announcement: refused there
    created = _number(doc.get("created_at"), "created_at", 0.0, 1e12)
    updated = _number(doc.get("updated_at"), "updated_at", created, 1e12)
    stopped = doc.get("stopped_at")
    stopped = None if stopped is None else _number(stopped, "stopped_at", created, 1e12)
    signature = doc.get("hmac") or ""
    if not isinstance(signature, str):
        raise SpecError("hmac", "must be a hex string")
    return dataclasses.replace(experiment, created_at=created, updated_at=updated, stopped_at=stopped,
                               hmac=signature)


__all__ = ["Arm", "Experiment", "SpecError", "assign", "bucket", "decode_record", "parse_spec", "precedence"]
