"""HMAC-SHA256 signatures under a server secret: the one signing rule for records on topics.

Anyone who can produce to a topic can write any record, so a record that changes what the
system does (a model announcement on ``model-updates``, a user deletion on ``events``) is
only trusted with a valid HMAC made with a secret the producers of such records and their
readers share. Both sign the *decoded* fields as canonical JSON (:func:`canonical`: sorted
keys, no spaces), so the writer and every reader agree on the bytes whatever the spacing or
key order on the wire, and compare in constant time.

Examples
--------
>>> payload = canonical({"b": 1, "a": "x"})
>>> payload
b'{"a":"x","b":1}'
>>> mac = sign("k", payload)
>>> signature_problem("k", payload, mac), signature_problem("k", payload, ""), signature_problem("j", payload, mac)
(None, 'unsigned', 'bad_signature')
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping


def canonical(fields: Mapping[str, Any]) -> bytes:
    """What a signature covers: ``fields`` as JSON with sorted keys and no spaces."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign(key: str, payload: bytes) -> str:
    """The hex HMAC-SHA256 of ``payload`` under ``key``."""
    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()


def signature_problem(key: str, payload: bytes, given: str) -> str | None:
    """Why ``given`` is not a valid signature of ``payload`` under ``key`` (None: it is).

    ``"unsigned"`` when there is none, ``"bad_signature"`` when it does not match.
    """
    if not given:
        return "unsigned"
    if not hmac.compare_digest(sign(key, payload), given):
        return "bad_signature"
    return None
