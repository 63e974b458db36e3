"""``streamrec up``: run the whole system, supervised, until interrupted.

Starts the embedded broker on ``STREAMREC_BROKER_PORT`` (19092 unless set) unless
``KAFKA_BOOTSTRAP_SERVERS`` names a cluster, creates the topics, then runs the streams
worker, the learner and serving as child processes with the same settings. A child that dies is restarted with exponential backoff; Ctrl-C or
SIGTERM stops the children (SIGTERM, then SIGKILL after a grace period) and the broker.
Each child's output goes to ``<state dir>/logs/<name>.log``. ``--serving-instances N`` runs N
sharded serving instances (``serving-0`` … on ``STREAMREC_HTTP_PORT + i``,
:mod:`harness.serving_instances`), each keeping the users of its share of the partitions and
forwarding requests for the others'.

Start-up fails fast, with a message and exit status 2, when another ``up`` runs on the same
state directory, when a process's HTTP port or the embedded broker's port is taken (the
message names the port and its setting), or when the configured broker does
not answer; and if a process exits before its first ``/healthz`` answer, ``up`` stops
everything and shows that process's log instead of restarting it forever. "is up" is
printed once every process answers. The children and the embedded broker are tied to this
process's lifetime (:mod:`streamrec.kafka.lifetime`): killed hard, it takes them with it. While
it runs, ``<state dir>/run.json`` (:mod:`streamrec.kafka.runfile`) tells other commands where
its broker is; commands run elsewhere find it on the fixed port.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.serving_instances import serving_instances
from streamrec.kafka.lifetime import popen_tied
from streamrec.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ProcessSpec:
    name: str
    command: str           # the streamrec sub-command
    port_field: str        # the Settings field holding its HTTP port


PROCESSES = (
    ProcessSpec("streams", "streams", "streams_web_port"),
    ProcessSpec("learner", "learner", "learner_port"),
    ProcessSpec("serving", "serve", "http_port"),
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
    name: str = ""         # the process's own name: its spec's, or serving-<i> for a sharded instance

    def __post_init__(self) -> None:
        self.name = self.name or self.spec.name

    def start(self) -> None:
        out = open(self.log_path, "ab")
        # SIGTERM if this supervisor dies: the child checkpoints and exits instead of lingering.
        self.process = popen_tied([sys.executable, "-m", "harness.cli", self.spec.command],
                                  death_signal=signal.SIGTERM, env=self.env, stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
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

    def __init__(self, settings: Settings, only: list[str] | None = None, serving: int = 1):
        self.settings = settings
        self.children: list[Child] = []
        self._stop = threading.Event()
        logs = Path(settings.state_dir) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **settings.to_env()}
        for spec in PROCESSES:
            if only and spec.name not in only:
                continue
            if spec.name == "serving":
                for instance in serving_instances(settings, serving):
                    self.children.append(Child(spec, f"http://{settings.http_host}:{instance.port}",
                                               logs / f"{instance.name}.log", {**env, **instance.env},
                                               name=instance.name))
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
                    log.error("%s exited with %s; restarting in %.0fs (see %s)", child.name,
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

    def wait_started(self, timeout: float = 180.0) -> list[str]:
        """Wait until every child answers ``/healthz``; the names of those that never did.

        Raises :class:`~streamrec.kafka.runtime.StartupError` with the end of its log when a child
        exits first: a process that cannot start (a port taken meanwhile, a bad setting)
        would otherwise be restarted forever behind an "is up".
        """
        from streamrec.kafka.runtime import StartupError

        waiting = {child.name: child for child in self.children}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for name, child in list(waiting.items()):
                if child.restarts or (child.process is not None and child.process.poll() is not None):
                    raise StartupError(f"{name} exited during start-up (status {child.process.returncode}); "
                                       f"the end of {child.log_path}:\n{_tail(child.log_path)}")
                if _answers(child.url + "/healthz"):
                    del waiting[name]
            time.sleep(0.5)
        return sorted(waiting)

    def describe(self, embedded: bool = False) -> str:
        where = " (embedded, in memory; STREAMREC_BROKER_PORT)" if embedded else ""
        lines = [f"  Kafka           {self.settings.bootstrap_servers}{where}"]
        for child in self.children:
            paths = "/recommendations, /metrics" if child.spec.name == "serving" else "/metrics, /healthz, /readyz"
            lines.append(f"  {child.name:<15} {child.url}  ({paths}; log {child.log_path})")
        return "\n".join(lines)


def wait_for_signal() -> None:
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()


def main(argv: list[str]) -> int:
    from streamrec.observability.logging_setup import configure_logging
    from streamrec.kafka.runfile import remove_run_file, write_run_file
    from streamrec.kafka.runtime import embedded_or_configured, require_broker

    parser = argparse.ArgumentParser(prog="streamrec up", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", help="Kafka cluster (else KAFKA_BOOTSTRAP_SERVERS, else embedded)")
    parser.add_argument("--only", nargs="+", choices=[p.name for p in PROCESSES], help="start only these")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for a configured broker to answer (default 30)")
    parser.add_argument("--serving-instances", type=int, default=1, metavar="N",
                        help="sharded serving: N instances on STREAMREC_HTTP_PORT + 0..N-1, each keeping the users "
                             "of its share of the partitions (default 1; at most STREAMREC_PARTITIONS)")
    args = parser.parse_args(argv)
    settings = Settings.from_env(bootstrap_servers=args.bootstrap_servers)
    try:
        serving_instances(settings, args.serving_instances)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(settings)
    preflight(settings, args.only, args.serving_instances)
    broker_pid: list[int] = []
    with embedded_or_configured(settings, log_file=_broker_log(settings), port=settings.broker_port,
                                on_start=lambda b: broker_pid.append(b.pid)) as settings:
        require_broker(settings, args.timeout)
        sup = Supervisor(settings, args.only, args.serving_instances)
        try:
            sup.start()
            late = sup.wait_started()
            write_run_file(settings.state_dir, bootstrap_servers=settings.bootstrap_servers,
                           broker_pid=broker_pid[0] if broker_pid else None,
                           urls={c.name: c.url for c in sup.children})
            note = f"\n  (not answering /healthz yet: {', '.join(late)})" if late else ""
            print("streamrec is up:\n" + sup.describe(embedded=bool(broker_pid)) + note + "\nCtrl-C to stop.",
                  flush=True)
            wait_for_signal()
        finally:
            print("stopping…", flush=True)
            sup.stop()
            remove_run_file(settings.state_dir)
    return 0


def preflight(settings: Settings, only: list[str] | None = None, serving: int = 1) -> None:
    """Refuse to start beside another ``up`` on this state directory or on a taken port.

    The embedded broker's port (``STREAMREC_BROKER_PORT``, when no Kafka is configured) is
    checked with the processes' HTTP ports: taken, ``up`` names it instead of moving elsewhere,
    where no client would look.
    """
    from streamrec.kafka.runfile import run_file_path, running_system
    from streamrec.kafka.runtime import StartupError, check_port_free

    other = running_system(settings.state_dir)
    if other is not None:
        raise StartupError(f"another streamrec {other.get('command', 'up')} (pid {other['pid']}, Kafka "
                           f"{other.get('bootstrap_servers')}) is running on state directory {settings.state_dir} "
                           f"({run_file_path(settings.state_dir)}): stop it first, or give this one another "
                           "STREAMREC_STATE_DIR and other ports")
    for spec in PROCESSES:
        if not only or spec.name in only:
            env = Settings.__dataclass_fields__[spec.port_field].metadata["env"]
            if spec.name == "serving":
                for i, instance in enumerate(serving_instances(settings, serving)):
                    what = f"{instance.name} ({env}{f' + {i}' if i else ''})"
                    check_port_free(settings.http_host, instance.port, what)
                continue
            check_port_free(settings.http_host, getattr(settings, spec.port_field), f"{spec.name} ({env})")
    if not settings.bootstrap_servers and settings.broker_port:
        check_port_free("127.0.0.1", settings.broker_port, "embedded broker (STREAMREC_BROKER_PORT)")


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _broker_log(settings: Settings) -> Path:
    path = Path(settings.state_dir) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path / "broker.log"
