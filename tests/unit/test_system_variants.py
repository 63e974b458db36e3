"""The system variants differ exactly where they claim to (small slice, IDs-only model)."""
from __future__ import annotations

import numpy as np

from harness.evaluation.prequential import prequential
from harness.evaluation.system_variants import LearnerVariant, OnlineVectorsVariant
from streamrec.settings import Settings

FAST = Settings(learner_use_text=False, learner_train_every_events=300, learner_min_events=50,
                learner_batches_per_cycle=5, learner_batch_size=64, learner_holdout_events=50)


def test_static_variant_stops_learning_after_its_warmup(ml100k):
    rec = LearnerVariant("static", FAST, freeze_after=600, observe_batch=100)
    rec.set_catalogue([it.item_id for it in ml100k.items], ml100k.items)
    rec.learn_many(ml100k.head(1500).events)
    assert rec.trainer.events_seen == 600 and rec.cycles
    frozen = rec.vectors.copy()
    rec.learn_many(ml100k.head(2000).events[1500:])
    assert np.array_equal(rec.vectors, frozen)
    # ...but the user encoder still reads each user's newest history.
    assert rec.histories[ml100k.events[1999].user_id][-1][0] == ml100k.events[1999].item_id


def test_learner_variant_trains_and_turns_off_the_wall_clock_trigger(ml100k):
    rec = LearnerVariant("full", FAST, observe_batch=100)
    assert rec.settings.learner_train_every_s == 0.0
    rec.set_catalogue([it.item_id for it in ml100k.items], ml100k.items)
    rec.learn_many(ml100k.head(1000).events)
    assert rec.trainer.events_seen == 1000 and len(rec.cycles) >= 2


def test_online_vectors_are_user_state_means():
    from streamrec.contracts.events import Event

    rec = OnlineVectorsVariant(settings=Settings(user_vector_half_life_s=1e12))
    rec.set_catalogue(["a", "b", "c"])
    rec.learn_many([Event("u", "a", "click", 1.0), Event("u", "b", "click", 2.0)])
    expected = (rec.vectors[0] + rec.vectors[1]) / 2
    assert np.allclose(rec.user_vectors(["u"])[0], expected, atol=1e-5)


def test_sweep_points_come_out_of_one_run(ml100k):
    rec = LearnerVariant("full", FAST, observe_batch=100, sweep=(0.0, 1.0), sweep_every=2)
    doc = prequential(ml100k, {"full": rec}, limit=600)
    points = doc["sweeps"]["full"]
    assert [p["diversity_weight"] for p in points] == [0.0, 1.0]
    # Weight 0 (relevance order: what the variant itself served) covers every request.
    assert points[0]["requests"] == 600 and points[1]["requests"] == 300
    assert points[0]["hr"] == doc["methods"]["full"]["overall"]["hr"]
    assert points[1]["ild"] >= points[0]["ild"]


def test_cooccurrence_blend_is_the_model_plus_the_cooccurrence_scorer(ml100k):
    from streamrec.state.cooccurrence import blend

    plain = LearnerVariant("model", FAST, observe_batch=100)
    hybrid = LearnerVariant("hybrid", FAST, observe_batch=100, cooccurrence=True)
    events = ml100k.head(800).events
    for rec in (plain, hybrid):
        rec.set_catalogue([it.item_id for it in ml100k.items], ml100k.items)
        rec.learn_many(events)
    assert plain.cooccurrence is None and hybrid.cooccurrence.counts.sum() == 800
    users = [events[-1].user_id, events[-2].user_id]
    model = plain.user_vectors(users) @ plain.vectors.T
    co = hybrid.cooccurrence.scores([[i for i, _, _ in hybrid.histories[u]] for u in users])
    expected = blend(model, co, FAST.cooccurrence_weight)
    assert co.any() and np.allclose(hybrid.score_many(users), expected)


def test_static_variant_freezes_its_cooccurrence_counts_too(ml100k):
    rec = LearnerVariant("static", FAST, freeze_after=600, observe_batch=100, cooccurrence=True,
                         cooccurrence_until=600)
    rec.set_catalogue([it.item_id for it in ml100k.items], ml100k.items)
    rec.learn_many(ml100k.head(1000).events)
    assert rec.cooccurrence.counts.sum() == 600
