"""Idempotent application of events to user state, and the codec."""
import numpy as np

from streamrec.contracts.events import Event
from streamrec.state.item_vectors import ItemVectors
from streamrec.settings import Settings
from streamrec.state.user_state import UserState, decode_state
from streams.batch import BatchProcessor, Record

S = Settings()
KW = dict(weights=S.weights, half_life=S.user_vector_half_life_s, recent_limit=5, dedup_limit=3)


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


def test_batch_processor_counts_popularity_once_across_restarts():
    proc = BatchProcessor(S, ItemVectors(S.vector_dim))
    raw = b'[{"user_id":"u0","item_id":"x","event_type":"click","timestamp":1e9},' \
          b'{"user_id":"u2","item_id":"x","event_type":"click","timestamp":1e9}]'  # both on partition 2 of 4
    recs = [Record("events", 2, 40, raw, 1e9)]
    users, pops = {}, {}
    out = proc.process(recs, users, pops)
    users.update(out.user_writes)
    pops.update({k: v for (_, k), v in out.popularity_writes.items()})
    again = proc.process(recs, users, pops)
    assert out.applied == 2 and again.applied == 0 and again.replayed == 2
    assert again.user_writes == {} and again.popularity_writes == {}
    from streamrec.state.popularity import Popularity
    assert Popularity.decode(pops["2/x"]).count == 2


def test_seen_keeps_every_item_beyond_recent_up_to_its_bound():
    iv = ItemVectors(8)
    s = UserState.empty(8)
    items = [f"i{i}" for i in range(60)]
    s.apply([ev(i) for i in range(60)], iv.lookup(items), [(0, i, 0) for i in range(60)], **KW, seen_limit=40)
    assert len(s.recent) == 5
    assert list(s.seen) == items[-40:]
    assert decode_state(s.encode()).seen == s.seen
