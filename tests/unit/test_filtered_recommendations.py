"""Serving's recommend logic with attribute filters, over an in-process replica and a real faiss
index (no Kafka): a selective filter still gets k matching items from an HNSW index, a filter
that passes many and a user who saw most of them still gets k, cold-start users get the
matching items by trending, and required items are all scored however far they lie."""
import json

import pytest

from serving.model_holder import ModelHolder
from serving.recommender_service import RecommenderService
from serving.request_model import parse_request
from serving.state_replica import StateReplica
from streamrec.settings import Settings

N_ITEMS = 3000
RARE = [f"i{j}" for j in range(0, N_ITEMS, 500)]          # 6 items of category "rare"
CHEAP = [f"i{j}" for j in range(0, N_ITEMS, 25)]          # 120 items under price 10


def _attributes(j: int) -> dict:
    return {"category": "rare" if j % 500 == 0 else "common", "price": 5 if j % 25 == 0 else 50 + j % 7,
            "used": j % 2 == 0}


def _event(user: str, item: str, t: float) -> bytes:
    return json.dumps({"user_id": user, "item_id": item, "event_type": "click", "timestamp": t}).encode()


@pytest.fixture(scope="module")
def service():
    # An HNSW index (threshold 100 < 3000 items) with co-occurrence on; no exploration, so the
    # lists are what relevance and the filters make of them.
    settings = Settings(vector_dim=8, partitions=1, serving_hnsw_threshold=100, serving_candidates=10,
                        serving_diversity=0.0, serving_exploration=0.0)
    replica = StateReplica(settings)
    ids = [f"i{j}" for j in range(N_ITEMS)]
    for j, item in enumerate(ids):
        replica.apply_item(item.encode(), json.dumps({"item_id": item, "attributes": _attributes(j)}).encode())
    events = [("reader", "i1"), ("reader", "i2"), ("fan", RARE[3]), ("fan2", RARE[3]), ("fan", RARE[5])]
    events += [("bargain-hunter", item) for item in CHEAP[:115]]     # saw all but 5 cheap items
    for offset, (user, item) in enumerate(events):
        replica.apply_events(0, offset, _event(user, item, 1e9 + offset))
    holder = ModelHolder(settings, replica)
    holder.swap(holder._bundle_from(0, 0.0, ids, replica.item_vectors.lookup(ids), None, False))
    assert holder.current.index.kind == "hnsw"
    yield RecommenderService(settings, replica, holder)
    holder.close()


def _ids(service, **doc) -> list[str]:
    answer = service.recommend(parse_request(doc, service.settings))
    return [entry["item_id"] for entry in answer["items"]]


def test_a_selective_filter_gets_k_matching_items_from_an_hnsw_index(service):
    assert sorted(_ids(service, user_id="reader", k=6, filters={"category": "rare"})) == sorted(RARE)
    five = _ids(service, user_id="reader", k=5, filters={"category": {"in": ["rare"]}, "used": True})
    assert len(five) == 5 and set(five) <= set(RARE)
    # More asked than match: every matching item, nothing else (the top-up is filtered too).
    assert sorted(_ids(service, user_id="reader", k=20, filters={"category": "rare"})) == sorted(RARE)


def test_ranges_and_negative_conditions(service):
    cheap = _ids(service, user_id="reader", k=30, filters={"price": {"gte": 1, "lt": 10}})
    assert len(cheap) == 30 and set(cheap) <= set(CHEAP)
    common = _ids(service, user_id="reader", k=30, filters={"category": {"not_in": ["rare"]}, "price": {"ne": 5}})
    assert len(common) == 30 and not set(common) & (set(RARE) | set(CHEAP))
    assert _ids(service, user_id="reader", k=5, filters={"category": "nonexistent"}) == []


def test_a_filter_passing_more_than_the_scan_bound_still_gets_k_when_most_matches_were_seen(service):
    # 120 cheap items (more than the scan bound of 100): the search is widened, but the user
    # saw 115 of them, so the 5 left are found only by scanning the matching items.
    five = _ids(service, user_id="bargain-hunter", k=5, filters={"price": {"lte": 5}})
    assert sorted(five) == sorted(CHEAP[115:])


def test_cold_start_users_get_the_matching_items_most_trending_first(service):
    ids = _ids(service, user_id="nobody", k=6, filters={"category": "rare"})
    assert ids[:2] == [RARE[3], RARE[5]] and sorted(ids) == sorted(RARE)


def test_required_items_are_scored_however_far_from_the_user_they_lie(service):
    required = [f"i{j}" for j in range(2900, 2907)]
    assert sorted(_ids(service, user_id="reader", k=7, require_items=required)) == sorted(required)
    both = _ids(service, user_id="reader", k=7, require_items=required + RARE, filters={"category": "rare"})
    assert sorted(both) == sorted(RARE)
