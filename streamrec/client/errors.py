"""The exceptions every streamrec client raises."""
from __future__ import annotations


class RecError(Exception):
    """Base class of client errors."""


class RecTimeout(RecError, TimeoutError):
    """No answer within the client's timeout."""


class RecUnavailable(RecError):
    """The service is overloaded (HTTP 503) or cannot be reached; ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RecRequestError(RecError):
    """The service rejected the request: ``status`` (HTTP-like) and the ``field`` at fault."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(f"{status} {field + ': ' if field else ''}{message}")
        self.status, self.message, self.field = status, message, field
