"""User deletion: the signed record on ``events`` that removes one user's state everywhere.

A deletion travels on the user's own partition of ``events`` (key ``user_id``), as a message
of its own, so it is ordered after every event of the user written before it, every
consumer of ``events`` meets it where it stands in that order, and a consumer that reads
the topic again after a restart meets it again, after the same events (the design and the
alternative of a control topic: docs/architecture.md). Its value is one JSON object:

``{"op": "delete_user", "user_id": "196", "requested_at": 1764670000.0,
"deletion_id": "<32 hex digits>", "hmac": "<hex HMAC-SHA256>"}``

Anyone who can produce to ``events`` could write one, so a consumer applies it only when
``hmac`` is the HMAC (:mod:`streamrec.contracts.signing`, the rule model announcements are
signed with) of the other fields under ``STREAMREC_DELETION_SIGNING_KEY``; without the key
set, every deletion is refused. Serving's ``DELETE /admin/users/{id}`` is what writes them.

Examples
--------
>>> d = UserDeletion.new("196", now=1.7e9).signed("k")
>>> doc = json.loads(d.encode())
>>> decode_deletion(doc, "k", 256) == d
True
>>> try:
...     decode_deletion({**doc, "user_id": "197"}, "k", 256)   # another user: the HMAC no longer matches
... except InvalidEvent as exc:
...     exc.reason
'deletion_bad_signature'
"""
from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass

from streamrec.contracts.fields import InvalidEvent, identifier, number
from streamrec.contracts.signing import canonical, sign, signature_problem

OP = "delete_user"
REQUIRED = ("user_id", "requested_at", "deletion_id")


@dataclass(frozen=True, slots=True)
class UserDeletion:
    """One request to forget ``user_id``; ``hmac`` is empty until :meth:`signed`."""

    user_id: str
    requested_at: float      # wall clock of the request, seconds since the epoch
    deletion_id: str         # names this request (logs, the admin answer)
    hmac: str = ""

    @classmethod
    def new(cls, user_id: str, now: float | None = None) -> "UserDeletion":
        return cls(user_id, time.time() if now is None else now, uuid.uuid4().hex)

    def signing_payload(self) -> bytes:
        """What the HMAC covers: ``op`` and every field but ``hmac``, canonical JSON."""
        return canonical({"op": OP, "user_id": self.user_id, "requested_at": self.requested_at,
                          "deletion_id": self.deletion_id})

    def signed(self, key: str) -> "UserDeletion":
        return dataclasses.replace(self, hmac=sign(key, self.signing_payload()))

    def encode(self) -> bytes:
        return json.dumps({"op": OP, "user_id": self.user_id, "requested_at": self.requested_at,
                           "deletion_id": self.deletion_id, "hmac": self.hmac}, separators=(",", ":")).encode()


def decode_deletion(doc: dict, key: str | None, max_id_length: int) -> UserDeletion:
    """The deletion ``doc`` (a decoded object with an ``op``) stands for, if it may be applied.

    Raises
    ------
    InvalidEvent
        ``unknown_op``; ``missing_field``, ``bad_type``, ``bad_id``, ``non_finite`` for a field;
        ``deletion_no_key`` (this process has no signing key: it applies no deletion),
        ``deletion_unsigned`` or ``deletion_bad_signature``.
    """
    if doc.get("op") != OP:
        raise InvalidEvent("unknown_op", f"op must be {OP!r}", "op")
    for name in REQUIRED:
        if doc.get(name) is None:
            raise InvalidEvent("missing_field", f"{name} is required", name)
    mac = doc.get("hmac") or ""
    if not isinstance(mac, str):
        raise InvalidEvent("bad_type", "hmac must be a string", "hmac")
    deletion = UserDeletion(identifier(doc, "user_id", max_id_length), number(doc, "requested_at"),
                            identifier(doc, "deletion_id", max_id_length), mac)
    if not key:
        raise InvalidEvent("deletion_no_key", "no STREAMREC_DELETION_SIGNING_KEY is set here, so no user "
                                              "deletion can be verified or applied", "hmac")
    problem = signature_problem(key, deletion.signing_payload(), mac)
    if problem is not None:
        raise InvalidEvent(f"deletion_{problem}", "the deletion's hmac is missing or does not match "
                                                  "STREAMREC_DELETION_SIGNING_KEY", "hmac")
    return deletion
