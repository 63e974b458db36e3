"""Serving and a streams worker when the broker is absent at start, frozen, or restarted.

Each scenario (:mod:`harness.chaos.broker`) runs its own embedded broker, since it stops
it; ``streamrec chaos`` runs the 30 s versions.
"""
from __future__ import annotations

import pytest

from harness.chaos.broker import broker_outage, broker_starts_late

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _saw_not_ready_for_the_broker(row: dict, phase: str) -> None:
    seen = row["details"][phase]
    for name in ("serve", "streams"):
        assert seen.get(f"{name}:503_broker", 0) > 0, seen            # said so, with the reason
        assert seen.get(f"{name}:exited", 0) == 0, seen               # and did not die
        assert "unreachable" in row["details"]["reasons"][name]


def test_processes_started_before_the_broker_report_not_ready_then_recover(tmp_path):
    from streamrec.settings import Settings

    settings = Settings(topic_prefix="late-", state_dir=tmp_path / "state", partitions=2, session_timeout_s=6.0)
    row = broker_starts_late(settings, absent_s=8.0)
    print(row)
    _saw_not_ready_for_the_broker(row, "readiness_while_absent")
    assert row["details"]["alive"] and row["details"]["events_flow_after"] and row["recovered"]


def test_frozen_broker_not_ready_meanwhile_serving_still_answers_full_recovery_without_restart(tmp_path):
    from streamrec.settings import Settings

    settings = Settings(topic_prefix="pause-", state_dir=tmp_path / "state", partitions=2, session_timeout_s=6.0)
    row = broker_outage(settings, outage_s=10.0, mode="pause")
    print(row)
    _saw_not_ready_for_the_broker(row, "readiness_during_outage")
    assert row["requests_failed"] == 0 and row["requests_ok"] > 0     # answers from the replica throughout
    d = row["details"]
    assert d["events_flow_before"] and d["events_flow_after"] and d["alive"] and not d["processes_restarted"]


def test_restarted_in_memory_broker_data_loss_is_reported_not_hidden(tmp_path):
    from streamrec.settings import Settings

    settings = Settings(topic_prefix="lost-", state_dir=tmp_path / "state", partitions=2, session_timeout_s=6.0)
    row = broker_outage(settings, outage_s=10.0, mode="restart")
    print(row)
    _saw_not_ready_for_the_broker(row, "readiness_during_outage")
    assert row["requests_failed"] == 0
    d = row["details"]
    # Both processes stayed up and said on /readyz that the broker lost its data...
    assert d["processes_restarted"], d
    assert set(d["data_loss_reported"]) == {"serve", "streams"}
    assert all("lost its data" in r for r in d["data_loss_reported"].values()), d
    # ...and once restarted (as their supervisor would) take new events again.
    assert d["events_flow_after"] and row["recovered"]
