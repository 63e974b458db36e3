"""`streamrec up` stopped (its embedded broker with it) and started again on the same state dir.

The new broker is empty and has another cluster id; the learner's checkpoint still holds
offsets into the old log. Every new event must be learnt and applied, and the learner and
serving must say on /readyz what happened (see :mod:`harness.chaos.restart`).
"""
from __future__ import annotations

from harness.chaos.restart import restart_kept_state
from streamrec.settings import Settings
from tests.conftest import DATA_DIR


def test_new_events_after_a_restart_on_an_empty_broker_are_all_applied(tmp_path, ml100k):
    row = restart_kept_state(Settings(state_dir=tmp_path, data_dir=DATA_DIR), ml100k, first=1500, n=300,
                             timeout=240)
    details = row["details"]
    assert details["first_run"]["streams"] and details["first_run"]["learner_version"], details
    assert details["applied_after_restart"] == {"streams": 300, "learner": 300}, details
    assert row["lost"] == 0 and row["applied_twice"] == 0
    learner_notes, serving_notes = details["readyz_notes"]["learner"], details["readyz_notes"]["serving"]
    assert any("earliest offset" in note for note in learner_notes), learner_notes
    assert any("not in the catalogue" in note for note in serving_notes), serving_notes
