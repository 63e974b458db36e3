"""``streamrec up --serving-instances 2``: two sharded serving instances supervised on consecutive
ports with an embedded broker; the run file names both, ``streamrec status`` shows both, and a
replay's events are split between them while either answers for any user."""
from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from harness.chaos.restart import counter
from harness.polling import wait_or_fail
from tests.integration.test_startup_and_lifetime import run, up_serving  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration


def consecutive_free_ports(n: int) -> int:
    """The first of ``n`` consecutive loopback ports nothing listens on now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + n > 65535:
            continue
        try:
            for port in range(first, first + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {n} consecutive free ports")


PORT = consecutive_free_ports(2)


@pytest.mark.parametrize("up_serving", [{"STREAMREC_HTTP_PORT": str(PORT), "STREAMREC_PARTITIONS": "4",
                                         "UP_ARGS": "--serving-instances 2"}], indirect=True)
def test_up_runs_two_sharded_instances_that_status_shows_and_that_split_the_events(up_serving, ml100k):
    proc, run_file, env, state = up_serving
    urls = [f"http://127.0.0.1:{PORT}", f"http://127.0.0.1:{PORT + 1}"]
    assert run_file["urls"] == {"serving-0": urls[0], "serving-1": urls[1]}
    assert (state / "logs" / "serving-1.log").exists()

    status = run(["status", "--once"], env)   # streams and learner are not running: exit 1
    assert all(url in status.stdout for url in urls) and "applied per instance" in status.stdout, status.stdout

    replay = run(["replay", "--limit", "400"], env)
    assert replay.returncode == 0, replay.stderr
    events = json.loads(replay.stdout.strip().splitlines()[-1])["events"]
    applied = [lambda u=u: counter(u, "streamrec_serving_events_applied_total") for u in urls]
    wait_or_fail(lambda: applied[0]() + applied[1]() >= events, 120, "the instances to apply the replay")
    assert applied[0]() + applied[1]() == events and all(0 < a() < events for a in applied)
    for user in dict.fromkeys(str(u) for u in ml100k.user_ids[:400:40]):   # users of the replay
        for url in urls:
            with urllib.request.urlopen(f"{url}/recommendations?user_id={user}&k=3", timeout=30) as r:
                assert r.status == 200 and json.load(r)["state_time"] is not None   # its owner's state
