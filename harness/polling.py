"""Waiting for a condition by polling it: the one loop the chaos scenarios, benchmarks and tests use.

Examples
--------
>>> calls = iter([False, False, True])
>>> wait_until(lambda: next(calls), timeout=5.0, interval=0.0)
True
>>> wait_until(lambda: False, timeout=0.0)
False
"""
from __future__ import annotations

import time
from typing import Callable


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.25) -> bool:
    """Call ``predicate`` every ``interval`` seconds until it is true or ``timeout`` seconds pass.

    Returns whether it came true. It is asked once more at the deadline, so a condition met
    during the last sleep still counts.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def wait_or_fail(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> None:
    """:func:`wait_until`, raising :class:`TimeoutError` naming ``what`` if it never comes true."""
    if not wait_until(predicate, timeout, interval):
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
