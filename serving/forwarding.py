"""Sharded serving: a request for a user another instance keeps is forwarded to that instance.

Only the owning instance holds a user's state (:mod:`serving.ownership`), so
``GET``/``POST /recommendations`` and ``GET /users/{user_id}`` for someone else's user are
sent on, as they came (method, path, query, body: a read-your-writes ``after=`` token
included, which the owner waits for), to the owner's URL in ``STREAMREC_SERVING_PEERS``, and its
answer (status, body, ``Retry-After``) is returned unchanged. Every other route is answered
where it arrives: items, the catalogue and the model are whole on every instance, and
``POST /events`` writes to the user's partition whichever instance takes it.

Why a routed forward rather than clients that hash the key themselves: any client (curl, a
load balancer, the existing :class:`~streamrec.client.RecClient`) keeps working unchanged
against any instance, and the partition count, the assignment and the peers' addresses stay
server configuration. The forward costs one loopback hop for the share of requests that land
on a non-owner (measured by ``streamrec bench serving --instances 2``); a client that wants
to save it can send a user's requests to the instance named in ``X-Streamrec-Instance``.

Protection:

* **loops**: a forwarded request carries ``X-Streamrec-Forwarded-By``; one that reaches an
  instance that does not own its user either is answered 508 naming both instances (their
  ``STREAMREC_SERVING_INSTANCE``, ``STREAMREC_SERVING_PEERS`` or ``STREAMREC_PARTITIONS``
  disagree) rather than sent on again;
* **an owner that is down or stuck**: no connection, or no answer within
  ``serving_forward_timeout_s``, is a 503 with ``Retry-After`` naming the owner and its URL,
  never a hang;
* **admission**: the forwarding instance gives its admission turn back before it waits
  (:data:`~serving.admission.RELEASE_TURN`): the owner's admission control decides, and a
  slow owner holds up no local request.

Examples
--------
>>> from serving.ownership import Ownership
>>> own = Ownership.parse("0/2", partitions=4, peers="http://a:1,http://b:2")
>>> decide(own, "u5", forwarded_by=None)           # partition 3: instance 1's
Forward(instance=1, url='http://b:2', partition=3)
>>> decide(own, "u2", forwarded_by=None)           # partition 2: ours
Local()
>>> decide(own, "u5", forwarded_by="1/2").status   # sent here by instance 1, which owns it
508
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from yarl import URL

from serving import metrics
from serving.admission import RELEASE_TURN
from serving.ownership import Ownership
from serving.request_model import RequestError, decode_object, parse_request
from streamrec.settings import Settings

log = logging.getLogger(__name__)

FORWARDED_BY = "X-Streamrec-Forwarded-By"   # on a forwarded request: the instance that sent it on
INSTANCE = "X-Streamrec-Instance"           # on an answer: the instance ("i/N") that computed it
USER_ROUTES = ("recommendations", "user")   # the routes that need the user's state
_PASSED_ON = ("Content-Type", "Retry-After", INSTANCE)


@dataclass(frozen=True)
class Local:
    """Answer here: not sharded, this instance owns the user, or no valid user is named."""


@dataclass(frozen=True)
class Forward:
    """Send the request on to ``instance`` at ``url``, which owns ``partition``."""

    instance: int
    url: str
    partition: int


@dataclass(frozen=True)
class Misrouted:
    """A forwarded request reached an instance that does not own its user either."""

    message: str
    status: int = 508


def decide(ownership: Ownership, user_id: str | None, forwarded_by: str | None) -> Local | Forward | Misrouted:
    """Where a request for ``user_id`` is answered (``forwarded_by``: the header, if any)."""
    if not ownership.sharded or user_id is None or ownership.owns(user_id):
        return Local()
    partition = ownership.partition_of(user_id)
    owner = ownership.owner_of_partition(partition)
    if forwarded_by is not None:
        return Misrouted(f"forwarded by serving instance {forwarded_by[:16]!r} to instance {ownership.label}, which "
                         f"does not keep partition {partition} (instance {owner} does): the instances disagree on "
                         "STREAMREC_SERVING_INSTANCE, STREAMREC_SERVING_PEERS or STREAMREC_PARTITIONS")
    return Forward(owner, ownership.peer_url(owner), partition)


async def user_of(request: web.Request, route: str, settings: Settings) -> str | None:
    """The user a request is for, read as its handler will read it; None when it names no valid one
    (the handler then answers the 4xx itself, here)."""
    if route == "user":
        return request.match_info["user_id"]
    doc = dict(request.query)
    if request.method == "POST":
        raw = await request.read()   # read (and kept) by the admission middleware already
        if raw.strip():
            try:
                body = decode_object(raw)
            except RequestError:
                return None
            doc.update(body)
    try:
        return parse_request(doc, settings).user_id
    except RequestError:
        return None


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message, "field": None}, status=status, headers=headers)


class OwnerDown(Exception):
    """The owning instance gave no answer: ``outcome`` (unreachable, timeout) and a message naming it."""

    def __init__(self, outcome: str, message: str):
        super().__init__(message)
        self.outcome = outcome


class Forwarder:
    """Sends requests on to the instance that owns their user; one HTTP session for all of them."""

    def __init__(self, settings: Settings, ownership: Ownership):
        self.settings = settings
        self.ownership = ownership
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:   # created on the serving loop, at the first forward
            connector = aiohttp.TCPConnector(limit=self.settings.serving_max_in_flight)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.serving_forward_timeout_s),
                auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, route: str, target: Forward, method: str, path_qs: str, body: bytes | None,
                   content_type: str | None) -> tuple[int, dict[str, str], bytes]:
        """The owner's answer (status, the headers passed on, body); :class:`OwnerDown` when none comes."""
        headers = {FORWARDED_BY: self.ownership.label}
        if body is not None and content_type:
            headers["Content-Type"] = content_type
        try:
            async with self._client().request(method, URL(target.url + path_qs, encoded=True), data=body,
                                              headers=headers, allow_redirects=False) as answer:
                content = await answer.read()
                passed = {k: answer.headers[k] for k in _PASSED_ON if k in answer.headers}
        except asyncio.TimeoutError:
            raise self._down(route, target, "timeout",
                             f"gave no answer within {self.settings.serving_forward_timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise self._down(route, target, "unreachable", f"is not answering ({type(exc).__name__})") from None
        metrics.FORWARDED.labels(route, "answered").inc()
        return answer.status, passed, content

    def _down(self, route: str, target: Forward, outcome: str, what: str) -> OwnerDown:
        metrics.FORWARDED.labels(route, outcome).inc()
        return OwnerDown(outcome, f"serving instance {target.instance} ({target.url}), which keeps the users of "
                                  f"partition {target.partition}, {what}; retry later")

    async def forward(self, request: web.Request, route: str, target: Forward) -> web.Response:
        """``request`` sent on as it came: the owner's answer, or a 503 naming the owner."""
        body = await request.read() if request.body_exists else None
        try:
            status, headers, content = await self.send(route, target, request.method, request.rel_url.raw_path_qs,
                                                       body, request.headers.get("Content-Type"))
        except OwnerDown as exc:
            return _error(503, str(exc), {"Retry-After": "1"})
        return web.Response(body=content, status=status, headers=headers)

    async def recommend(self, target: Forward, doc: dict) -> tuple[int, dict]:
        """``POST /recommendations`` with ``doc`` at the owner (the request topic's path): status, JSON body."""
        try:
            status, _, content = await self.send("topic", target, "POST", "/recommendations",
                                                 json.dumps(doc).encode(), "application/json")
        except OwnerDown as exc:
            return 503, {"error": str(exc), "field": None}
        try:
            return status, json.loads(content)
        except ValueError:
            return 502, {"error": f"serving instance {target.instance} answered {status} with no JSON body",
                         "field": None}

    def middleware(self):
        """The aiohttp middleware: answer here or forward (inside admission control, see module doc)."""
        ownership, settings = self.ownership, self.settings

        @web.middleware
        async def forward_to_owner(request: web.Request, handler):
            route = request.match_info.route.name if request.match_info.route else None
            if route not in USER_ROUTES or not ownership.sharded:
                return await handler(request)
            target = decide(ownership, await user_of(request, route, settings), request.headers.get(FORWARDED_BY))
            if isinstance(target, Forward):
                request[RELEASE_TURN]()   # waiting on the owner holds up no local request
                return await self.forward(request, route, target)
            if isinstance(target, Misrouted):
                metrics.FORWARDED.labels(route, "misrouted").inc()
                log.warning("%s", target.message)
                return _error(target.status, target.message)
            response = await handler(request)
            response.headers[INSTANCE] = ownership.label
            return response

        return forward_to_owner


__all__ = ["FORWARDED_BY", "INSTANCE", "Forward", "Forwarder", "Local", "Misrouted", "OwnerDown", "decide", "user_of"]
