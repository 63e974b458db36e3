"""The benchmark's lean HTTP client against a real aiohttp server on loopback."""
import asyncio
import doctest

import pytest
from aiohttp import web

import harness.bench.http_load as http_load
from harness.bench.http_load import HttpLoadClient


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def _app(state: dict) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        counted = "n" in request.query   # the concurrent phase only (a timed-out request may still sleep)
        state["in_flight"] += counted
        state["most"] = max(state["most"], state["in_flight"])
        try:
            await asyncio.sleep(float(request.query.get("sleep", "0")))
        finally:
            state["in_flight"] -= counted
        status = int(request.query.get("status", "200"))
        headers = {"Connection": "close"} if request.query.get("close") else None
        return web.json_response({"n": request.query.get("n"), "pad": "x" * 70_000}, status=status,
                                 headers=headers)

    app = web.Application()
    app.router.add_get("/a", answer)
    return app


def test_doctest():
    assert doctest.testmod(http_load).failed == 0


def test_statuses_timeouts_closed_connections_and_the_connection_limit():
    async def scenario():
        state = {"in_flight": 0, "most": 0}
        runner, port = await _serve(_app(state))
        try:
            async with HttpLoadClient("127.0.0.1", port, max_connections=3) as client:
                assert await client.get("/a", {"status": "503"}) == "503"
                assert await client.get("/a", {"close": "1"}) == "200"   # server closes: next opens anew
                with pytest.raises(asyncio.TimeoutError):
                    await client.get("/a", {"sleep": "0.5"}, timeout=0.05)
                # The late answer of the timed-out request must not be taken for this one's.
                assert await client.get("/a", {"status": "404"}) == "404"
                statuses = await asyncio.gather(*(client.get("/a", {"sleep": "0.05", "n": str(n)})
                                                  for n in range(12)))
                assert statuses == ["200"] * 12
            return state["most"]
        finally:
            await runner.cleanup()

    most = asyncio.run(scenario())
    assert most == 3   # twelve requests, three connections: the limit held and was used
