"""Child processes that die with the process that started them, however it ends.

A supervisor stopping a command hard (SIGTERM to its process group, SIGKILL a moment
later) or a test run killed mid-way must not leave an embedded broker or a worker behind
with no parent. Cleanup code in ``finally`` blocks and signal handlers never runs on
SIGKILL, so the kernel does it: each child asks, between ``fork`` and ``exec``, to receive
a signal when its parent goes away (``prctl(PR_SET_PDEATHSIG)``, Linux).

The kernel sends that signal when the *thread* that forked the child exits, not the
process. A child spawned from a short-lived thread (an executor's worker, a supervisor's
watch thread stopped early) would be killed with the thread. So every tied child is
forked from one daemon thread that lives exactly as long as the process.

Stopping a child on purpose (:func:`stop_child`) is SIGTERM, then SIGKILL if it has not
exited after a grace period.

Examples
--------
>>> proc = popen_tied(["sleep", "60"], death_signal=signal.SIGKILL)   # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


# Looked up once in the parent: a child between fork and exec should do as little as it can.
_PRCTL = _load_prctl()


def _tie_to_parent(parent_pid: int, death_signal: int) -> Callable[[], None]:
    def preexec() -> None:
        if _PRCTL(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0) != 0:
            os._exit(126)
        # The parent may have died between fork and prctl: the signal would never come.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), int(death_signal))
    return preexec


class _Spawner(threading.Thread):
    """The one thread every tied child is forked from; a daemon, so it lasts as long as the process."""

    def __init__(self):
        super().__init__(name="tied-child-spawner", daemon=True)
        self.requests: queue.Queue[tuple[Callable[[], subprocess.Popen], Future]] = queue.Queue()

    def run(self) -> None:
        while True:
            fn, future = self.requests.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the caller, who sees it raised
                    future.set_exception(exc)


_spawner: _Spawner | None = None
_spawner_pid = 0            # the process that started it: a forked child must start its own
_spawner_lock = threading.Lock()


def _spawn_in_spawner(fn: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    global _spawner, _spawner_pid
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive() or _spawner_pid != os.getpid():
            _spawner, _spawner_pid = _Spawner(), os.getpid()
            _spawner.start()
        spawner = _spawner
    future: Future = Future()
    spawner.requests.put((fn, future))
    return future.result()


def popen_tied(args: list[str], *, death_signal: int = signal.SIGKILL, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(args, **kwargs)`` whose child gets ``death_signal`` when this process ends.

    Parameters
    ----------
    args
        The command line.
    death_signal
        What the child receives when this process dies: ``SIGKILL`` for a broker (nothing to
        save), ``SIGTERM`` for a worker that should checkpoint on the way out.
    **kwargs
        Passed to :class:`subprocess.Popen` (``preexec_fn`` is taken).

    Returns
    -------
    subprocess.Popen
        The started child. Where ``prctl`` does not exist (not Linux) it is an ordinary child
        and a warning says so.
    """
    if _PRCTL is None:
        log.warning("cannot tie %s to this process's lifetime on %s: it may outlive a killed parent",
                    args[0], sys.platform)
        return subprocess.Popen(args, **kwargs)
    preexec = _tie_to_parent(os.getpid(), death_signal)
    return _spawn_in_spawner(lambda: subprocess.Popen(args, preexec_fn=preexec, **kwargs))


def stop_child(process: subprocess.Popen | None, grace: float, kill_wait: float) -> None:
    """SIGTERM ``process`` if it still runs; SIGKILL it if it has not exited ``grace`` seconds later.

    Parameters
    ----------
    process
        The child (None, or one that has exited: nothing to do).
    grace
        Seconds it has to exit on SIGTERM (a worker checkpoints on the way out).
    kill_wait
        Seconds to wait for it to go after SIGKILL.
    """
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(kill_wait)
