"""The learner forgets a deleted user: the replay buffer drops their examples (and stays a working
buffer), the interaction log their history, the trainer everything it held of them, checkpoints
included; a cycle that trained on them while they were deleted does not publish."""
from __future__ import annotations

import numpy as np

from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.interaction_log import InteractionLog
from learner.replay_buffer import ReplayBuffer
from learner.trainer import ContinualTrainer
from streamrec.contracts.events import Event
from tests.learner_helpers import small_settings, users_held

COLUMNS = {"user": ((), np.int32), "x": ((2,), np.float32)}


def examples(users: list[int]) -> dict[str, np.ndarray]:
    u = np.asarray(users, np.int32)
    return {"user": u, "x": np.stack([u, u], axis=1).astype(np.float32)}


def test_drop_removes_the_rows_of_both_stores_and_the_buffer_keeps_working():
    buf = ReplayBuffer(COLUMNS, reservoir_size=50, recent_size=10, seed=0)
    buf.add(examples([k % 3 for k in range(200)]))
    removed = buf.drop("user", np.array([1]))
    assert removed > 0 and 1 not in buf.reservoir_rows()["user"] and 1 not in buf.recent_rows()["user"]
    assert len(buf) + buf.recent_count + removed == 50 + 10   # every row kept or counted as removed
    assert not buf._reservoir["x"][len(buf):].any()           # nothing of a removed example stays
    buf.add(examples([4] * 5))                                # freed slots take the next examples
    assert buf.recent_rows()["user"][-5:].tolist() == [4] * 5 and 4 in buf.reservoir_rows()["user"]
    assert 1 not in buf.sample(64)["user"]
    restored = ReplayBuffer.from_state(*buf.state_arrays())
    for rows in ("reservoir_rows", "recent_rows"):
        np.testing.assert_array_equal(getattr(restored, rows)()["user"], getattr(buf, rows)()["user"])


def test_a_buffer_emptied_by_drop_samples_from_what_remains():
    buf = ReplayBuffer(COLUMNS, reservoir_size=20, recent_size=4, seed=0)
    buf.add(examples([0] * 30))
    buf.drop("user", np.array([0]))
    assert len(buf) == buf.recent_count == 0
    buf.add(examples([2]))
    assert buf.sample(8)["user"].tolist() == [2] * 8


def test_a_forgotten_users_row_survives_a_checkpoint_as_nobody():
    log = InteractionLog(sequence_length=3)
    log.record(["a", "b", "a"], np.array([1, 2, 3]), np.array([1, 1, 1]), np.array([1.0, 2.0, 3.0]))
    log.forget("a")
    restored = InteractionLog.from_state(*log.state_arrays())
    assert restored.user_ids == [None, "b"] and restored.forgotten == {0} and len(restored) == 1
    restored.record(["a"], np.array([5]), np.array([1]), np.array([4.0]))   # back: a new row, no history
    assert restored.user_index["a"] == 2 and restored.history_rows("a") == [(5, 1, 4.0)]


def stream(users: list[str], n: int, t0: float = 1e9) -> list[Event]:
    """``n`` events round-robin over ``users``; each user's items are their own (first letter, a number)."""
    return [Event(users[k % len(users)], f"{users[k % len(users)][0]}{k % 7}", "click", t0 + k, event_id=f"e{k}")
            for k in range(n)]


def held_users(trainer: ContinualTrainer) -> set[str]:
    return users_held(trainer, lambda item: {"g": "gone", "k": "kept"}[item[0]])


def test_the_trainer_forgets_a_user_everywhere_and_a_checkpoint_holds_none_of_them(tmp_path):
    settings = small_settings(learner_train_every_events=200, learner_min_events=50, learner_probe_size=20)
    trainer = ContinualTrainer(settings)
    trainer.observe(stream(["gone", "kept"], 400))
    trainer.train_cycle()
    trainer.observe(stream(["gone", "kept"], 60, t0=2e9))      # waiting for the next cycle
    assert held_users(trainer) == {"gone", "kept"} and trainer.probe is not None
    removed = trainer.forget_user("gone", {"events:0": 999})
    assert removed > 0 and held_users(trainer) == {"kept"} and trainer.offsets["events:0"] == 999
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, trainer, version=1)
    restored, _ = load_checkpoint(path, settings)
    assert held_users(restored) == {"kept"} and "gone" not in path.read_bytes().decode("latin-1")
    assert restored.train_cycle().decision in ("accept", "refuse")   # a working trainer without them


def test_a_candidate_trained_on_a_user_deleted_meanwhile_is_refused():
    settings = small_settings(learner_train_every_events=200, learner_min_events=50)
    trainer = ContinualTrainer(settings)
    trainer.observe(stream(["gone", "kept"], 400))
    fit = trainer._fit

    def fit_while_the_user_is_deleted(*args):   # what the consuming thread may do during a cycle
        losses = fit(*args)
        trainer.forget_user("gone")
        return losses

    trainer._fit = fit_while_the_user_is_deleted
    result = trainer.train_cycle()
    assert result.decision == "refuse" and "deleted while it trained" in result.reason
    assert held_users(trainer) == {"kept"}                      # its held-out events were not kept either
