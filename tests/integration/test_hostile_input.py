"""Hostile producers against real, separately started processes (``streamrec chaos`` rows).

``bad-input``: every bad message lands in ``events-dlq`` exactly once with its reason (none
``internal_error``), every valid event is applied exactly once by streams, serving and the
learner, and no process restarted. ``misrouted``: with two streams workers splitting the
partitions, keyless and mis-sent events are re-routed and applied once, each user's state
only ever written to its own partition.
"""
from __future__ import annotations

import json

import pytest

from harness.chaos.hostile import bad_input, misrouted

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bad_input_is_dead_lettered_once_and_valid_events_applied_once_everywhere(settings):
    row = bad_input(settings)
    d = row["details"]
    assert d["streams"] == d["expected"] and d["serving"] == d["expected"]
    assert d["learner"] == sum(d["expected"].values())
    assert row["lost"] == 0 and row["applied_twice"] == 0
    reasons = sorted(headers["reason"].decode() for _, headers, _ in d["dead"])
    assert reasons == d["dead_expected"] and "internal_error" not in reasons
    assert len({key for key, _, _ in d["dead"]}) == len(d["dead"])       # each exactly once
    stubs = [json.loads(value) for _, headers, value in d["dead"] if headers.get("truncated")]
    assert sorted(s["reason"] for s in stubs) == ["bad_encoding", "null_value", "oversized"]
    assert all({"source_topic", "source_partition", "source_offset", "size"} <= set(s) for s in stubs)
    assert d["rerouted_expected"] >= 3 and d["rerouted"] == d["rerouted_expected"]
    assert all(d["alive"])


def test_two_workers_apply_misrouted_events_once_on_the_owners_partition(settings):
    row = misrouted(settings)
    d = row["details"]
    assert row["lost"] == 0 and row["applied_twice"] == 0 and row["dead_lettered"] == 0
    assert row["applied"] == row["events_in"] == 2000
    assert sum(d["rerouted_by_worker"]) >= d["rerouted_expected"] > 0
    assert all(n > 0 for n in d["applied_by_worker"])          # both workers owned partitions
    assert d["state_records_on_foreign_partition"] == 0
