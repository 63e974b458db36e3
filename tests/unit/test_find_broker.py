"""How clients with no KAFKA_BOOTSTRAP_SERVERS find a running ``streamrec up``: the run file of
their state directory first, then the embedded broker's fixed port, else a message that says
where it looked; and ``up`` refuses a taken broker port instead of moving."""
from __future__ import annotations

import os
import socket

import pytest

from streamrec.client import RecUnavailable, TopicRecClient
from streamrec.kafka.runfile import find_broker, no_broker_found, write_run_file
from streamrec.kafka.runtime import StartupError, embedded_or_configured
from streamrec.settings import Settings


@pytest.fixture
def listening():
    """A loopback port something listens on (as a running broker would)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def as_streamrec(monkeypatch):
    """Make this test process count as a live streamrec command, as the owner of a run file does."""
    from streamrec.kafka import runfile

    monkeypatch.setattr(runfile, "is_streamrec_process", lambda pid: pid == os.getpid())


def test_configured_servers_win(tmp_path, listening):
    s = Settings(bootstrap_servers="kafka:9092", state_dir=tmp_path, broker_port=listening)
    assert find_broker(s) == ("kafka:9092", "KAFKA_BOOTSTRAP_SERVERS")


def test_run_file_of_the_state_directory_comes_before_the_port(tmp_path, listening, as_streamrec):
    write_run_file(tmp_path, bootstrap_servers="127.0.0.1:4242", broker_pid=None, urls={})
    address, how = find_broker(Settings(state_dir=tmp_path, broker_port=listening))
    assert address == "127.0.0.1:4242" and f"pid {os.getpid()}" in how


def test_the_fixed_port_is_used_when_something_listens_there(tmp_path, listening):
    address, how = find_broker(Settings(state_dir=tmp_path, broker_port=listening))
    assert address == f"127.0.0.1:{listening}" and "STREAMREC_BROKER_PORT" in how


def test_nothing_found_says_where_it_looked(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        idle = s.getsockname()[1]      # bound, not listening: connections are refused
        settings = Settings(state_dir=tmp_path, broker_port=idle)
        assert find_broker(settings) is None
        message = no_broker_found(settings)
    assert f"127.0.0.1:{idle}" in message and "STREAMREC_BROKER_PORT" in message and str(tmp_path) in message
    assert find_broker(Settings(state_dir=tmp_path, broker_port=0)) is None
    with pytest.raises(RecUnavailable, match="no Kafka found"):
        TopicRecClient(Settings(state_dir=tmp_path, broker_port=0))


def test_a_taken_broker_port_is_named_not_moved(listening):
    with pytest.raises(StartupError) as err:
        with embedded_or_configured(Settings(), port=listening):
            pytest.fail("started on a taken port")
    text = str(err.value)
    assert f"port {listening}" in text and "STREAMREC_BROKER_PORT" in text and "\n" not in text
