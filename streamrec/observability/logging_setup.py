"""Logging for every process: human-readable by default, one JSON object per line on request.

Processes call :func:`configure_logging` once at start-up. With ``STREAMREC_LOG_JSON=true``
each record becomes a single JSON line (``ts``, ``level``, ``logger``, ``message``, the
process name, any exception text, and any ``extra={...}`` fields), which log shippers such
as Fluent Bit, Vector or Loki's promtail parse without a regex. Otherwise lines read as
``2024-05-01 12:00:00,123 INFO streams.worker: started``.

Examples
--------
>>> import io, json, logging
>>> from streamrec.settings import Settings
>>> stream = io.StringIO()
>>> _ = configure_logging(Settings(log_json=True, log_level="INFO"), stream=stream)
>>> logging.getLogger("demo").info("hello %s", "world", extra={"partition": 3})
>>> record = json.loads(stream.getvalue())
>>> record["message"], record["level"], record["partition"]
('hello world', 'INFO', 3)
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import sys
from typing import IO, Any

from streamrec.settings import MASK, Settings

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord carries; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# Libraries that are chatty at INFO (Faust/aiokafka log every rebalance step and fetch).
_NOISY = ("aiokafka", "kafka", "faust.transport", "mode", "urllib3", "sentence_transformers")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line.

    Values that JSON cannot encode are written with ``repr`` rather than dropped, so a log
    line is never lost to a serialisation error.
    """

    def __init__(self, process_name: str | None = None):
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process_name:
            payload["process"] = self.process_name
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in payload and not key.startswith("_"):
                payload[key] = value
        return json.dumps(payload, default=repr, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """Another formatter's output with every secret value replaced by ``***``.

    Applied to the whole formatted line (message, extra fields, traceback), so a secret
    reaches no log however it got into a record: a settings dump, a client's config in an
    error, an exception's text.
    """

    def __init__(self, inner: logging.Formatter, secrets: list[str]):
        super().__init__()
        self.inner = inner
        # As written and as a JSON line escapes it; longest first, so a secret containing
        # another is replaced whole.
        forms = {s for s in secrets if s} | {json.dumps(s, ensure_ascii=False)[1:-1] for s in secrets if s}
        self.secrets = sorted(forms, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def configure_logging(settings: Settings, *, process_name: str | None = None,
                      stream: IO[str] | None = None) -> logging.Handler:
    """Install one root handler according to ``settings.log_level`` and ``settings.log_json``.

    Calling it again replaces the handler it installed before (tests and the supervisor
    call it more than once), and leaves handlers installed by others (pytest's caplog) alone.

    Parameters
    ----------
    settings
        Uses ``log_level`` (a name such as ``"INFO"`` or a number) and ``log_json``.
    process_name
        Added to every JSON line as ``process`` (e.g. ``"streams"``), so lines from several
        processes sharing one log pipeline can be told apart. Defaults to the
        ``STREAMREC_PROCESS`` environment variable when set.
    stream
        Where to write; standard error by default.

    Returns
    -------
    logging.Handler
        The handler installed on the root logger.
    """
    level = settings.log_level
    level = logging.getLevelName(level.upper()) if isinstance(level, str) and not level.isdigit() else int(level)
    if not isinstance(level, int):
        raise ValueError(f"STREAMREC_LOG_LEVEL={settings.log_level!r}: not a log level")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._streamrec = True  # type: ignore[attr-defined]  # marks ours for replacement
    if settings.log_json:
        formatter: logging.Formatter = JsonFormatter(process_name or os.environ.get("STREAMREC_PROCESS"))
    else:
        formatter = logging.Formatter(HUMAN_FORMAT)
    handler.setFormatter(RedactingFormatter(formatter, settings.secrets()))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_streamrec", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler
