"""User deletion through a real streams worker, learner and serving process on the embedded broker.

Two users send events; ``DELETE /admin/users/gone`` removes one everywhere its state is kept —
serving's replica (``GET /users`` 404), the streams worker's changelog (a tombstone, no live
record), the learner's log, replay buffer and checkpoint — while the other is untouched and a
forged deletion is dead-lettered. Then every process is stopped and started again on the same
broker and state directories, and the deleted user is still gone everywhere; an event of theirs
written after the deletion starts a new user.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from confluent_kafka import Producer

from harness.polling import wait_or_fail, wait_until
from harness.processes import Proc
from tests.processes import json_request
from streamrec.contracts.deletion import UserDeletion
from streamrec.contracts.events import owner_partition
from streamrec.contracts.topics import EVENTS, EVENTS_DLQ, changelog_topic
from streamrec.kafka.changelog import read_table_sync, read_topic
from streamrec.kafka.config import ensure_topics, producer_config
from tests.learner_helpers import small_settings, users_held

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN, KEY = "admin-token-for-the-test", "deletion-key-for-the-test"
GONE, KEPT = "gone", "kept"
ITEMS = {GONE: [f"g{n}" for n in range(6)], KEPT: [f"k{n}" for n in range(6)]}
OWNER = {"g": GONE, "k": KEPT, "n": GONE}   # "n...": the item of the deleted user's event after the deletion


def http(method: str, url: str, body=None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    return json_request(url, method, data, headers, timeout=30)


def events(user: str, items: list[str]) -> list[dict]:
    now = time.time()
    return [{"user_id": user, "item_id": item, "event_type": "click", "timestamp": now - 100 + n}
            for n, item in enumerate(items * 3)]


@contextlib.contextmanager
def trio(settings):
    """Streams worker, learner and serving as child processes, all stopped on the way out (failures too)."""
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(Proc(command, settings, port)) for command, port in
                 (("streams", "streams_web_port"), ("learner", "learner_port"), ("serve", "http_port"))]
        for proc in procs:
            proc.wait_ready(180)
        yield procs[2].url


def changelog(settings) -> tuple[dict[bytes, bytes], list]:
    """The user_state table as the changelog rebuilds it, and the changelog's raw records."""
    return (read_table_sync(settings, "user_state"),
            asyncio.run(read_topic(settings, changelog_topic(settings, "user_state"))))


def learner_holds(settings) -> set[str]:
    """Whom the learner's checkpoint on disk holds anything of (empty before the first one)."""
    from learner.checkpoint import load_checkpoint   # torch: only in the test that runs the learner

    path = settings.state_dir / "learner" / "checkpoint.safetensors"
    if not path.exists():
        return set()
    trainer, _ = load_checkpoint(path, settings)
    return users_held(trainer, lambda item: OWNER[item[0]])


def dead_letter_reasons(settings) -> list[str]:
    return [dict(m.headers)["reason"].decode() for m in asyncio.run(read_topic(settings, settings.topic(EVENTS_DLQ)))]


def forge_deletion(settings, user: str) -> None:
    """A hostile producer's deletion: right partition and shape, no valid signature."""
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    producer.produce(settings.topic(EVENTS), key=user.encode(), partition=owner_partition(user, settings.partitions),
                     value=UserDeletion.new(user).signed("a guessed key").encode())
    assert producer.flush(10) == 0


def test_a_deleted_user_is_gone_from_every_process_and_stays_gone_after_they_all_restart(settings):
    learner = small_settings(learner_train_every_events=30, learner_min_events=20, learner_holdout_events=5,
                             learner_batches_per_cycle=5, learner_probe_size=5, learner_gate_tolerance=1.0)
    settings = settings.replace(partitions=2, deletion_signing_key=KEY, serving_admin_token=TOKEN, **{
        k: getattr(learner, k) for k in learner.__dataclass_fields__ if k.startswith("learner_") and k != "learner_port"})
    ensure_topics(settings)
    with trio(settings) as url:
        for user in (GONE, KEPT):
            status, written = http("POST", url + "/events", events(user, ITEMS[user]))
            assert status == 202, written
            assert http("GET", f"{url}/users/{user}?after={written['token']}")[0] == 200
        wait_or_fail(lambda: {GONE.encode(), KEPT.encode()} <= set(changelog(settings)[0]), 120, "both users' states")
        wait_or_fail(lambda: learner_holds(settings) == {GONE, KEPT}, 180, "a learner checkpoint with both users")
        kept_before = http("GET", f"{url}/users/{KEPT}")[1]["recent"]

        forge_deletion(settings, KEPT)
        status, deleted = http("DELETE", f"{url}/admin/users/{GONE}", token=TOKEN)
        assert status == 202 and deleted["user_id"] == GONE, deleted
        status, _ = http("GET", f"{url}/users/{GONE}?after={deleted['token']}")
        assert status == 404
        assert http("GET", f"{url}/users/{KEPT}")[1]["recent"] == kept_before      # the forgery changed nothing
        wait_or_fail(lambda: "deletion_bad_signature" in dead_letter_reasons(settings), 60, "the forgery dead-lettered")
        assert_gone_from_streams_and_learner(settings, timeout=120)

    with trio(settings) as url:   # every process again: same broker, same state directories
        assert http("GET", f"{url}/users/{GONE}")[0] == 404
        assert http("GET", f"{url}/users/{KEPT}")[1]["recent"] == kept_before
        assert_gone_from_streams_and_learner(settings, timeout=30)
        # After the deletion, the same id is a new user with nothing of before.
        status, written = http("POST", url + "/events", events(GONE, ["n0"])[:1])
        status, back = http("GET", f"{url}/users/{GONE}?after={written['token']}")
        assert status == 200 and [e["item_id"] for e in back["recent"]] == ["n0"]


def assert_gone_from_streams_and_learner(settings, timeout: float) -> None:
    """No live changelog record (its last record a tombstone), nothing in the learner's checkpoint."""
    assert wait_until(lambda: GONE.encode() not in changelog(settings)[0], timeout), "a live changelog record"
    table, records = changelog(settings)
    assert KEPT.encode() in table
    assert [m.value for m in records if m.key == GONE.encode()][-1] is None
    assert wait_until(lambda: learner_holds(settings) == {KEPT}, timeout), learner_holds(settings)
