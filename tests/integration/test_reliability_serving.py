"""Serving as a real subprocess under faults: restarts while clients call it, and overload.

The scenarios are :mod:`streamrec.chaos.serving` (``streamrec chaos`` runs longer versions);
these tests run them short and assert the guarantees on the rows they return.
"""
from __future__ import annotations

import signal
import socket

import pytest

from streamrec.broker import free_port
from streamrec.chaos.serving import serving_overload, serving_restart
from streamrec.client import AsyncRecClient, RecClient, RecUnavailable

pytestmark = pytest.mark.integration


def test_clients_raise_rec_unavailable_when_nothing_listens():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RecUnavailable):
        RecClient(url, timeout=1).recommend("u1")

    async def call():
        async with AsyncRecClient(url, timeout=1) as client:
            await client.recommend("u1")

    import asyncio
    with pytest.raises(RecUnavailable):
        asyncio.run(call())


def test_client_raises_rec_unavailable_when_server_closes_mid_exchange():
    # A server that accepts and closes without answering: what a SIGKILL mid-request looks like.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        import threading

        def accept_and_close():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:   # the test closed the socket
                    return
                conn.recv(65536)
                conn.close()

        t = threading.Thread(target=accept_and_close, daemon=True)
        t.start()
        with pytest.raises(RecUnavailable, match="connection lost|unreachable"):
            RecClient(url, timeout=2).recommend("u1")

        import asyncio

        async def call():
            async with AsyncRecClient(url, timeout=2) as client:
                await client.recommend("u1")

        with pytest.raises(RecUnavailable):
            asyncio.run(call())


def test_restart_with_sigterm_and_sigkill_every_call_answers_or_fails_clearly(settings):
    row = serving_restart(settings.replace(partitions=2), signals=(signal.SIGTERM, signal.SIGKILL),
                          client_timeout=2.0, settle_s=2.0)
    d = row["details"]
    print(row)
    assert d["unclear_errors"] == 0, d["examples"]
    assert d["hung"] == 0 and d["client_threads_stuck"] == 0
    assert row["requests_ok"] > 0
    assert row["recovered"], row   # answers again after the last restart, process up
    assert row["requests_sent"] == row["requests_ok"] + row["requests_failed"]


@pytest.mark.slow
def test_overload_twice_capacity_sheds_with_503_retry_after_bounded_memory_and_recovers(settings):
    row = serving_overload(settings.replace(partitions=2), duration_s=10.0, max_in_flight=4, overload_factor=2)
    d = row["details"]
    print(row)
    assert d["process_alive"] and row["recovered"], row
    assert row["requests_shed"] > 0, row                     # the excess is shed...
    assert d["shed_without_retry_after"] == 0                # ...always with a retry hint
    assert row["requests_ok"] > 0
    assert row["requests_failed"] == 0, d["statuses"]         # no timeouts, resets or 5xx besides 503
    # Bounded memory: the overload adds little over what the short ramp used.
    assert row["max_rss_mb"] < d["baseline_rss_mb"] * 1.25 + 64, row
