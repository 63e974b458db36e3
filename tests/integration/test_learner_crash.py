"""The learner SIGKILLed while it trains and inside a file write, with serving answering
throughout (see :mod:`streamrec.chaos.learner` for the scenario)."""
import pytest

from streamrec.chaos.learner import learner_crash

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_learner_killed_while_training_and_writing_loses_nothing_serving_keeps_answering(settings, ml100k):
    row = learner_crash(settings, ml100k, n_events=6000, seed=0)
    d = row["details"]
    assert row["faults_injected"] == 2
    assert (row["lost"], row["applied_twice"]) == (0, 0)          # resumed from checkpoint + offsets
    assert row["requests_failed"] == 0 and d["requests_ok"] > 50    # serving answered throughout
    assert d["version_went_backwards"] == 0
    assert d["announced_files_failing_checksum"] == [] and d["announced_tmp_files"] == 0
    assert d["serving_load_errors"] == 0
    assert d["tmp_files_left_by_kill"] >= 1                        # the kill did land mid-write
    assert d["final_version"] > d["first_trained_version"]         # versions continue, no restart from 0
