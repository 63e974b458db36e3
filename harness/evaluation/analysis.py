"""What every method's scored requests share, and the statistics with intervals built on it.

For one run's :class:`~harness.evaluation.prequential.StreamPlan`, whatever the method:

- the *relevant* items of each request: the user's next ``next_items`` new items (the
  one chosen now first, then the ones the user goes on to choose), which recall@k,
  precision@k and MAP@k score the list against (:mod:`harness.evaluation.metrics`);
- which requests are a *cold* user's: the user had fewer than ``cold_events`` earlier
  events (of any kind, warm-up and re-consumptions included);
- the resampled users of the cluster bootstrap (:class:`~harness.evaluation.bootstrap.UserBootstrap`),
  drawn once so every method, metric and segment is measured on the same draws, and a
  difference between two methods is paired.

Examples
--------
>>> users, items = np.array([0, 1, 0, 0, 1]), np.array([7, 7, 8, 9, 9])
>>> next_new_items(users, items, 2).tolist()
[[7, 8], [7, 9], [8, 9], [9, -1], [9, -1]]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.evaluation import metrics
from harness.evaluation.bootstrap import SEED, UserBootstrap

if TYPE_CHECKING:
    from harness.evaluation.prequential import StreamPlan


def next_new_items(users: np.ndarray, items: np.ndarray, n: int) -> np.ndarray:
    """``(requests, n)``: each request's item and its user's next ``n - 1`` requested items
    (``-1`` past the user's last request). Requests are the scored ones, so each item is new
    to its user and none repeats within a row."""
    users, items = np.asarray(users), np.asarray(items)
    count = len(users)
    order = np.argsort(users, kind="stable")       # each user's requests together, in stream order
    by_user, by_user_items = users[order], items[order]
    out = np.full((count, max(n, 1)), -1, dtype=np.int64)
    for d in range(min(max(n, 1), count)):      # a user has at most ``count`` requests
        column = np.full(count, -1, dtype=np.int64)
        same_user = by_user[d:] == by_user[: count - d]
        column[: count - d][same_user] = by_user_items[d:][same_user]
        out[order, d] = column
    return out


def _by_metric(low: np.ndarray, high: np.ndarray) -> dict[str, list[float]]:
    return {key: [float(lo), float(hi)] for key, lo, hi in zip(metrics.ACCURACY, low, high)}


@dataclass
class RequestAnalysis:
    """Relevant items, cold/warm split and bootstrap of one plan's scored requests."""

    relevant: np.ndarray
    cold: np.ndarray
    users: np.ndarray
    bootstrap: UserBootstrap | None
    next_items: int
    cold_events: int

    @classmethod
    def of(cls, plan: "StreamPlan", next_items: int = 10, cold_events: int = 5, resamples: int = 1000,
           seed: int = SEED) -> "RequestAnalysis":
        users = plan.user_codes[plan.scored]
        relevant = next_new_items(users, plan.item_rows[plan.scored], next_items)
        boot = UserBootstrap(users, resamples, seed) if resamples > 0 else None
        return cls(relevant, plan.earlier[plan.scored] < cold_events, users, boot, next_items, cold_events)

    def accuracy(self, ranks: np.ndarray, lists: np.ndarray, requests: np.ndarray | None = None) -> np.ndarray:
        """``(scored requests, len(ACCURACY))``: every accuracy metric of each request.

        ``ranks`` and ``lists`` are those of every scored request, or, with ``requests``
        (request numbers), of those only; the other rows are then NaN: not measured.
        """
        relevant = self.relevant if requests is None else self.relevant[requests]
        per_request = metrics.accuracy_per_request(ranks, lists, relevant)
        values = np.stack([per_request[key] for key in metrics.ACCURACY], axis=1)
        if requests is None:
            return values
        out = np.full((len(self.relevant), values.shape[1]), np.nan)
        out[requests] = values
        return out

    def segments(self) -> dict[str, np.ndarray]:
        return {"cold": self.cold, "warm": ~self.cold}

    def describe(self, accuracy: np.ndarray) -> dict:
        """The intervals of the overall means and each segment's means with their intervals
        (over the measured requests: the rows of ``accuracy`` that are not NaN)."""
        measured = ~np.isnan(accuracy).any(axis=1)
        out: dict = {"intervals": self._intervals(accuracy, measured), "segments": {}}
        for segment, mask in self.segments().items():
            mask = mask & measured
            means = accuracy[mask].mean(axis=0) if mask.any() else np.full(accuracy.shape[1], np.nan)
            out["segments"][segment] = {
                "requests": int(mask.sum()), "users": int(len(np.unique(self.users[mask]))),
                **{key: float(v) for key, v in zip(metrics.ACCURACY, means)},
                "intervals": self._intervals(accuracy, mask)}
        return out

    def _intervals(self, accuracy: np.ndarray, mask: np.ndarray) -> dict[str, list[float]]:
        if self.bootstrap is None:
            return {}
        return _by_metric(*self.bootstrap.interval(accuracy, mask))

    def differences(self, accuracies: dict[str, np.ndarray], reference: str) -> dict:
        """Every other method minus ``reference``, per metric, overall and per segment, with
        the paired interval: ``{method: {segment: {metric: {"difference", "interval"}}}}``.
        Only requests both measured count (:meth:`accuracy`)."""
        out: dict = {}
        for name, accuracy in accuracies.items():
            if name == reference:
                continue
            out[name] = {}
            both = ~np.isnan(accuracy - accuracies[reference]).any(axis=1)
            for segment, mask in {"overall": both, **self.segments()}.items():
                mask = mask & both
                if self.bootstrap is None:
                    point = (accuracy[mask] - accuracies[reference][mask]).mean(axis=0)
                    low = high = np.full(len(point), np.nan)
                else:
                    point, low, high = self.bootstrap.difference(accuracy, accuracies[reference], mask)
                out[name][segment] = {key: {"difference": float(d), "interval": [float(lo), float(hi)]}
                                      for key, d, lo, hi in zip(metrics.ACCURACY, point, low, high)}
        return out

    def protocol(self) -> dict:
        """What the results document says about these choices."""
        return {
            "next_items": self.next_items, "cold_events": self.cold_events,
            "cold_requests": int(self.cold.sum()), "warm_requests": int((~self.cold).sum()),
            "relevance": f"recall@k, precision@k and MAP@k: relevant = the user's next {self.next_items} new "
                         "items (the chosen one first); HR@k, NDCG@k and MRR: the chosen item only",
            "cold": f"a request is cold when its user had fewer than {self.cold_events} earlier events",
            "bootstrap": ({"resamples": self.bootstrap.resamples, "seed": self.bootstrap.seed, "unit": "user",
                           "interval": "percentile, 95%", "users": self.bootstrap.n_users}
                          if self.bootstrap is not None else None),
        }


def best_baseline(results: dict, baselines) -> str | None:
    """The baseline with the highest overall HR@k among ``results``' methods (None: no baseline)."""
    present = [name for name in results if name in baselines]
    return max(present, key=lambda name: results[name]["overall"]["hr"], default=None)
