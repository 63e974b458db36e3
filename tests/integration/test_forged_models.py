"""Forged model announcements against real, separately started serving and streams processes.

Runs the ``streamrec chaos forged-models`` scenario (:mod:`harness.chaos.models`) and
asserts its guarantees on the row it returns: serving keeps answering, ``/readyz`` stays
truthful, no forged version is ever served or adopted, each forgery is refused by the check
it targets (counted by reason in both processes), the next real version is installed, and the
rollback list (and ``/admin/reload``) holds only versions that loaded.
"""
from __future__ import annotations

import pytest

from harness.chaos.models import forged_models

pytestmark = pytest.mark.integration


def test_forged_announcements_are_refused_and_the_next_real_version_is_served(settings):
    row = forged_models(settings, clients=2)
    d = row["details"]
    assert d["violations"] == [], d
    assert row["faults_injected"] == len(d["forged"]) >= 9
    assert set(d["forged"]) == {"outside_models_dir", "not_regular_file", "too_large", "unsigned", "bad_signature",
                                "checksum", "version_mismatch", "undecodable"}
    # Serving kept answering with real versions only, and said ready throughout.
    assert row["requests_ok"] > 0 and row["requests_failed"] == 0
    assert set(d["versions_answered"]) <= {1, 2}
    assert set(d["readyz_during"]) == {200} and d["readyz_after"] == 200
    # The next real version arrived in both processes; refused ones never became current.
    assert d["streams_version"] == 2
    assert d["rollback_list"] == [1, 2]
    assert d["reload"] == {"status": 200, "version": 2}
    for process in ("serving", "streams"):
        assert sum(d["refused"][process].values()) == row["faults_injected"], d["refused"]
