"""The item contract (version 3) and the one "may this item be served" rule: tombstones retire,
``available`` and ``expires_at`` are honoured, expiry needs no new message, invalid items get a
reason code, and the examples in the docstrings run."""
import doctest
import importlib
import json
import math

import numpy as np
import pytest

from streamrec.contracts.items import (ITEM_REASONS, InvalidItem, Item, ItemMessage, decode_item_message,
                                       parse_item)
from streamrec.state.catalogue import Catalogue


def _raw(**doc) -> bytes:
    return json.dumps({"item_id": "a", **doc}).encode()


@pytest.mark.parametrize("name", ["streamrec.contracts.items", "streamrec.state.catalogue", "streams.items_check"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_a_version_1_item_reads_as_available_with_no_expiry_and_writes_back_the_same():
    doc = {"item_id": "7", "title": "Heat", "text": "", "tags": ["Crime"], "timestamp": 1.0}
    item = parse_item(json.dumps(doc).encode())
    assert item.available and item.expires_at is None and item.servable_at(1e12)
    assert item.to_dict() == doc


def test_available_and_expires_at_round_trip():
    item = parse_item(_raw(title="Heat", available=False, expires_at=2e9))
    assert (item.available, item.expires_at) == (False, 2e9)
    assert parse_item(json.dumps(item.to_dict()).encode()) == item
    assert parse_item(_raw(available=None)).available   # null: the default


@pytest.mark.parametrize("item, now, status", [
    (Item("a", "t"), 0.0, "catalogue"),
    (Item("a", "t", available=False), 0.0, "unavailable"),
    (Item("a", "t", expires_at=10.0), 9.999, "catalogue"),
    (Item("a", "t", expires_at=10.0), 10.0, "expired"),
    (Item("a", "t", available=False, expires_at=10.0), 20.0, "unavailable"),
])
def test_the_servable_rule(item, now, status):
    assert item.status_at(now) == status
    assert item.servable_at(now) == (status == "catalogue")


@pytest.mark.parametrize("key, raw, reason", [
    (b"a", b'{"item_id": ', "bad_json"),
    (b"a", b'\xff\xfe', "bad_json"),
    (b"a", b'[1, 2]', "not_an_object"),
    (b"a", b'{"title": "x"}', "missing_field"),
    (b"a", b'{"item_id": true}', "bad_type"),
    (b"a", _raw(title=None, available="yes"), "bad_type"),
    (b"a", _raw(expires_at="tomorrow"), "bad_type"),
    (b"a", b'{"item_id": "a", "expires_at": NaN}', "non_finite"),
    (b"a", b'{"item_id": "a", "timestamp": Infinity}', "non_finite"),
    (b"a", _raw(title={"en": "Heat"}), "bad_type"),
    (b"a", _raw(tags="Crime"), "bad_type"),
    (b"a", _raw(tags=[["nested"]]), "bad_type"),
    (b"a", _raw(embedding=[1.0, "x"]), "bad_type"),
    (b"a", b'{"item_id": "a", "embedding": [1e999]}', "bad_type"),
    (b"a", _raw(attributes=["category", "books"]), "bad_type"),
    (b"a", _raw(attributes={"category": ["books"]}), "bad_type"),
    (b"a", _raw(attributes={"category": None}), "bad_type"),
    (b"a", _raw(attributes={"category": {"nested": 1}}), "bad_type"),
    (b"a", _raw(attributes={"blurb": "x" * 257}), "bad_type"),
    (b"a", _raw(attributes={"x" * 65: 1}), "bad_type"),
    (b"a", _raw(attributes={"": 1}), "bad_type"),
    (b"a", _raw(attributes={f"a{j}": j for j in range(33)}), "bad_type"),
    (b"a", b'{"item_id": "a", "attributes": {"price": NaN}}', "non_finite"),
    (b"a", b'{"item_id": "a", "attributes": {"price": -Infinity}}', "non_finite"),
    (b"a", b'{"item_id": "a", "attributes": {"price": 1e999}}', "non_finite"),
    (b"a", b'{"item_id": "a", "attributes": {"price": 1' + b"0" * 400 + b'}}', "non_finite"),
    (b"\x01", b'{"item_id": "\\u0001"}', "bad_id"),
    (b"a", json.dumps({"item_id": "x" * 300}).encode(), "bad_id"),
    (b"b", _raw(), "key_mismatch"),
    (None, _raw(), "key_mismatch"),
    (None, None, "key_mismatch"),
    (b"\xff", None, "bad_id"),
    (b"", None, "bad_id"),
])
def test_every_invalid_message_has_a_reason_code(key, raw, reason):
    with pytest.raises(InvalidItem) as info:
        decode_item_message(key, raw)
    assert info.value.reason == reason and reason in ITEM_REASONS and info.value.detail


def test_attributes_are_optional_scalars_that_round_trip():
    attributes = {"category": "books", "price": 12.5, "pages": 320, "used": False, "x" * 64: "y" * 256}
    item = parse_item(_raw(title="Heat", attributes=attributes))
    assert item.attributes == attributes and parse_item(json.dumps(item.to_dict()).encode()) == item
    assert parse_item(_raw(attributes={f"a{j}": j for j in range(32)})).attributes["a31"] == 31
    assert parse_item(_raw()).attributes == {} and "attributes" not in parse_item(_raw()).to_dict()
    assert parse_item(_raw(attributes=None)).attributes == {}
    hash(item)   # a frozen item stays hashable with its attributes


def test_tombstones_and_int_ids():
    assert decode_item_message(b"a", None) == ItemMessage("a", None)
    assert decode_item_message("7", b'{"item_id": 7, "title": null}').item == Item("7", "")


def test_a_tombstone_retires_and_a_new_item_message_brings_it_back():
    c = Catalogue()
    c.apply("a", Item("a", "Heat"))
    c.apply("a", None)
    assert "a" not in c and c.status("a", 0.0) == "retired" and not c.servable("a", 0.0)
    c.apply("a", Item("a", "Heat II"))
    assert c.servable("a", 0.0) and c.status("a", 0.0) == "catalogue" and len(c) == 1


def test_unavailable_leaves_and_comes_back():
    c = Catalogue()
    c.apply("a", Item("a", "t", available=False))
    assert c.blocked(0.0) == {"a"}
    c.apply("a", Item("a", "t"))
    assert c.blocked(0.0) == frozenset()


def test_expiry_takes_effect_when_its_time_passes_without_a_message():
    c = Catalogue()
    c.apply("a", Item("a", "t", expires_at=100.0))
    c.apply("b", Item("b", "t", expires_at=50.0))
    version = c.version
    assert c.blocked(49.0) == frozenset() and c.version == version
    assert c.blocked(60.0) == {"b"} and c.version > version
    assert c.blocked(100.0) == {"a", "b"}
    c.apply("a", Item("a", "t", expires_at=200.0))          # extended: back until then
    assert c.blocked(150.0) == {"b"}
    assert c.blocked(200.0) == {"a", "b"}


def test_an_earlier_expiry_replaced_by_a_later_one_does_not_expire_the_item_early():
    c = Catalogue()
    c.apply("a", Item("a", "t", expires_at=10.0))
    c.apply("a", Item("a", "t", expires_at=20.0))
    assert c.servable("a", 15.0) and not c.servable("a", 20.0)
    c.apply("a", Item("a", "t"))                                # no expiry any more
    assert c.servable("a", 1e12)


def test_an_item_published_already_expired_is_never_servable():
    c = Catalogue()
    c.apply("a", Item("a", "t", expires_at=10.0))
    assert c.status("a", 11.0) == "expired" and not c.servable("a", 11.0)


def test_items_known_only_from_events_are_servable_and_have_no_status():
    c = Catalogue()
    assert c.servable("from-events", 0.0) and c.status("from-events", 0.0) is None


def test_the_expiry_heap_stays_proportional_to_the_catalogue():
    c = Catalogue()
    for t in range(10_000):
        c.apply("a", Item("a", "t", expires_at=1e9 + t))
    assert len(c._expiries) <= 2 * len(c) + 1025
    assert c.servable("a", 1e9 + 9_998) and not c.servable("a", 1e9 + 9_999)


def test_servable_mask():
    c = Catalogue()
    c.apply("b", None)
    c.apply("c", Item("c", "t", available=False))
    assert c.servable_mask(["a", "b", "c", "d"], 0.0).tolist() == [True, False, False, True]
    assert c.servable_mask([], 0.0).dtype == np.bool_


def test_no_input_raises_anything_but_invalid_item():
    deep = b"[" * 100_000 + b"]" * 100_000
    huge = b'{"item_id": "a", "timestamp": 1' + b"0" * 400 + b"}"
    for raw in (deep, huge, b'{"item_id": 1' + b"0" * 5000 + b"}", b"\x00", b"null", b"1e400"):
        with pytest.raises(InvalidItem):
            decode_item_message(b"a", raw)
    assert math.isfinite(parse_item(_raw(timestamp=10 ** 300)).timestamp)
