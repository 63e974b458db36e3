"""Request bodies: pathological JSON and out-of-range numbers are client errors naming the field."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from serving.request_model import (MAX_DEPTH, TOPIC_FIELDS, BodyTooDeep, RequestError, decode_object,
                                   parse_request)
from streamrec.settings import Settings

SETTINGS = Settings()


def _error(doc_or_raw) -> RequestError:
    raw = doc_or_raw if isinstance(doc_or_raw, bytes) else json.dumps(doc_or_raw).encode()
    with pytest.raises(RequestError) as info:
        parse_request(decode_object(raw), SETTINGS)
    return info.value


@pytest.mark.parametrize("field", ["diversity", "exploration", "k", "seed"])
@pytest.mark.parametrize("digits", [400, 5000])   # 5000: past Python's int-parsing digit limit
def test_huge_integers_are_rejected_naming_their_field(field, digits):
    for sign in ("", "-"):
        raw = f'{{"user_id": "u", "{field}": {sign}1{"0" * digits}}}'.encode()
        error = _error(raw)
        assert (error.field, error.status) == (field, 400), error.to_dict()


@pytest.mark.parametrize("field", ["diversity", "exploration"])
def test_huge_numbers_in_query_strings_are_rejected_naming_their_field(field):
    for value in ("1" + "0" * 400, "1e400", "-1" + "0" * 5000):
        with pytest.raises(RequestError) as info:
            parse_request({"user_id": "u", field: value}, SETTINGS)
        assert info.value.field == field


def test_fractions_at_the_bounds_still_pass():
    req = parse_request(decode_object(b'{"user_id": "u", "diversity": 1, "exploration": 0}'), SETTINGS)
    assert (req.diversity, req.exploration) == (1.0, 0.0)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 20_000])
@pytest.mark.parametrize("open_, close", [("[", "]"), ('{"a":', "}")])
def test_deep_nesting_is_refused_without_recursing(depth, open_, close):
    raw = ('{"user_id": "u", "k": ' + open_ * depth + "1" + close * depth + "}").encode()
    with pytest.raises(BodyTooDeep) as info:
        decode_object(raw)
    assert info.value.field == "body" and "nested deeper than" in info.value.message
    # Unterminated: the json decoder would still recurse before finding the end missing.
    with pytest.raises(BodyTooDeep):
        decode_object((open_ * depth).encode())


def test_nesting_up_to_the_bound_and_brackets_inside_strings_are_fine():
    inner = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert decode_object(('{"x": ' + inner + "}").encode()) == {"x": json.loads(inner)}
    brackets = '"' + '[[[[\\"{{{{' * 50 + '"'
    assert decode_object(('{"s": ' + brackets + "}").encode()) == {"s": json.loads(brackets)}


def test_a_too_deep_body_still_gives_up_its_top_level_fields():
    raw = ('{"request_id": "r-1", "deep": ' + "[" * 5000 + "]" * 5000 + ', "reply_to": "mine", "user_id": 7,'
           ' "note": "]]]{{"}').encode()
    with pytest.raises(BodyTooDeep) as info:
        decode_object(raw)
    assert info.value.envelope() == {"request_id": "r-1", "deep": None, "reply_to": "mine", "user_id": 7,
                                     "note": "]]]{{"}
    with pytest.raises(BodyTooDeep) as info:   # cut off inside the deep value
        decode_object(b'{"request_id": "r-2", "deep": ' + b"[" * 5000)
    assert info.value.envelope() == {"request_id": "r-2", "deep": None}
    with pytest.raises(BodyTooDeep) as info:
        decode_object(b"[" * 5000)
    assert info.value.envelope() == {}


nested = st.recursive(st.none() | st.integers() | st.text(max_size=5),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                   max_size=3), max_leaves=40)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@given(nested, st.integers(0, 40))
def test_any_object_is_decoded_or_refused_by_its_real_depth(value, wrap):
    doc = {"v": value}
    for _ in range(wrap):
        doc = {"v": [doc]}
    raw = json.dumps(doc).encode()
    if _depth(doc) > MAX_DEPTH:
        with pytest.raises(BodyTooDeep):
            decode_object(raw)
    else:
        assert decode_object(raw) == doc


def test_after_is_a_consistency_token_of_existing_partitions_and_http_only():
    settings = Settings(partitions=4)
    req = parse_request({"user_id": "u", "after": "p3:9,p0:17"}, settings)
    assert req.after == ((0, 17), (3, 9))
    assert parse_request({"user_id": "u"}, settings).after is None
    for bad in ("p4:1", "p0:x", "17", 17, ["p0:1"]):
        with pytest.raises(RequestError) as caught:
            parse_request({"user_id": "u", "after": bad}, settings)
        assert caught.value.field == "after"
    with pytest.raises(RequestError) as caught:   # the topic path answers in order: it does not wait
        parse_request({"user_id": "u", "after": "p0:1"}, settings, allowed=TOPIC_FIELDS)
    assert caught.value.field == "after"


def test_filters_come_as_an_object_in_bodies_and_topic_messages_and_as_json_text_in_query_strings():
    body = {"user_id": "u", "filters": {"category": "books", "price": {"gte": 5, "lt": 20}}}
    from_body = parse_request(decode_object(json.dumps(body).encode()), SETTINGS)
    from_topic = parse_request(body, SETTINGS, allowed=TOPIC_FIELDS)
    from_query = parse_request({"user_id": "u", "filters": json.dumps(body["filters"])}, SETTINGS)
    assert from_body.filters == from_topic.filters == from_query.filters
    assert [(c.name, c.op, c.operand) for c in from_body.filters.conditions] == [
        ("category", "eq", "books"), ("price", "gte", 5), ("price", "lt", 20)]
    assert parse_request({"user_id": "u"}, SETTINGS).filters is None


@pytest.mark.parametrize("filters, field", [
    ("category=books", "filters"),                               # query text that is not JSON
    ('["category"]', "filters"),
    ("{" * 40 + "}" * 40, "filters"),
    ({"price": {"between": [1, 2]}}, "filters.price"),
    ({"price": {"lt": "cheap"}}, "filters.price.lt"),
    ({"category": {"in": ["a"] * 1001}}, "filters.category.in"),
])
def test_malformed_filters_are_400s_naming_the_field_on_every_path(filters, field):
    for allowed in (None, TOPIC_FIELDS):
        with pytest.raises(RequestError) as caught:
            parse_request({"user_id": "u", "filters": filters}, SETTINGS,
                          **({"allowed": allowed} if allowed else {}))
        assert (caught.value.field, caught.value.status) == (field, 400) and caught.value.message
    assert _error(b'{"user_id": "u", "filters": {"price": NaN}}').field == "filters.price"
