"""The admin API of experiments: create, list and stop them (behind the admin bearer token).

Routes (registered by :func:`serving.admin_api.add_admin_routes`, so only when
``STREAMREC_ADMIN_TOKEN`` is set, and each refused with 401 without the token):

* ``POST /admin/experiments``: body ``{"name", "description"?, "arms": [{"name", "share",
  "diversity"?, "exploration"?, "cooccurrence_weight"?, "model_version"?}, ...]}``;
  201 with the experiment as listed. 400 names the field that is wrong (the spec's rules are
  :func:`streamrec.contracts.experiments.parse_spec`'s; a ``model_version`` serving does not
  keep or cannot load; a ``cooccurrence_weight`` above 0 while co-occurrence is off); 409 when
  an experiment of that name is live, when ``STREAMREC_SERVING_MAX_EXPERIMENTS`` are live, or
  when a live experiment already enrols every user (a new one would get nobody); 503 when the
  broker does not take the record.
* ``GET /admin/experiments``: every live experiment (in the order they claim users) and the
  stopped ones, each arm with its online figures; ``GET /admin/experiments/{name}``: one.
* ``POST /admin/experiments/{name}/stop``: stop it (its users get serving's defaults again);
  200 with the stopped experiment, also when it was stopped already; 404 for a name never seen.

Nothing is changed here directly: :class:`ExperimentWriter` writes the record (signed when
``STREAMREC_MODEL_SIGNING_KEY`` is set) with serving's producer and waits until this
instance's own follower has applied it (:class:`serving.experiments.ExperimentRegistry`), so
the answer reports what every instance will hold, in the same order.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from serving.experiments import APPLIED, ExperimentRegistry
from serving.model_holder import ModelHolder
from serving.replica_feeds import wait_until
from serving.request_model import RequestError, decode_object
from streamrec.contracts.experiments import NAME, SHARE_SLACK, Arm, Experiment, SpecError, parse_spec
from streamrec.contracts.topics import EXPERIMENTS
from streamrec.settings import Settings

# (topic, key, value, partition) -> a future of the broker's record metadata (serving's producer)
Enqueue = Callable[[str, bytes, bytes, int], Awaitable[Awaitable[Any]]]


class ExperimentWriter:
    """Writes experiment records with serving's producer and waits for this instance to apply them.

    ``enqueue`` is set once serving's producer runs (:class:`serving.request_agent.RequestAgent`);
    until then, and while stopping, writes answer 503.
    """

    def __init__(self, settings: Settings, registry: ExperimentRegistry, enqueue: Enqueue | None = None):
        self.settings, self.registry, self.enqueue = settings, registry, enqueue
        self.timeout_s = settings.serving_ingest_timeout_s

    async def write(self, record: Experiment) -> str:
        """Write ``record`` signed; the outcome this instance's follower gave it (``applied``, or why not)."""
        enqueue = self.enqueue
        if enqueue is None:
            raise RequestError(None, "serving's producer is not running (starting or stopping)", status=503)
        signed = record.signed(self.settings.model_signing_key)
        try:
            future = await enqueue(self.settings.topic(EXPERIMENTS), signed.name.encode(), signed.encode(), 0)
            meta = await asyncio.wait_for(future, self.timeout_s + 1.0)
        except Exception as exc:
            raise RequestError(None, f"the broker did not take the record: {type(exc).__name__}: {exc}"[:300],
                               status=503) from None
        registry = self.registry
        if not await wait_until(lambda: registry.position >= meta.offset, self.timeout_s):
            raise RequestError(None, f"written at offset {meta.offset}, not read back within {self.timeout_s:g}s "
                                     "(the experiments feed is behind)", status=503)
        return registry.verdicts.get(meta.offset, "unknown")


REGISTRY_KEY = web.AppKey("experiments", ExperimentRegistry)
WRITER_KEY = web.AppKey("experiment_writer", ExperimentWriter)
HOLDER_KEY = web.AppKey("experiment_models", ModelHolder)


def _known(request: web.Request) -> Experiment:
    name = request.match_info["name"]
    experiment = request.app[REGISTRY_KEY].experiments.get(name) if NAME.match(name) else None
    if experiment is None:
        raise RequestError("name", f"no experiment {name[:64]!r}", status=404)
    return experiment


async def list_experiments(request: web.Request) -> web.Response:
    return web.json_response(request.app[REGISTRY_KEY].listing())


async def get_experiment(request: web.Request) -> web.Response:
    return web.json_response(request.app[REGISTRY_KEY].view(_known(request)))


async def create_experiment(request: web.Request) -> web.Response:
    registry, settings = request.app[REGISTRY_KEY], request.app[WRITER_KEY].settings
    try:
        spec = parse_spec(decode_object(await request.read()), settings.serving_max_arms)
    except SpecError as exc:
        raise RequestError(exc.field, exc.message) from None
    _check_room(registry, spec)
    holder = request.app[HOLDER_KEY]
    arms = []
    try:
        for i, arm in enumerate(spec.arms):
            arms.append(await _pinned(holder, arm, f"arms[{i}]", settings))
        now = time.time()
        record = dataclasses.replace(spec, arms=tuple(arms), created_at=now, updated_at=now)
        outcome = await request.app[WRITER_KEY].write(record)
    finally:
        holder.keep_pinned(registry.needed_versions())   # what the follower did not take is released
    if outcome != APPLIED:
        raise RequestError("name", f"written but not applied ({outcome}); see serving's log", status=409)
    return web.json_response(registry.view(registry.experiments[spec.name]), status=201)


def _check_room(registry: ExperimentRegistry, spec: Experiment) -> None:
    """409 when the new experiment cannot take users: its name is live, no slot is left, or no user is left."""
    held = registry.experiments.get(spec.name)
    if held is not None and held.live:
        raise RequestError("name", f"experiment {spec.name!r} is live; stop it first", status=409)
    if len(registry.ordered) >= registry.settings.serving_max_experiments:
        raise RequestError("name", f"{len(registry.ordered)} experiments are live, the most "
                                   "STREAMREC_SERVING_MAX_EXPERIMENTS allows", status=409)
    full = [e.name for e in registry.ordered if e.enrolled_share >= 1.0 - SHARE_SLACK]
    if full:
        raise RequestError("arms", f"experiment {full[0]!r} enrols every user (its shares sum to 1): a new "
                                   "one would get none; stop it or give it smaller shares", status=409)


async def _pinned(holder: ModelHolder, arm: Arm, field: str, settings: Settings) -> Arm:
    """``arm`` with its pinned version's announcement, once that version is loaded; 400 when it cannot be."""
    if arm.cooccurrence_weight and settings.cooccurrence_weight <= 0:
        raise RequestError(f"{field}.cooccurrence_weight", "co-occurrence is off on this serving "
                                                           "(STREAMREC_COOCCURRENCE_WEIGHT=0): only 0 is possible")
    if arm.model_version is None:
        return arm
    announcement = holder.announcements.get(arm.model_version)
    if announcement is None:
        raise RequestError(f"{field}.model_version", f"version {arm.model_version} is not among the versions serving "
                                                     f"keeps ({sorted(holder.announcements)})")
    try:
        await holder.pin(announcement)
    except Exception as exc:
        raise RequestError(f"{field}.model_version", f"version {arm.model_version} cannot be loaded: {exc}") from None
    return dataclasses.replace(arm, model=announcement)


async def stop_experiment(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    experiment = _known(request)
    if experiment.live:
        outcome = await request.app[WRITER_KEY].write(
            experiment.stopped(max(time.time(), experiment.updated_at + 1e-3)))
        if outcome != APPLIED:
            raise RequestError("name", f"written but not applied ({outcome}); see serving's log", status=409)
    return web.json_response(registry.view(registry.experiments[experiment.name]))


def add_experiment_routes(app: web.Application, registry: ExperimentRegistry, writer: ExperimentWriter,
                          holder: ModelHolder, guarded: Callable) -> None:
    """Register the experiment routes, each wrapped by ``guarded`` (the bearer-token check)."""
    app[REGISTRY_KEY], app[WRITER_KEY], app[HOLDER_KEY] = registry, writer, holder
    app.router.add_get("/admin/experiments", guarded(list_experiments))
    app.router.add_post("/admin/experiments", guarded(create_experiment))
    app.router.add_get("/admin/experiments/{name}", guarded(get_experiment))
    app.router.add_post("/admin/experiments/{name}/stop", guarded(stop_experiment))


def experiment_paths() -> dict:
    """The OpenAPI paths of the experiment routes."""
    error = {"description": "invalid or refused (the field is named)",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    number = {"type": "number", "minimum": 0, "maximum": 1}
    arm = {"type": "object", "required": ["name", "share"], "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"},
        "share": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1,
                  "description": "share of all users; the arms' shares sum to at most 1"},
        "diversity": number, "exploration": number,
        "cooccurrence_weight": {"type": "number", "minimum": 0, "maximum": 100},
        "model_version": {"type": "integer", "minimum": 1,
                          "description": "answer from this version (one serving keeps) instead of the newest"}}}
    spec = {"type": "object", "required": ["name", "arms"], "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}, "description": {"type": "string"},
        "arms": {"type": "array", "minItems": 2, "items": arm}}}
    experiment = {"type": "object", "description": "spec, status (live, stopped), times, each arm's figures",
                  "properties": {"name": {"type": "string"}, "status": {"type": "string", "enum": ["live", "stopped"]},
                                 "arms": {"type": "array", "items": {"type": "object"}}}}
    ok = {"content": {"application/json": {"schema": experiment}}}
    name = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    secured = [{"adminToken": []}]
    unauthorized = {"description": "no or wrong bearer token"}
    return {
        "/admin/experiments": {
            "get": {"summary": "Live and stopped experiments with each arm's online figures", "security": secured,
                    "responses": {"200": {"description": "experiments"}, "401": unauthorized}},
            "post": {"summary": "Create an experiment", "security": secured,
                     "requestBody": {"content": {"application/json": {"schema": spec}}},
                     "responses": {"201": {"description": "created", **ok}, "400": error, "401": unauthorized,
                                   "409": error, "503": {"description": "the broker did not take it"}}}},
        "/admin/experiments/{name}": {"get": {
            "summary": "One experiment", "security": secured, "parameters": name,
            "responses": {"200": {"description": "the experiment", **ok}, "401": unauthorized,
                          "404": {"description": "no such experiment"}}}},
        "/admin/experiments/{name}/stop": {"post": {
            "summary": "Stop an experiment (its users get the defaults again)", "security": secured,
            "parameters": name, "responses": {"200": {"description": "stopped", **ok}, "401": unauthorized,
                                              "404": {"description": "no such experiment"}}}},
    }
