"""Clients for the serving API: HTTP and request/response topics, sync and async.

=====================  ===========================  ====================================
path                   synchronous                  asynchronous
=====================  ===========================  ====================================
HTTP                   :class:`RecClient`           :class:`AsyncRecClient`
Kafka topics           :class:`TopicRecClient`      :class:`AsyncTopicRecClient`
=====================  ===========================  ====================================

Every call returns the response contract (a dict: ``request_id``, ``user_id``, ``items``,
``model_version``, ``state_time``, ``served_at``) or raises:

* :class:`RecTimeout` when no answer came within the timeout;
* :class:`RecRequestError` when the service rejected the request (``status``, ``field``);
* :class:`RecUnavailable` when the service is overloaded or unreachable (``retry_after``).

The topic clients send ``{"request_id", "user_id", "k", "reply_to", ...options}`` on
``rec-requests`` keyed by ``user_id`` and wait for the reply with the same ``request_id`` on
their ``reply_to`` topic, reading it from the end offsets taken *before* the request is sent,
so a fast reply cannot be missed.

Examples
--------
>>> client = RecClient("http://127.0.0.1:8080", timeout=2.0)            # doctest: +SKIP
>>> [i["item_id"] for i in client.recommend("196", k=3)["items"]]       # doctest: +SKIP
['50', '181', '100']
"""
from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from streamrec.client.topic_clients import AsyncTopicRecClient, TopicRecClient
from streamrec.client.errors import RecError, RecRequestError, RecTimeout, RecUnavailable
from streamrec.client.request_doc import request_doc

__all__ = ["RecClient", "AsyncRecClient", "TopicRecClient", "AsyncTopicRecClient", "RecError",
           "RecRequestError", "RecTimeout", "RecUnavailable"]


def _raise_for(status: int, body: bytes, headers: Any = None) -> None:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {"error": body[:200].decode(errors="replace")}
    retry_after = None
    if headers is not None and headers.get("Retry-After"):
        try:
            retry_after = float(headers.get("Retry-After"))
        except ValueError:
            pass
    if status == 503:
        raise RecUnavailable(doc.get("error", "unavailable"), retry_after)
    raise RecRequestError(status, doc.get("error", "error"), doc.get("field"))


class RecClient:
    """Synchronous HTTP client (standard library only)."""

    def __init__(self, url: str = "http://127.0.0.1:8080", timeout: float = 5.0):
        self.url, self.timeout = url.rstrip("/"), timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            _raise_for(exc.code, exc.read(), exc.headers)
        except TimeoutError as exc:
            raise RecTimeout(f"no answer from {self.url} within {self.timeout}s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise RecTimeout(f"no answer from {self.url} within {self.timeout}s") from exc
            raise RecUnavailable(f"{self.url} unreachable: {exc.reason}") from exc
        except (http.client.HTTPException, OSError, ValueError) as exc:
            # The server went away mid-exchange (reset, closed before or during the answer,
            # a truncated body): urllib lets these through unwrapped.
            raise RecUnavailable(f"{self.url} connection lost: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def recommend(self, user_id: str, k: int | None = None, **options: Any) -> dict:
        """Recommendations for ``user_id``; options as in ``POST /recommendations``."""
        return self._call("POST", "/recommendations", request_doc(user_id, k, options))

    def similar(self, item_id: str, k: int = 10) -> dict:
        return self._call("GET", f"/items/{urllib.parse.quote(str(item_id), safe='')}/similar?k={int(k)}")

    def user(self, user_id: str) -> dict:
        return self._call("GET", f"/users/{urllib.parse.quote(str(user_id), safe='')}")


class AsyncRecClient:
    """Asynchronous HTTP client on one aiohttp session (use ``async with``)."""

    def __init__(self, url: str = "http://127.0.0.1:8080", timeout: float = 5.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self._session = None

    async def __aenter__(self) -> "AsyncRecClient":
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        import asyncio

        import aiohttp

        if self._session is None:
            await self.__aenter__()
        try:
            async with self._session.request(method, self.url + path, json=body) as response:
                raw = await response.read()
                if response.status >= 400:
                    _raise_for(response.status, raw, response.headers)
                return json.loads(raw)
        except asyncio.TimeoutError as exc:
            raise RecTimeout(f"no answer from {self.url} within {self.timeout}s") from exc
        except aiohttp.ClientConnectionError as exc:
            raise RecUnavailable(f"{self.url} unreachable: {exc}") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            # A truncated or garbled answer (the server died mid-response).
            raise RecUnavailable(f"{self.url} connection lost: {type(exc).__name__}: {exc}") from exc

    async def recommend(self, user_id: str, k: int | None = None, **options: Any) -> dict:
        if not options:   # the GET form: cacheable and cheapest to parse
            query = urllib.parse.urlencode({"user_id": str(user_id), **({"k": k} if k is not None else {})})
            return await self._call("GET", f"/recommendations?{query}")
        return await self._call("POST", "/recommendations", request_doc(user_id, k, options))

    async def similar(self, item_id: str, k: int = 10) -> dict:
        return await self._call("GET", f"/items/{urllib.parse.quote(str(item_id), safe='')}/similar?k={int(k)}")

    async def user(self, user_id: str) -> dict:
        return await self._call("GET", f"/users/{urllib.parse.quote(str(user_id), safe='')}")

