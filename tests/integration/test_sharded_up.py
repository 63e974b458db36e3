"""``streamrec up --serving-instances 2``: two sharded serving instances supervised on consecutive
ports with an embedded broker; the run file names both, ``streamrec status`` shows both, and a
replay's events are split between them while either answers for any user."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from harness.chaos.restart import counter
from harness.polling import wait_or_fail, wait_until
from streamrec.kafka.runfile import running_system
from tests.integration.test_startup_and_lifetime import alive, children, command_env, run

pytestmark = pytest.mark.integration


def consecutive_free_ports(n: int) -> int:
    """The first of ``n`` consecutive loopback ports nothing listens on now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + n > 65535:
            continue
        free = True
        for port in range(first, first + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return first
    raise RuntimeError(f"no {n} consecutive free ports")


def test_up_runs_two_sharded_instances_that_status_shows_and_that_split_the_events(tmp_path, ml100k):
    state = tmp_path / "state"
    port = consecutive_free_ports(2)
    env = command_env(state, STREAMREC_HTTP_PORT=str(port), STREAMREC_PARTITIONS="4")
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "up", "--only", "serving", "--serving-instances",
                             "2"], env=env, stdout=open(tmp_path / "up.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    left: list[int] = []
    try:
        assert wait_until(lambda: proc.poll() is not None or running_system(state) is not None, 180,
                          interval=0.1), "no run file"
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        run_file = running_system(state)
        left += [run_file["embedded_broker_pid"], *children(proc.pid)]
        urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
        assert run_file["urls"] == {"serving-0": urls[0], "serving-1": urls[1]}
        assert (state / "logs" / "serving-1.log").exists()

        status = run(["status", "--once"], env)   # streams and learner are not running: exit 1
        assert all(f"{url}" in status.stdout for url in urls), status.stdout
        assert "applied per instance" in status.stdout

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
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for pid in left:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
