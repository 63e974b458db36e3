"""Logging: readable lines by default, one JSON object per line with STREAMREC_LOG_JSON."""
from __future__ import annotations

import io
import json
import logging

import pytest

from streamrec.observability.logging_setup import configure_logging
from streamrec.settings import Settings


pytestmark = pytest.mark.usefixtures("restore_root_logger")


def test_human_readable_by_default():
    out = io.StringIO()
    configure_logging(Settings.from_env({}), stream=out)
    logging.getLogger("streams.worker").info("applied %d events", 12)
    logging.getLogger("streams.worker").debug("not shown at INFO")
    line = out.getvalue().strip()
    assert line.endswith("INFO streams.worker: applied 12 events")
    assert "not shown" not in out.getvalue()


def test_json_one_object_per_line_with_extras_and_exceptions():
    out = io.StringIO()
    configure_logging(Settings.from_env({"STREAMREC_LOG_JSON": "true", "STREAMREC_LOG_LEVEL": "debug"}),
                      process_name="learner", stream=out)
    log = logging.getLogger("learner.service")
    log.debug("cycle done", extra={"version": 7, "loss": 0.25, "path": object()})
    try:
        raise ValueError("bad batch\nsecond line")
    except ValueError:
        log.exception("cycle failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2                       # a multi-line traceback stays on one line
    first, second = map(json.loads, lines)
    assert first["level"] == "DEBUG" and first["message"] == "cycle done"
    assert first["logger"] == "learner.service" and first["process"] == "learner"
    assert first["version"] == 7 and first["loss"] == 0.25
    assert first["path"].startswith("<object")  # not JSON-encodable: repr, never a lost line
    assert first["ts"].endswith("+00:00")
    assert "ValueError: bad batch" in second["exc_info"]


def test_reconfiguring_replaces_our_handler_only():
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    configure_logging(Settings(), stream=first)
    configure_logging(Settings(log_json=True), stream=second)
    logging.getLogger("x").warning("once")
    assert first.getvalue() == "" and json.loads(second.getvalue())["message"] == "once"
    assert other in logging.getLogger().handlers


def test_bad_level_is_an_error():
    with pytest.raises(ValueError):
        configure_logging(Settings(log_level="LOUD"), stream=io.StringIO())
