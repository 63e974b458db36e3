"""Accuracy, exposure and diversity metrics over served top-k lists, overall and per window.

Inputs are plain arrays so every metric can be checked by hand:

- ``ranks``: for each scored request, the 0-based position of the held-out item in the
  served list, or ``-1`` when it was not in the top ``k`` (a miss).
- ``lists``: the served lists, an integer array ``(requests, k)`` of catalogue rows,
  padded with ``-1`` when a method returned fewer than ``k`` items.

Accuracy of the *next item*: ``HR@k``, ``NDCG@k`` and ``MRR`` score the one item the user
actually chose next, so ``HR@k`` is the hit rate, ``NDCG@k`` is ``1 / log2(rank + 2)`` on a
hit (the ideal DCG is 1), and ``MRR`` is the reciprocal rank truncated at ``k`` (0 on a miss).

Accuracy of the *next items*: ``recall@k``, ``precision@k`` and ``MAP@k`` score the list
against a set of relevant items per request, ``relevant``: an integer array
``(requests, n)`` of catalogue rows padded with ``-1``, in the harness the user's next ``n``
new items, the chosen one first. With ``R`` the relevant set and ``rel(i)`` whether slot
``i`` holds one of them, *recall* is ``|L ∩ R| / |R|``, *precision* is ``|L ∩ R| / k``
(``k`` the list length, whatever was served), and *average precision* is
``sum_i P(i) rel(i) / min(|R|, k)`` with ``P(i)`` the precision of the first ``i`` slots;
``MAP@k`` is its mean. With one relevant item (``n = 1``) they reduce to the next-item
metrics: recall@k = HR@k, precision@k = HR@k / k and AP@k = the reciprocal rank.

Exposure treats every served slot as one impression. *Coverage* is the share of the
catalogue served at least once; the *Gini index* of impressions per catalogue item
(items never served count as zero) is 0 when exposure is uniform and ``(n-1)/n`` when one
item gets everything; *entropy* is the Shannon entropy, in bits, of the impression
distribution (``log2 n`` at most). *Intra-list diversity* is the mean pairwise cosine
distance ``1 - cos`` between the content vectors of the items within one list, averaged
over lists with at least two items (a zero content vector counts as orthogonal to all).
*Novelty* is the mean self-information ``-log2 p(i)`` of the served items, where ``p(i)`` is
the share of users who interacted with item ``i`` (Zhou et al., 2010).

Examples
--------
>>> ranks = np.array([0, -1, 1, -1])
>>> hit_rate(ranks), round(mrr(ranks), 3), round(ndcg(ranks), 3)
(0.5, 0.375, 0.408)
>>> lists, relevant = np.array([[5, 6, 7], [8, 9, 4]]), np.array([[6, 3], [4, -1]])
>>> [round(f(lists, relevant), 3) for f in (recall, precision, mean_average_precision)]
[0.75, 0.333, 0.292]
>>> lists = np.array([[0, 1], [0, 2]])
>>> coverage(lists, n_items=4), round(gini(exposure(lists, 4)), 3), entropy(exposure(lists, 4))
(0.75, 0.375, 1.5)
"""
from __future__ import annotations

from typing import Any

import numpy as np

# Ranks far beyond any k mark a miss; -1 is the convention used by the harness.
MISS = -1


# The accuracy metrics that are a mean over requests, in the order reports show them.
ACCURACY = ("hr", "ndcg", "mrr", "recall", "precision", "map")
# What reports call every metric (``@k`` stands for the list length).
LABELS = {"hr": "HR@k", "ndcg": "NDCG@k", "mrr": "MRR", "recall": "recall@k", "precision": "precision@k",
          "map": "MAP@k", "coverage": "coverage", "gini": "Gini", "entropy": "entropy", "ild": "ILD",
          "novelty": "novelty"}


def next_item_accuracy(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Per request: hit (0/1), NDCG and reciprocal rank of the one chosen item."""
    ranks = np.asarray(ranks)
    hit = ranks >= 0
    position = np.maximum(ranks, 0) + 1.0
    return {"hr": hit.astype(np.float64), "ndcg": np.where(hit, 1.0 / np.log2(position + 1.0), 0.0),
            "mrr": np.where(hit, 1.0 / position, 0.0)}


def relevant_slots(lists: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """``(requests, k)`` bool: the served slot holds one of the request's relevant items."""
    lists, relevant = np.asarray(lists), np.asarray(relevant)
    # Padding never matches: a relevant row must be >= 0 for its slot to count.
    return ((lists[:, :, None] == relevant[:, None, :]) & (relevant[:, None, :] >= 0)).any(axis=2)


def next_items_accuracy(lists: np.ndarray, relevant: np.ndarray) -> dict[str, np.ndarray]:
    """Per request: recall, precision and average precision of the list against ``relevant``."""
    lists = np.asarray(lists)
    rel = relevant_slots(lists, relevant)
    k = lists.shape[1]
    n_relevant = np.maximum((np.asarray(relevant) >= 0).sum(axis=1), 1)
    found = rel.sum(axis=1)
    precision_at = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    return {"recall": found / n_relevant, "precision": found / k,
            "map": (precision_at * rel).sum(axis=1) / np.minimum(n_relevant, k)}


def accuracy_per_request(ranks: np.ndarray, lists: np.ndarray | None = None,
                         relevant: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every accuracy metric of :data:`ACCURACY` per request (the set ones only with ``relevant``)."""
    out = next_item_accuracy(ranks)
    if relevant is not None:
        out.update(next_items_accuracy(lists, relevant))
    return out


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def hit_rate(ranks: np.ndarray) -> float:
    """Share of requests whose held-out item was in the served list."""
    return _mean(next_item_accuracy(ranks)["hr"])


def ndcg(ranks: np.ndarray) -> float:
    """Mean NDCG with one relevant item: ``1 / log2(rank + 2)`` on a hit, 0 on a miss."""
    return _mean(next_item_accuracy(ranks)["ndcg"])


def mrr(ranks: np.ndarray) -> float:
    """Mean reciprocal rank truncated at the list length: ``1 / (rank + 1)``, 0 on a miss."""
    return _mean(next_item_accuracy(ranks)["mrr"])


def recall(lists: np.ndarray, relevant: np.ndarray) -> float:
    """Mean share of each request's relevant items that its list holds."""
    return _mean(next_items_accuracy(lists, relevant)["recall"])


def precision(lists: np.ndarray, relevant: np.ndarray) -> float:
    """Mean share of each list's ``k`` slots that hold a relevant item."""
    return _mean(next_items_accuracy(lists, relevant)["precision"])


def mean_average_precision(lists: np.ndarray, relevant: np.ndarray) -> float:
    """MAP@k: mean over requests of the average precision, normalised by ``min(|R|, k)``."""
    return _mean(next_items_accuracy(lists, relevant)["map"])


def exposure(lists: np.ndarray, n_items: int) -> np.ndarray:
    """Impressions per catalogue row over all served lists (padding ignored)."""
    lists = np.asarray(lists)
    served = lists[lists >= 0]
    return np.bincount(served, minlength=n_items).astype(np.float64)


def coverage(lists: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that was served at least once."""
    return float((exposure(lists, n_items) > 0).sum() / n_items) if n_items else float("nan")


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts (0: equal; ``(n-1)/n``: all on one)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), float(np.sum(counts))
    if n == 0 or total == 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def entropy(counts: np.ndarray) -> float:
    """Shannon entropy, in bits, of the distribution proportional to ``counts``."""
    x = np.asarray(counts, dtype=np.float64)
    total = x.sum()
    if total == 0:
        return float("nan")
    p = x[x > 0] / total
    return float(-(p * np.log2(p)).sum() + 0.0)


def intra_list_diversity(lists: np.ndarray, item_vectors: np.ndarray, chunk: int = 4096) -> float:
    """Mean over lists (with at least two items) of the mean pairwise cosine distance."""
    lists = np.asarray(lists)
    vectors = np.asarray(item_vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    total, counted = 0.0, 0
    for start in range(0, len(lists), chunk):
        block = lists[start:start + chunk]
        valid = block >= 0
        x = unit[np.where(valid, block, 0)] * valid[..., None]
        dist = 1.0 - x @ x.transpose(0, 2, 1)
        pairs = valid[:, :, None] & valid[:, None, :]
        pairs &= ~np.eye(block.shape[1], dtype=bool)[None]
        n_pairs = pairs.sum(axis=(1, 2))
        keep = n_pairs > 0
        total += float(((dist * pairs).sum(axis=(1, 2))[keep] / n_pairs[keep]).sum())
        counted += int(keep.sum())
    return total / counted if counted else float("nan")


def novelty(lists: np.ndarray, item_probability: np.ndarray) -> float:
    """Mean over lists of the mean self-information ``-log2 p(i)`` of their items."""
    lists = np.asarray(lists)
    valid = lists >= 0
    info = -np.log2(np.asarray(item_probability, dtype=np.float64))[np.where(valid, lists, 0)]
    per_list = (info * valid).sum(axis=1)
    n = valid.sum(axis=1)
    keep = n > 0
    return float((per_list[keep] / n[keep]).mean()) if keep.any() else float("nan")


def summarise(ranks: np.ndarray, lists: np.ndarray, n_items: int, relevant: np.ndarray | None = None,
              item_vectors: np.ndarray | None = None, item_probability: np.ndarray | None = None) -> dict[str, Any]:
    """Every metric for one set of requests, as a JSON-ready dict (recall, precision and MAP
    only when the requests' ``relevant`` items are given)."""
    counts = exposure(lists, n_items)
    accuracy = accuracy_per_request(ranks, lists, relevant)
    out: dict[str, Any] = {"requests": int(len(ranks)), **{key: _mean(v) for key, v in accuracy.items()},
                           "coverage": float((counts > 0).sum() / n_items) if n_items else float("nan"),
                           "gini": gini(counts), "entropy": entropy(counts)}
    if item_vectors is not None:
        out["ild"] = intra_list_diversity(lists, item_vectors)
    if item_probability is not None:
        out["novelty"] = novelty(lists, item_probability)
    return out


def window_bounds(n: int, windows: int) -> list[tuple[int, int]]:
    """``windows`` contiguous, near-equal ``[start, end)`` slices of ``range(n)``."""
    edges = np.linspace(0, n, max(1, min(windows, n)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def per_window(ranks: np.ndarray, lists: np.ndarray, n_items: int, windows: int,
               relevant: np.ndarray | None = None, **kwargs) -> list[dict]:
    """:func:`summarise` on consecutive, equal-count windows of requests (in stream order)."""
    out = []
    for start, end in window_bounds(len(ranks), windows):
        stats = summarise(ranks[start:end], lists[start:end], n_items,
                          relevant=None if relevant is None else relevant[start:end], **kwargs)
        stats.update(start=start, end=end)
        out.append(stats)
    return out
