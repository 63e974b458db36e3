"""Start-up that fails clearly, and an embedded broker (and children) that die with their owner.

Real commands in real processes: ``streamrec up`` with its own embedded Tansu broker, killed
hard the way a supervisor does; ``up``/``topics``/``replay`` against a taken port or an
address where no broker listens; ``replay`` beside a running ``up``; clients that find ``up``
on the embedded broker's fixed port from another directory. Every ``up`` here gets its own
broker port (``STREAMREC_BROKER_PORT`` 0 or a free one), so a system someone runs on this
machine at the default port neither collides with the tests nor gets found by them.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.polling import wait_until
from streamrec.kafka.embedded import EmbeddedBroker, free_port
from streamrec.kafka.runfile import running_system
from tests.conftest import DATA_DIR


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a killed child may wait a while to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] not in (b"Z", b"X"):
                found.append(int(entry.name))
    return found


def command_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({"STREAMREC_STATE_DIR": str(state_dir), "STREAMREC_DATA_DIR": str(DATA_DIR),
                "PYTHONUNBUFFERED": "1", "STREAMREC_BROKER_PORT": "0", **extra})
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def up_serving(tmp_path, request):
    """``streamrec up --only serving`` with its embedded broker, in a process group of its own.

    Indirect parameter: extra environment (e.g. a fixed ``STREAMREC_BROKER_PORT``), and under
    ``UP_ARGS`` more arguments of ``up``.
    """
    state = tmp_path / "state"
    extra = dict(getattr(request, "param", {}))
    args = extra.pop("UP_ARGS", "").split()
    env = command_env(state, **{"STREAMREC_HTTP_PORT": str(free_port()), **extra})
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "up", "--only", "serving", *args], env=env,
                            stdout=open(tmp_path / "up.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    left: list[int] = []
    try:
        assert wait_until(lambda: proc.poll() is not None or running_system(state) is not None, 180,
                          interval=0.1), "no run file"
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        run_file = running_system(state)
        left += [run_file["embedded_broker_pid"], *children(proc.pid)]
        yield proc, run_file, env, state
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for pid in left:   # whatever the test's outcome, nothing it started stays
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_replay_and_a_second_up_find_the_running_up(up_serving):
    proc, run_file, env, state = up_serving
    assert run_file["pid"] == proc.pid and alive(run_file["embedded_broker_pid"])
    second = run(["up", "--only", "serving"], {**env, "STREAMREC_HTTP_PORT": str(free_port())})
    assert second.returncode == 2 and f"pid {proc.pid}" in second.stderr and "Traceback" not in second.stderr
    replay = run(["replay", "--limit", "300"], env)
    assert replay.returncode == 0, replay.stderr
    summary = json.loads(replay.stdout.strip().splitlines()[-1])
    assert summary["events"] == 300 and summary["bootstrap_servers"] == run_file["bootstrap_servers"]
    assert summary["broker"] == "kept" and f"pid {proc.pid}" in replay.stderr


FIXED_PORT = free_port()


@pytest.mark.parametrize("up_serving", [{"STREAMREC_BROKER_PORT": str(FIXED_PORT)}], indirect=True)
def test_clients_elsewhere_find_up_on_the_fixed_broker_port(up_serving, tmp_path, monkeypatch):
    proc, run_file, env, state = up_serving
    assert run_file["bootstrap_servers"] == f"127.0.0.1:{FIXED_PORT}"
    printed = f"127.0.0.1:{FIXED_PORT} (embedded, in memory; STREAMREC_BROKER_PORT)"
    assert wait_until(lambda: printed in (tmp_path / "up.log").read_text(), 30, interval=0.1)
    elsewhere = command_env(tmp_path / "elsewhere", STREAMREC_BROKER_PORT=str(FIXED_PORT))   # no run file there
    answer = run(["recommend", "--user", "nobody", "--via", "topic", "--json", "--timeout", "20"], elsewhere)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["user_id"] == "nobody"
    replay = run(["replay", "--limit", "50"], elsewhere)
    assert replay.returncode == 0 and "STREAMREC_BROKER_PORT" in replay.stderr, replay.stderr
    assert json.loads(replay.stdout.strip().splitlines()[-1])["broker"] == "kept"
    for name, value in elsewhere.items():
        if name.startswith("STREAMREC_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    from streamrec.client import TopicRecClient

    with TopicRecClient(timeout=20) as client:   # no settings at all
        assert client.recommend("nobody", k=3)["user_id"] == "nobody"


def _up_with_a_taken_port(tmp_path, setting: str):
    """Run ``up`` with ``setting``'s port held by someone else; every other port free, whatever
    else runs on this machine: the taken one is the finding. Returns (port, result)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {name: str(free_port()) for name in ("STREAMREC_HTTP_PORT", "STREAMREC_LEARNER_PORT",
                                                     "STREAMREC_STREAMS_PORT")}
        ports[setting] = str(port)
        return port, run(["up"], command_env(tmp_path / "state", **ports), timeout=60)


def test_up_refuses_a_taken_broker_port_in_one_line(tmp_path):
    port, result = _up_with_a_taken_port(tmp_path, "STREAMREC_BROKER_PORT")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"port {port}" in line and "STREAMREC_BROKER_PORT" in line
    assert running_system(tmp_path / "state") is None


@pytest.mark.parametrize("how", ["sigkill", "group-sigterm-then-sigkill"])
def test_up_killed_hard_takes_its_broker_and_children(up_serving, how):
    proc, run_file, _, _ = up_serving
    broker_pid, kids = run_file["embedded_broker_pid"], children(proc.pid)
    assert alive(broker_pid) and kids, "up runs a broker and a serving child"
    if how == "sigkill":
        proc.send_signal(signal.SIGKILL)
    else:   # what a supervisor does: the group gets SIGTERM, the owner SIGKILL before it stopped its broker
        os.killpg(proc.pid, signal.SIGTERM)
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert wait_until(lambda: not alive(broker_pid), 30, interval=0.1), "the embedded broker outlived its owner"
    assert wait_until(lambda: not any(alive(k) for k in kids), 60, interval=0.1), "a child outlived its supervisor"


def test_broker_started_from_a_short_lived_thread_lives_on():
    """The death signal follows the forking thread: the broker must not die with a helper thread."""
    holder: list[EmbeddedBroker] = []
    t = threading.Thread(target=lambda: holder.append(EmbeddedBroker().start()))
    t.start()
    t.join()
    broker = holder[0]
    try:
        time.sleep(1.0)   # a death signal, had it been tied to that thread, would have arrived
        assert alive(broker.pid)
        with socket.create_connection((broker.host, broker.port), timeout=5):
            pass
    finally:
        broker.stop()


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path):
    port, result = _up_with_a_taken_port(tmp_path, "STREAMREC_HTTP_PORT")
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "STREAMREC_HTTP_PORT" in result.stderr
    assert "is up" not in result.stdout and "Traceback" not in result.stderr
    assert running_system(tmp_path / "state") is None


@pytest.mark.parametrize("args", [["up", "--timeout", "2"], ["topics", "--timeout", "2"],
                                  ["replay", "--limit", "10", "--timeout", "2"]])
def test_unreachable_broker_is_named_not_a_traceback(tmp_path, args):
    address = f"127.0.0.1:{free_port()}"   # nothing listens there
    env = command_env(tmp_path / "state", KAFKA_BOOTSTRAP_SERVERS=address,
                      STREAMREC_HTTP_PORT=str(free_port()), STREAMREC_LEARNER_PORT=str(free_port()),
                      STREAMREC_STREAMS_PORT=str(free_port()))
    result = run(args, env, timeout=90)
    assert result.returncode == 2, result.stderr
    assert address in result.stderr and "did not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_replay_without_a_broker_or_running_up_refuses(tmp_path):
    result = run(["replay", "--limit", "10"], command_env(tmp_path / "state"), timeout=60)
    assert result.returncode == 2 and "--throwaway-broker" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
