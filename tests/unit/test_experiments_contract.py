"""The experiment contract: deterministic assignment, shares, independence, precedence, specs and records."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from streamrec.contracts.experiments import (Arm, Experiment, SpecError, assign, bucket, decode_record, parse_spec,
                                             precedence)
from streamrec.contracts.model_store import Announcement

USERS = [f"user-{i}" for i in range(100_000)]


def experiment(name: str, *shares: float, created_at: float = 1.0) -> Experiment:
    arms = tuple(Arm(f"arm{i}", s) for i, s in enumerate(shares))
    return Experiment(name, arms, created_at=created_at, updated_at=created_at)


def arm_counts(exp: Experiment, users=USERS) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for user in users:
        arm = exp.arm_for(user)
        counts[arm.name if arm else None] = counts.get(arm.name if arm else None, 0) + 1
    return counts


# --- assignment --------------------------------------------------------------------------------

def test_assignment_is_a_pure_function_of_name_and_user():
    exp = experiment("div", 0.5, 0.5)
    first = [exp.arm_for(u).name for u in USERS[:2000]]
    again = [experiment("div", 0.5, 0.5).arm_for(u).name for u in USERS[:2000]]   # another object, same spec
    assert first == again
    assert {bucket("div", "196")} == {bucket("div", "196") for _ in range(10)}
    assert bucket("div", "196") != bucket("div2", "196")
    # The separator keeps name and user apart: "ab"+"c" is not "a"+"bc".
    assert bucket("ab", "c") != bucket("a", "bc")


@pytest.mark.parametrize("shares", [(0.5, 0.5), (0.2, 0.3, 0.5), (0.1, 0.1), (0.05, 0.45, 0.25, 0.25)])
def test_shares_are_respected_over_many_users(shares):
    counts = arm_counts(experiment("shares", *shares))
    for i, share in enumerate(shares):
        assert counts.get(f"arm{i}", 0) / len(USERS) == pytest.approx(share, abs=0.01), counts
    assert counts.get(None, 0) / len(USERS) == pytest.approx(1 - sum(shares), abs=0.01)


def test_buckets_are_uniform():
    points = np.array([bucket("uniform", u) for u in USERS])
    histogram, _ = np.histogram(points, bins=20, range=(0.0, 1.0))
    assert points.min() >= 0.0 and points.max() < 1.0
    assert np.all(np.abs(histogram / len(USERS) - 0.05) < 0.005), histogram


def test_splits_under_different_names_are_independent():
    a, b = experiment("colour", 0.5, 0.5), experiment("layout", 0.5, 0.5)
    table = np.zeros((2, 2))
    for user in USERS:
        table[int(a.arm_for(user).name[-1]), int(b.arm_for(user).name[-1])] += 1
    np.testing.assert_allclose(table / len(USERS), 0.25, atol=0.01)
    correlation = np.corrcoef([bucket("colour", u) for u in USERS[:20_000]],
                              [bucket("layout", u) for u in USERS[:20_000]])[0, 1]
    assert abs(correlation) < 0.03


def test_a_user_is_in_at_most_one_experiment_the_oldest_that_enrols_them():
    older = experiment("older", 0.25, 0.25, created_at=10.0)
    newer = experiment("newer", 0.5, 0.5, created_at=20.0)
    stopped = dataclasses.replace(experiment("stopped", 0.5, 0.5, created_at=1.0), stopped_at=5.0)
    ordered = precedence([newer, stopped, older])
    assert [e.name for e in ordered] == ["older", "newer"]          # stopped ones claim no one
    counts: dict[tuple, int] = {}
    for user in USERS[:40_000]:
        exp, arm = assign(ordered, user)                            # newer enrols everyone older did not
        key = (exp.name, arm.name)
        counts[key] = counts.get(key, 0) + 1
        if older.arm_for(user) is not None:
            assert exp.name == "older" and arm == older.arm_for(user)
        else:
            assert exp.name == "newer" and arm == newer.arm_for(user)
    n = 40_000
    assert counts[("older", "arm0")] / n == pytest.approx(0.25, abs=0.01)
    # The newer experiment's arms stay balanced among the users left to it.
    assert counts[("newer", "arm0")] / counts[("newer", "arm1")] == pytest.approx(1.0, abs=0.05)
    assert assign([], "u") is None


def test_equal_creation_times_are_ordered_by_name():
    b, a = experiment("b", 1.0, 0.0 + 1e-9, created_at=5.0), experiment("a", 0.5, 0.5, created_at=5.0)
    assert [e.name for e in precedence([b, a])] == ["a", "b"]


# --- specs (what the admin API takes) -----------------------------------------------------------

GOOD = {"name": "div-1", "description": "MMR on", "arms": [
    {"name": "control", "share": 0.5},
    {"name": "diverse", "share": 0.5, "diversity": 0.6, "exploration": 0.2, "cooccurrence_weight": 0.5,
     "model_version": 3}]}


def bad(path: str, value):
    """GOOD with the field at ``path`` (``arms.1.share``) replaced (``...`` deletes it)."""
    doc = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key = int(last) if last.isdigit() else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return doc


def test_a_good_spec():
    exp = parse_spec(GOOD)
    assert exp.name == "div-1" and exp.live and exp.enrolled_share == 1.0
    assert exp.arms[1].options() == {"diversity": 0.6, "exploration": 0.2, "cooccurrence_weight": 0.5,
                                     "model_version": 3}
    assert exp.arms[0].options() == {}


@pytest.mark.parametrize("doc, field", [
    (bad("name", ...), "name"),
    (bad("name", "has space"), "name"),
    (bad("name", "x" * 65), "name"),
    (bad("name", 7), "name"),
    (bad("description", "x" * 501), "description"),
    (bad("description", ["x"]), "description"),
    (bad("arms", ...), "arms"),
    (bad("arms", "control,diverse"), "arms"),
    (bad("arms", [{"name": "only", "share": 1.0}]), "arms"),
    (bad("arms", [{"name": f"a{i}", "share": 0.2} for i in range(5)]), "arms"),
    (bad("arms.0", "control"), "arms[0]"),
    (bad("arms.0.name", ...), "arms[0].name"),
    (bad("arms.0.name", "ctl/1"), "arms[0].name"),
    (bad("arms.1.name", "control"), "arms[1].name"),
    (bad("arms.0.share", ...), "arms[0].share"),
    (bad("arms.0.share", 0), "arms[0].share"),
    (bad("arms.0.share", -0.1), "arms[0].share"),
    (bad("arms.0.share", 1.5), "arms[0].share"),
    (bad("arms.0.share", True), "arms[0].share"),
    (bad("arms.0.share", "0.5"), "arms[0].share"),
    (bad("arms.0.share", 0.6), "arms"),                      # 0.6 + 0.5 > 1
    (bad("arms.1.diversity", 1.5), "arms[1].diversity"),
    (bad("arms.1.diversity", float("nan")), "arms[1].diversity"),
    (bad("arms.1.exploration", "a lot"), "arms[1].exploration"),
    (bad("arms.1.cooccurrence_weight", -1), "arms[1].cooccurrence_weight"),
    (bad("arms.1.cooccurrence_weight", 1e6), "arms[1].cooccurrence_weight"),
    (bad("arms.1.model_version", 0), "arms[1].model_version"),
    (bad("arms.1.model_version", 2.5), "arms[1].model_version"),
    (bad("arms.1.model_version", True), "arms[1].model_version"),
    (bad("arms.1.model", {"version": 3}), "arms[1].model"),  # the writer fills the announcement in, never a client
    (bad("colour", "red"), "colour"),
    (bad("created_at", 5.0), "created_at"),                  # a record field, not a spec field
    ([GOOD], "body"),
])
def test_a_bad_spec_names_its_field(doc, field):
    with pytest.raises(SpecError) as err:
        parse_spec(doc)
    assert err.value.field == field, err.value


def test_the_arm_limit_is_the_callers():
    doc = bad("arms", [{"name": f"a{i}", "share": 0.1} for i in range(6)])
    assert len(parse_spec(doc, max_arms=6).arms) == 6
    with pytest.raises(SpecError, match="2 to 5 arms"):
        parse_spec(doc, max_arms=5)


def test_shares_summing_to_one_within_float_error_are_accepted():
    doc = bad("arms", [{"name": "a", "share": 0.1}, {"name": "b", "share": 0.2}, {"name": "c", "share": 0.7}])
    assert parse_spec(doc).enrolled_share == pytest.approx(1.0)


# --- records (the experiments topic) -----------------------------------------------------------

ANNOUNCEMENT = Announcement(3, 100.0, "/models/model-v000003.safetensors", "ab" * 32, 40, 8, {"ndcg10": 0.1})


def record() -> Experiment:
    spec = parse_spec(GOOD)
    arms = (spec.arms[0], dataclasses.replace(spec.arms[1], model=ANNOUNCEMENT))
    return dataclasses.replace(spec, arms=arms, created_at=1000.0, updated_at=1000.0)


def test_records_round_trip_with_the_pinned_announcement():
    rec = record()
    assert decode_record(rec.encode()) == rec
    stopped = rec.stopped(2000.0)
    assert decode_record(stopped.encode()) == stopped and not stopped.live


@pytest.mark.parametrize("raw, field", [
    (None, "body"),
    (b"not json", "body"),
    (b"[" * 100_000 + b"]" * 100_000, "body"),              # too big (and too deep) to decode
    (b"[" * 5000 + b"]" * 5000, "body"),                    # too deep for the json decoder
    (b"[]", "body"),
    (json.dumps({**GOOD, "created_at": 1.0, "updated_at": 1.0}).encode(), "arms[1].model"),   # no announcement
    (json.dumps({**record().to_dict(), "created_at": None}).encode(), "created_at"),
    (json.dumps({**record().to_dict(), "updated_at": 10.0}).encode(), "updated_at"),  # before created_at
    (json.dumps({**record().to_dict(), "stopped_at": "now"}).encode(), "stopped_at"),
    (json.dumps({**record().to_dict(), "hmac": 5}).encode(), "hmac"),
])
def test_an_invalid_record_is_refused_with_its_field(raw, field):
    with pytest.raises(SpecError) as err:
        decode_record(raw)
    assert err.value.field == field


def test_a_pinned_announcement_of_another_version_is_refused():
    doc = record().to_dict()
    doc["arms"][1]["model"]["version"] = 4
    with pytest.raises(SpecError) as err:
        decode_record(json.dumps(doc).encode())
    assert err.value.field == "arms[1].model"


def test_records_are_signed_like_model_announcements():
    rec = record()
    assert rec.signature_problem(None) is None            # no key: nothing is checked
    assert rec.signature_problem("key") == "unsigned"
    signed = rec.signed("key")
    assert decode_record(signed.encode()).signature_problem("key") is None
    assert signed.signature_problem("another key") == "bad_signature"
    # Any change to what it says breaks the signature: a share, an option, the pinned file.
    doc = signed.to_dict()
    doc["arms"][0]["share"] = 0.4
    assert decode_record(json.dumps(doc).encode()).signature_problem("key") == "bad_signature"
    doc = signed.to_dict()
    doc["arms"][1]["model"]["path"] = "/elsewhere/model-v000003.safetensors"
    assert decode_record(json.dumps(doc).encode()).signature_problem("key") == "bad_signature"
    # A stop is a new record: signed anew by its writer.
    assert signed.stopped(2000.0).hmac == ""


def test_the_examples_in_the_docstrings_hold():
    import doctest

    import streamrec.contracts.experiments
    import streamrec.contracts.signing
    import streamrec.observability.arm_quality

    for module in (streamrec.contracts.experiments, streamrec.contracts.signing, streamrec.observability.arm_quality):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
