"""95% intervals for per-request metrics: a cluster bootstrap that resamples users.

A user's requests are not independent (the same taste, the same history growing one event
at a time), so resampling requests would make intervals too narrow. Each resample draws
as many users as there are, with replacement, and takes every request of each drawn user
as many times as the user was drawn; the metric of a resample is the mean over the
requests it holds (a ratio: the requests per resample vary). The interval is the 2.5th and
97.5th percentile of the resampled means (the percentile bootstrap).

Differences between two methods are *paired*: both methods' per-request values go through
the same resampled users, so what the users have in common cancels, and a method compared
with itself differs by exactly 0 in every resample.

All resamples are drawn once, as a ``(resamples, users)`` matrix of how often each user
was drawn; every interval of a run is then one matrix product, whatever the number of
methods, metrics and segments (cold, warm).

Examples
--------
>>> users = np.array([0, 0, 1, 1, 2, 2, 3, 3])
>>> hits = np.array([[1.], [1.], [0.], [0.], [1.], [0.], [1.], [1.]])
>>> boot = UserBootstrap(users, resamples=200, seed=0)
>>> low, high = boot.interval(hits)
>>> bool(low[0] <= hits.mean() <= high[0])
True
>>> boot.difference(hits, hits)
(array([0.]), array([0.]), array([0.]))
"""
from __future__ import annotations

import numpy as np

LEVEL = 0.95   # the intervals' coverage
SEED = 0       # fixed, so a results file's intervals can be reproduced exactly


class UserBootstrap:
    """Resampled users for one run's requests; intervals of any per-request values over them.

    Parameters
    ----------
    users : np.ndarray
        The user (any hashable code) of each request, in request order.
    resamples : int
        How many resamples of the users to draw.
    seed : int
        Seed of the generator the resamples are drawn from.
    """

    def __init__(self, users: np.ndarray, resamples: int = 1000, seed: int = SEED):
        _, self.user_of = np.unique(np.asarray(users), return_inverse=True)
        self.n_users = int(self.user_of.max(initial=-1)) + 1
        self.seed = seed
        rng = np.random.default_rng(seed)
        # float32: counts of draws are small integers, exact in float32, and the matrix is
        # (resamples x users), the one large array here.
        self.draws = np.empty((max(int(resamples), 0), self.n_users), dtype=np.float32)
        for b in range(len(self.draws)):
            self.draws[b] = np.bincount(rng.integers(0, self.n_users, self.n_users), minlength=self.n_users)

    @property
    def resamples(self) -> int:
        return len(self.draws)

    def _resampled_means(self, values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """``(resamples, metrics)``: the mean of each column of ``values`` in each resample."""
        values = np.asarray(values, dtype=np.float64).reshape(len(self.user_of), -1)
        keep = np.ones(len(values), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        users = self.user_of[keep]
        sums = np.stack([np.bincount(users, weights=column, minlength=self.n_users)
                         for column in values[keep].T], axis=1).astype(np.float32)
        counts = np.bincount(users, minlength=self.n_users).astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            # A resample that drew none of the masked requests' users has no mean (nan).
            return (self.draws @ sums).astype(np.float64) / (self.draws @ counts).astype(np.float64)[:, None]

    def _percentiles(self, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tail = 100 * (1 - LEVEL) / 2
        if not len(means) or np.isnan(means).all():
            nan = np.full(means.shape[1], np.nan)
            return nan, nan.copy()
        low, high = np.nanpercentile(means, [tail, 100 - tail], axis=0)
        return low, high

    def interval(self, values: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The 95% interval of the mean of each column of ``values`` (``(requests, metrics)``,
        or one metric as ``(requests,)``), over the requests ``mask`` keeps (all without one)."""
        return self._percentiles(self._resampled_means(values, mask))

    def difference(self, a: np.ndarray, b: np.ndarray,
                   mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean of ``a - b`` per column and its paired 95% interval (the same users drawn for both)."""
        diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
        diff = diff.reshape(len(self.user_of), -1)
        keep = np.ones(len(diff), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        point = diff[keep].mean(axis=0) if keep.any() else np.full(diff.shape[1], np.nan)
        return (point, *self._percentiles(self._resampled_means(diff, keep)))
