"""User deletion, the pure parts: the signed record and its verification (the one input rule),
and how the streams worker's batches and serving's replica apply it in order with the user's
events — idempotent under replay, never resurrected by what came before it."""
from __future__ import annotations

import json

import pytest

from serving.state_replica import StateReplica
from streamrec.contracts.deletion import UserDeletion
from streamrec.contracts.events import REASONS, decode_message, owner_partition, parse_message
from streamrec.settings import Settings
from streamrec.state.item_vectors import ItemVectors
from streamrec.state.user_state import decode_state
from streams.batch import BatchProcessor, Record

KEY = "deletion-secret"
S = Settings(partitions=4, vector_dim=8, deletion_signing_key=KEY)
GONE, KEPT = "gone", "kept"
P = owner_partition(GONE, S.partitions)


def event(user: str, item: str, t: float = 1.7e9) -> bytes:
    return json.dumps({"user_id": user, "item_id": item, "event_type": "click", "timestamp": t}).encode()


def deletion(user: str = GONE, key: str | None = KEY) -> bytes:
    d = UserDeletion.new(user)
    return (d.signed(key) if key else d).encode()


def test_a_signed_deletion_on_its_users_partition_is_decoded_in_place():
    message = decode_message(deletion(), P, 41, S)
    assert not message.events and not message.rejections
    [(d, position)] = message.deletions
    assert (d.user_id, position) == (GONE, (P, 41))


@pytest.mark.parametrize("raw, partition, settings, reason", [
    (deletion(key=None), P, S, "deletion_unsigned"),
    (deletion(key="another secret"), P, S, "deletion_bad_signature"),
    (deletion(), P, S.replace(deletion_signing_key=None), "deletion_no_key"),
    (deletion(), (P + 1) % S.partitions, S, "deletion_misrouted"),
    (json.dumps({**json.loads(deletion()), "user_id": KEPT}).encode(), owner_partition(KEPT, 4), S,
     "deletion_bad_signature"),                                   # the HMAC covers who is deleted
    (json.dumps({**json.loads(deletion()), "op": "delete_all"}).encode(), P, S, "unknown_op"),
    (json.dumps({"op": "delete_user", "user_id": GONE}).encode(), P, S, "missing_field"),
    (json.dumps({**json.loads(deletion()), "requested_at": "now"}).encode(), P, S, "bad_type"),
])
def test_an_unauthorised_or_malformed_deletion_is_rejected_with_its_reason(raw, partition, settings, reason):
    message = decode_message(raw, partition, 7, settings)
    assert not message.deletions and not message.events
    assert [r.reason for r in message.rejections] == [reason] and reason in REASONS


def test_a_deletion_is_never_an_event_nor_part_of_a_packed_batch():
    """POST /events and packed messages refuse it: only the admin route writes one, alone."""
    events, rejections = parse_message(deletion(), S)
    assert not events and [(r.reason, r.field) for r in rejections] == [("not_an_event", "op")]
    packed = b"[" + event(GONE, "a") + b"," + deletion() + b"]"
    message = decode_message(packed, P, 3, S)
    assert [ev.item_id for ev, _ in message.events] == ["a"] and not message.deletions
    assert [(r.reason, r.index) for r in message.rejections] == [("not_an_event", 1)]


# --- the streams worker's batches ------------------------------------------------------------

def batch(*values: bytes, first_offset: int = 0) -> list[Record]:
    return [Record("events", P, first_offset + k, v, 1.7e9) for k, v in enumerate(values)]


def processor() -> BatchProcessor:
    return BatchProcessor(S, ItemVectors(S.vector_dim))


def test_streams_tombstone_the_user_and_drop_their_earlier_events_in_the_same_batch():
    out = processor().process(batch(event(GONE, "a"), event(GONE, "b"), deletion()), users={})
    assert out.user_writes == {GONE: None} and out.deleted == 1 and out.applied == 0


def test_streams_events_after_the_deletion_start_the_user_afresh_and_a_replay_changes_nothing():
    records = batch(event(GONE, "a"), deletion(), event(GONE, "c"))
    out = processor().process(records, users={})
    back = decode_state(out.user_writes[GONE])
    assert [item for item, _, _ in back.recent] == ["c"] and back.applied == 1
    # A crash before the offsets were committed: the same batch again, on the state it wrote.
    again = processor().process(records, users=dict(out.user_writes))
    assert again.user_writes == {} and again.deleted == 0 and again.applied == 0


def test_streams_a_deletion_in_a_later_batch_removes_the_stored_state_and_leaves_others():
    first = processor().process(batch(event(GONE, "a"), event(KEPT, "a")), users={})
    store = dict(first.user_writes)
    out = processor().process(batch(deletion(), first_offset=5), users=store)
    assert out.user_writes == {GONE: None} and out.deleted == 1
    unsigned = processor().process(batch(deletion(key=None), first_offset=6), users=store)
    assert unsigned.user_writes == {} and [d.rejection.reason for d in unsigned.rejected] == ["deletion_unsigned"]


# --- serving's replica -------------------------------------------------------------------------

def replica_with(*values: bytes) -> StateReplica:
    """A replica that read ``values`` from events, each on its user's partition."""
    replica = StateReplica(S)
    for offset, value in enumerate(values):
        replica.apply_events(owner_partition(json.loads(value)["user_id"], S.partitions), offset, value)
    return replica


def test_serving_forgets_the_user_and_their_co_occurrence_history_and_keeps_others():
    replica = replica_with(event(GONE, "a"), event(GONE, "b"), event(KEPT, "a"), deletion())
    assert GONE not in replica.users and replica.user_view(GONE) is None and KEPT in replica.users
    assert replica.cooccurrence.recent.rows(GONE).size == 0
    assert replica.deleted[GONE][0] == P


def test_serving_never_lets_what_came_before_a_deletion_bring_the_user_back():
    replica = replica_with(event(GONE, "a"), deletion())
    replica.apply_events(P, 0, event(GONE, "a"))          # the events feed read again after a restart
    assert GONE not in replica.users
    # The streams worker's changelog record from before the deletion (it may lag behind events).
    old = processor().process(batch(event(GONE, "a")), users={}).user_writes[GONE]
    assert not replica.apply_user_record(GONE.encode(), old) and GONE not in replica.users


def test_serving_a_user_who_came_back_survives_the_tombstone_of_their_deletion():
    replica = replica_with(event(GONE, "a"), deletion(), event(GONE, "c"))
    assert [e["item_id"] for e in replica.user_view(GONE)["recent"]] == ["c"]
    replica.apply_user_record(GONE.encode(), None)       # the changelog catches up with the deletion
    assert [e["item_id"] for e in replica.user_view(GONE)["recent"]] == ["c"]


def test_serving_after_a_restart_adopts_the_new_state_and_skips_the_deletion_it_outlived():
    """Restart: the changelog holds the state after the user came back; events replay from the start."""
    values = [event(GONE, "a"), deletion(), event(GONE, "c")]
    written = processor().process(batch(*values), users={}).user_writes[GONE]
    replica = StateReplica(S)
    assert replica.apply_user_record(GONE.encode(), written)
    for offset, value in enumerate(values):
        replica.apply_events(P, offset, value)
    assert [e["item_id"] for e in replica.user_view(GONE)["recent"]] == ["c"]
