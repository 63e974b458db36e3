"""Idempotent application of events to user state, and the codec."""
import numpy as np

from streamrec.contracts.events import Event
from streamrec.state.item_vectors import ItemVectors
from streamrec.settings import Settings
from streamrec.state.apply import apply_located
from streamrec.state.user_state import UserState, decode_state
from streams.batch import BatchProcessor, Record

S = Settings()
KW = dict(semantics=S.semantics, half_life=S.user_vector_half_life_s, recent_limit=5, dedup_limit=3)


def ev(i, t=1e9, eid=None, kind="click"):
    return Event("u", f"i{i}", kind, t + i, None, eid)


def test_replayed_positions_are_skipped_and_state_is_unchanged():
    iv = ItemVectors(8)
    events = [ev(i) for i in range(4)]
    pos = [(0, 10 + i, 0) for i in range(4)]
    s = UserState.empty(8)
    assert s.apply(events[:2], iv.lookup([e.item_id for e in events[:2]]), pos[:2], **KW).applied == [0, 1]
    before = s.encode()
    # A restart replays the whole tail: the first two are below the watermark.
    r = s.apply(events, iv.lookup([e.item_id for e in events]), pos, **KW)
    assert r.applied == [2, 3] and r.unique == [0, 1, 2, 3]
    assert s.counts == {"click": 4} and s.applied == 4
    assert decode_state(before).applied == 2


def test_event_id_duplicates_at_other_offsets_apply_once_within_window():
    iv = ItemVectors(8)
    s = UserState.empty(8)
    e = ev(1, eid="x")
    assert s.apply([e, e], iv.lookup(["i1", "i1"]), [(0, 1, 0), (0, 2, 0)], **KW).applied == [0]
    assert s.apply([e], iv.lookup(["i1"]), [(0, 9, 0)], **KW).unique == []
    assert s.applied == 1


def test_recent_is_bounded_and_vector_moves_toward_items():
    iv = ItemVectors(8)
    s = UserState.empty(8)
    items = [f"i{i}" for i in range(7)]
    s.apply([ev(i) for i in range(7)], iv.lookup(items), [(0, i, 0) for i in range(7)], **KW)
    assert [i for i, _, _ in s.recent] == items[-5:]
    target = iv.lookup(["i6"])[0]
    before = float(s.vector @ target)
    s.apply([ev(6, t=1e9 + 100)], iv.lookup(["i6"]), [(0, 100, 0)], **KW)
    assert float(s.vector @ target) > before


def test_codec_roundtrip_is_exact():
    iv = ItemVectors(8)
    s = UserState.empty(8)
    s.apply([ev(1, eid="a"), ev(2, kind="purchase")], iv.lookup(["i1", "i2"]), [(1, 5, 0), (1, 5, 1)], **KW)
    d = decode_state(s.encode())
    assert d.encode() == s.encode()
    np.testing.assert_array_equal(d.vector, s.vector)
    assert d.watermarks == {1: (5, 1)} and d.event_ids == {"a": (1, 5, 0)}


def test_batch_processor_applies_once_across_restarts():
    proc = BatchProcessor(S, ItemVectors(S.vector_dim))
    raw = b'[{"user_id":"u0","item_id":"x","event_type":"click","timestamp":1e9},' \
          b'{"user_id":"u2","item_id":"x","event_type":"click","timestamp":1e9}]'  # both on partition 2 of 4
    recs = [Record("events", 2, 40, raw, 1e9)]
    users = {}
    out = proc.process(recs, users)
    users.update(out.user_writes)
    again = proc.process(recs, users)
    assert out.applied == 2 and sorted(out.user_writes) == ["u0", "u2"]
    assert again.applied == 0 and again.replayed == 2 and again.duplicates == 0
    assert again.user_writes == {}     # nothing applied: no changelog record to write


def test_apply_located_reports_applied_replayed_and_duplicate_indices():
    located = [(ev(1, eid="a"), (0, 5, 0)), (Event("v", "i9", "click", 1e9), (0, 5, 1)),
               (ev(2, eid="a"), (0, 6, 0)),        # the same event_id at another position
               (ev(3), (0, 7, 0))]
    states = {}
    get = lambda u: states.setdefault(u, UserState.empty(S.vector_dim))  # noqa: E731
    first = {r.user_id: r for r in apply_located(located[:2], get, ItemVectors(S.vector_dim), S)}
    assert first["u"].applied == [0] and first["v"].applied == [1]
    users = apply_located(located, get, ItemVectors(S.vector_dim), S)
    assert [r.user_id for r in users] == ["u", "v"]
    u, v = users
    assert u.indices == [0, 2, 3] and u.applied == [3] and u.replayed == [0] and u.duplicates == [2]
    assert v.applied == [] and v.replayed == [1] and v.duplicates == []
    assert u.state is states["u"] and states["u"].applied == 2


def test_streams_and_serving_apply_events_to_the_same_state():
    from serving.state_replica import StateReplica
    raw = b'[{"user_id":"u0","item_id":"x","event_type":"click","timestamp":1e9},' \
          b'{"user_id":"u0","item_id":"y","event_type":"purchase","timestamp":1e9,"event_id":"e"},' \
          b'{"user_id":"u0","item_id":"z","event_type":"click","timestamp":1e9,"event_id":"e"}]'
    out = BatchProcessor(S, ItemVectors(S.vector_dim)).process([Record("events", 2, 40, raw, 1e9)], {})
    replica = StateReplica(S)
    assert replica.apply_events(2, 40, raw) == out.applied == 2 and out.duplicates == 1
    assert replica.users["u0"].encode() == out.user_writes["u0"]


def test_seen_keeps_every_item_beyond_recent_up_to_its_bound():
    iv = ItemVectors(8)
    s = UserState.empty(8)
    items = [f"i{i}" for i in range(60)]
    s.apply([ev(i) for i in range(60)], iv.lookup(items), [(0, i, 0) for i in range(60)], **KW, seen_limit=40)
    assert len(s.recent) == 5
    assert list(s.seen) == items[-40:]
    assert decode_state(s.encode()).seen == s.seen
