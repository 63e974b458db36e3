"""Negative events and the repeat policy in the one apply routine and in serving's answers (no Kafka).

A negative event (a declared type with a weight below zero) moves the user vector away from
its item, counts for neither popularity nor co-occurrence, and its item is never recommended
back to that user, include_seen or not, until a positive event on it; the repeat policy sets
the default of include_seen.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from serving.model_holder import ModelHolder
from serving.recommender_service import RecommenderService
from serving.request_model import RecRequest
from serving.state_replica import StateReplica
from streamrec.contracts.events import Event
from streamrec.settings import Settings
from streamrec.state.apply import apply_located
from streamrec.state.item_vectors import ItemVectors
from streamrec.state.user_state import UserState, decode_state

SEMANTICS = "click=1,like=2,dislike=-1,skip=-0.5"
ITEMS = [f"i{j}" for j in range(6)]


def _settings(**changes) -> Settings:
    base = dict(vector_dim=8, partitions=1, event_weights=SEMANTICS, serving_diversity=0.0, serving_exploration=0.0)
    return Settings(**{**base, **changes})


def _apply(settings: Settings, state: UserState, vectors: ItemVectors, events: list[Event], offset: int) -> None:
    located = [(e, (0, offset + k, 0)) for k, e in enumerate(events)]
    apply_located(located, lambda _: state, vectors, settings)


def test_a_negative_event_moves_the_user_vector_away_from_its_item():
    s, vectors = _settings(), ItemVectors(8)
    disliked = vectors.lookup(["b"])[0]
    states = {}
    for kind in ("like", "dislike"):
        state = states[kind] = UserState.empty(8)
        _apply(s, state, vectors, [Event("u", "a", "click", 1e9), Event("u", "b", kind, 1e9 + 1)], 0)
    before = UserState.empty(8)
    _apply(s, before, vectors, [Event("u", "a", "click", 1e9)], 0)
    assert states["dislike"].vector @ disliked < before.vector @ disliked < states["like"].vector @ disliked
    assert np.linalg.norm(states["dislike"].vector) > 0      # away from b, not cancelled out
    assert states["dislike"].weight == pytest.approx(2.0)     # magnitudes: 1 (click) + 1 (dislike)


def test_rejected_items_follow_the_newest_reaction_and_are_bounded():
    s, vectors, state = _settings(seen_items=2), ItemVectors(8), UserState.empty(8)
    _apply(s, state, vectors, [Event("u", i, "dislike", 1e9 + k) for k, i in enumerate("abc")], 0)
    assert list(state.rejected) == ["b", "c"]                 # a forgotten: the oldest beyond the bound
    _apply(s, state, vectors, [Event("u", "b", "like", 2e9), Event("u", "d", "skip", 2e9 + 1)], 3)
    assert list(state.rejected) == ["c", "d"]                 # liked again: no longer rejected
    assert list(decode_state(state.encode()).rejected) == ["c", "d"]


def test_without_negative_events_the_changelog_record_is_what_it_always_was():
    s, vectors, state = _settings(), ItemVectors(8), UserState.empty(8)
    _apply(s, state, vectors, [Event("u", "a", "click", 1e9)], 0)
    assert "rejected" not in json.loads(state.encode())
    assert decode_state(state.encode()).rejected == {}


def _event(user: str, item: str, kind: str, t: float) -> bytes:
    return json.dumps({"user_id": user, "item_id": item, "event_type": kind, "timestamp": t}).encode()


@pytest.fixture
def serve():
    """``serve(settings, events)``: a recommender service whose replica applied ``events``
    (user, item, type) in order; every one it built is closed after the test."""
    built: list[RecommenderService] = []

    def build(settings: Settings, events: list[tuple[str, str, str]]) -> RecommenderService:
        replica = StateReplica(settings)
        for item in ITEMS:
            replica.apply_item(item.encode(), json.dumps({"item_id": item}).encode())
        for offset, (user, item, kind) in enumerate(events):
            replica.apply_events(0, offset, _event(user, item, kind, 1e9 + offset))
        holder = ModelHolder(settings, replica)
        holder.swap(holder._bundle_from(0, 0.0, ITEMS, replica.item_vectors.lookup(ITEMS), None, False))
        built.append(RecommenderService(settings, replica, holder))
        return built[-1]

    yield build
    for service in built:
        service.holder.close()


def _ids(service: RecommenderService, **options) -> set[str]:
    return {entry["item_id"] for entry in service.recommend(RecRequest("r", "u", len(ITEMS), **options))["items"]}


# u clicked i0, disliked i1, skipped i2 then liked it again; others made i1 the most popular item.
HISTORY = [("u", "i0", "click"), ("u", "i1", "dislike"), ("u", "i2", "skip"), ("u", "i2", "like"),
           *[(f"v{k}", "i1", "click") for k in range(5)]]


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_a_rejected_item_is_never_recommended_back_even_with_include_seen(serve, weight):
    service = serve(_settings(cooccurrence_weight=weight), HISTORY)
    assert _ids(service) == {"i3", "i4", "i5"}                           # seen and rejected out
    assert _ids(service, include_seen=True) == {"i0", "i2", "i3", "i4", "i5"}   # i1 never
    assert service.user("u")["rejected"] == ["i1"]


def test_the_repeat_policy_sets_include_seen_by_default(serve):
    service = serve(_settings(repeat_consumption="allow"), HISTORY)
    assert _ids(service) == {"i0", "i2", "i3", "i4", "i5"}
    assert _ids(service, include_seen=False) == {"i3", "i4", "i5"}       # a request may still say no


def test_negative_events_add_no_popularity_and_reinforce_no_cooccurrence(serve):
    service = serve(_settings(cooccurrence_weight=1.0),
                    [("w", "i3", "click"), ("w", "i4", "dislike"), ("x", "i4", "skip"), ("x", "i5", "click")])
    trending = dict(service.replica.trending.top(len(ITEMS)))
    assert trending["i4"] == 0.0 and trending["i3"] > 0 and trending["i5"] > 0
    assert service.replica.trending.count("i4") == 2                    # counted as events, weighing nothing
    rows, _ = service.replica.cooccurrence.neighbour_scores(["i3"])
    assert rows.tolist() == []                                          # i4 was no pair of i3


def test_a_negative_event_does_not_score_the_list_served_before_it(serve):
    service = serve(_settings(), HISTORY)
    served = service.recommend(RecRequest("r", "u", 3))["items"][0]["item_id"]
    accuracy = service.replica.quality.accuracy
    assert service.replica.apply_events(0, 100, _event("u", served, "dislike", 1.1e9)) == 1
    assert accuracy.scored_total == 0                          # a dislike asked for nothing
    assert service.replica.apply_events(0, 101, _event("u", "i5", "click", 1.1e9 + 1)) == 1
    assert accuracy.scored_total == 1
