"""The evaluation gate: a candidate is published only if it is not worse than the current model.

Both models rank the full catalogue for each of the newest held-out events (never trained on
by the candidate), with the items the user already had at that moment excluded. The gate
compares NDCG@10 (HR@10 is reported beside it): a candidate more than ``tolerance`` below the
current model is refused, as is one whose scores are not finite. The forgetting probe is a
fixed sample of older interactions scored the same way on every version, so that forgetting
shows up as a falling number rather than an anecdote.

Examples
--------
>>> scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1]])
>>> m = ranking_metrics(scores, targets=np.array([2, 1]), exclude=(np.array([0]), np.array([0])))
>>> m["hr@10"], m["n"]        # row 0: item 0 excluded, so the target ranks first
(1.0, 2)
>>> gate = EvaluationGate(tolerance=0.01)
>>> gate.decide({"ndcg@10": 0.30, "hr@10": 0.5}, {"ndcg@10": 0.32, "hr@10": 0.5}).decision
'refuse'
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def target_ranks(scores: np.ndarray, targets: np.ndarray,
                 exclude: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """0-based rank of each row's target among the items not excluded (ties count against it)."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets].copy()
    if exclude is not None and len(exclude[0]):
        scores[exclude[0], exclude[1]] = -np.inf
    scores[rows, targets] = -np.inf  # the target itself is never ranked above itself
    bad = ~np.isfinite(target_scores)
    ranks = (scores >= target_scores[:, None]).sum(axis=1)
    ranks[bad] = scores.shape[1]
    return ranks


def ranking_metrics(scores: np.ndarray, targets: np.ndarray,
                    exclude: tuple[np.ndarray, np.ndarray] | None = None, k: int = 10) -> dict:
    """HR@k and NDCG@k of one relevant item per row."""
    if len(targets) == 0:
        return metrics_from_ranks(np.zeros(0, np.int64), k)
    return metrics_from_ranks(target_ranks(scores, targets, exclude), k)


def metrics_from_ranks(ranks: np.ndarray, k: int = 10) -> dict:
    if len(ranks) == 0:
        return {f"hr@{k}": 0.0, f"ndcg@{k}": 0.0, "n": 0}
    hit = ranks < k
    ndcg = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    return {f"hr@{k}": float(hit.mean()), f"ndcg@{k}": float(ndcg.mean()), "n": int(len(ranks))}


@dataclass
class GateDecision:
    decision: str            # "accept" or "refuse"
    reason: str
    candidate: dict = field(default_factory=dict)
    current: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"


class EvaluationGate:
    def __init__(self, tolerance: float = 0.01, metric: str = "ndcg@10", min_events: int = 1):
        self.tolerance, self.metric, self.min_events = tolerance, metric, min_events

    def decide(self, candidate: dict, current: dict, candidate_loss: float | None = None) -> GateDecision:
        if candidate_loss is not None and not math.isfinite(candidate_loss):
            return GateDecision("refuse", "training loss is not finite", candidate, current)
        value = candidate.get(self.metric, float("nan"))
        if not math.isfinite(value):
            return GateDecision("refuse", f"candidate {self.metric} is not finite", candidate, current)
        if candidate.get("n", self.min_events) < self.min_events:
            return GateDecision("accept", "too few held-out events to judge", candidate, current)
        floor = current.get(self.metric, 0.0) - self.tolerance
        if value < floor:
            return GateDecision("refuse", f"{self.metric} {value:.4f} < current {current.get(self.metric, 0.0):.4f}"
                                f" - tolerance {self.tolerance}", candidate, current)
        return GateDecision("accept", f"{self.metric} {value:.4f} >= {floor:.4f}", candidate, current)
