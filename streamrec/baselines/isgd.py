"""Incremental SGD matrix factorisation for positive-only feedback (ISGD).

Vinagre, Jorge and Gama, "Fast incremental matrix factorization for recommendation with
positive-only feedback", UMAP 2014. Every event ``(u, i)`` is a positive with target 1;
one SGD step on the squared error ``(1 - A_u . B_i)^2`` with L2 regularisation updates the
user and the item vector (new users and items start from ``N(0, init_sigma)``)::

    err = 1 - A_u . B_i
    A_u += lr * (err * B_i - l2 * A_u)
    B_i += lr * (err * A_u - l2 * B_i)

Following the paper, items are ranked by how close their predicted value is to the
positive target: score ``-|1 - A_u . B_i|``. Unknown users have no vector; they are scored
with the zero vector, so every item ties and the list falls back to catalogue order —
ISGD has no cold-start strategy of its own.

Examples
--------
>>> from streamrec.contracts.events import Event
>>> rec = ISGD(n_factors=4, seed=0)
>>> rec.set_catalogue(["a", "b", "c"])
>>> for _ in range(200):
...     rec.learn_one(Event("u", "a", "click", 1.0))
>>> round(float(rec.user_factors[rec.user_index["u"]] @ rec.item_factors[0]), 2)
0.99
>>> rec.recommend("u", k=1)
['a']
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from streamrec.contracts.events import Event
from streamrec.ranking.recommender import Recommender
from streamrec.state.item_rows import grow_rows


class ISGD(Recommender):
    """Positive-only incremental matrix factorisation (Vinagre et al., 2014).

    Parameters
    ----------
    n_factors
        Latent dimension.
    lr
        SGD learning rate (``eta`` in the paper).
    l2
        L2 regularisation (``lambda``).
    init_sigma
        Standard deviation of new user and item vectors.
    seed
        Seed of the initialisation draws.
    """

    name = "isgd"

    def __init__(self, n_factors: int = 10, lr: float = 0.05, l2: float = 0.01, init_sigma: float = 0.1,
                 seed: int | None = 0):
        super().__init__()
        self.n_factors, self.lr, self.l2, self.init_sigma = n_factors, lr, l2, init_sigma
        self._rng = np.random.default_rng(seed)
        self.item_factors = np.zeros((0, n_factors), dtype=np.float64)
        self.user_factors = np.zeros((0, n_factors), dtype=np.float64)
        self.user_index: dict[str, int] = {}

    def _on_catalogue(self) -> None:
        old = len(self.item_factors)
        if len(self.item_ids) > old:
            self.item_factors = grow_rows(self.item_factors, len(self.item_ids))
            size = len(self.item_factors)
            self.item_factors[old:size] = self._rng.normal(0.0, self.init_sigma, (size - old, self.n_factors))

    def _user_row(self, user_id: str) -> int:
        row = self.user_index.get(user_id)
        if row is None:
            row = self.user_index[user_id] = len(self.user_index)
            self.user_factors = grow_rows(self.user_factors, row + 1)
            self.user_factors[row] = self._rng.normal(0.0, self.init_sigma, self.n_factors)
        return row

    def learn_one(self, event: Event) -> None:
        i = self.row(event.item_id)
        u = self._user_row(event.user_id)
        a, b = self.user_factors[u], self.item_factors[i]
        err = 1.0 - float(a @ b)
        # Both updates use the pre-step vectors, as in the paper's simultaneous update.
        a_new = a + self.lr * (err * b - self.l2 * a)
        self.item_factors[i] = b + self.lr * (err * a - self.l2 * b)
        self.user_factors[u] = a_new

    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        n = len(self.item_ids)
        users = np.zeros((len(user_ids), self.n_factors), dtype=np.float64)
        for r, user_id in enumerate(user_ids):
            row = self.user_index.get(user_id)
            if row is not None:
                users[r] = self.user_factors[row]
        return -np.abs(1.0 - users @ self.item_factors[:n].T)
