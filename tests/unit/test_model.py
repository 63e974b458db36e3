"""Model, trainer, gate and checkpoint: real torch on a MovieLens slice, IDs only (fast)."""
import numpy as np
import pytest
import torch

from learner.checkpoint import IncompatibleCheckpoint, checkpoint_bytes, load_checkpoint, save_checkpoint
from streamrec.contracts.events import Event
from learner.gate import EvaluationGate, ranking_metrics
from streamrec.contracts.items import Item
from learner.model import TwoTower
from streamrec.ranking.user_encoder import user_encoder_from_snapshot
from streamrec.contracts.model_store import load_version, write_version
from learner.ranking_loss import LOSSES, ranking_loss
from learner.fine_tune import to_torch
from learner.trainer import ContinualTrainer
from tests.learner_helpers import small_settings


def events_of(ds, start: int, stop: int) -> list[Event]:
    return [Event(u, i, "rating", float(t)) for u, i, t in
            zip(ds.user_ids[start:stop], ds.item_ids[start:stop], ds.timestamps[start:stop])]


def trained(ds, n_events: int = 3000, **changes) -> ContinualTrainer:
    trainer = ContinualTrainer(small_settings(**changes), ds.items)
    for start in range(0, n_events, 500):
        trainer.observe(events_of(ds, start, start + 500))
        if trainer.should_train():
            trainer.train_cycle()
    return trainer


@pytest.mark.parametrize("kind", LOSSES)
def test_a_training_step_lowers_the_loss_on_a_fixed_batch(ml100k, kind):
    trainer = ContinualTrainer(small_settings(), ml100k.items)
    trainer.observe(events_of(ml100k, 0, 1000))
    trainer.buffer.add({k: np.concatenate([p[k] for p in trainer.pending]) for k in trainer.pending[0]})
    batch = to_torch(trainer.buffer.sample(256, 0.5, np.random.default_rng(0)))
    model, n = trainer.model, len(trainer.item_ids)
    log_prob = torch.log(torch.full((n,), 1.0 / n))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def loss():
        matrix = model.items.all(n)
        users = model.user_vectors(matrix, batch["hist_items"], batch["hist_types"], batch["ages"], batch["lengths"])
        return ranking_loss(kind, users, matrix, batch["target"], log_prob, np.random.default_rng(1))

    before = float(loss().detach())
    for _ in range(5):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert float(loss().detach()) < before


def test_numpy_user_encoder_matches_the_torch_user_tower(ml100k):
    trainer = trained(ml100k, 1500)
    trainer.observe(events_of(ml100k, 1500, 1700))
    examples = trainer.pending[-1]
    keep = examples["length"] >= 0   # empty histories included: both give the cold-start vector
    with torch.no_grad():
        t = to_torch(examples)
        expected = trainer.model.user_vectors(trainer.current_matrix(), t["hist_items"], t["hist_types"],
                                              t["ages"], t["lengths"]).numpy()
    # Rebuild each example's history as serving sees it: (item_id, event_type, timestamp), now = event time.
    encoder = trainer.user_encoder()
    got = []
    for k in np.flatnonzero(keep):
        m = int(examples["length"][k])
        hist = [(trainer.item_ids[int(examples["hist_items"][k, j])], "rating", float(examples["hist_times"][k, j]))
                for j in range(m)]
        got.append(encoder.encode([hist], now=float(examples["timestamp"][k]))[0])
    np.testing.assert_allclose(np.array(got), expected[keep], rtol=1e-4, atol=1e-5)
    batch = encoder.encode([[("1", "rating", 1.0)], [], [("unknown", "click", 5.0), ("50", "purchase", 9.0)]])
    assert batch.shape == (3, trainer.settings.vector_dim) and batch.dtype == np.float32


def test_published_snapshot_carries_a_user_encoder(ml100k, tmp_path):
    trainer = trained(ml100k, 1500)
    ids, vectors, tensors, meta = trainer.export()
    snap = load_version(write_version(tmp_path, 1, ids, vectors, tensors, {}, extra_metadata=meta))
    encoder = user_encoder_from_snapshot(snap)
    history = [("50", "rating", 100.0), ("181", "rating", 200.0)]
    np.testing.assert_allclose(encoder.encode([history]), trainer.user_encoder().encode([history]), atol=1e-6)
    bare = load_version(write_version(tmp_path, 2, ids, vectors, {}, {}))
    assert user_encoder_from_snapshot(bare) is None


def test_continual_training_beats_the_untrained_model_and_grows_tables(ml100k):
    trainer = trained(ml100k, 3000)
    assert trainer.generation >= 1
    assert trainer.last_result.candidate["hr@10"] > 0.05  # random over ~1,600 items: ~0.006
    n = len(trainer.item_ids)
    trainer.observe([Event("1", "brand-new", "click", float(ml100k.timestamps[3000]))])
    assert len(trainer.item_ids) == n + 1 and trainer.item_vectors()[1].shape == (n + 1, 32)
    trainer.add_items([Item("another-new", "A film", tags=("Drama",))])
    ids, vectors = trainer.item_vectors()
    assert ids[-1] == "another-new" and np.isfinite(vectors).all()


class SabotagedTrainer(ContinualTrainer):
    """Trains normally, then scrambles which embedding belongs to which item."""

    sabotage = False

    def _fit(self, model, *args):
        losses = super()._fit(model, *args)
        if self.sabotage:
            with torch.no_grad():
                n = len(self.item_ids)
                perm = torch.from_numpy(np.random.default_rng(0).permutation(n))
                model.items.id_embedding[:n] = model.items.id_embedding[:n][perm] * 3.0
        return losses


def test_gate_refuses_a_deliberately_broken_candidate(ml100k):
    trainer = SabotagedTrainer(small_settings(), ml100k.items)
    for start in range(0, 3000, 500):
        trainer.observe(events_of(ml100k, start, start + 500))
        if trainer.should_train():
            assert trainer.train_cycle().decision == "accept"
    generation = trainer.generation
    before = trainer.item_vectors()[1].copy()
    trainer.sabotage = True
    trainer.observe(events_of(ml100k, 3000, 4000))
    result = trainer.train_cycle()
    assert result.decision == "refuse", result
    assert result.candidate["ndcg@10"] < result.current["ndcg@10"] - trainer.settings.learner_gate_tolerance
    assert trainer.generation == generation
    np.testing.assert_array_equal(trainer.item_vectors()[1][: len(before)], before)


def test_gate_rules():
    gate = EvaluationGate(tolerance=0.01)
    assert gate.decide({"ndcg@10": 0.295, "n": 100}, {"ndcg@10": 0.3}).accepted
    assert not gate.decide({"ndcg@10": 0.28, "n": 100}, {"ndcg@10": 0.3}).accepted
    assert not gate.decide({"ndcg@10": float("nan"), "n": 100}, {"ndcg@10": 0.3}).accepted
    assert not gate.decide({"ndcg@10": 0.5, "n": 100}, {"ndcg@10": 0.3}, candidate_loss=float("inf")).accepted
    scores = np.array([[0.1, 0.9, 0.5, 0.2]])
    assert ranking_metrics(scores, np.array([2]), k=1)["hr@1"] == 0.0
    assert ranking_metrics(scores, np.array([2]), (np.array([0]), np.array([1])), k=1)["hr@1"] == 1.0


def test_checkpoint_round_trips_bit_exactly(ml100k, tmp_path):
    trainer = trained(ml100k, 2500)
    trainer.observe(events_of(ml100k, 2500, 2700), offsets={"events:0": 17, "events:3": 4})  # pending, unconsumed
    path = tmp_path / "learner.safetensors"
    save_checkpoint(path, trainer, version=7)
    restored, version = load_checkpoint(path, trainer.settings)
    assert version == 7 and restored.offsets == {"events:0": 17, "events:3": 4}
    assert checkpoint_bytes(restored, 7) == path.read_bytes()
    # And the restored trainer continues exactly as the original would.
    for t in (trainer, restored):
        t.observe(events_of(ml100k, 2700, 3800))
        t.train_cycle()
    np.testing.assert_array_equal(trainer.item_vectors()[1], restored.item_vectors()[1])
    assert checkpoint_bytes(trainer, 8) == checkpoint_bytes(restored, 8)


def test_training_is_deterministic_under_a_seed(ml100k):
    a, b = trained(ml100k, 2000), trained(ml100k, 2000)
    np.testing.assert_array_equal(a.item_vectors()[1], b.item_vectors()[1])


def test_item_tower_grows_keeping_trained_rows():
    model = TwoTower(dim=4, text_dim=3, capacity=2, seed=1)
    before = model.items.all(2).detach().clone()
    assert model.items.grow(5) and model.items.capacity == 5
    torch.testing.assert_close(model.items.all(2), before)


def test_a_drop_in_the_live_hit_rate_starts_a_cycle_early(ml100k):
    trainer = ContinualTrainer(small_settings(learner_drift_delta=0.002, learner_train_every_events=100_000))
    trainer.observe(events_of(ml100k, 0, 100))
    assert not trainer.should_train()        # far from the count trigger, no timer
    for _ in range(3000):
        trainer.drift.update(1.0)            # the model used to hit...
    assert any(trainer.drift.update(0.0) for _ in range(500))   # ...and stopped: ADWIN sees the drop
    assert trainer.should_train()
    result = trainer.train_cycle()
    assert result.drift_triggered and not trainer.drift.triggered


def test_recommend_excludes_and_ranks_by_score(ml100k):
    trainer = trained(ml100k, 1500)
    history = [("50", "rating", 1e9), ("181", "rating", 1e9 + 60)]
    recs = trainer.recommend(history, k=10, exclude=["50", "181"])
    assert len(recs) == 10 and not {"50", "181"} & {i for i, _ in recs}
    scores = [s for _, s in recs]
    assert scores == sorted(scores, reverse=True)
    assert trainer.recommend_many([history, []], k=5)[1] and len(trainer.recommend_many([history], k=5)[0]) == 5


def test_declared_event_types_are_embedded_and_negative_events_are_history_not_targets(tmp_path):
    settings = small_settings(event_weights="play=1,skip=-0.5,like=2")
    trainer = ContinualTrainer(settings)
    assert trainer.type_index == {"play": 1, "skip": 2, "like": 3}
    assert trainer.model.users.type_embedding.num_embeddings == 4
    events = [Event("u", "a", "play", 1.0), Event("u", "b", "skip", 2.0), Event("u", "c", "like", 3.0)]
    result = trainer.observe(events)
    assert (result.events, trainer.pending_count, trainer.events_seen) == (3, 2, 3)
    assert trainer.pending[0]["target"].tolist() == [trainer.item_index["a"], trainer.item_index["c"]]
    # c's example still sees the skip in its history, typed as a skip.
    assert trainer.pending[0]["hist_types"][1, :2].tolist() == [1, 2]
    assert trainer.item_counts[trainer.item_index["b"]] == 0      # nothing to correct a target's logQ for
    assert trainer.export()[3]["user_encoder"]["event_types"] == ["play", "skip", "like"]
    # A checkpoint of these types resumes under them and is refused under others.
    path = tmp_path / "learner.safetensors"
    save_checkpoint(path, trainer, version=1)
    assert load_checkpoint(path, settings.replace(event_weights="play=2,skip=-1,like=3"))[0].pending_count == 2
    with pytest.raises(IncompatibleCheckpoint, match="embeds the event types play, skip, like"):
        load_checkpoint(path, small_settings())
