"""``POST /events``: send events over HTTP, answered once the broker has them.

The body is one event or a JSON array of them (the event contract, docs/contracts.md), at
most ``STREAMREC_MAX_MESSAGE_BYTES`` (what one ``events`` message may hold; larger: 413).
Answers:

* **202** ``{"accepted": n, "token": "p0:17,p3:9"}`` once the broker acknowledged every event;
  ``token`` is the consistency token (:mod:`streamrec.contracts.consistency`): per partition
  written, the highest offset acknowledged;
* **400** when any element is invalid, **nothing written** (all or nothing):
  ``{"error", "field", "index", "reason", "rejected", "valid", "errors": [{"index", "field",
  "reason", "detail"}, ...]}`` naming the first problem (``index`` null for a single event or
  a body that is not events at all, ``field`` ``"body"`` then) and listing the first 100;
* **503** with ``Retry-After`` when the broker is unreachable or did not acknowledge within
  ``STREAMREC_SERVING_INGEST_TIMEOUT_S``: ``{"error", "field": null, "acknowledged", "token"}``
  says how many events were acknowledged (in whole messages) before it gave up. What was not
  acknowledged may still have reached the log: resend with the same ``event_id``\\ s (every
  consumer applies an id once) to be safe.

The route is counted, timed and shed by admission control like the other computing routes
(:mod:`serving.http_api`); it gives its admission turn back once the body is validated and
packed, so waiting for the broker never holds up recommendations.

Examples
--------
With serving at ``url`` (a running system; not run as a doctest):

>>> import json, urllib.request                                                   # doctest: +SKIP
>>> body = json.dumps({"user_id": "196", "item_id": "242", "event_type": "click", "timestamp": 1.7e9})  # doctest: +SKIP
>>> json.load(urllib.request.urlopen(urllib.request.Request(url + "/events", body.encode(),  # doctest: +SKIP
...                                                         method="POST")))
{'accepted': 1, 'token': 'p2:1041'}
"""
from __future__ import annotations

from aiohttp import web

from serving import metrics
from serving.admission import RELEASE_TURN
from serving.event_ingest import EventIngest, EventsRejected

INGEST_KEY = web.AppKey("event_ingest", EventIngest)
ROUTE = "events"


def _unavailable(why: str, acknowledged: int = 0, token: str = "") -> web.Response:
    return web.json_response({"error": why, "field": None, "acknowledged": acknowledged, "token": token},
                             status=503, headers={"Retry-After": "1"})


async def post_events(request: web.Request) -> web.Response:
    ingest = request.app[INGEST_KEY]
    raw = await request.read()   # read (and bounded) by the middleware already
    try:
        messages = ingest.prepare(raw)
    except EventsRejected as exc:
        metrics.EVENTS_RECEIVED.labels("rejected").inc(len(exc.rejections) + exc.events)
        return web.json_response(exc.body(), status=400)
    release = request.get(RELEASE_TURN)
    if release is not None:
        release()   # the work on the loop is done; the broker's answer is I/O
    why = ingest.unavailable()
    if why is not None:
        return _unavailable(why)
    written = await ingest.write(messages)
    if not written.complete:
        metrics.EVENTS_RECEIVED.labels("unacknowledged").inc(written.events - written.acknowledged)
        metrics.EVENTS_RECEIVED.labels("accepted").inc(written.acknowledged)
        return _unavailable(written.error or "not every event was acknowledged", written.acknowledged, written.token)
    metrics.EVENTS_RECEIVED.labels("accepted").inc(written.events)
    return web.json_response({"accepted": written.events, "token": written.token}, status=202)


def add_event_routes(app: web.Application, ingest: EventIngest) -> None:
    """Register ``POST /events`` (route name :data:`ROUTE`: counted, timed and shed as such)."""
    app[INGEST_KEY] = ingest
    app.router.add_post("/events", post_events, name=ROUTE)


def event_schema(settings) -> dict:
    """OpenAPI schema of one event (the contract; the validation is streamrec.contracts.events)."""
    ident = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": settings.max_id_length},
                       {"type": "integer"}]}
    return {"type": "object", "required": ["user_id", "item_id", "event_type", "timestamp"], "properties": {
        "user_id": ident, "item_id": ident, "event_type": {"type": "string", "enum": list(settings.semantics.types)},
        "timestamp": {"type": "number", "description": "event time, seconds since the epoch"},
        "value": {"type": "number", "nullable": True, "description": "rating value, price, dwell time"},
        "event_id": {**ident, "description": "idempotency key; generated when absent"}}}


def events_path(settings) -> dict:
    """The OpenAPI path item of ``/events``."""
    body = {"oneOf": [{"$ref": "#/components/schemas/Event"},
                      {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Event"}}]}
    accepted = {"type": "object", "required": ["accepted", "token"], "properties": {
        "accepted": {"type": "integer"},
        "token": {"type": "string", "description": "consistency token: p<partition>:<highest offset acknowledged>, "
                                                   "comma-separated, sorted by partition"}}}
    problem = {"type": "object", "properties": {
        "index": {"type": "integer", "nullable": True}, "field": {"type": "string"},
        "reason": {"type": "string"}, "detail": {"type": "string"}}}
    rejected = {"type": "object", "properties": {
        "error": {"type": "string"}, "field": {"type": "string"}, "index": {"type": "integer", "nullable": True},
        "reason": {"type": "string"}, "rejected": {"type": "integer"}, "valid": {"type": "integer"},
        "errors": {"type": "array", "items": problem}}}
    unavailable = {"type": "object", "properties": {
        "error": {"type": "string"}, "field": {"type": "string", "nullable": True},
        "acknowledged": {"type": "integer"}, "token": {"type": "string"}}}
    json_of = lambda schema: {"application/json": {"schema": schema}}   # noqa: E731
    return {"post": {
        "summary": "Send one event or an array of events; answered once the broker acknowledged them",
        "requestBody": {"required": True, "content": json_of(body)},
        "responses": {
            "202": {"description": "every event acknowledged by the broker", "content": json_of(accepted)},
            "400": {"description": "an invalid element: nothing written (all or nothing)",
                    "content": json_of(rejected)},
            "413": {"description": f"body larger than STREAMREC_MAX_MESSAGE_BYTES ({settings.max_message_bytes})"},
            "503": {"description": "overloaded, or the broker unreachable or too slow (Retry-After)",
                    "content": json_of(unavailable)}}}}
