"""Event validation: every malformed shape gets its reason; valid ones pass unchanged."""
import json
import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from streamrec.contracts.events import EVENT_TYPES, REASONS, encode_events, parse_message
from streamrec.settings import Settings

S = Settings()
NOW = 2e9


def ok(**over):
    d = {"user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": 1.6e9}
    d.update(over)
    return json.dumps(d).encode()


@pytest.mark.parametrize("raw, reason", [
    (b"{", "bad_json"),
    (b"\xff\xfe{}", "bad_encoding"),
    (b"[]", "empty_batch"),
    (b"42", "not_an_object"),
    (json.dumps({"user_id": "u"}).encode(), "missing_field"),
    (ok(user_id=None), "missing_field"),
    (ok(user_id=1.5), "bad_type"),
    (ok(user_id=True), "bad_type"),
    (ok(user_id=""), "bad_id"),
    (ok(item_id="x" * 1000), "bad_id"),
    (ok(user_id="a\nb"), "bad_id"),
    (ok(event_type="like"), "unknown_event_type"),
    (ok(event_type=3), "bad_type"),
    (ok(timestamp="now"), "bad_type"),
    (b'{"user_id":"u","item_id":"i","event_type":"click","timestamp":NaN}', "non_finite"),
    (b'{"user_id":"u","item_id":"i","event_type":"click","timestamp":Infinity}', "non_finite"),
    (b'{"user_id":"u","item_id":"i","event_type":"click","timestamp":1e999}', "non_finite"),
    (ok(timestamp=-5), "timestamp_out_of_range"),
    (ok(timestamp=NOW + 10 * 86400), "timestamp_out_of_range"),
    (ok(value="cheap"), "bad_type"),
    (b"x" * (S.max_message_bytes + 1), "oversized"),
])
def test_rejections_carry_their_reason(raw, reason):
    events, rejections = parse_message(raw, S, now=NOW)
    assert events == [] and [r.reason for r in rejections] == [reason]
    assert reason in REASONS


def test_ints_accepted_and_stored_as_strings():
    [ev], [] = parse_message(ok(user_id=196, item_id=242, value=3, event_id=7), S, now=NOW)
    assert (ev.user_id, ev.item_id, ev.value, ev.event_id) == ("196", "242", 3.0, "7")


def test_packed_batch_validates_each_element():
    raw = json.dumps([json.loads(ok()), {"user_id": "u"}, json.loads(ok(item_id="i2"))]).encode()
    events, rejections = parse_message(raw, S, now=NOW)
    assert [e.item_id for e in events] == ["i1", "i2"]
    assert [(r.reason, r.index) for r in rejections] == [("missing_field", 1)]
    assert json.loads(rejections[0].original) == {"user_id": "u"}


def test_encode_roundtrip():
    events, _ = parse_message(ok(value=4.5, event_id="e"), S, now=NOW)
    assert parse_message(encode_events(events), S, now=NOW)[0] == events
    assert parse_message(encode_events(events * 3), S, now=NOW)[0] == events * 3


valid_event = st.fixed_dictionaries({
    "user_id": st.one_of(st.integers(0, 10**9), st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=20).filter(str.isprintable)),
    "item_id": st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=20),
    "event_type": st.sampled_from(EVENT_TYPES),
    "timestamp": st.floats(0, NOW, allow_nan=False),
}, optional={"value": st.floats(allow_nan=False, allow_infinity=False), "event_id": st.text(min_size=1, max_size=10).filter(str.isprintable)})


@hsettings(max_examples=300, deadline=None)
@given(st.lists(valid_event, min_size=1, max_size=5))
def test_every_valid_event_is_accepted(docs):
    events, rejections = parse_message(json.dumps(docs).encode(), S, now=NOW)
    assert rejections == [] and len(events) == len(docs)


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(raw):
    events, rejections = parse_message(raw, S, now=NOW)
    assert all(math.isfinite(e.timestamp) for e in events)
    assert all(r.reason in REASONS for r in rejections)


HUGE = "1" + "0" * 400


def test_integers_too_large_for_a_float_are_rejected_alone_not_with_their_siblings():
    s = Settings()
    one = f'{{"user_id":"u","item_id":"i","event_type":"click","timestamp":{HUGE}}}'.encode()
    assert parse_message(one, s)[1][0].reason == "number_too_large"
    packed = (f'[{{"user_id":"u","item_id":"i","event_type":"click","timestamp":1e9,"value":{HUGE}}},'
              '{"user_id":"u","item_id":"j","event_type":"click","timestamp":1e9}]').encode()
    ok, bad = parse_message(packed, s)
    assert [e.item_id for e in ok] == ["j"] and [(r.reason, r.index) for r in bad] == [("number_too_large", 0)]


def test_a_null_value_is_its_own_reason():
    assert parse_message(None, Settings())[1][0].reason == "null_value"


def test_decode_message_sets_apart_events_of_another_partition():
    from streamrec.contracts.events import decode_message, owner_partition

    s = Settings(partitions=4)
    users = [f"u{k}" for k in range(8)]
    raw = json.dumps([{"user_id": u, "item_id": "i", "event_type": "view", "timestamp": 1e9} for u in users])
    m = decode_message(raw.encode(), 1, 50, s)
    assert [ev.user_id for ev, _ in m.events] == [u for u in users if owner_partition(u, 4) == 1]
    assert [(ev.user_id, owner) for ev, _, owner in m.misrouted] == \
        [(u, owner_partition(u, 4)) for u in users if owner_partition(u, 4) != 1]
    # positions count every valid element, so all consumers locate an event the same way
    assert sorted([p[2] for _, p in m.events] + [p[2] for _, p, _ in m.misrouted]) == list(range(8))


def test_dead_letters_too_big_to_copy_become_small_records_keyed_by_position():
    from streams.batch import DeadLetter, Record, Reroute
    from streamrec.contracts.events import Event, Rejection

    big = DeadLetter(Record("events", 2, 9, b"x" * 1000, 0.0), Rejection("bad_json", "junk"), copy_limit=100)
    stub = json.loads(big.value())
    assert stub["size"] == 1000 and stub["source_offset"] == 9 and stub["reason"] == "bad_json"
    assert big.key() == b"events/2/9" and ("truncated", b"1") in big.headers()
    null = DeadLetter(Record("events", 0, 3, None, 0.0), Rejection("null_value", "no value"))
    assert json.loads(null.value())["size"] is None and null.value()
    small = DeadLetter(Record("events", 0, 4, b"[1]", 0.0), Rejection("not_an_object", "x", 0, b"1"))
    assert small.value() == b"1" and small.key() == b"events/0/4/0"
    moved = Reroute(Event("u", "i", "view", 1e9), 3, (1, 70, 2))
    assert json.loads(moved.value())["event_id"] == "rerouted:1:70:2" and moved.key() == b"u"


@pytest.mark.parametrize("raw, field", [
    (json.dumps({"user_id": "u"}).encode(), "item_id"),
    (ok(user_id=True), "user_id"),
    (ok(event_type="like"), "event_type"),
    (ok(timestamp=-5), "timestamp"),
    (ok(value="cheap"), "value"),
    (ok(event_id=""), "event_id"),
    (b"42", None),
])
def test_rejections_name_the_field_at_fault(raw, field):
    assert parse_message(raw, S, now=NOW)[1][0].field == field
    packed = b"[" + ok() + b"," + raw + b"]"
    [rejection] = parse_message(packed, S, now=NOW)[1]
    assert (rejection.index, rejection.field) == (1, field)


def test_docstring_examples():
    import doctest

    import streamrec.contracts.events

    assert doctest.testmod(streamrec.contracts.events).failed == 0
