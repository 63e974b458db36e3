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


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on their own event loop and thread.

    For a process whose main thread is not an event loop (the learner), or for as long as
    a start-up wait lasts. Raises :class:`OSError` when the port cannot be bound;
    :meth:`close` releases it.
    """

    def __init__(self, host: str, port: int, ready: ReadyCheck, notes: ReadyCheck | None = None):
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        app = web.Application()
        add_health_routes(app, ready, notes=notes)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        try:
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, host, port).start())
        except OSError:
            self.loop.run_until_complete(self.runner.cleanup())
            self.loop.close()
            raise
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"health-{port}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
