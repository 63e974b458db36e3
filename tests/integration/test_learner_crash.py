"""The learner SIGKILLed inside a training cycle, inside a model file's write and inside a
checkpoint's write, with serving answering throughout (scenario: :mod:`harness.chaos.learner`)."""
import pytest

from harness.chaos.learner import learner_crash
from streamrec.contracts.model_store import remove_stale_temporaries

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_learner_killed_while_training_and_writing_loses_nothing_serving_keeps_answering(settings, ml100k):
    row = learner_crash(settings, ml100k, n_events=5000, seed=0)
    d = row["details"]
    assert [k["during"] for k in d["kills"]] == ["train", "version", "checkpoint"]
    assert row["faults_injected"] == 3
    # The kills landed where intended: mid-cycle, and between a temporary copy and its rename.
    assert d["kills"][0]["cycle_in_progress_before_kill"]
    assert d["kills"][1]["file"].startswith(".model-v") and d["kills"][1]["left_mid_write"]
    assert d["kills"][2]["file"].startswith(".checkpoint") and d["kills"][2]["left_mid_write"]
    # Every event learnt exactly once across three kills (checkpointed state + offsets).
    assert d["caught_up"] and (row["applied"], row["lost"], row["applied_twice"]) == (row["events_in"], 0, 0)
    # Serving answered every call, never went back a version, only ever used verified files.
    assert row["requests_failed"] == 0 and d["requests_ok"] > 50
    assert d["version_went_backwards"] == 0 and d["served_versions_not_verified"] == []
    assert max(d["versions_served"]) > d["first_trained_version"]
    assert d["announced_files_failing_checksum"] == [] and d["announced_tmp_files"] == 0
    assert d["serving_load_errors"] == {}
    # Each restart resumed from the checkpoint, never reused an announced version number,
    # and removed the temporary file the kill left behind.
    for kill in d["kills"]:
        assert kill["checkpoint_events_seen"] > 0 and kill["checkpoint_version"] >= d["first_trained_version"]
        assert kill["resumed_at_version"] >= kill["newest_announced"]
    assert d["final_version"] > max(k["newest_announced"] for k in d["kills"])
    assert d["tmp_files_left_after_restart"] == []


def test_remove_stale_temporaries_deletes_only_interrupted_copies(tmp_path):
    (tmp_path / ".checkpoint.safetensors.tmp-123").write_bytes(b"half")
    (tmp_path / ".model-v000004.safetensors.tmp-9").write_bytes(b"half")
    (tmp_path / "model-v000003.safetensors").write_bytes(b"whole")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".checkpoint.safetensors.tmp-123", ".model-v000004.safetensors.tmp-9"]
    assert [p.name for p in tmp_path.iterdir()] == ["model-v000003.safetensors"]
    assert remove_stale_temporaries(tmp_path / "missing") == []
