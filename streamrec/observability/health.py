"""Health and metrics endpoints shared by every process's HTTP server.

``/healthz`` answers 200 while the process runs; ``/readyz`` answers 200 only when the
process's own readiness check passes (caught up, model loaded), else 503 with the reasons;
either way its ``notes`` list facts an operator must know that do not stop the process
from working (e.g. "resumed from the earliest offset: the broker lost its log");
``/metrics`` is the Prometheus text exposition of the process's registry.
"""
from __future__ import annotations

from typing import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

# A readiness check returns the reasons the process is not ready (empty: ready).
ReadyCheck = Callable[[], list[str]]


def add_health_routes(app: web.Application, ready: ReadyCheck, registry=REGISTRY,
                      notes: ReadyCheck | None = None) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        reasons = ready()
        body = {"ready": not reasons, "reasons": reasons, "notes": notes() if notes is not None else []}
        return web.json_response(body, status=503 if reasons else 200)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
