"""The run file: what a running ``streamrec up`` tells other commands about itself.

``streamrec up`` (and ``demo``) write ``<state dir>/run.json`` once the system is started:
the owner's pid, the Kafka bootstrap address, the embedded broker's pid when there is one,
and each process's URL. Other commands read it:

* ``streamrec replay`` with no ``KAFKA_BOOTSTRAP_SERVERS`` publishes into the running
  system's broker instead of a throwaway broker of its own;
* a second ``streamrec up`` on the same state directory refuses to start (two learners
  would write one checkpoint) and names the one that runs;
* the clients (``TopicRecClient()``, ``EventProducer()``, ``streamrec recommend --via
  topic``) find the broker through :func:`find_broker`: ``KAFKA_BOOTSTRAP_SERVERS`` when
  set, else this file, else an embedded broker listening on ``STREAMREC_BROKER_PORT``
  (19092 unless set: where ``up`` started in any directory puts it).

A run file whose pid is no longer a live ``streamrec`` process (the owner was SIGKILLed and
could not remove it) is stale and ignored.

Examples
--------
>>> import tempfile
>>> write_run_file(tempfile.mkdtemp(), bootstrap_servers="127.0.0.1:9092", broker_pid=None, urls={}).name
'run.json'
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from streamrec.settings import Settings

RUN_FILE = "run.json"
EMBEDDED_HOST = "127.0.0.1"


def run_file_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / RUN_FILE


def write_run_file(state_dir: str | Path, *, bootstrap_servers: str, broker_pid: int | None,
                   urls: dict[str, str], command: str = "up") -> Path:
    """Write the run file atomically (a reader never sees half of it); returns its path."""
    path = run_file_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"pid": os.getpid(), "command": command, "bootstrap_servers": bootstrap_servers,
           "embedded_broker_pid": broker_pid, "urls": urls, "started_at": time.time()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)
    return path


def remove_run_file(state_dir: str | Path) -> None:
    """Remove the run file if this process wrote it (never another instance's)."""
    path = run_file_path(state_dir)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running_system(state_dir: str | Path) -> dict | None:
    """The run file's contents if its owner is a live ``streamrec`` process, else None."""
    try:
        doc = json.loads(run_file_path(state_dir).read_text())
        pid = int(doc["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc if is_streamrec_process(pid) else None


def is_streamrec_process(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process running a streamrec command.

    The command-line check guards against a recycled pid after the owner died. A command is
    started as the ``streamrec`` console script or as ``python -m harness.cli``.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        if state in (b"Z", b"X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        return b"streamrec" in cmdline or b"harness.cli" in cmdline
    except (OSError, IndexError):
        return False


def find_broker(settings: Settings) -> tuple[str, str] | None:
    """Where a client with these settings finds Kafka: ``(bootstrap servers, how found)`` or None.

    In order: ``KAFKA_BOOTSTRAP_SERVERS``; the running ``up`` of ``settings.state_dir`` (its run
    file); a broker listening on loopback at ``settings.broker_port`` (0: not looked for).
    The last is what lets a client in another directory find ``up`` with no configuration;
    it only checks that something accepts connections there.

    >>> find_broker(Settings(bootstrap_servers="kafka:9092"))
    ('kafka:9092', 'KAFKA_BOOTSTRAP_SERVERS')
    """
    if settings.bootstrap_servers:
        return settings.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS"
    run = running_system(settings.state_dir)
    if run is not None and run.get("bootstrap_servers"):
        return run["bootstrap_servers"], f"the running streamrec {run.get('command', 'up')} (pid {run['pid']})"
    port = settings.broker_port
    if port and _listening(EMBEDDED_HOST, port):
        return f"{EMBEDDED_HOST}:{port}", f"the broker listening on STREAMREC_BROKER_PORT {port}"
    return None


def no_broker_found(settings: Settings) -> str:
    """The explanation a client gives when :func:`find_broker` found nothing."""
    where = f"nothing listens on {EMBEDDED_HOST}:{settings.broker_port} (STREAMREC_BROKER_PORT)" \
        if settings.broker_port else "STREAMREC_BROKER_PORT is 0 (not looked for)"
    return (f"no Kafka found: KAFKA_BOOTSTRAP_SERVERS is not set, no streamrec up runs on state directory "
            f"{settings.state_dir} (no live {run_file_path(settings.state_dir)}) and {where}; start `streamrec up` "
            "or set KAFKA_BOOTSTRAP_SERVERS")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
