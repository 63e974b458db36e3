"""Moved to streamrec.processes (benchmarks and chaos use it too); kept as an alias for tests."""
from streamrec.processes import Proc  # noqa: F401
