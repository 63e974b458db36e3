"""``DELETE /admin/users/{id}`` over real HTTP, serving's producer replaced by an in-memory log:
behind the bearer token, it writes one signed deletion on the user's partition and answers 202
with its consistency token; ``GET /users/{id}?after=<token>`` is 404 once the replica applied it."""
from __future__ import annotations

import pytest
from aiohttp import ClientSession

from serving.http_api import openapi_document
from streamrec.contracts.events import decode_message, encode_events, owner_partition
from streamrec.contracts.consistency import parse_token
from streamrec.settings import Settings
from tests.unit.conftest import MemoryLog

TOKEN, KEY = "admin-token", "deletion-key"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


async def call(method: str, url: str, headers: dict | None = None) -> tuple[int, dict]:
    async with ClientSession() as session:
        async with session.request(method, url, headers=headers or {}) as r:
            return r.status, await r.json()


def feed(replica, log: MemoryLog) -> None:
    """What serving's events feed does with every message the log holds."""
    for partition, values in log.partitions.items():
        for offset, value in enumerate(values):
            replica.apply_events(partition, offset, value)
            replica.applied.advance(partition, offset)


async def test_the_deletion_is_signed_on_the_users_partition_and_its_token_says_when_it_is_applied(serve):
    log = MemoryLog()
    url, settings, service = await serve(log, partitions=4, serving_admin_token=TOKEN, deletion_signing_key=KEY)
    partition = owner_partition("u1", 4)
    for user in ("u1", "u2"):
        log.partitions[owner_partition(user, 4)].append(encode_events(
            [{"user_id": user, "item_id": "i1", "event_type": "click", "timestamp": 1.7e9}]))
    feed(service.replica, log)
    assert (await call("GET", url + "/users/u1"))[0] == 200

    status, body = await call("DELETE", url + "/admin/users/u1", ADMIN)
    assert status == 202 and body["user_id"] == "u1" and body["deletion_id"]
    assert parse_token(body["token"]) == {partition: len(log.partitions[partition]) - 1}
    [(deletion, position)] = decode_message(log.partitions[partition][-1], partition, 1, settings).deletions
    assert deletion.user_id == "u1" and deletion.deletion_id == body["deletion_id"]

    status, answer = await call("GET", url + f"/users/u1?after={body['token']}")
    assert status == 200 and answer["stale"] is True          # not applied yet: the wait ran out
    feed(service.replica, log)
    assert (await call("GET", url + f"/users/u1?after={body['token']}"))[0] == 404
    assert (await call("GET", url + "/users/u2"))[0] == 200
    assert (await call("GET", url + "/users/u1?after=p9:1"))[0] == 400


@pytest.mark.parametrize("path, headers, changes, status, field", [
    ("/admin/users/u1", {}, {}, 401, "Authorization"),
    ("/admin/users/u1", {"Authorization": "Bearer wrong"}, {}, 401, "Authorization"),
    ("/admin/users/u1", ADMIN, {"deletion_signing_key": None}, 501, None),
    ("/admin/users/" + "x" * 300, ADMIN, {}, 400, "user_id"),
])
async def test_refused_without_the_token_the_key_or_a_valid_id_and_nothing_written(serve, path, headers, changes,
                                                                                    status, field):
    log = MemoryLog()
    url, _, _ = await serve(log, **{"serving_admin_token": TOKEN, "deletion_signing_key": KEY, **changes})
    answer_status, body = await call("DELETE", url + path, headers)
    assert (answer_status, body["field"]) == (status, field) and not log.partitions


async def test_an_unacknowledged_deletion_is_503(serve):
    url, _, _ = await serve(MemoryLog(hold=True), serving_admin_token=TOKEN, deletion_signing_key=KEY,
                            serving_ingest_timeout_s=0.5)
    status, body = await call("DELETE", url + "/admin/users/u1", ADMIN)
    assert status == 503 and "did not acknowledge" in body["error"]


def test_openapi_describes_the_route_and_the_after_parameter_of_users():
    doc = openapi_document(Settings())
    delete = doc["paths"]["/admin/users/{user_id}"]["delete"]
    assert set(delete["responses"]) == {"202", "400", "401", "501", "503"} and delete["security"]
    assert [p["name"] for p in doc["paths"]["/users/{user_id}"]["get"]["parameters"]] == ["user_id", "after"]
