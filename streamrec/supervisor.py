"""``streamrec up``: run the whole system, supervised, until interrupted.

Starts the embedded broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster), creates
the topics, then runs the streams worker, the learner and serving as child processes with
the same settings. A child that dies is restarted with exponential backoff; Ctrl-C or
SIGTERM stops the children (SIGTERM, then SIGKILL after a grace period) and the broker.
Each child's output goes to ``<state dir>/logs/<name>.log``.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamrec.kafka import ensure_topics
from streamrec.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ProcessSpec:
    name: str
    command: str           # the streamrec sub-command
    module: str            # must be importable for the process to be started
    port_field: str        # the Settings field holding its HTTP port


PROCESSES = (
    ProcessSpec("streams", "streams", "streams.worker", "streams_web_port"),
    ProcessSpec("learner", "learner", "learner.main", "learner_port"),
    ProcessSpec("serving", "serve", "serving.main", "http_port"),
)


@dataclass
class Child:
    spec: ProcessSpec
    url: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    started_at: float = field(default_factory=time.monotonic)

    def start(self) -> None:
        out = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "streamrec.cli", self.spec.command],
                                        env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self.started_at = time.monotonic()

    def stop(self, grace: float = 10.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class Supervisor:
    """Starts, watches and restarts the system's processes."""

    def __init__(self, settings: Settings, only: list[str] | None = None):
        self.settings = settings
        self.children: list[Child] = []
        self._stop = threading.Event()
        logs = Path(settings.state_dir) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **settings.to_env()}
        for spec in PROCESSES:
            if only and spec.name not in only:
                continue
            if importlib.util.find_spec(spec.module.split(".")[0]) is None or _missing(spec.module):
                log.warning("%s is not available in this build; not started", spec.name)
                continue
            port = getattr(settings, spec.port_field)
            self.children.append(Child(spec, f"http://{settings.http_host}:{port}", logs / f"{spec.name}.log",
                                       env))

    def start(self) -> None:
        for child in self.children:
            child.start()
        threading.Thread(target=self._watch, name="supervisor", daemon=True).start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for child in self.children:
                if child.process is None or child.process.poll() is None:
                    if child.process is not None and now - child.started_at > 60:
                        child.backoff = 1.0  # it stayed up: forget earlier crashes
                    continue
                if child.next_start == 0.0:
                    log.error("%s exited with %s; restarting in %.0fs (see %s)", child.spec.name,
                              child.process.returncode, child.backoff, child.log_path)
                    child.next_start = now + child.backoff
                elif now >= child.next_start and not self._stop.is_set():
                    child.restarts += 1
                    child.backoff = min(child.backoff * 2, 30.0)
                    child.next_start = 0.0
                    child.start()

    def stop(self) -> None:
        self._stop.set()
        for child in self.children:
            child.stop()

    def describe(self) -> str:
        lines = [f"  Kafka           {self.settings.bootstrap_servers}"]
        for child in self.children:
            paths = "/recommendations, /metrics" if child.spec.name == "serving" else "/metrics, /healthz, /readyz"
            lines.append(f"  {child.spec.name:<15} {child.url}  ({paths}; log {child.log_path})")
        return "\n".join(lines)


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


def wait_for_signal() -> None:
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()


def main(argv: list[str]) -> int:
    from streamrec.logging_setup import configure_logging
    from streamrec.runtime import embedded_or_configured

    parser = argparse.ArgumentParser(prog="streamrec up", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", help="Kafka cluster (else KAFKA_BOOTSTRAP_SERVERS, else embedded)")
    parser.add_argument("--only", nargs="+", choices=[p.name for p in PROCESSES], help="start only these")
    args = parser.parse_args(argv)
    settings = Settings.from_env(bootstrap_servers=args.bootstrap_servers)
    configure_logging(settings)
    with embedded_or_configured(settings, log_file=_broker_log(settings)) as settings:
        ensure_topics(settings)
        sup = Supervisor(settings, args.only)
        sup.start()
        print("streamrec is up:\n" + sup.describe() + "\nCtrl-C to stop.", flush=True)
        try:
            wait_for_signal()
        finally:
            print("stopping…", flush=True)
            sup.stop()
    return 0


def _broker_log(settings: Settings) -> Path:
    path = Path(settings.state_dir) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path / "broker.log"
