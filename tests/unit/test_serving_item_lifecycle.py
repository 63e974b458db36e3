"""Serving honours the catalogue: a retired, unavailable or expired item leaves every answer
(lists, cold-start trending, exploration, top-up, similar items) at once, comes back when it is
available again, and an item only events named is served with its id and no title."""
import json

import pytest

from serving.model_holder import ModelHolder
from serving.recommender_service import RecommenderService
from serving.request_model import RecRequest, RequestError
from serving.state_replica import StateReplica
from streamrec.settings import Settings

ITEMS = [f"i{j}" for j in range(12)]


def _event(user: str, item: str, t: float) -> bytes:
    return json.dumps({"user_id": user, "item_id": item, "event_type": "click", "timestamp": t}).encode()


@pytest.fixture
def service():
    settings = Settings(vector_dim=8, partitions=1, serving_diversity=0.0, serving_exploration=0.0)
    replica = StateReplica(settings)
    for item in ITEMS:
        replica.apply_item(item.encode(), json.dumps({"item_id": item, "title": item.upper()}).encode())
    events = [(f"fan{u}", "i3") for u in range(5)] + [(f"fan{u}", "i5") for u in range(3)]
    events += [("bob", "i1"), ("bob", "from-events")]   # an item no catalogue message named
    for offset, (user, item) in enumerate(events):
        replica.apply_events(0, offset, _event(user, item, 1e9 + offset))
    holder = ModelHolder(settings, replica)
    ids = ITEMS + ["from-events"]
    holder.swap(holder._bundle_from(0, 0.0, ids, replica.item_vectors.lookup(ids), None, False))
    yield RecommenderService(settings, replica, holder)
    holder.close()


def _ids(response: dict) -> list[str]:
    return [entry["item_id"] for entry in response["items"]]


def _publish(service, item_id: str, **fields) -> None:
    service.replica.apply_item(item_id.encode(), json.dumps({"item_id": item_id, "title": "T", **fields}).encode())


def _every_answer(service, k: int = 11) -> set[str]:
    """Every item some answer shows: a user's list, cold start, exploration and similar items."""
    shown = set(_ids(service.recommend(RecRequest("r", "alice-new", k))))                 # trending
    shown |= set(_ids(service.recommend(RecRequest("r", "fan0", k, exploration=1.0))))    # exploration
    for seed in range(5):
        shown |= set(_ids(service.recommend(RecRequest("r", "bob", k, seed=seed, exploration=0.5))))
    shown |= set(_ids(service.similar("i1", k)))
    return shown


def test_a_tombstone_removes_the_item_from_every_answer(service):
    assert "i3" in _every_answer(service)
    assert _ids(service.recommend(RecRequest("r", "nobody", 1)))[0] == "i3"   # the most trending item
    service.replica.apply_item(b"i3", None)
    assert "i3" not in _every_answer(service)
    assert _ids(service.recommend(RecRequest("r", "nobody", 1)))[0] == "i5"
    assert service.item("i3")["status"] == "retired" and not service.item("i3")["servable"]
    with pytest.raises(RequestError) as info:
        service.similar("i3", 5)
    assert info.value.status == 404 and "retired" in info.value.message


def test_a_filtered_list_topped_up_from_trending_skips_retired_items(service):
    service.replica.apply_item(b"i3", None)
    response = service.recommend(RecRequest("r", "fan0", 5, require_items=frozenset({"i5", "i3"})))
    assert "i3" not in _ids(response)


def test_unavailable_items_leave_and_come_back(service):
    _publish(service, "i3", available=False)
    assert "i3" not in _every_answer(service) and service.item("i3")["status"] == "unavailable"
    _publish(service, "i3", available=True)
    assert "i3" in _every_answer(service) and service.item("i3")["status"] == "catalogue"


def test_an_item_leaves_the_answers_when_its_expiry_passes(service):
    clock = [1_800_000_000.0]
    service.clock = lambda: clock[0]
    _publish(service, "i3", expires_at=clock[0] + 60)
    assert "i3" in _every_answer(service)
    clock[0] += 60                                  # no new message: only time passed
    assert "i3" not in _every_answer(service)
    assert service.item("i3")["status"] == "expired" and service.item("i3")["expires_at"] == clock[0]


def test_an_item_known_only_from_events_is_served_without_a_title(service):
    response = service.recommend(RecRequest("r", "fan0", 12))
    entry = next(e for e in response["items"] if e["item_id"] == "from-events")
    assert "title" not in entry
    assert all(e["title"] == e["item_id"].upper() for e in response["items"] if e["item_id"] != "from-events")
    view = service.item("from-events")
    assert view["status"] == "events_only" and view["servable"] and "title" not in view
    assert view["interactions"] == 1
    assert "title" not in service.similar("from-events", 3)
    assert "title" not in service.replica.user_view("bob")["recent"][0]
    with pytest.raises(RequestError) as info:
        service.item("never-named")
    assert info.value.status == 404
