"""Moved to harness.processes (benchmarks and chaos use it too); kept as an alias for tests."""
from harness.processes import Proc  # noqa: F401
