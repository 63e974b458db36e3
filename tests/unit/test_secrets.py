"""Secrets stay out of `streamrec settings`, the settings' repr and every log line."""
from __future__ import annotations

import io
import json
import logging

import pytest

from harness import settings_cli
from streamrec.observability.logging_setup import configure_logging
from streamrec.settings import Settings, is_secret

PASSWORD, TOKEN = "hunter2-sasl-Pw", "adm1n-t0ken-xyz"
ENV = {"KAFKA_SASL_PASSWORD": PASSWORD, "STREAMREC_ADMIN_TOKEN": TOKEN, "KAFKA_SASL_USERNAME": "alice"}


pytestmark = pytest.mark.usefixtures("restore_root_logger")


def test_secret_names():
    assert is_secret("sasl_password") and is_secret("serving_admin_token") and is_secret("model_signing_key")
    assert not any(map(is_secret, ("sasl_username", "keyframes", "learner_group_id", "topic_prefix")))


def test_settings_command_masks_secrets_and_shows_the_rest(monkeypatch, capsys):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert settings_cli.main([]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out and TOKEN not in out
    lines = {line.split("=")[0].strip(): line.split("=", 1)[1].split()[0] for line in out.splitlines()}
    assert lines["KAFKA_SASL_PASSWORD"] == "***" and lines["STREAMREC_ADMIN_TOKEN"] == "***"
    assert lines["KAFKA_SASL_USERNAME"] == "alice"


def test_unset_secret_is_shown_as_unset():
    s = Settings.from_env({})
    assert s.shown("sasl_password") is None and s.secrets() == []


def test_repr_masks_secrets_but_the_values_stay_usable():
    s = Settings.from_env(ENV)
    assert PASSWORD not in repr(s) and TOKEN not in repr(s) and "alice" in repr(s)
    assert s.sasl_password == PASSWORD and s.to_env()["KAFKA_SASL_PASSWORD"] == PASSWORD  # children need it


@pytest.mark.parametrize("as_json", [False, True])
def test_log_lines_never_carry_a_secret(as_json):
    s = Settings.from_env({**ENV, "STREAMREC_LOG_JSON": str(as_json).lower()})
    out = io.StringIO()
    configure_logging(s, stream=out)
    log = logging.getLogger("secrets-test")
    log.info("settings: %s", s)
    log.info("connecting with sasl.password=%s", PASSWORD, extra={"token": TOKEN})
    try:
        raise RuntimeError(f"auth failed for {PASSWORD}")
    except RuntimeError:
        log.exception("broker said no")
    text = out.getvalue()
    assert PASSWORD not in text and TOKEN not in text
    assert text.count("***") >= 4
    if as_json:
        assert all(json.loads(line) for line in text.splitlines())
