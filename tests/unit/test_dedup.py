"""The one event_id rule: the same decisions however events are batched, and in every consumer."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from streamrec.state.dedup import DedupIndex
from streamrec.contracts.events import Event
from streamrec.state.user_state import UserState
from streamrec.contracts.semantics import event_semantics

KW = dict(semantics=event_semantics("click=1"), half_life=3600.0, recent_limit=10)
ids = st.lists(st.one_of(st.none(), st.integers(0, 12).map(lambda k: f"e{k}")), min_size=1, max_size=60)


def _events(event_ids):
    return [Event("u", f"i{k}", "click", 1e9 + k, event_id=e) for k, e in enumerate(event_ids)]


@hsettings(max_examples=200, deadline=None)
@given(ids, st.integers(1, 8), st.integers(1, 20))
def test_streams_serving_and_learner_drop_the_same_duplicates_whatever_the_batching(event_ids, limit, batch):
    events = _events(event_ids)
    positions = [(0, k, 0) for k in range(len(events))]
    vectors = np.ones((len(events), 4), np.float32)
    whole = UserState.empty(4)             # the streams worker: one call per batch
    whole_applied = []
    for start in range(0, len(events), batch):
        got = whole.apply(events[start:start + batch], vectors[start:start + batch],
                          positions[start:start + batch], dedup_limit=limit, **KW)
        whole_applied += [start + k for k in got.applied]
    single = UserState.empty(4)            # serving's replica: one call per message
    single_applied = [k for k in range(len(events))
                      if single.apply(events[k:k + 1], vectors[k:k + 1], positions[k:k + 1],
                                      dedup_limit=limit, **KW).applied]
    index = DedupIndex(limit)              # the learner
    learner = [k for k, ev in enumerate(events) if index.keep(ev.user_id, ev.event_id, positions[k])]
    assert whole_applied == single_applied == learner
    assert whole.event_ids == single.event_ids == index.windows.get("u", {})


def test_a_replayed_position_is_not_a_duplicate_and_the_index_survives_a_checkpoint():
    index = DedupIndex(limit=3)
    assert index.keep("u", "a", (0, 1, 0)) and not index.keep("u", "a", (0, 2, 0))
    restored = DedupIndex.from_state(index.state(), limit=3)
    assert restored.keep("u", "a", (0, 1, 0))          # the same message read again after a restart
    assert not restored.keep("u", "a", (1, 9, 0))
    assert restored.windows == index.windows
