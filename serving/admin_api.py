"""The serving admin API: model versions (list, promote or roll back, reload) and experiments, behind a token.

Routes, registered only when ``STREAMREC_ADMIN_TOKEN`` is set (unset: they do not exist, 404):

* ``GET /admin/models``: the version served and, under ``announced``, the last few versions
  that loaded and passed every check (a refused announcement is never listed, so it can be
  neither activated nor reloaded);
* ``POST /admin/models/{version}/activate``: serve that version (a rollback to an older one or
  a promotion back to a newer one); the file is read again with every check
  (:func:`streamrec.contracts.model_store.load_version`) and its sha256 compared with the
  announcement, so a file changed since is refused (409) and the current version stays;
* ``POST /admin/reload``: load the newest of those versions again (same checks);
* ``DELETE /admin/users/{user_id}``: forget a user everywhere. A deletion signed with
  ``STREAMREC_DELETION_SIGNING_KEY`` (:mod:`streamrec.contracts.deletion`) is written on the
  user's partition of ``events``, where every process meets it after the user's earlier
  events; the answer, once the broker acknowledged it, is 202 with its consistency token
  (``GET /users/{id}?after=<token>`` answers 404 once this process applied it). 501 when no
  signing key is set, 400 for an id no event could carry, 503 when the broker does not take it.
* ``/admin/experiments``: create, list and stop experiments (:mod:`serving.experiments_api`).

Every request needs ``Authorization: Bearer <token>``; without it, or with another token, the
answer is 401 with ``WWW-Authenticate: Bearer``. The token is compared with
:func:`hmac.compare_digest` (constant time: the comparison leaks nothing about how much of a
guess was right). A rollback holds until the learner announces a version newer than any the
process has seen, which is then served as usual.

Examples
--------
>>> import urllib.request                                                      # doctest: +SKIP
>>> req = urllib.request.Request(url + "/admin/models/3/activate", method="POST",
...                              headers={"Authorization": "Bearer " + token})
>>> urllib.request.urlopen(req).status                                         # doctest: +SKIP
200
"""
from __future__ import annotations

import hmac
import logging

from aiohttp import web

from serving import metrics
from serving.events_api import INGEST_KEY
from serving.experiments import ExperimentRegistry
from serving.experiments_api import ExperimentWriter, add_experiment_routes, experiment_paths
from serving.model_holder import ModelHolder
from streamrec.contracts.deletion import UserDeletion
from streamrec.contracts.fields import InvalidEvent, identifier

log = logging.getLogger(__name__)

HOLDER_KEY = web.AppKey("model_holder", ModelHolder)


def _error(status: int, message: str, field: str | None = None, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status, headers=headers)


def authorized(request: web.Request, token: str) -> bool:
    """True when the request carries ``Authorization: Bearer <token>`` (constant-time compare)."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())


def _state(holder: ModelHolder) -> dict:
    current = holder.current
    return {"serving": {"version": current.version, "published": current.published, "items": len(current.index)},
            "announced": [{"version": a.version, "created_at": a.created_at, "sha256": a.sha256,
                           "n_items": a.n_items, "scores": a.scores}
                          for a in sorted(holder.announcements.values(), key=lambda a: a.version)],
            "last_error": holder.last_error}


async def list_models(request: web.Request) -> web.Response:
    return web.json_response(_state(request.app[HOLDER_KEY]))


async def _activate(holder: ModelHolder, version: int, action: str) -> web.Response:
    announcement = holder.announcements.get(version)
    if announcement is None:
        return _error(404, f"version {version} is not among the announced versions kept "
                           f"({sorted(holder.announcements)})", "version")
    try:
        await holder.activate(announcement)
    except Exception as exc:   # refused by a check (ModelRefused), or loaded but not usable (dim, index)
        return _error(409, f"refused, still serving version {holder.current.version}: {exc}", "version")
    log.warning("admin %s: now serving model version %d", action, version)
    return web.json_response(_state(holder))


async def activate_version(request: web.Request) -> web.Response:
    try:
        version = int(request.match_info["version"])
    except ValueError:
        return _error(400, "must be an integer", "version")
    return await _activate(request.app[HOLDER_KEY], version, "activate")


async def reload_model(request: web.Request) -> web.Response:
    holder = request.app[HOLDER_KEY]
    if not holder.announcements:
        return _error(404, "no model version announced yet", "version")
    return await _activate(holder, max(holder.announcements), "reload")


async def delete_user(request: web.Request) -> web.Response:
    """Write a signed deletion of the user on their partition of ``events``; 202 with its token."""
    ingest = request.app[INGEST_KEY]
    settings = ingest.settings
    if not settings.deletion_signing_key:
        metrics.DELETIONS_REQUESTED.labels("refused").inc()
        return _error(501, "user deletion is off: set STREAMREC_DELETION_SIGNING_KEY (the same secret) on serving, "
                           "the streams worker and the learner")
    try:
        user_id = identifier(dict(request.match_info), "user_id", settings.max_id_length)
    except InvalidEvent as exc:
        metrics.DELETIONS_REQUESTED.labels("refused").inc()
        return _error(400, exc.detail, "user_id")
    deletion = UserDeletion.new(user_id).signed(settings.deletion_signing_key)
    why = ingest.unavailable()
    written = await ingest.write_deletion(deletion) if why is None else None
    if written is None or written.error is not None:
        metrics.DELETIONS_REQUESTED.labels("unavailable").inc()
        return _error(503, why or written.error, None, {"Retry-After": "1"})
    metrics.DELETIONS_REQUESTED.labels("written").inc()
    # The id of a user being forgotten stays out of the log: the deletion id names the request.
    log.warning("admin: user deletion %s written to events at %s", deletion.deletion_id, written.token)
    return web.json_response({"user_id": user_id, "deletion_id": deletion.deletion_id, "token": written.token},
                             status=202)


def deletion_path() -> dict:
    """The OpenAPI path item of ``/admin/users/{user_id}``."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    accepted = {"type": "object", "required": ["user_id", "deletion_id", "token"], "properties": {
        "user_id": {"type": "string"}, "deletion_id": {"type": "string"},
        "token": {"type": "string", "description": "consistency token of the deletion record: GET "
                                                   "/users/{user_id}?after=<token> answers 404 once it is applied"}}}
    return {"delete": {
        "summary": "Forget a user everywhere (admin API: exists only when STREAMREC_ADMIN_TOKEN is set)",
        "security": [{"adminToken": []}],
        "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "202": {"description": "the signed deletion is on the user's partition of events",
                    "content": {"application/json": {"schema": accepted}}},
            "400": {"description": "not a user id any event could carry", "content": error},
            "401": {"description": "bearer token missing or wrong", "content": error},
            "501": {"description": "no STREAMREC_DELETION_SIGNING_KEY set: deletion is off", "content": error},
            "503": {"description": "the broker did not take the deletion (Retry-After)", "content": error}}}}


def guard(token: str):
    """A wrapper that answers 401 (``WWW-Authenticate: Bearer``) unless a request carries ``token``."""
    def guarded(handler):
        async def check(request: web.Request) -> web.Response:
            if not authorized(request, token):
                return _error(401, "admin API: bearer token required", "Authorization",
                              {"WWW-Authenticate": 'Bearer realm="streamrec-admin"'})
            return await handler(request)
        return check
    return guarded


def add_admin_routes(app: web.Application, holder: ModelHolder, token: str | None,
                     experiments: ExperimentRegistry | None = None, writer: ExperimentWriter | None = None) -> None:
    """Register the admin routes behind ``token`` (with ``experiments``, theirs too); with no token, nothing."""
    if not token:
        return
    app[HOLDER_KEY] = holder
    guarded = guard(token)
    app.router.add_get("/admin/models", guarded(list_models))
    app.router.add_post("/admin/models/{version}/activate", guarded(activate_version))
    app.router.add_post("/admin/reload", guarded(reload_model))
    app.router.add_delete("/admin/users/{user_id}", guarded(delete_user))
    if experiments is not None:
        add_experiment_routes(app, experiments, writer or ExperimentWriter(experiments.settings, experiments),
                              holder, guarded)


def admin_paths() -> dict:
    """The OpenAPI paths of the admin routes (they exist only when ``STREAMREC_ADMIN_TOKEN`` is set)."""
    secured = [{"adminToken": []}]
    state = {"description": "the version served and the versions kept"}
    refused = {"description": "refused (the field is named)",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    version = [{"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}}]
    unauthorized = {"description": "no or wrong bearer token"}
    return {
        "/admin/models": {"get": {"summary": "Model version served and the versions kept", "security": secured,
                                  "responses": {"200": state, "401": unauthorized}}},
        "/admin/models/{version}/activate": {"post": {
            "summary": "Serve a kept version (roll back or promote)", "security": secured, "parameters": version,
            "responses": {"200": state, "400": refused, "401": unauthorized, "404": refused, "409": refused}}},
        "/admin/reload": {"post": {"summary": "Load the newest kept version again", "security": secured,
                                   "responses": {"200": state, "401": unauthorized, "404": refused,
                                                 "409": refused}}},
        "/admin/users/{user_id}": deletion_path(),
        **experiment_paths(),
    }
