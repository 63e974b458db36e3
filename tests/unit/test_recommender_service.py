"""Serving's recommend logic over an in-process replica and index (no Kafka): the
co-occurrence blend decides the candidates, seen items stay out, and a catalogue too large
for the dense co-occurrence matrix keeps co-occurrence on in bounded lists."""
import json

import numpy as np
import pytest

from serving.model_holder import ModelHolder
from serving.recommender_service import RecommenderService
from serving.request_model import RecRequest
from serving.state_replica import StateReplica
from streamrec.ranking.pipeline import relevance
from streamrec.settings import Settings

ITEMS = [f"i{j}" for j in range(40)]


def _event(user: str, item: str, t: float) -> bytes:
    return json.dumps({"user_id": user, "item_id": item, "event_type": "click", "timestamp": t}).encode()


def _service(weight: float, max_dense_items: int = 10_000) -> RecommenderService:
    # One partition: every user's events belong to partition 0, where they are applied below.
    settings = Settings(vector_dim=8, partitions=1, cooccurrence_weight=weight, serving_diversity=0.0,
                        serving_exploration=0.0, cooccurrence_max_dense_items=max_dense_items)
    replica = StateReplica(settings)
    for item in ITEMS:
        replica.apply_item(item.encode(), json.dumps({"item_id": item, "title": item.upper()}).encode())
    offset = 0
    # Twenty users had i0 then i7: the two co-occur strongly. u-target had i0 only.
    for u in range(20):
        for t, item in enumerate(("i0", "i7")):
            replica.apply_events(0, offset, _event(f"u{u}", item, 1e9 + 10 * u + t))
            offset += 1
    replica.apply_events(0, offset, _event("target", "i0", 1.5e9))
    holder = ModelHolder(settings, replica)
    vectors = replica.item_vectors.lookup(ITEMS)
    holder.swap(holder._bundle_from(0, 0.0, ITEMS, vectors, None, False))
    return RecommenderService(settings, replica, holder)


def _ids(response: dict) -> list[str]:
    return [entry["item_id"] for entry in response["items"]]


def test_cooccurrence_puts_the_co_occurring_item_first_and_seen_items_stay_out():
    service = _service(weight=5.0)
    try:
        ids = _ids(service.recommend(RecRequest("r", "target", 10)))
    finally:
        service.holder.close()
    assert ids[0] == "i7" and "i0" not in ids and len(ids) == 10


def test_without_cooccurrence_the_list_is_the_model_ranking():
    service = _service(weight=0.0)
    try:
        assert service.replica.cooccurrence is None
        ids = _ids(service.recommend(RecRequest("r", "target", 10)))
        state = service.replica.users["target"]
        expected = [i for i, _ in service.holder.current.index.search(state.vector, 10, [{"i0"}])[0]]
    finally:
        service.holder.close()
    assert ids == expected


def test_blended_ranking_is_the_exact_top_of_the_blend():
    service = _service(weight=1.0)
    try:
        bundle = service.holder.current
        state = service.replica.users["target"]
        co = service.replica.cooccurrence
        rows = co.rows(bundle.ids)
        co_scores = co.scores([["i0"]])[0][rows]
        blended = relevance((bundle.vectors @ state.vector)[None, :], co_scores[None, :], 1.0)[0]
        ids = _ids(service.recommend(RecRequest("r", "target", 10)))
    finally:
        service.holder.close()
    blended[bundle.index.rows(["i0"])] = -np.inf
    assert ids == [bundle.ids[r] for r in np.argsort(-blended, kind="stable")[:10]]


def test_a_catalogue_too_large_for_the_matrix_keeps_cooccurrence_in_bounded_lists(caplog):
    service = _service(weight=5.0, max_dense_items=10)    # the 40-item catalogue no longer fits
    try:
        ids = _ids(service.recommend(RecRequest("r", "target", 10)))
    finally:
        service.holder.close()
    assert service.replica.cooccurrence.bounded
    assert ids[0] == "i7" and "i0" not in ids and len(ids) == 10
    assert any("strongest pairs" in r.message for r in caplog.records)


@pytest.mark.parametrize("weight", [0.0, 5.0])
def test_unknown_users_get_trending_either_way(weight):
    service = _service(weight)
    try:
        ids = _ids(service.recommend(RecRequest("r", "nobody", 3)))
    finally:
        service.holder.close()
    assert set(ids[:2]) == {"i0", "i7"}   # the only items any event named
