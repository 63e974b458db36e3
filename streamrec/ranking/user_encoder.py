"""Serving's user tower: the learner's GRU user tower recomputed in numpy from published weights.

Serving interface (stable)
--------------------------
``user_encoder_from_snapshot(snapshot: model_store.Snapshot) -> UserEncoder | None``
    None when the snapshot carries no user-encoder weights.
``UserEncoder.encode(histories: list[list[tuple[str, str, float]]], now: float | None = None) -> np.ndarray``
    (n, dim) float32; each history is a ``UserState.recent`` list of (item_id, event_type,
    timestamp), oldest first. ``now`` is in event time; None uses each history's newest
    timestamp. Pure numpy and no text encoder, so serving never loads torch.
The snapshot's ``item_vectors`` (rows aligned with ``item_ids``) live in the same space.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from streamrec.contracts.events import EVENT_TYPES

MAX_AGE_S = 30 * 86400.0
USER_PREFIX = "user."


def age_feature(age_seconds):
    """Recency input of the user tower: ``log1p(age hours)``, age clipped at 30 days.

    One formula for training (a torch tensor) and serving (a numpy array); it uses only
    methods both have, so this module never imports torch.

    >>> float(age_feature(np.array([3600.0]))[0]) == float(np.log1p(1.0))
    True
    """
    hours = age_seconds.clip(0.0, MAX_AGE_S) / 3600.0
    return hours.log1p() if hasattr(hours, "log1p") else np.log1p(hours)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


class UserEncoder:
    """Serving-side user tower in numpy: the same function as the learner's ``UserTower``, no torch."""

    def __init__(self, item_ids: Sequence[str], item_vectors: np.ndarray, tensors: dict[str, np.ndarray],
                 sequence_length: int, event_types: Sequence[str]):
        self.item_index = {item_id: row for row, item_id in enumerate(item_ids)}
        dim = item_vectors.shape[1]
        self.dim, self.sequence_length = dim, sequence_length
        self.item_vectors = np.vstack([item_vectors, np.zeros((1, dim), np.float32)]).astype(np.float32)
        self.type_index = {t: i + 1 for i, t in enumerate(event_types)}
        t = {k[len(USER_PREFIX):] if k.startswith(USER_PREFIX) else k: v.astype(np.float32) for k, v in tensors.items()}
        self.type_embedding = t["type_embedding.weight"]
        self.recency_w, self.recency_b = t["recency.weight"][:, 0], t["recency.bias"]
        self.w_ih, self.w_hh = t["gru.weight_ih_l0"].T.copy(), t["gru.weight_hh_l0"].T.copy()
        self.b_ih, self.b_hh = t["gru.bias_ih_l0"], t["gru.bias_hh_l0"]
        self.out_w, self.out_b = t["out.weight"].T.copy(), t["out.bias"]

    def encode(self, histories: Sequence[Sequence[tuple[str, str, float]]], now: float | None = None) -> np.ndarray:
        n, L, d = len(histories), self.sequence_length, self.dim
        rows = np.full((n, L), len(self.item_vectors) - 1, dtype=np.int64)
        types = np.zeros((n, L), dtype=np.int64)
        ages = np.zeros((n, L), dtype=np.float64)
        lengths = np.zeros(n, dtype=np.int64)
        missing = len(self.item_vectors) - 1
        for b, history in enumerate(histories):
            recent = history[-L:]
            m = len(recent)
            lengths[b] = m
            if not m:
                continue
            ref = recent[-1][2] if now is None else now
            rows[b, :m] = [self.item_index.get(str(i), missing) for i, _, _ in recent]
            types[b, :m] = [self.type_index.get(e, 0) for _, e, _ in recent]
            ages[b, :m] = [ref - ts for _, _, ts in recent]
        x = (self.item_vectors[rows] + self.type_embedding[types]
             + age_feature(ages).astype(np.float32)[..., None] * self.recency_w + self.recency_b)
        gi = x @ self.w_ih + self.b_ih  # (n, L, 3d): input halves of all gates at once
        h = np.zeros((n, d), dtype=np.float32)
        for step in range(int(lengths.max(initial=0))):
            gh = h @ self.w_hh + self.b_hh
            r = _sigmoid(gi[:, step, :d] + gh[:, :d])
            z = _sigmoid(gi[:, step, d:2 * d] + gh[:, d:2 * d])
            cand = np.tanh(gi[:, step, 2 * d:] + r * gh[:, 2 * d:])
            h_new = (1.0 - z) * cand + z * h
            h = np.where((step < lengths)[:, None], h_new, h)
        return (h @ self.out_w + self.out_b).astype(np.float32)


def user_encoder_from_snapshot(snapshot) -> UserEncoder | None:
    """The user encoder of a published :class:`~streamrec.contracts.model_store.Snapshot`, if it has one."""
    spec = snapshot.metadata.get("user_encoder")
    if not spec or "user.gru.weight_ih_l0" not in snapshot.tensors and "gru.weight_ih_l0" not in snapshot.tensors:
        return None
    tensors = {k: v for k, v in snapshot.tensors.items()
               if k.startswith(USER_PREFIX) or k.split(".")[0] in ("type_embedding", "recency", "gru", "out")}
    return UserEncoder(snapshot.item_ids, snapshot.item_vectors, tensors,
                       int(spec["sequence_length"]), list(spec["event_types"]))


def snapshot_metadata(sequence_length: int, event_types: Sequence[str] = EVENT_TYPES) -> dict:
    """What :func:`user_encoder_from_snapshot` needs besides the tensors (``event_types``: the
    declared types, in the order the type embedding's rows 1.. follow)."""
    return {"user_encoder": {"kind": "gru", "sequence_length": sequence_length,
                             "event_types": list(event_types), "max_age_s": MAX_AGE_S}}



__all__ = ["UserEncoder", "user_encoder_from_snapshot", "snapshot_metadata", "age_feature"]
