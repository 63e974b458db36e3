"""Property test: malformed requests on HTTP and on the request topic, interleaved with valid ones.

A real ``streamrec serve`` subprocess takes thousands of generated requests. Each bad one
corrupts exactly one field of a valid request (or the body itself), so the test knows which
field the 4xx / error reply must name; every valid one must be answered; the process must be
the same one at the end (same pid, never exited).
"""
from __future__ import annotations

import asyncio
import http.client
import json
import math
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from serving.request_model import FIELDS
from harness.chaos.serving import seed_topics
from streamrec.client import AsyncTopicRecClient
from harness.processes import Proc

pytestmark = pytest.mark.integration

MAX_BODY = 4096
ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
fraction = st.floats(0.0, 1.0)

scalar = st.one_of(ids, st.integers(-10, 10), st.floats(-1e6, 1e6), st.booleans())
condition = st.one_of(scalar, st.fixed_dictionaries({}, optional={
    "eq": scalar, "ne": scalar, "in": st.lists(scalar, max_size=4), "not_in": st.lists(scalar, max_size=4),
    "gt": st.integers(-5, 5), "gte": st.floats(-5, 5), "lt": st.integers(-5, 5), "lte": st.floats(-5, 5)}
    ).filter(bool))
filters = st.dictionaries(st.sampled_from(["category", "price", "used"]), condition, max_size=3)

valid_doc = st.fixed_dictionaries({"user_id": ids}, optional={
    "k": st.integers(1, 200), "diversity": fraction, "exploration": fraction, "seed": st.integers(0, 2**40),
    "include_seen": st.booleans(), "exclude_items": st.lists(ids, max_size=5),
    "exclude_tags": st.lists(ids, max_size=3), "filters": filters})

junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)
not_a_number = junk.filter(lambda v: not (isinstance(v, (int, float)) and not isinstance(v, bool))
                           and not (isinstance(v, str) and _numeric(v)) and v is not None)


def _numeric(text: str) -> bool:
    try:
        float(text.strip())
        return True
    except ValueError:
        return False


# Integers no float can hold: 400 digits (a JSON body may carry them; float() overflows).
huge = st.sampled_from([10**400, -(10**400), 2 * 10**399 + 7])

# (field, strategy of values that must be rejected for it)
BAD_VALUES = {
    "k": st.one_of(st.integers(max_value=0), st.integers(min_value=201), st.floats(allow_nan=True),
                   not_a_number, huge).filter(lambda v: v is not None and v != ""),
    "diversity": st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0 <= x <= 1),
                           st.booleans(), not_a_number, huge),
    "exploration": st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 1.5, 1e308]), st.booleans(),
                             huge),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63), st.floats(), st.booleans(), huge),
    "include_seen": st.one_of(st.integers(), st.floats(), st.text(max_size=5).filter(
        lambda t: t.lower() not in ("1", "true", "yes", "0", "false", "no")), st.lists(st.booleans(), min_size=1)),
    "user_id": st.one_of(st.text(min_size=300, max_size=400), st.booleans(), st.floats(),
                         st.lists(ids, min_size=1), st.dictionaries(ids, ids, min_size=1),
                         st.sampled_from(["a\x00b", "tab\there", "\n", "\u2028"])),
    "exclude_items": st.one_of(st.integers(), st.dictionaries(ids, ids, min_size=1),
                               st.lists(st.one_of(st.none(), st.floats(), st.lists(ids)), min_size=1)),
    "require_tags": st.one_of(st.floats(), st.lists(st.text(min_size=300, max_size=300), min_size=1)),
    # Named as "filters" or a part of it ("filters.price.lt"): see _names.
    "filters": st.one_of(
        st.integers(), st.booleans(), st.lists(junk, max_size=3), st.text(max_size=20).filter(lambda t: not _is_object_text(t)),
        st.dictionaries(st.sampled_from(["category", "price"]), st.one_of(
            st.lists(scalar, min_size=1, max_size=3),
            st.dictionaries(ids.filter(lambda o: o not in ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")),
                            scalar, min_size=1, max_size=2),
            st.fixed_dictionaries({"lt": st.one_of(st.sampled_from([math.nan, math.inf, "5", True, None]), huge)}),
            st.fixed_dictionaries({"in": st.one_of(scalar, st.lists(st.lists(scalar, min_size=1), min_size=1))}),
            st.just({})), min_size=1)),
}

bad_field_doc = st.sampled_from(sorted(BAD_VALUES)).flatmap(
    lambda f: st.tuples(st.just(f), valid_doc, BAD_VALUES[f])).map(lambda t: (t[0], {**t[1], t[0]: t[2]}))
unknown_field_doc = st.tuples(valid_doc, ids.filter(lambda n: n not in FIELDS + ("reply_to",)), junk).map(
    lambda t: (t[1][:64], {**t[0], t[1]: t[2]}))
bad_body = st.one_of(
    # Whitespace-only bodies are excluded: serving reads them as no body (the query string may
    # carry the request), so they are answered as an empty request, not as a broken body.
    st.binary(min_size=1, max_size=200).filter(lambda b: b.strip() and not _is_json_object(b)),
    st.sampled_from([b'{"user_id": "\xff\xfe"}', b"[1, 2]", b'"str"', b"null", b"{", b'{"user_id": NaN'])
    .filter(lambda b: not _is_json_object(b)))


def _is_object_text(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _names(expected: str, field) -> bool:
    """Whether an error's ``field`` names ``expected`` (a filter's error may name a part of it)."""
    return field == expected or (expected == "filters" and str(field).startswith("filters."))


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


# One request: ("ok", doc) | (field, doc) | ("body", raw bytes)
request = st.one_of(valid_doc.map(lambda d: ("ok", d)), bad_field_doc, unknown_field_doc,
                    bad_body.map(lambda b: ("body", b)))


@pytest.fixture(scope="module")
def serving(broker, tmp_path_factory):
    from streamrec.settings import Settings
    import uuid

    settings = Settings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}-",
                        state_dir=tmp_path_factory.mktemp("badreq") / "state", partitions=2,
                        serving_max_body_bytes=MAX_BODY, serving_request_timeout_s=30.0)
    seed_topics(settings, n_items=50, n_users=5)
    proc = Proc("serve", settings, "http_port").start().wait_ready(150)
    pid = proc.process.pid
    yield proc
    alive = proc.process.poll() is None
    proc.stop()
    assert alive and proc.process.pid == pid, "the serving process exited during the property tests"


def _http_post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict]:
    conn.request("POST", "/recommendations", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, json.loads(r.read())


def _check(expected: str, status: int, body: dict) -> None:
    if expected == "ok":
        assert status == 200, body
        assert isinstance(body["items"], list)
    else:
        assert 400 <= status < 500, (expected, status, body)
        assert _names(expected, body["field"]) or (expected == "body" and status == 413), (expected, body)


@hsettings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=request)
def test_http_post_bodies_bad_get_4xx_naming_the_field_valid_answered(serving, case):
    expected, doc = case
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    if len(raw) > MAX_BODY:
        expected = "body"   # the size limit comes first: 413 naming the body
    conn = http.client.HTTPConnection("127.0.0.1", serving.port, timeout=10)
    try:
        _check(expected, *_http_post(conn, raw))
    finally:
        conn.close()


query_case = st.one_of(
    valid_doc.map(lambda d: ("ok", d)),
    st.sampled_from(["k", "diversity", "include_seen", "seed"]).flatmap(
        lambda f: st.tuples(st.just(f), valid_doc, BAD_VALUES[f].map(str).filter(lambda v: v not in ("", "None"))))
    .filter(lambda t: not (t[0] in ("k", "seed") and _valid_int_text(t[0], t[2])))
    .filter(lambda t: not (t[0] == "diversity" and _numeric(t[2]) and 0 <= float(t[2]) <= 1))
    .filter(lambda t: not (t[0] == "include_seen" and t[2].lower() in ("1", "true", "yes", "0", "false", "no")))
    .map(lambda t: (t[0], {**t[1], t[0]: t[2]})),
    unknown_field_doc)


def _valid_int_text(field: str, text: str) -> bool:
    try:
        value = int(text.strip())
    except ValueError:
        return False
    return 1 <= value <= 200 if field == "k" else 0 <= value < 2**63


def _query_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list) and all(isinstance(i, str) for i in v):
        return ",".join(v)
    if isinstance(v, dict):   # filters: the object as JSON text
        return json.dumps(v)
    return str(v)


@hsettings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=query_case)
def test_http_query_strings_bad_get_4xx_naming_the_field_valid_answered(serving, case):
    expected, doc = case
    if expected == "ok" and any(isinstance(v, list) and any("," in i for i in v) for v in doc.values()):
        return   # a comma inside a list element would split it: not the same request
    query = urllib.parse.urlencode({k: _query_value(v) for k, v in doc.items()})
    conn = http.client.HTTPConnection("127.0.0.1", serving.port, timeout=10)
    try:
        conn.request("GET", "/recommendations?" + query)
        r = conn.getresponse()
        _check(expected, r.status, json.loads(r.read()))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def topic_client(serving):
    loop = asyncio.new_event_loop()
    client = AsyncTopicRecClient(serving.settings, timeout=30.0)
    loop.run_until_complete(client.start())
    yield loop, client
    loop.run_until_complete(client.close())
    loop.close()


@hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.one_of(request.filter(lambda c: c[0] != "body"), valid_doc.map(lambda d: ("ok", d))),
                      min_size=20, max_size=40))
def test_request_topic_bad_messages_get_error_replies_valid_answered(serving, topic_client, batch):
    loop, client = topic_client

    async def one(n: int, expected: str, doc: dict) -> None:
        request_id = f"p{n}-{id(doc)}"
        raw = json.dumps({**doc, "request_id": request_id}).encode()
        if len(raw) > MAX_BODY:
            return   # oversized: covered by test_admin_security (reply carries no request_id)
        reply = await client.request_raw(raw, request_id, str(doc.get("user_id", "")).encode()[:64])
        if expected == "ok":
            assert reply.get("error") is None and isinstance(reply["items"], list), reply
        else:
            assert 400 <= reply["status"] < 500 and _names(expected, reply["field"]), (expected, reply)

    async def main():
        await asyncio.gather(*(one(n, e, d) for n, (e, d) in enumerate(batch)))

    loop.run_until_complete(main())


def _deep(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * depth + b"1" + close * depth


# (what the 400 must name, the top-level fields around it). Depths past Python's recursion
# limit (1000) made json raise RecursionError (a 500); 100 is past serving's bound (32).
PATHOLOGICAL = [
    ("body", b'"exclude_items": ' + _deep(1500)),
    ("body", b'"k": ' + _deep(100, b'{"a": ', b"}")),
    ("body", b'"exclude_tags": ' + b"[" * 1500),   # unterminated as well
    ("diversity", b'"diversity": 1' + b"0" * 400),
    ("exploration", b'"exploration": -1' + b"0" * 400),
    ("k", b'"k": 1' + b"0" * 400),
    ("seed", b'"seed": ' + b"9" * 401),
]


@pytest.mark.parametrize("expected, fields", PATHOLOGICAL)
def test_http_pathological_json_gets_400_naming_the_problem(serving, expected, fields):
    conn = http.client.HTTPConnection("127.0.0.1", serving.port, timeout=10)
    try:
        status, body = _http_post(conn, b'{"user_id": "u1", ' + fields + b"}")
        assert (status, body["field"]) == (400, expected), body
        # Still answering: the same connection serves a valid request next.
        assert _http_post(conn, b'{"user_id": "u1"}')[0] == 200
    finally:
        conn.close()


@pytest.mark.parametrize("expected, value", [("diversity", "1" + "0" * 400), ("exploration", "1e400"),
                                             ("k", "9" * 400), ("seed", "-1" + "0" * 400)])
def test_http_query_strings_with_out_of_range_numbers_get_400_naming_the_field(serving, expected, value):
    conn = http.client.HTTPConnection("127.0.0.1", serving.port, timeout=10)
    try:
        conn.request("GET", f"/recommendations?user_id=u1&{expected}={value}")
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())["field"]) == (400, expected)
    finally:
        conn.close()


def test_request_topic_pathological_json_is_answered_on_reply_to_naming_the_problem(serving):
    from streamrec.kafka.config import ensure_topics
    from streamrec.contracts.topics import TopicSpec

    replies = "custom-replies"
    ensure_topics(serving.settings, specs=[TopicSpec(replies)])

    async def main():
        async with AsyncTopicRecClient(serving.settings, reply_to=serving.settings.topic(replies),
                                       timeout=30.0) as client:
            async def one(n: int, expected: str, fields: bytes) -> None:
                request_id = f"path-{n}"
                raw = (b'{"request_id": "%s", "reply_to": "%s", "user_id": "u1", ' % (
                    request_id.encode(), client.reply_to.encode()) + fields + b"}")
                reply = await client.request_raw(raw, request_id, b"u1")
                assert (reply["status"], reply["field"], reply["user_id"]) == (400, expected, "u1"), reply

            await asyncio.gather(*(one(n, e, f) for n, (e, f) in enumerate(PATHOLOGICAL)))
        # No object to read a request_id from: the reply still comes, on the default topic.
        async with AsyncTopicRecClient(serving.settings, timeout=30.0) as client:
            reply = await client.request_raw(b"[" * 3000, None, b"u1")
            assert (reply["status"], reply["field"], reply["request_id"]) == (400, "body", None), reply

    asyncio.run(main())
