"""What producers write: packed messages per owner partition, bounded, decodable as they were
given; generated event ids; the consistency token's text form."""
import doctest
import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

import streamrec.contracts.consistency
import streamrec.contracts.packing
from streamrec.contracts.consistency import encode_token, merge, parse_token
from streamrec.contracts.events import Event, decode_message, encode_events, owner_partition
from streamrec.contracts.packing import MAX_VALUE_BYTES, Packer, message_limit, pack_events, with_event_id
from streamrec.settings import Settings

S = Settings(partitions=4)


def ev(user: str, n: int = 0, item: str = "i") -> Event:
    return Event(user, item, "click", 1.7e9 + n, None, f"{user}-{n}")


def test_each_message_holds_only_its_partitions_users_in_order_and_decodes_there():
    events = [ev(f"u{n % 13}", n) for n in range(200)]
    messages = pack_events(events, 4, 10_000, max_events=7)
    assert sum(len(m.events) for m in messages) == 200
    for m in messages:
        assert {owner_partition(e.user_id, 4) for e in m.events} == {m.partition}
        assert m.key == m.events[0].user_id.encode() and len(m.events) <= 7
        decoded = decode_message(m.value, m.partition, 0, S, now=2e9)
        assert [e for e, _ in decoded.events] == list(m.events) and not decoded.misrouted
    for partition in range(4):   # per partition, the order given
        mine = [e for m in messages if m.partition == partition for e in m.events]
        assert mine == [e for e in events if owner_partition(e.user_id, 4) == partition]


def test_values_are_encode_events_format():
    one, two = ev("a", 1), ev("a", 2)
    assert pack_events([one], 4, 10_000)[0].value == encode_events([one])
    assert pack_events([one, two], 4, 10_000)[0].value == encode_events([one, two])


@hsettings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "é", "日本"]), st.text(min_size=1, max_size=60)),
                min_size=1, max_size=60), st.integers(200, 2000))
def test_no_value_exceeds_the_limit_unless_it_is_one_event(pairs, limit):
    events = [Event(u, item, "view", 1.7e9) for u, item in pairs]
    for m in pack_events(events, 4, limit, max_events=1000):
        assert len(m.value) <= limit or len(m.events) == 1
        assert len(json.loads(m.value) if len(m.events) > 1 else [json.loads(m.value)]) == len(m.events)


def test_message_limit_stays_under_every_clients_default_request_size():
    assert message_limit(Settings()) == MAX_VALUE_BYTES < 1_000_000
    assert message_limit(Settings(max_message_bytes=65_536)) == 65_536


def test_packer_counts_what_it_holds_and_drains_empty():
    packer = Packer(4, 10_000, max_events=100)
    for n in range(5):
        assert packer.add(ev("a", n)) == []
    assert len(packer) == 5
    assert [len(m.events) for m in packer.drain()] == [5] and len(packer) == 0 and packer.drain() == []


def test_generated_event_ids_are_fresh_and_kept_ones_untouched():
    bare = Event("u", "i", "view", 1.7e9)
    a, b = with_event_id(bare), with_event_id(bare)
    assert a.event_id and b.event_id and a.event_id != b.event_id
    assert with_event_id(ev("u", 3)).event_id == "u-3"


def test_token_round_trip_and_merge():
    assert encode_token({}) == "" and parse_token("") == {}
    assert encode_token({10: 5, 2: 0}) == "p2:0,p10:5"
    assert parse_token("p2:0,p10:5") == {2: 0, 10: 5}
    assert merge({0: 3}, {0: 1, 1: 1}) == {0: 3, 1: 1}


@pytest.mark.parametrize("bad", ["0:1", "p0", "p0:", "p:1", "p-1:3", "p0:1,", "p0:٣", "p0:1;p1:2"])
def test_bad_tokens_are_refused(bad):
    with pytest.raises(ValueError, match="consistency token"):
        parse_token(bad)


@pytest.mark.parametrize("module", [streamrec.contracts.consistency, streamrec.contracts.packing])
def test_docstring_examples(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
