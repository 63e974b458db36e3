"""Sharded serving's pure logic: who owns which partition and user, where a request is answered,
and what an instance learns from the events of users it does not keep (no Kafka, no HTTP)."""
from __future__ import annotations

import doctest
import importlib
import json

import numpy as np
import pytest

from serving.forwarding import Forward, Local, Misrouted, decide
from serving.item_side import ItemSideFeed
from serving.ownership import Ownership, ShardingError
from serving.state_replica import StateReplica
from streamrec.contracts.events import owner_partition
from streamrec.settings import Settings

PEERS = "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3"


@pytest.mark.parametrize("name", ["serving.ownership", "serving.forwarding", "serving.item_side"])
def test_the_examples_in_the_docstrings_hold(name):
    assert doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize("partitions", [1, 2, 4, 7, 12])
def test_every_partition_and_every_user_has_exactly_one_owner(partitions):
    users = [f"user-{n}" for n in range(300)]
    for n in range(1, partitions + 1):
        peers = ",".join(f"http://h:{9000 + i}" for i in range(n))
        instances = [Ownership.parse(f"{i}/{n}", partitions, peers) for i in range(n)]
        owned = [p for own in instances for p in own.owned_partitions()]
        assert sorted(owned) == list(range(partitions))
        for user in users:
            holders = [own.instance for own in instances if own.owns(user)]
            assert holders == [owner_partition(user, partitions) % n]
            assert all(own.owner_of(user) == holders[0] for own in instances)


def test_one_instance_owns_everything_and_needs_no_peers():
    own = Ownership.from_settings(Settings(partitions=4))
    assert (own.label, own.sharded, own.owned_partitions()) == ("0/1", False, [0, 1, 2, 3])
    assert all(decide(own, f"u{n}", None) == Local() for n in range(50))


@pytest.mark.parametrize("spec, partitions, peers, words", [
    ("1", 4, "", "expected i/N"),
    ("a/2", 4, PEERS, "expected i/N"),
    ("-1/2", 4, PEERS, "expected i/N"),
    ("0/0", 4, "", "at least 1"),
    ("3/3", 4, PEERS, "0 to 2"),
    ("0/3", 2, PEERS, "would own no user"),
    ("0/2", 4, "", "names 0 URLs"),
    ("0/2", 4, PEERS, "names 3 URLs"),
    ("0/2", 4, "http://a:1,ftp://b", "not an http(s) base URL"),
    ("0/2", 4, "http://a:1,b:2", "not an http(s) base URL"),
])
def test_contradictory_settings_are_refused_naming_the_setting(spec, partitions, peers, words):
    with pytest.raises(ShardingError, match="STREAMREC_SERVING_") as error:
        Ownership.parse(spec, partitions, peers)
    assert words in str(error.value)


def test_a_request_is_answered_by_the_owner_and_a_forwarded_one_is_never_sent_on():
    peers = "http://a:1/,http://b:2"        # a trailing slash is not doubled in forwarded URLs
    zero, one = (Ownership.parse(f"{i}/2", 4, peers) for i in (0, 1))
    for n in range(200):
        user = f"u{n}"
        owner = owner_partition(user, 4) % 2
        here, there = (zero, one) if owner == 0 else (one, zero)
        assert decide(here, user, None) == Local()
        assert decide(here, user, "1/2") == Local()      # forwarded to its owner: answered
        assert decide(there, user, None) == Forward(owner, ("http://a:1", "http://b:2")[owner],
                                                    owner_partition(user, 4))
        misrouted = decide(there, user, "0/2")            # forwarded, yet not the owner: a loop
        assert isinstance(misrouted, Misrouted) and misrouted.status == 508
        assert "STREAMREC_SERVING_INSTANCE" in misrouted.message
    assert decide(zero, None, None) == Local()            # no valid user: the handler's 400


def _events(partitions: int, seed: int = 0) -> list[tuple[int, int, bytes]]:
    """(partition, offset, message) for 60 users' events, some repeated under the same event_id
    at a later offset (a producer's retry), each on its user's partition."""
    rng = np.random.default_rng(seed)
    offsets = [0] * partitions
    out = []
    for n in range(900):
        user = f"user-{int(rng.integers(60))}"
        event = {"user_id": user, "item_id": f"item-{int(rng.integers(40))}", "event_type": "click",
                 "timestamp": 1.7e9 + n, "event_id": f"e{n}"}
        copies = 2 if n % 17 == 0 else 1
        for _ in range(copies):
            p = owner_partition(user, partitions)
            out.append((p, offsets[p], json.dumps(event).encode()))
            offsets[p] += 1
    return out


@pytest.mark.parametrize("batch", [1, 7])
def test_sharded_instances_split_user_state_and_each_learns_item_side_state_from_all_events(batch):
    """``batch``: messages of another instance's partition learned at once, as the feed fetches them."""
    settings = Settings(vector_dim=8, partitions=4)
    whole = StateReplica(settings)
    shards = [(Ownership.parse(f"{i}/2", 4, "http://a:1,http://b:2"), StateReplica(settings)) for i in (0, 1)]
    item_side = [ItemSideFeed(replica) for _, replica in shards]
    fetched: list[dict[int, list]] = [{}, {}]
    for partition, offset, raw in _events(4):
        whole.apply_events(partition, offset, raw)
        for (own, replica), feed, pending in zip(shards, item_side, fetched):
            if own.owns_partition(partition):
                replica.apply_events(partition, offset, raw)
                continue
            pending.setdefault(partition, []).append((offset, raw))
            if len(pending[partition]) == batch:
                feed.apply_messages(partition, pending.pop(partition))
    for feed, pending in zip(item_side, fetched):
        for partition, messages in pending.items():
            feed.apply_messages(partition, messages)
    unique = 900
    assert whole.events_applied == unique
    assert sum(replica.events_applied for _, replica in shards) == unique          # each event once
    assert all(0 < replica.events_applied < unique for _, replica in shards)       # a share, not all
    items = [f"item-{j}" for j in range(40)]
    for (own, replica), feed in zip(shards, item_side):
        assert replica.events_applied + feed.events_learned == unique               # every event seen
        assert set(replica.users) == {u for u in whole.users if own.owns(u)}
        for user, state in replica.users.items():
            assert state.recent == whole.users[user].recent
        assert replica.trending.counts(items).tolist() == whole.trending.counts(items).tolist()
        if batch == 1:   # the same order as the whole replica's: ties rank alike too
            assert replica.trending.top(40, set()) == whole.trending.top(40, set())
        for history in (["item-1"], ["item-3", "item-9", "item-20"]):
            rows, scores = replica.cooccurrence.neighbour_scores(history)
            rows_whole, scores_whole = whole.cooccurrence.neighbour_scores(history)
            got = dict(zip((replica.cooccurrence.item_ids[r] for r in rows), scores))
            want = dict(zip((whole.cooccurrence.item_ids[r] for r in rows_whole), scores_whole))
            assert got.keys() == want.keys()
            np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-6)
