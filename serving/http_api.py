"""The serving HTTP API (aiohttp): recommendations, similar items, user state, health.

Routes (the OpenAPI document at ``/openapi.json`` describes each):

* ``GET /recommendations?user_id=U&k=10`` and ``POST /recommendations`` (JSON body with the
  options: ``exclude_items``, ``require_items``, ``exclude_tags``, ``require_tags``,
  ``diversity``, ``exploration``, ``seed``, ``include_seen``);
* ``GET /items/{item_id}/similar?k=10`` and ``GET /items/{item_id}``;
* ``GET /users/{user_id}``;
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (:mod:`streamrec.observability`);
* ``/admin/*`` behind a bearer token when ``STREAMREC_ADMIN_TOKEN`` is set (:mod:`serving.admin_api`).

Robustness: every client error is a 4xx JSON ``{"error", "field"}`` naming the field; a body
over ``serving_max_body_bytes`` is a 413; anything unexpected is a 500 JSON and a log line,
never a crash. Admission control: at most ``serving_max_in_flight`` requests are handled at
once, the excess is shed at once with 503 and ``Retry-After`` instead of queueing into
timeouts (the handlers are synchronous CPU work, so a queue would only add latency).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Awaitable, Callable

from aiohttp import web

from serving import metrics
from serving.admin_api import add_admin_routes
from serving.recommender_service import RecommenderService
from serving.request_model import FIELDS, RequestError, parse_request
from streamrec.observability import add_health_routes
from streamrec.settings import Settings

log = logging.getLogger(__name__)

SERVICE_KEY = web.AppKey("service", RecommenderService)
_ROUTE_NAMES = {"recommendations", "similar", "item", "user"}


def _error(status: int, message: str, field: str | None = None, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status, headers=headers)


def _route_name(request: web.Request) -> str:
    name = request.match_info.route.name if request.match_info.route else None
    return name if name in _ROUTE_NAMES else "other"


def make_middlewares(settings: Settings):
    in_flight = 0

    @web.middleware
    async def admission_and_errors(request: web.Request, handler: Callable[[web.Request], Awaitable]):
        nonlocal in_flight
        route = _route_name(request)
        if route != "other" and in_flight >= settings.serving_max_in_flight:
            metrics.REQUESTS.labels("http", route, "shed").inc()
            return _error(503, "overloaded, retry later", None, {"Retry-After": "1"})
        in_flight += 1
        metrics.IN_FLIGHT.set(in_flight)
        started = time.perf_counter()
        outcome = "ok"
        try:
            # The handlers are synchronous: without this yield a request would run to the end
            # before the next one is even counted, in_flight would never pass 1 and nothing
            # would ever be shed. Yielding once lets every request already read off its socket
            # be counted first, so in_flight is the real queue and the excess gets the 503.
            await asyncio.sleep(0)
            response = await handler(request)
        except RequestError as exc:
            outcome = "client_error"
            response = _error(exc.status, exc.message, exc.field)
        except web.HTTPRequestEntityTooLarge:
            outcome = "client_error"
            response = _error(413, f"request body larger than {settings.serving_max_body_bytes} bytes", "body")
        except web.HTTPException as exc:
            outcome = "client_error" if exc.status < 500 else "error"
            response = _error(exc.status, exc.reason, None)
        except Exception:
            outcome = "error"
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = _error(500, "internal error", None)
        finally:
            in_flight -= 1
            metrics.IN_FLIGHT.set(in_flight)
        if route != "other":
            metrics.REQUEST_LATENCY.labels("http", route).observe(time.perf_counter() - started)
            metrics.REQUESTS.labels("http", route, outcome).inc()
        return response

    return [admission_and_errors]


async def _read_json(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    raw = await request.read()   # honours client_max_size: larger raises 413
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("body", f"not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict):
        raise RequestError("body", "must be a JSON object")
    return doc


def _k(request: web.Request, settings: Settings) -> int:
    req = parse_request({"user_id": "_", "k": request.query.get("k")}, settings)
    return req.k


async def recommendations_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    req = parse_request(dict(request.query), service.settings)
    return web.json_response(service.recommend(req))


async def recommendations_post(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    doc = {**dict(request.query), **await _read_json(request)}
    req = parse_request(doc, service.settings)
    return web.json_response(service.recommend(req))


async def similar_items(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    unknown = sorted(set(request.query) - {"k"})
    if unknown:
        raise RequestError(unknown[0][:64], "unknown query parameter (known: k)")
    return web.json_response(service.similar(request.match_info["item_id"], _k(request, service.settings)))


async def item(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    item_id = request.match_info["item_id"]
    known = service.replica.catalogue.get(item_id)
    bundle = service.holder.current
    if known is None and item_id not in bundle.index:
        raise RequestError("item_id", f"unknown item {item_id[:64]!r}", status=404)
    body = known.to_dict() if known is not None else {"item_id": item_id}
    body.pop("embedding", None)
    body.update({"in_index": item_id in bundle.index, "model_version": bundle.version,
                 "interactions": service.replica.trending.count(item_id)})
    return web.json_response(body)


async def user(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return web.json_response(service.user(request.match_info["user_id"]))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[SERVICE_KEY].settings))


def build_app(service: RecommenderService, ready: Callable[[], list[str]],
              notes: Callable[[], list[str]] | None = None) -> web.Application:
    settings = service.settings
    app = web.Application(middlewares=make_middlewares(settings), client_max_size=settings.serving_max_body_bytes)
    app[SERVICE_KEY] = service
    app.router.add_get("/recommendations", recommendations_get, name="recommendations")
    app.router.add_post("/recommendations", recommendations_post)
    app.router.add_get("/items/{item_id}/similar", similar_items, name="similar")
    app.router.add_get("/items/{item_id}", item, name="item")
    app.router.add_get("/users/{user_id}", user, name="user")
    app.router.add_get("/openapi.json", openapi)
    add_health_routes(app, ready, notes=notes)
    add_admin_routes(app, service.holder, settings.serving_admin_token)   # nothing when no token is set
    return app


def openapi_document(settings: Settings) -> dict:
    """The OpenAPI 3 description of this API (served at ``/openapi.json``)."""
    error = {"$ref": "#/components/schemas/Error"}
    item_schema = {"type": "object", "required": ["item_id", "score", "reason"], "properties": {
        "item_id": {"type": "string"}, "score": {"type": "number"},
        "reason": {"type": "string", "description": "history item id supporting it, or trending/new/explore"},
        "reason_kind": {"type": "string", "enum": ["history", "trending", "new", "explore", "similar"]},
        "title": {"type": "string"}, "reason_title": {"type": "string"}}}
    rec_response = {"type": "object", "required": ["request_id", "user_id", "items", "model_version", "state_time"],
                    "properties": {"request_id": {"type": "string"}, "user_id": {"type": "string"},
                                   "items": {"type": "array", "items": item_schema},
                                   "model_version": {"type": "integer"},
                                   "state_time": {"type": ["number", "null"],
                                                  "description": "event time of the newest event applied for the user"},
                                   "served_at": {"type": "number"}}}
    list_or_csv = {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}
    options = {"user_id": {"type": "string"}, "k": {"type": "integer", "minimum": 1, "maximum": settings.serving_max_k},
               "request_id": {"type": "string"}, "exclude_items": list_or_csv, "require_items": list_or_csv,
               "exclude_tags": list_or_csv, "require_tags": list_or_csv,
               "diversity": {"type": "number", "minimum": 0, "maximum": 1},
               "exploration": {"type": "number", "minimum": 0, "maximum": 1},
               "seed": {"type": "integer", "minimum": 0}, "include_seen": {"type": "boolean"}}
    assert set(options) == set(FIELDS)
    responses = {"200": {"description": "recommendations",
                         "content": {"application/json": {"schema": rec_response}}},
                 "400": {"description": "invalid input (the field is named)",
                         "content": {"application/json": {"schema": error}}},
                 "413": {"description": "body too large"}, "503": {"description": "overloaded (Retry-After)"}}
    query = [{"name": n, "in": "query", "required": n == "user_id",
              "schema": {"type": "string"} if "oneOf" in schema else schema} for n, schema in options.items()]
    return {
        "openapi": "3.0.3",
        "info": {"title": "streamrec serving", "version": "1",
                 "description": "Recommendations from the freshest user state and the newest model."},
        "paths": {
            "/recommendations": {
                "get": {"summary": "Top-k recommendations for a user", "parameters": query, "responses": responses},
                "post": {"summary": "Top-k recommendations with options in a JSON body",
                         "requestBody": {"content": {"application/json": {"schema": {
                             "type": "object", "required": ["user_id"], "properties": options}}}},
                         "responses": responses}},
            "/items/{item_id}/similar": {"get": {
                "summary": "Items nearest to an item's vector",
                "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "k", "in": "query", "schema": options["k"]}],
                "responses": {"200": {"description": "similar items"}, "404": {"description": "item not in the index"}}}},
            "/items/{item_id}": {"get": {"summary": "Catalogue entry and index membership",
                                         "parameters": [{"name": "item_id", "in": "path", "required": True,
                                                         "schema": {"type": "string"}}],
                                         "responses": {"200": {"description": "item"}, "404": {"description": "unknown"}}}},
            "/users/{user_id}": {"get": {"summary": "The state answers for this user are built from",
                                         "parameters": [{"name": "user_id", "in": "path", "required": True,
                                                         "schema": {"type": "string"}}],
                                         "responses": {"200": {"description": "recent items, last event time, "
                                                                              "counts, vector norm"},
                                                       "404": {"description": "no state for this user"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "running"}}}},
            "/readyz": {"get": {"summary": "Ready once state and model are loaded",
                                "responses": {"200": {"description": "ready"}, "503": {"description": "not yet"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
        "components": {"schemas": {"Error": {"type": "object", "properties": {
            "error": {"type": "string"}, "field": {"type": ["string", "null"]}}}}},
    }
