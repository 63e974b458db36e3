"""Forwarding between two sharded serving HTTP apps over real loopback HTTP, each with an
in-process replica fed directly (the broker and real processes: tests/integration/test_sharded_serving.py):
any instance answers for any user with the owner's answer, POST bodies and /users included; a
request that names no valid user is answered where it arrives; a forward loop is a 508; an owner
that is gone or stuck is a 503 naming it, in bounded time."""
from __future__ import annotations

import asyncio
import json
import socket
from contextlib import asynccontextmanager, closing

from aiohttp import ClientSession, web

from serving.forwarding import FORWARDED_BY, INSTANCE, Forwarder
from serving.http_api import build_app
from serving.item_side import ItemSideFeed
from serving.model_holder import ModelHolder
from serving.ownership import Ownership
from serving.recommender_service import RecommenderService
from serving.state_replica import StateReplica
from streamrec.contracts.events import owner_partition
from streamrec.kafka.embedded import free_port
from streamrec.settings import Settings

PARTITIONS = 4
ITEMS = [f"i{j}" for j in range(30)]
USERS = [f"user-{n}" for n in range(24)]


def _events() -> list[tuple[int, int, bytes]]:
    offsets = [0] * PARTITIONS
    out = []
    for n, user in enumerate(USERS):
        for j in range(3):
            p = owner_partition(user, PARTITIONS)
            out.append((p, offsets[p], json.dumps({"user_id": user, "item_id": ITEMS[(n + 5 * j) % len(ITEMS)],
                                                   "event_type": "click", "timestamp": 1.7e9 + n + j}).encode()))
            offsets[p] += 1
    return out


def _instance(settings: Settings) -> tuple[web.Application, ModelHolder]:
    """One instance's app: its users' state applied, the other partitions learned item-side only."""
    ownership = Ownership.from_settings(settings)
    replica = StateReplica(settings)
    item_side = ItemSideFeed(replica)
    for partition, offset, raw in _events():
        (replica.apply_events if ownership.owns_partition(partition) else item_side.apply_events)(
            partition, offset, raw)
    holder = ModelHolder(settings, replica)
    holder.swap(holder._bundle_from(0, 0.0, ITEMS, replica.item_vectors.lookup(ITEMS), None, False))
    forwarder = Forwarder(settings, ownership)
    app = build_app(RecommenderService(settings, replica, holder), lambda: [], None, None, inner_middlewares=[forwarder.middleware()])

    async def close(_app) -> None:
        await forwarder.close()
        holder.close()

    app.on_cleanup.append(close)
    return app, holder


@asynccontextmanager
async def _serving(ports: list[int], peers: list[str], timeout_s: float = 5.0):
    """Two instances on ``ports`` that reach each other at ``peers``; yields their runners."""
    runners = []
    try:
        for i, port in enumerate(ports):
            settings = Settings(vector_dim=8, partitions=PARTITIONS, serving_instance=f"{i}/2",
                                serving_peers=",".join(peers), serving_forward_timeout_s=timeout_s,
                                serving_diversity=0.0, serving_exploration=0.0)
            runner = web.AppRunner(_instance(settings)[0], handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        yield runners
    finally:
        for runner in runners:
            await runner.cleanup()


def _urls(ports: list[int]) -> list[str]:
    return [f"http://127.0.0.1:{p}" for p in ports]


async def _get(session: ClientSession, url: str, **headers) -> tuple[int, dict, str | None]:
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json(), response.headers.get(INSTANCE)


def test_either_instance_answers_for_every_user_with_the_owners_answer():
    ports = [free_port(), free_port()]
    urls = _urls(ports)

    async def main():
        async with _serving(ports, urls), ClientSession() as session:
            for user in USERS:
                owner = owner_partition(user, PARTITIONS) % 2
                answers = [await _get(session, f"{url}/recommendations?user_id={user}&k=5&seed=1") for url in urls]
                assert [(status, served_by) for status, _, served_by in answers] == [(200, f"{owner}/2")] * 2
                assert answers[0][1]["items"] == answers[1][1]["items"] and answers[0][1]["state_time"]
                for url in urls:
                    async with session.post(f"{url}/recommendations", json={"user_id": user, "k": 5, "seed": 1}) as r:
                        assert r.status == 200 and r.headers[INSTANCE] == f"{owner}/2"
                        assert (await r.json())["items"] == answers[0][1]["items"]
                    status, view, served_by = await _get(session, f"{url}/users/{user}")
                    assert status == 200 and view["counts"] == {"click": 3} and served_by == f"{owner}/2"
            # Not a valid request: answered (400) where it arrived, naming the field, not forwarded.
            for url in urls:
                async with session.get(f"{url}/recommendations?user_id={USERS[0]}&k=0") as r:
                    assert r.status == 400 and (await r.json())["field"] == "k" and INSTANCE not in r.headers

    asyncio.run(main())


def test_a_forwarding_loop_is_a_508_and_never_sent_on_again():
    ports = [free_port(), free_port()]
    urls = _urls(ports)
    wrong = [urls[0], urls[0]]          # instance 0 believes instance 1 lives at its own address
    other = next(u for u in USERS if owner_partition(u, PARTITIONS) % 2 == 1)

    async def main():
        async with _serving(ports, wrong), ClientSession() as session:
            status, body, _ = await _get(session, f"{urls[0]}/recommendations?user_id={other}")
            assert status == 508 and "disagree" in body["error"]
            # A request claiming to be forwarded is answered only by the owner itself.
            status, body, _ = await _get(session, f"{urls[1]}/users/{other}", **{FORWARDED_BY: "0/2"})
            assert status == 200 and body["user_id"] == other

    asyncio.run(main())


def test_an_owner_that_is_down_or_stuck_is_a_503_naming_it_and_the_others_users_are_still_answered():
    ports = [free_port(), free_port()]
    urls = _urls(ports)
    mine = next(u for u in USERS if owner_partition(u, PARTITIONS) % 2 == 0)
    theirs = next(u for u in USERS if owner_partition(u, PARTITIONS) % 2 == 1)

    async def main():
        async with _serving(ports, urls, timeout_s=0.5) as runners, ClientSession() as session:
            await runners[1].cleanup()          # instance 1 is gone: nothing listens on its port
            for path in (f"/recommendations?user_id={theirs}", f"/users/{theirs}"):
                async with session.get(urls[0] + path) as r:
                    body = await r.json()
                    assert r.status == 503 and r.headers["Retry-After"] == "1"
                    assert f"serving instance 1 ({urls[1]})" in body["error"]
            assert (await _get(session, f"{urls[0]}/recommendations?user_id={mine}"))[0] == 200
            # Something listens on instance 1's port and never answers (a stopped process).
            with closing(socket.socket()) as stuck:
                stuck.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                stuck.bind(("127.0.0.1", ports[1]))
                stuck.listen(16)
                status, body, _ = await _get(session, f"{urls[0]}/recommendations?user_id={theirs}")
                assert status == 503 and "no answer within 0.5 s" in body["error"]

    asyncio.run(main())
