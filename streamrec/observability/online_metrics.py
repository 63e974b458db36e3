"""Online quality of live traffic: accuracy of served lists and diversity of exposure.

Offline evaluation replays history; these numbers come from the recommendations actually
served. Two sliding windows:

* :class:`OnlineAccuracy` remembers the list last served to each user. When that user's
  next event arrives, the list is scored against the item the user went to: a *hit* if the
  item is in the top ``k``, and the NDCG gain ``1 / log2(rank + 2)`` (rank from 0) if so.
  The last ``window`` outcomes are kept, so HR@k and NDCG@k follow the system as it
  changes. A list is scored once (against the next event only), then forgotten.
* :class:`ExposureWindow` counts how often each item was shown over the last ``window``
  served lists, and reports the Shannon entropy of that exposure, its Gini coefficient over
  the catalogue and the catalogue coverage (share of items shown at least once). A
  recommender that shows everyone the same ten blockbusters has low entropy, Gini near 1
  and tiny coverage, however accurate it looks.

The pure functions (:func:`hits_and_gains`, :func:`exposure_entropy`, :func:`exposure_gini`,
:func:`exposure_coverage`) do the arithmetic on numpy arrays; the classes only keep the
windows. Neither class is thread-safe: serving calls them from its event loop.

Examples
--------
>>> acc = OnlineAccuracy(k=10, window=100)
>>> acc.served(["u1", "u2"], [["a", "b", "c"], ["x", "y"]])
>>> acc.observe(["u1", "u2", "u3"], ["b", "z", "a"])   # u3 was never served: ignored
2
>>> acc.hit_rate, round(acc.ndcg, 4)                    # u1 hit at rank 1, u2 missed
(0.5, 0.3155)
>>> exp = ExposureWindow(window=10, catalogue_size=4)
>>> exp.served([["a", "b"], ["a", "c"]])
>>> round(exp.entropy(), 4), exp.coverage(), round(exp.gini(), 4)
(1.5, 0.75, 0.375)
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Hashable, Iterable, Sequence

import numpy as np


# --- pure arithmetic ------------------------------------------------------------------

def hits_and_gains(lists: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Score each served list against the item the user went to next.

    Parameters
    ----------
    lists
        ``(n, L)`` array of served item ids, best first; shorter lists padded with a value
        that never equals a target (e.g. ``None`` in an object array).
    targets
        ``(n,)`` array: the item of each user's next event.
    k
        Cut-off: only the first ``k`` positions count.

    Returns
    -------
    hits, gains
        ``(n,)`` booleans (target in the top ``k``) and ``(n,)`` floats, the NDCG@k of a
        single relevant item: ``1 / log2(rank + 2)`` for a hit at 0-based ``rank``, else 0.
        With one relevant item the ideal DCG is 1, so the gain is already normalised.

    Examples
    --------
    >>> lists = np.array([["a", "b", "c"], ["a", "b", "c"], ["a", "b", "c"]], dtype=object)
    >>> hits, gains = hits_and_gains(lists, np.array(["a", "c", "d"], dtype=object), k=2)
    >>> hits.tolist(), gains.round(4).tolist()   # "c" is at rank 2, outside the top 2
    ([True, False, False], [1.0, 0.0, 0.0])
    """
    top = lists[:, :k]
    if top.shape[1] == 0:
        return np.zeros(len(targets), bool), np.zeros(len(targets))
    targets = np.asarray(targets)
    if top.dtype == object:
        targets = targets.astype(object)  # never cast to the lists' fixed-width string dtype: it truncates
    match = top == targets.reshape(-1, 1)
    hits = match.any(axis=1)
    rank = match.argmax(axis=1)
    gains = np.where(hits, 1.0 / np.log2(rank + 2.0), 0.0)
    return hits, gains


def exposure_entropy(counts: np.ndarray) -> float:
    """Shannon entropy, in bits, of the exposure distribution ``counts / counts.sum()``.

    0 when one item takes every impression; ``log2(m)`` when ``m`` items share them evenly.
    NaN when nothing was shown.

    >>> exposure_entropy(np.array([2, 1, 1, 0]))
    1.5
    """
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        return math.nan
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def exposure_gini(counts: np.ndarray, catalogue_size: int | None = None) -> float:
    """Gini coefficient of exposure over the catalogue: 0 perfectly even, towards 1 concentrated.

    Items of the catalogue never shown count as zeros, so ``catalogue_size`` (at least
    ``len(counts)``) matters: showing 2 of 1,000 items evenly is still very unequal.
    Uses the sorted-rank formula ``G = 2 Σ i x_(i) / (n Σ x) − (n + 1) / n`` with ``x``
    ascending and ``i`` from 1. NaN when nothing was shown.

    >>> exposure_gini(np.array([1, 1, 1, 1]))
    0.0
    >>> exposure_gini(np.array([2, 1, 1]), catalogue_size=4)   # one item never shown
    0.375
    """
    counts = np.asarray(counts, dtype=float)
    n = max(int(catalogue_size or 0), len(counts))
    total = counts.sum()
    if total <= 0 or n == 0:
        return math.nan
    shown = np.sort(counts[counts > 0])
    # The zeros take ranks 1..n-m, contributing nothing; the shown items take the top ranks.
    ranks = np.arange(n - len(shown) + 1, n + 1, dtype=float)
    return float(2.0 * (ranks * shown).sum() / (n * total) - (n + 1.0) / n)


def exposure_coverage(counts: np.ndarray, catalogue_size: int) -> float:
    """Share of the catalogue shown at least once (capped at 1). NaN for an empty catalogue.

    >>> exposure_coverage(np.array([3, 0, 1]), catalogue_size=8)
    0.25
    """
    if not catalogue_size or catalogue_size <= 0:
        return math.nan
    return min(1.0, float(np.count_nonzero(counts)) / catalogue_size)


# --- sliding windows --------------------------------------------------------------------

class OnlineAccuracy:
    """HR@k and NDCG@k of served lists, scored on each user's next event, over a sliding window.

    Parameters
    ----------
    k
        Cut-off (10 for HR@10 / NDCG@10).
    window
        How many of the most recent outcomes the rates are computed over.
    max_pending
        Most users whose served list awaits their next event; past it the oldest served
        list is dropped unscored, so memory stays bounded under many one-off visitors.
    ttl_s
        A served list not followed by an event within this many seconds (wall clock) is
        dropped unscored: the user left, and an event days later says little about the list.
        ``None`` keeps lists until evicted by ``max_pending``.

    Examples
    --------
    >>> acc = OnlineAccuracy(k=2, window=2)
    >>> acc.served(["u"], [["a", "b", "c"]]); acc.observe(["u"], ["a"])
    1
    >>> acc.served(["u"], [["a", "b", "c"]]); acc.observe(["u"], ["c"])   # rank 2: outside k
    1
    >>> acc.served(["u"], [["a", "b", "c"]]); acc.observe(["u"], ["b"])   # window keeps the last 2
    1
    >>> acc.count, acc.hit_rate, round(acc.ndcg, 4)
    (2, 0.5, 0.3155)
    """

    def __init__(self, k: int = 10, window: int = 10_000, max_pending: int = 100_000,
                 ttl_s: float | None = None):
        if k < 1 or window < 1 or max_pending < 1:
            raise ValueError("k, window and max_pending must be positive")
        self.k, self.window, self.max_pending, self.ttl_s = k, window, max_pending, ttl_s
        self._pending: dict[Hashable, tuple[float, tuple]] = {}  # insertion order = serve order
        self._hits = np.zeros(window, bool)
        self._gains = np.zeros(window)
        self._next = 0          # ring position of the next outcome
        self._filled = 0
        self.scored_total = 0   # outcomes ever scored (a counter for /metrics)
        self.dropped_total = 0  # served lists dropped unscored (evicted or expired)

    def served(self, user_ids: Sequence[Hashable], item_lists: Sequence[Iterable[Hashable]],
               now: float | None = None) -> None:
        """Remember the list served to each user (replacing an unscored earlier one)."""
        now = time.time() if now is None else now
        for user, items in zip(user_ids, item_lists):
            # pop + insert moves the user to the newest end of the eviction order
            if self._pending.pop(user, None) is not None:
                self.dropped_total += 1
            self._pending[user] = (now, tuple(items)[: self.k])
        overflow = len(self._pending) - self.max_pending
        if overflow > 0:
            for user in list(self._pending)[:overflow]:
                del self._pending[user]
            self.dropped_total += overflow

    def observe(self, user_ids: Sequence[Hashable], item_ids: Sequence[Hashable],
                now: float | None = None) -> int:
        """Score the pending lists of these events' users; returns how many were scored.

        Events are taken in order: a user with two events in the batch is scored on the
        first; the second finds nothing pending.
        """
        now = time.time() if now is None else now
        lists, targets = [], []
        for user, item in zip(user_ids, item_ids):
            entry = self._pending.pop(user, None)
            if entry is None:
                continue
            served_at, items = entry
            if self.ttl_s is not None and now - served_at > self.ttl_s:
                self.dropped_total += 1
                continue
            lists.append(items + (None,) * (self.k - len(items)))
            targets.append(item)
        if not lists:
            return 0
        grid = np.empty((len(lists), self.k), dtype=object)
        grid[:] = lists
        hits, gains = hits_and_gains(grid, np.array(targets, dtype=object), self.k)
        self._push(hits, gains)
        return len(lists)

    def forget(self, user_id: Hashable) -> None:
        """Drop the list waiting for the user's next event (a user deletion), unscored."""
        if self._pending.pop(user_id, None) is not None:
            self.dropped_total += 1

    def _push(self, hits: np.ndarray, gains: np.ndarray) -> None:
        n = len(hits)
        self.scored_total += n
        if n >= self.window:
            hits, gains, n = hits[-self.window:], gains[-self.window:], self.window
        idx = (self._next + np.arange(n)) % self.window
        self._hits[idx] = hits
        self._gains[idx] = gains
        self._next = int((self._next + n) % self.window)
        self._filled = min(self.window, self._filled + n)

    @property
    def count(self) -> int:
        """Outcomes in the window."""
        return self._filled

    @property
    def pending(self) -> int:
        """Served lists still waiting for their user's next event."""
        return len(self._pending)

    @property
    def hit_rate(self) -> float:
        """HR@k over the window (NaN while empty)."""
        return float(self._hits[: self._filled].mean()) if self._filled else math.nan

    @property
    def ndcg(self) -> float:
        """NDCG@k over the window (NaN while empty)."""
        return float(self._gains[: self._filled].mean()) if self._filled else math.nan


class ExposureWindow:
    """Exposure of items over the last ``window`` served lists: entropy, Gini, coverage.

    Parameters
    ----------
    window
        How many of the most recent served lists are counted.
    catalogue_size
        Items that could have been shown (the serving index's size); needed for coverage
        and to count never-shown items in the Gini. Update it with
        :meth:`set_catalogue_size` when a new index loads. Unknown (``None``): coverage is
        NaN and the Gini runs over the items seen so far.

    Examples
    --------
    >>> exp = ExposureWindow(window=2, catalogue_size=3)
    >>> exp.served([["a", "b"], ["a"]]); exp.served([["c"]])   # the first list slides out
    >>> exp.impressions, exp.coverage(), exp.entropy()
    (2, 0.6666666666666666, 1.0)
    """

    def __init__(self, window: int = 1_000, catalogue_size: int | None = None):
        if window < 1:
            raise ValueError("window must be positive")
        self.window = window
        self.catalogue_size = catalogue_size
        self._index: dict[Hashable, int] = {}
        self._counts = np.zeros(1024, np.int64)
        self._lists: deque[np.ndarray] = deque()
        self.lists_total = 0

    def forget(self, user_id: Hashable) -> None:
        """Forget the user's pending served list (a user deletion); exposure keeps no user."""
        self.accuracy.forget(user_id)

    def set_catalogue_size(self, n: int) -> None:
        self.catalogue_size = int(n)

    def _ids_to_index(self, items: Iterable[Hashable]) -> np.ndarray:
        index = self._index
        out = np.fromiter((index.setdefault(item, len(index)) for item in items), np.int64)
        if len(index) > len(self._counts):
            grown = np.zeros(max(len(index), 2 * len(self._counts)), np.int64)
            grown[: len(self._counts)] = self._counts
            self._counts = grown
        return out

    def served(self, item_lists: Iterable[Iterable[Hashable]]) -> None:
        """Count these served lists, sliding the oldest out past ``window``."""
        for items in item_lists:
            idx = self._ids_to_index(items)
            np.add.at(self._counts, idx, 1)
            self._lists.append(idx)
            self.lists_total += 1
        while len(self._lists) > self.window:
            np.subtract.at(self._counts, self._lists.popleft(), 1)

    @property
    def counts(self) -> np.ndarray:
        """Impressions per item seen so far (in first-seen order) within the window."""
        return self._counts[: len(self._index)]

    @property
    def impressions(self) -> int:
        return int(self.counts.sum())

    def entropy(self) -> float:
        """Shannon entropy of exposure in bits (NaN while empty)."""
        return exposure_entropy(self.counts)

    def gini(self) -> float:
        """Gini coefficient of exposure over the catalogue (NaN while empty)."""
        return exposure_gini(self.counts, self.catalogue_size)

    def coverage(self) -> float:
        """Share of the catalogue shown at least once in the window (NaN if size unknown)."""
        return exposure_coverage(self.counts, self.catalogue_size or 0)


class OnlineQuality:
    """Both windows behind the two calls serving makes, with Prometheus gauges bound to them.

    Serving calls :meth:`served` when it answers a request and :meth:`observe` for each batch
    of events its state replica applies; the gauges given to :meth:`bind` read the windows
    when Prometheus scrapes, so the request path only appends.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry, Gauge, generate_latest
    >>> reg = CollectorRegistry()
    >>> quality = OnlineQuality(k=10, catalogue_size=4)
    >>> quality.bind(hit_rate=Gauge("hr", "HR@10", registry=reg), coverage=Gauge("cov", "c", registry=reg))
    >>> quality.served("u1", ["a", "b"])
    >>> quality.observe(["u1"], ["b"])
    1
    >>> reg.get_sample_value("hr"), reg.get_sample_value("cov")
    (1.0, 0.5)
    """

    def __init__(self, k: int = 10, accuracy_window: int = 10_000, exposure_window: int = 1_000,
                 max_pending: int = 100_000, ttl_s: float | None = None, catalogue_size: int | None = None):
        self.accuracy = OnlineAccuracy(k=k, window=accuracy_window, max_pending=max_pending, ttl_s=ttl_s)
        self.exposure = ExposureWindow(window=exposure_window, catalogue_size=catalogue_size)

    def served(self, user_id: Hashable, items: Sequence[Hashable], now: float | None = None) -> None:
        """Record one answered request: the list shown to ``user_id``, best first."""
        self.accuracy.served([user_id], [items], now)
        self.exposure.served([items])

    def observe(self, user_ids: Sequence[Hashable], item_ids: Sequence[Hashable], now: float | None = None) -> int:
        """Score the users' pending lists against these events; returns how many were scored."""
        return self.accuracy.observe(user_ids, item_ids, now)

    def forget(self, user_id: Hashable) -> None:
        """Forget the user's pending served list (a user deletion); exposure keeps no user."""
        self.accuracy.forget(user_id)

    def set_catalogue_size(self, n: int) -> None:
        self.exposure.set_catalogue_size(n)

    def bind(self, *, hit_rate=None, ndcg=None, entropy=None, gini=None, coverage=None) -> None:
        """Make these (unlabelled) prometheus_client Gauges read the windows at scrape time."""
        for gauge, read in ((hit_rate, lambda: self.accuracy.hit_rate), (ndcg, lambda: self.accuracy.ndcg),
                            (entropy, self.exposure.entropy), (gini, self.exposure.gini),
                            (coverage, self.exposure.coverage)):
            if gauge is not None:
                gauge.set_function(read)
