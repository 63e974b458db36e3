"""HMAC-SHA256 signatures under a server secret: the one signing rule for records on topics.

Anyone who can produce to a topic can write any record there, so a record that changes what
the system does (a model announcement on ``model-updates``, an experiment on
``experiments``, a user deletion on ``events``) is only trusted with a valid HMAC made with
a secret its writer and readers share (``STREAMREC_MODEL_SIGNING_KEY`` for the first two,
``STREAMREC_DELETION_SIGNING_KEY`` for deletions): the one rule, used by
:mod:`streamrec.contracts.model_store`, :mod:`streamrec.contracts.experiments` and
:mod:`streamrec.contracts.deletion` alike. Where no key is set nothing is checked; a reader
that must not act without one (deletions) refuses before asking.

The signature covers a canonical JSON form of the record's fields (sorted keys, no spaces),
computed from the decoded fields rather than the bytes received, so writer and readers agree
whatever the spacing or key order on the wire.

Examples
--------
>>> payload = canonical({"b": 1, "a": [2.5, None]})
>>> payload
b'{"a":[2.5,null],"b":1}'
>>> signature_problem("k", payload, sign("k", payload)) is None
True
>>> signature_problem("k", payload, ""), signature_problem("k", payload, sign("other", payload))
('unsigned', 'bad_signature')
>>> signature_problem(None, payload, "") is None        # no key: nothing is checked
True
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad_signature"


def canonical(fields: dict[str, Any]) -> bytes:
    """The bytes a signature covers: ``fields`` as JSON with sorted keys and no spaces."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign(key: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 of ``payload`` under ``key``."""
    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()


def signature_problem(key: str | None, payload: bytes, given: str) -> str | None:
    """Why ``given`` is not an acceptable signature of ``payload``: ``unsigned``, ``bad_signature``
    or None (acceptable; always so when no ``key`` is set). Constant-time comparison."""
    if not key:
        return None
    if not given:
        return UNSIGNED
    return None if hmac.compare_digest(sign(key, payload), given) else BAD_SIGNATURE
