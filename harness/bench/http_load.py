"""A lean HTTP/1.1 load generator for the serving benchmark.

The benchmark's load generator shares the machine's two cores with the server and the
broker, and every millisecond it spends on its own is charged to the server: a request is
timed from its *due* time, so a generator that sends late or reads answers late inflates
the latencies it reports. aiohttp's client spends a few hundred microseconds of Python per
request (connector, tracing hooks, header multidicts, response objects), which at a
thousand requests a second is most of a core. This client does what the measurement
needs and nothing else: keep-alive connections over :class:`asyncio.Protocol`, one request
in flight per connection (no pipelining, as browsers and service clients do), the answer's
status line and ``Content-Length`` parsed, the body counted and dropped.

Examples
--------
>>> import asyncio
>>> from aiohttp import web
>>> async def demo():
...     app = web.Application()
...     app.router.add_get("/hi", lambda request: web.json_response({"ok": True}))
...     runner = web.AppRunner(app)
...     await runner.setup()
...     site = web.TCPSite(runner, "127.0.0.1", 0)
...     await site.start()
...     port = site._server.sockets[0].getsockname()[1]
...     async with HttpLoadClient("127.0.0.1", port, max_connections=2) as client:
...         status = await client.get("/hi", timeout=5)
...     await runner.cleanup()
...     return status
>>> asyncio.run(demo())
'200'
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode, urlsplit


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, resolve a future with the answer's status."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future | None = None
        self.closed = False
        self._buffer = bytearray()
        self._head_end = -1
        self._needed = 0
        self._status = ""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, request: bytes) -> asyncio.Future:
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._head_end < 0:
            self._head_end = self._buffer.find(b"\r\n\r\n")
            if self._head_end < 0:
                return
            self._read_head(bytes(self._buffer[:self._head_end]))
        if len(self._buffer) >= self._needed:
            del self._buffer[:self._needed]
            self._head_end = -1
            if self.answer is not None and not self.answer.done():
                self.answer.set_result(self._status)

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self._status = lines[0].split(b" ", 2)[1].decode()
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                self.closed = True
        self._needed = self._head_end + 4 + length

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"connection lost: {exc}"))


class HttpLoadClient:
    """GET requests over at most ``max_connections`` keep-alive connections to one server.

    At most ``max_connections`` requests are in flight, each on its own connection: a request
    takes an idle connection or opens one, or, with that many in flight, waits for a slot (the wait counts in its latency, as a real
    client's would). A timed-out request's connection is closed: its late answer must not
    be read as the next request's.
    """

    def __init__(self, host: str, port: int, max_connections: int = 512):
        self.host, self.port = host, port
        self._free: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[_Connection] = set()

    @classmethod
    def for_url(cls, url: str, max_connections: int = 512) -> "HttpLoadClient":
        parts = urlsplit(url)
        return cls(parts.hostname, parts.port or 80, max_connections)

    async def __aenter__(self) -> "HttpLoadClient":
        return self

    async def __aexit__(self, *exc) -> None:
        for connection in self._open:
            connection.transport.close()
        self._open.clear()

    async def _connection(self) -> _Connection:
        while self._free:
            connection = self._free.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)   # closed by the server while idle
        _, connection = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
        self._open.add(connection)
        return connection

    def _forget(self, connection: _Connection) -> None:
        """Drop a connection that is closed or no longer trusted, and free its request's slot."""
        self._open.discard(connection)
        self._slots.release()

    async def get(self, path: str, params: dict[str, str] | None = None, timeout: float = 10.0) -> str:
        """The answer's status code as a string; raises ``asyncio.TimeoutError`` or ``ConnectionError``."""
        target = f"{path}?{urlencode(params)}" if params else path
        request = f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        await self._slots.acquire()
        connection = None
        try:
            connection = await self._connection()
            status = await asyncio.wait_for(connection.send(request), timeout)
        except BaseException:
            if connection is not None:
                connection.transport.close()
                self._forget(connection)
            else:
                self._slots.release()
            raise
        if connection.closed:
            connection.transport.close()
            self._forget(connection)
        else:
            self._free.append(connection)
            self._slots.release()
        return status
