"""Which checkpoint offsets a restarted learner may trust (pure logic of learner.checkpoint)."""
from learner.checkpoint import stale_offsets


def test_offsets_within_the_log_are_trusted():
    assert stale_offsets({"ev:0": 18, "ev:1": 3}, "ev", {0: 18, 1: 9}, "c1", "c1") == {}


def test_an_offset_beyond_the_end_is_stale_and_only_that_partition():
    stale = stale_offsets({"ev:0": 120, "ev:1": 3}, "ev", {0: 18, 1: 9}, "c1", "c1")
    assert list(stale) == ["ev:0"] and "120" in stale["ev:0"] and "18" in stale["ev:0"]


def test_another_cluster_makes_every_offset_of_the_topic_stale_even_inside_the_new_log():
    stale = stale_offsets({"ev:0": 5, "ev:1": 2, "other:0": 7}, "ev", {0: 50, 1: 50}, "c1", "c2")
    assert sorted(stale) == ["ev:0", "ev:1"]
    assert all("c1" in why and "c2" in why for why in stale.values())


def test_unknown_cluster_falls_back_to_the_end_check():
    # A checkpoint written before cluster ids were recorded: only the watermark can tell.
    assert stale_offsets({"ev:0": 5}, "ev", {0: 50}, None, "c2") == {}
    assert list(stale_offsets({"ev:0": 60}, "ev", {0: 50}, None, "c2")) == ["ev:0"]
