"""The prequential protocol under event semantics: which events are scored, what each request
excludes, and what each kind of method learns, for the repeat policies exclude and allow."""
from __future__ import annotations

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.evaluation.prequential import plan_stream, prequential, run_method
from harness.evaluation.system_variants import OnlineVectorsVariant
from streamrec.baselines import MostPopular
from streamrec.contracts.items import Item
from streamrec.contracts.semantics import event_semantics
from streamrec.settings import Settings

SEMANTICS = "click=1,dislike=-1"
STREAM = [("u", "0", "click"), ("u", "1", "click"), ("u", "0", "click"),   # 2: a repeat
          ("u", "2", "dislike"),                                            # 3: negative, 2 rejected
          ("u", "3", "click"), ("u", "2", "click"),                          # 5: 2 liked after all
          ("u", "1", "click"), ("v", "2", "dislike"), ("v", "0", "click")]


def stream() -> Dataset:
    n = len(STREAM)
    return Dataset("toy", np.array([u for u, _, _ in STREAM]), np.array([i for _, i, _ in STREAM]),
                   np.arange(n, dtype=np.float64), np.ones(n, dtype=np.float32),
                   [Item(i, f"item {i}") for i in "0123"], event_types=np.array([t for _, _, t in STREAM]))


def test_under_exclude_repeats_and_negative_events_are_not_scored():
    plan = plan_stream(stream(), block=1, semantics=event_semantics(SEMANTICS, repeat="exclude"))
    assert plan.scored.tolist() == [True, True, False, False, True, False, False, False, True]
    assert (plan.repeats, plan.n_negative) == (3, 2)
    assert plan.exclusions(4).tolist() == [0, 1, 2]          # everything u had, the disliked item too


def test_under_allow_repeats_are_scored_and_only_rejected_items_are_excluded():
    plan = plan_stream(stream(), block=1, semantics=event_semantics(SEMANTICS, repeat="allow"))
    # 5 names an item u rejected at that moment (it could not be recommended): not scored.
    assert plan.scored.tolist() == [True, True, True, False, True, False, True, False, True]
    assert [plan.exclusions(j).tolist() for j in (2, 4, 6, 8)] == [[], [2], [], [2]]


def test_every_method_is_kept_from_rejected_items_and_baselines_learn_no_negative_event():
    plan = plan_stream(stream(), block=1, semantics=event_semantics(SEMANTICS, repeat="allow"))
    popular = MostPopular()
    run = run_method(popular, plan, k=4)
    assert popular.counts.tolist() == [3.0, 2.0, 1.0, 1.0]   # the dislikes of 2 counted for nothing
    requests = np.flatnonzero(plan.scored)
    for served, j in zip(run.lists, requests):
        assert not set(served.tolist()) & set(plan.exclusions(j).tolist())
    assert 2 not in run.lists[list(requests).index(4)]        # u had rejected 2 by then
    assert 0 in run.lists[list(requests).index(2)]            # a repeat may be recommended, and is a hit
    assert run.ranks[list(requests).index(2)] >= 0


def test_system_variants_learn_negative_events_and_take_no_evidence_from_rejected_items():
    rec = OnlineVectorsVariant(settings=Settings(event_weights=SEMANTICS), cooccurrence=True)
    rec.set_catalogue(list("0123"))
    rec.learn_many(stream().events[:5])
    assert list(rec.rejected["u"]) == ["2"] and rec.evidence("u") == ["0", "1", "0", "3"]
    assert list(rec.states["u"].rejected) == ["2"]            # the one apply routine agrees
    rec.learn_many(stream().events[5:6])                      # u liked 2 after all
    assert not rec.rejected["u"] and "2" in rec.evidence("u")


@pytest.mark.parametrize("repeat,scored", [("exclude", 4), ("allow", 6)])
def test_the_results_document_records_the_semantics(repeat, scored):
    semantics = event_semantics(SEMANTICS, repeat=repeat)
    doc = prequential(stream(), {"popular": MostPopular()}, k=3, block=1, semantics=semantics)
    protocol = doc["protocol"]
    assert (protocol["scored"], protocol["repeats"], protocol["negative"]) == (scored, 3, 2)
    assert protocol["semantics"] == {"event_weights": {"click": 1.0, "dislike": -1.0}, "value_rule": "ignore",
                                     "repeat": repeat}
