"""The recommendation request document every client sends (HTTP body or request topic value)."""
from __future__ import annotations

import uuid
from typing import Any


def request_doc(user_id: Any, k: int | None, options: dict) -> dict:
    """``{"user_id", "k", "request_id", ...options}`` for a recommendation request.

    Options that are None are left out (the service's defaults apply); a ``request_id`` in
    ``options`` is kept, else a new one is drawn.

    Examples
    --------
    >>> request_doc(196, 3, {"diversity": 0.5, "seed": None, "request_id": "r-1"})
    {'user_id': '196', 'diversity': 0.5, 'request_id': 'r-1', 'k': 3}
    """
    doc = {"user_id": str(user_id), **{key: v for key, v in options.items() if v is not None}}
    if k is not None:
        doc["k"] = k
    doc.setdefault("request_id", uuid.uuid4().hex)
    return doc
