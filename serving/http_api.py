"""The serving HTTP API (aiohttp): recommendations, similar items, user state, health.

Routes (the OpenAPI document at ``/openapi.json`` describes each):

* ``GET /recommendations?user_id=U&k=10`` and ``POST /recommendations`` (JSON body with the
  options: ``exclude_items``, ``require_items``, ``exclude_tags``, ``require_tags``,
  ``filters`` (on item attributes), ``diversity``, ``exploration``, ``seed``, ``include_seen``);
* ``GET /items/{item_id}/similar?k=10`` and ``GET /items/{item_id}``;
* ``GET /users/{user_id}``;
* ``POST /events``: one event or an array, written to ``events`` (:mod:`serving.events_api`);
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (:mod:`streamrec.observability.health`);
* ``/admin/*`` behind a bearer token when ``STREAMREC_ADMIN_TOKEN`` is set (:mod:`serving.admin_api`:
  model versions; :mod:`serving.experiments_api`: experiments).

Robustness: every client error is a 4xx JSON ``{"error", "field"}`` naming the field (bodies
are decoded by :func:`serving.request_model.decode_object`, which refuses deep nesting before
the json decoder recurses); a body over ``serving_max_body_bytes`` is a 413; anything
unexpected is a 500 JSON and a log line, never a crash. Admission control
(:mod:`serving.admission`) covers every route that computes an answer (``GET`` and ``POST
/recommendations``, similar items, item, user, ``POST /events``): a request whose expected wait is over
``serving_queue_target_s``, or that finds ``serving_max_in_flight`` ahead of it, is shed at
once with 503 and ``Retry-After``; one that waited past ``serving_queue_timeout_s`` anyway is
shed when its turn comes instead of worked on. Health, metrics and admin routes skip it.
"""
from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable, Sequence

from aiohttp import web

from serving import metrics
from serving.admin_api import add_admin_routes, admin_paths
from serving.admission import RELEASE_TURN, WAIT_OUTSIDE_TURN, Admission, Shed
from serving.event_ingest import EventIngest
from serving.experiments_api import ExperimentWriter
from serving.events_api import ROUTE as EVENTS_ROUTE, add_event_routes, event_schema, events_path
from serving.recommender_service import RecommenderService
from serving.request_model import (FIELDS, MAX_LIST, RecRequest, RequestError, after_positions, decode_object,
                                   filters_schema, parse_request)
from streamrec.observability.health import add_health_routes
from streamrec.settings import Settings

log = logging.getLogger(__name__)

SERVICE_KEY = web.AppKey("service", RecommenderService)
_ROUTE_NAMES = {"recommendations", "similar", "item", "user", EVENTS_ROUTE}


def _error(status: int, message: str, field: str | None = None, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status, headers=headers)


def _route_name(request: web.Request) -> str:
    name = request.match_info.route.name if request.match_info.route else None
    return name if name in _ROUTE_NAMES else "other"


def make_middlewares(settings: Settings):
    admission = Admission(settings.serving_max_in_flight, settings.serving_queue_target_s,
                          settings.serving_queue_timeout_s)

    @web.middleware
    async def admission_and_errors(request: web.Request, handler: Callable[[web.Request], Awaitable]):
        route = _route_name(request)
        if route == "other":
            return (await _answer(request, handler, settings))[1]
        started = time.perf_counter()
        if route == EVENTS_ROUTE:   # a body of events may be as large as one events message
            request = request.clone(client_max_size=settings.max_message_bytes)
        try:
            # The body is read before the request queues: a slow sender must not hold the turn.
            if request.can_read_body:
                await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _counted(route, started, "client_error", _too_large(request.client_max_size))
        arrived = admission.clock()
        reason, waited = await admission.admit(arrived)
        metrics.IN_FLIGHT.set(admission.queued)
        metrics.TIME_PER_ANSWER.set(admission.per_answer_s)
        if reason is not None:
            metrics.SHED.labels(reason).inc()
            metrics.REQUESTS.labels("http", route, "shed").inc()
            return _error(503, "overloaded, retry later", None, {"Retry-After": "1"})
        metrics.QUEUE_WAIT.observe(waited)
        released = False

        def release_turn() -> None:   # once: by a handler that goes on to wait for I/O, else here
            nonlocal released
            if not released:
                released = True
                admission.done()
                metrics.IN_FLIGHT.set(admission.queued)

        async def wait_outside_turn(awaitable: Awaitable):
            nonlocal released
            release_turn()
            result = await awaitable
            reason, _ = await admission.admit(admission.clock())
            if reason is not None:
                raise Shed(reason)
            released = False
            return result

        request[RELEASE_TURN] = release_turn
        request[WAIT_OUTSIDE_TURN] = wait_outside_turn
        try:
            outcome, response = await _answer(request, handler, settings)
        except Shed as exc:
            metrics.SHED.labels(str(exc)).inc()
            metrics.REQUESTS.labels("http", route, "shed").inc()
            return _error(503, "overloaded, retry later", None, {"Retry-After": "1"})
        finally:
            release_turn()
        return _counted(route, started, outcome, response)

    return [admission_and_errors]


def _counted(route: str, started: float, outcome: str, response: web.StreamResponse) -> web.StreamResponse:
    metrics.REQUEST_LATENCY.labels("http", route).observe(time.perf_counter() - started)
    metrics.REQUESTS.labels("http", route, outcome).inc()
    return response


def _too_large(limit: int) -> web.Response:
    return _error(413, f"request body larger than {limit} bytes", "body")


async def _answer(request: web.Request, handler, settings: Settings) -> tuple[str, web.StreamResponse]:
    """Run ``handler``: (outcome, response), every exception turned into a JSON error response."""
    try:
        response = await handler(request)
        # A handler may answer an error itself (POST /events: 400 with every element's problem).
        return ("ok" if response.status < 400 else "client_error" if response.status < 500 else "error"), response
    except RequestError as exc:
        return "client_error", _error(exc.status, exc.message, exc.field)
    except web.HTTPRequestEntityTooLarge:
        return "client_error", _too_large(request.client_max_size)
    except web.HTTPException as exc:
        return ("client_error" if exc.status < 500 else "error"), _error(exc.status, exc.reason, None)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return "error", _error(500, "internal error", None)


async def _read_json(request: web.Request) -> dict:
    # The middleware has read the body already (read() keeps it; can_read_body is False now).
    raw = await request.read()   # honours client_max_size: larger raises 413
    if not raw.strip():
        return {}
    return decode_object(raw)


def _k(request: web.Request, settings: Settings) -> int:
    req = parse_request({"user_id": "_", "k": request.query.get("k")}, settings)
    return req.k


async def recommendations_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return await _recommend(request, parse_request(dict(request.query), service.settings))


async def recommendations_post(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    doc = {**dict(request.query), **await _read_json(request)}
    return await _recommend(request, parse_request(doc, service.settings))


async def _recommend(request: web.Request, req: RecRequest) -> web.Response:
    """Answer ``req``; asked ``after`` a write, once serving applied it (or said ``stale``)."""
    service = request.app[SERVICE_KEY]
    if req.after is None:
        return web.json_response(service.recommend(req))
    waited = await _applied(request, req.after)
    return web.json_response({**service.recommend(req), "stale": not waited})


async def _applied(request: web.Request, after: tuple[tuple[int, int], ...]) -> bool:
    """Wait (outside the admission turn, bounded) until the replica applied ``after``; whether it had."""
    service = request.app[SERVICE_KEY]
    applied = service.replica.applied
    return applied.covers(dict(after)) or await request[WAIT_OUTSIDE_TURN](
        applied.wait(dict(after), service.settings.serving_read_your_writes_wait_s))


async def similar_items(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    unknown = sorted(set(request.query) - {"k"})
    if unknown:
        raise RequestError(unknown[0][:64], "unknown query parameter (known: k)")
    return web.json_response(service.similar(request.match_info["item_id"], _k(request, service.settings)))


async def item(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE_KEY].item(request.match_info["item_id"]))


async def user(request: web.Request) -> web.Response:
    """The user's state; asked ``after`` a write (a deletion's token too), once serving applied it."""
    service = request.app[SERVICE_KEY]
    unknown = sorted(set(request.query) - {"after"})
    if unknown:
        raise RequestError(unknown[0][:64], "unknown query parameter (known: after)")
    if "after" not in request.query:
        return web.json_response(service.user(request.match_info["user_id"]))
    waited = await _applied(request, after_positions(request.query["after"], service.settings.partitions))
    return web.json_response({**service.user(request.match_info["user_id"]), "stale": not waited})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[SERVICE_KEY].settings))


def build_app(service: RecommenderService, ready: Callable[[], list[str]],
              notes: Callable[[], list[str]] | None = None, ingest: EventIngest | None = None,
              experiment_writer: ExperimentWriter | None = None, inner_middlewares: Sequence = ()) -> web.Application:
    """The HTTP application; ``ingest`` writes ``POST /events`` and ``experiment_writer`` the
    experiment records of the admin API (None: those routes answer 503); ``inner_middlewares``
    run inside admission control (sharded serving's forwarding)."""
    settings = service.settings
    app = web.Application(middlewares=[*make_middlewares(settings), *inner_middlewares],
                          client_max_size=settings.serving_max_body_bytes)
    app[SERVICE_KEY] = service
    app.router.add_get("/recommendations", recommendations_get, name="recommendations")
    # Same name as the GET: aiohttp then puts both on one resource, and the middleware counts,
    # times and sheds POST under "recommendations" instead of "other".
    app.router.add_post("/recommendations", recommendations_post, name="recommendations")
    app.router.add_get("/items/{item_id}/similar", similar_items, name="similar")
    app.router.add_get("/items/{item_id}", item, name="item")
    app.router.add_get("/users/{user_id}", user, name="user")
    add_event_routes(app, ingest or EventIngest(settings))
    app.router.add_get("/openapi.json", openapi)
    add_health_routes(app, ready, notes=notes)
    # Nothing when no token is set.
    add_admin_routes(app, service.holder, settings.serving_admin_token, service.experiments, experiment_writer)
    return app


def _recommendations_schema() -> dict:
    """Schema of a recommendations answer: the request's echo and the ranked items."""
    item_schema = {"type": "object", "required": ["item_id", "score", "reason"], "properties": {
        "item_id": {"type": "string"}, "score": {"type": "number"},
        "reason": {"type": "string", "description": "history item id supporting it, or trending/new/explore"},
        "reason_kind": {"type": "string", "enum": ["history", "trending", "new", "explore", "similar"]},
        "title": {"type": "string"}, "reason_title": {"type": "string"}}}
    return {"type": "object", "required": ["request_id", "user_id", "items", "model_version", "state_time",
                                           "experiment", "arm"],
            "properties": {"request_id": {"type": "string"}, "user_id": {"type": "string"},
                           "items": {"type": "array", "items": item_schema},
                           "model_version": {"type": "integer"},
                           "state_time": {"type": "number", "nullable": True,
                                          "description": "event time of the newest event applied for the user"},
                           "served_at": {"type": "number"},
                           "stale": {"type": "boolean", "description": "only when asked after= a write: true "
                                     "when serving had not applied it within the wait"},
                           "experiment": {"type": "string", "nullable": True,
                                          "description": "the live experiment the user is in (null: none)"},
                           "arm": {"type": "string", "nullable": True,
                                   "description": "the experiment arm that answered (null: none)"}}}


def _request_options(settings: Settings) -> dict:
    """Schema of each recommendation request option: the fields the decoder reads, no more, no fewer."""
    def ids(what: str) -> dict:
        return {"oneOf": [{"type": "array", "maxItems": MAX_LIST, "items": {"type": "string"}}, {"type": "string"}],
                "description": f"{what} (a list, or one comma-separated string)"}

    options = {"user_id": {"type": "string"}, "k": {"type": "integer", "minimum": 1, "maximum": settings.serving_max_k},
               "request_id": {"type": "string"},
               "exclude_items": ids("item ids never in the answer"),
               "require_items": ids("the only item ids the answer may hold: re-ranks this set for the user "
                                    "(each is scored, however far from the user's nearest items)"),
               "exclude_tags": ids("no item carrying any of these tags"),
               "require_tags": ids("only items carrying at least one of these tags"),
               "filters": filters_schema(),
               "diversity": {"type": "number", "minimum": 0, "maximum": 1},
               "exploration": {"type": "number", "minimum": 0, "maximum": 1},
               "seed": {"type": "integer", "minimum": 0},
               "include_seen": {"type": "boolean", "description": "recommend items the user already had (default: "
                                "STREAMREC_REPEAT_CONSUMPTION, false unless allow); items the user rejected with a "
                                "negative event never are"},
               "after": {"type": "string", "pattern": "^(p[0-9]+:[0-9]+(,p[0-9]+:[0-9]+)*)?$",
                         "description": "consistency token of a write (POST /events answers one): answer "
                                        "once serving applied it, or say stale"}}
    assert set(options) == set(FIELDS)
    return options


def _query_parameter(name: str, schema: dict) -> dict:
    """``name`` as a query parameter: lists as comma-separated text, ``filters`` as JSON text."""
    parameter = {"name": name, "in": "query", "required": name == "user_id"}
    if name == "filters":
        return {**parameter, "content": {"application/json": {"schema": schema}}}
    if "oneOf" in schema:
        return {**parameter, "schema": {"type": "string"}, "description": schema["description"]}
    return {**parameter, "schema": schema}


def _recommendations_path(options: dict) -> dict:
    """``/recommendations``: the options as query parameters (GET) or a JSON body (POST)."""
    error = {"$ref": "#/components/schemas/Error"}
    responses = {"200": {"description": "recommendations",
                         "content": {"application/json": {"schema": _recommendations_schema()}}},
                 "400": {"description": "invalid input (the field is named)",
                         "content": {"application/json": {"schema": error}}},
                 "413": {"description": "body too large"},
                 "503": {"description": "overloaded, or (sharded serving) the instance that keeps the user is not "
                                        "answering (Retry-After)"},
                 "508": {"description": "sharded serving: a forwarded request reached an instance that does not "
                                        "keep the user either (the instances' settings disagree)"}}
    query = [_query_parameter(n, schema) for n, schema in options.items()]
    return {"get": {"summary": "Top-k recommendations for a user", "parameters": query, "responses": responses},
            "post": {"summary": "Top-k recommendations with options in a JSON body",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["user_id"], "properties": options}}}},
                     "responses": responses}}


def _item_path() -> dict:
    """``/items/{item_id}``: the catalogue entry, whether it may be served and why not."""
    status = {"type": "string", "enum": ["catalogue", "events_only", "retired", "unavailable", "expired"],
              "description": "catalogue: servable; events_only: named only by events (no title); retired: "
                             "a tombstone; unavailable / expired: the item's available / expires_at"}
    body = {"type": "object", "required": ["item_id", "status", "servable", "in_index", "model_version"],
            "properties": {"item_id": {"type": "string"}, "title": {"type": "string"}, "text": {"type": "string"},
                           "tags": {"type": "array", "items": {"type": "string"}}, "timestamp": {"type": "number"},
                           "available": {"type": "boolean"}, "expires_at": {"type": "number"},
                           "attributes": {"type": "object", "additionalProperties": {"oneOf": [
                               {"type": "string"}, {"type": "number"}, {"type": "boolean"}]}}, "status": status,
                           "servable": {"type": "boolean"}, "in_index": {"type": "boolean"},
                           "model_version": {"type": "integer"}, "interactions": {"type": "integer"}}}
    return {"get": {"summary": "Catalogue entry, servability and index membership",
                    "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "item", "content": {"application/json": {"schema": body}}},
                                  "404": {"description": "named by no item message and no event"}}}}


def _user_path(after: dict) -> dict:
    """``/users/{user_id}``: the state an answer is built from, optionally once a write is applied."""
    return {"get": {"summary": "The state answers for this user are built from",
                    "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}},
                                   {"name": "after", "in": "query", "required": False, "schema": after}],
                    "responses": {"200": {"description": "recent items, last event time, counts, vector norm, "
                                                         "rejected items (and stale, when asked after= a write)"},
                                  "400": {"description": "a bad after token or an unknown parameter"},
                                  "404": {"description": "no state for this user (never had one, or deleted)"}}}}


def openapi_document(settings: Settings) -> dict:
    """The OpenAPI 3 description of this API (served at ``/openapi.json``)."""
    options = _request_options(settings)
    return {
        "openapi": "3.0.3",
        "info": {"title": "streamrec serving", "version": "2",
                 "description": "Recommendations from the freshest user state and the newest model."},
        "paths": {
            "/recommendations": _recommendations_path(options),
            "/items/{item_id}/similar": {"get": {
                "summary": "Items nearest to an item's vector",
                "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "k", "in": "query", "schema": options["k"]}],
                "responses": {"200": {"description": "similar items"},
                              "404": {"description": "item not in the index, or retired, unavailable or expired"}}}},
            "/items/{item_id}": _item_path(),
            "/users/{user_id}": _user_path(options["after"]),
            "/events": events_path(settings),
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "running"}}}},
            "/readyz": {"get": {"summary": "Ready once state and model are loaded",
                                "responses": {"200": {"description": "ready"}, "503": {"description": "not yet"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
            **admin_paths(),
        },
        "components": {"schemas": {"Error": {"type": "object", "properties": {
            "error": {"type": "string"}, "field": {"type": "string", "nullable": True}}},
            "Event": event_schema(settings)},
            "securitySchemes": {"adminToken": {
                "type": "http", "scheme": "bearer",
                "description": "STREAMREC_ADMIN_TOKEN; the /admin routes exist only when it is set"}}},
    }
