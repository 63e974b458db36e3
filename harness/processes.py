"""Run a streamrec command as a child process with given settings (tests, benchmarks, chaos)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streamrec.kafka.embedded import free_port
from streamrec.kafka.lifetime import popen_tied, stop_child
from streamrec.settings import Settings


class Proc:
    """``python -m harness.cli COMMAND`` with the test's settings, logging to a file."""

    def __init__(self, command: str, settings: Settings, port_field: str | None = None, log_dir: Path | None = None,
                 extra_env: dict[str, str] | None = None):
        self.command = command
        self.extra_env = extra_env or {}
        self.port = free_port() if port_field else None
        self.settings = settings.replace(**{port_field: self.port}) if port_field else settings
        log_dir = Path(log_dir or settings.state_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{command}-{self.port or 0}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Proc":
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1", **self.extra_env}
        # Tied to this process: a test run or benchmark killed hard leaves no worker behind.
        self.process = popen_tied([sys.executable, "-m", "harness.cli", self.command], env=env,
                                  death_signal=signal.SIGTERM, stdout=open(self.log_path, "ab"),
                                  stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60.0) -> "Proc":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except Exception:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.command} not ready in {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_child(self.process, grace=15, kill_wait=10)

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=2) as r:
            return r.read().decode()

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> "Proc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
