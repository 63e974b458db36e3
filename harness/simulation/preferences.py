"""The simulated users' true preferences: a biased matrix factorisation fitted to the ratings.

A simulated user's *true utility* of an item is the rating the factorisation predicts,

``u(user, item) = mu + b_user + b_item + p_user . q_item``, clipped to the rating scale [1, 5],

fitted by alternating least squares (ALS) on every rating of the dataset. It stands in for
"what the user really thinks", which the recommender never sees: the recommender only sees
the choices the users make among what it shows them (:mod:`harness.simulation.choice`).

ALS with biases: with the item side fixed, each user's ``[p_user, b_user]`` is the ridge
regression of ``r - mu - b_item`` on ``[q_item, 1]`` over the items the user rated, with the
penalty ``reg * n_user`` (weighted-lambda regularisation, Zhou et al. 2008, so heavy and light
raters are shrunk alike); then the same for items with users fixed. Each half-step is exact,
so the training error never goes up. The fit is seeded (the initial item factors) and
cached under the state directory keyed by a hash of the ratings and the hyper-parameters:
the same data and settings give the same file and the same factors.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> users, items = rng.integers(0, 30, 600), rng.integers(0, 20, 600)
>>> ratings = np.clip(3 + (users % 3) - (items % 2) + rng.normal(0, 0.3, 600), 1, 5)
>>> prefs = fit_preferences(users, items, ratings, 30, 20, dim=4, iterations=5, seed=0)
>>> prefs.utilities(np.array([0])).shape
(1, 20)
>>> bool(rmse(prefs, users, items, ratings) < ratings.std())
True
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATING_MIN, RATING_MAX = 1.0, 5.0


@dataclass(frozen=True)
class TruePreferences:
    """Fitted factors over integer rows; ``user_ids`` / ``item_ids`` name the rows."""

    mu: float
    user_bias: np.ndarray      # (n_users,)
    item_bias: np.ndarray      # (n_items,)
    user_factors: np.ndarray   # (n_users, dim)
    item_factors: np.ndarray   # (n_items, dim)
    user_ids: tuple[str, ...] = ()
    item_ids: tuple[str, ...] = ()

    @property
    def n_users(self) -> int:
        return len(self.user_bias)

    @property
    def n_items(self) -> int:
        return len(self.item_bias)

    def predict(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """Predicted rating for each (user, item) pair, clipped to [1, 5]."""
        raw = (self.mu + self.user_bias[user_rows] + self.item_bias[item_rows]
               + np.einsum("nd,nd->n", self.user_factors[user_rows], self.item_factors[item_rows]))
        return np.clip(raw, RATING_MIN, RATING_MAX)

    def utilities(self, user_rows: np.ndarray) -> np.ndarray:
        """The ``(len(user_rows), n_items)`` matrix of true utilities, clipped to [1, 5]."""
        raw = (self.mu + self.user_bias[user_rows, None] + self.item_bias[None, :]
               + self.user_factors[user_rows] @ self.item_factors.T)
        return np.clip(raw, RATING_MIN, RATING_MAX)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, mu=np.array(self.mu), user_bias=self.user_bias, item_bias=self.item_bias,
                 user_factors=self.user_factors, item_factors=self.item_factors,
                 user_ids=np.array(self.user_ids, dtype=str), item_ids=np.array(self.item_ids, dtype=str))
        tmp.replace(path)   # a reader never sees a half-written cache

    @classmethod
    def load(cls, path: Path) -> "TruePreferences":
        with np.load(path) as z:
            return cls(float(z["mu"]), z["user_bias"], z["item_bias"], z["user_factors"], z["item_factors"],
                       tuple(z["user_ids"].tolist()), tuple(z["item_ids"].tolist()))


def _ridge_rows(group_rows: np.ndarray, other_rows: np.ndarray, targets: np.ndarray, features: np.ndarray,
                n_groups: int, reg: float) -> np.ndarray:
    """Per group g, solve ``(X_g'X_g + reg n_g I) w = X_g' y_g`` with ``X_g = features[other_rows]``."""
    dim = features.shape[1]
    order = np.argsort(group_rows, kind="stable")
    group_rows, other_rows, targets = group_rows[order], other_rows[order], targets[order]
    counts = np.bincount(group_rows, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.zeros((n_groups, dim))
    eye = np.eye(dim)
    for g in np.flatnonzero(counts):
        lo, hi = starts[g], starts[g] + counts[g]
        x = features[other_rows[lo:hi]]
        out[g] = np.linalg.solve(x.T @ x + reg * counts[g] * eye, x.T @ targets[lo:hi])
    return out


def fit_preferences(user_rows: np.ndarray, item_rows: np.ndarray, ratings: np.ndarray, n_users: int,
                    n_items: int, *, dim: int = 16, reg: float = 0.1, iterations: int = 12, seed: int = 0,
                    user_ids: tuple[str, ...] = (), item_ids: tuple[str, ...] = ()) -> TruePreferences:
    """Fit the biased factorisation by ALS (see the module docstring). Rows are 0-based ints."""
    user_rows, item_rows = np.asarray(user_rows), np.asarray(item_rows)
    ratings = np.asarray(ratings, dtype=np.float64)
    mu = float(ratings.mean())
    rng = np.random.default_rng(seed)
    item_factors = rng.normal(0.0, 0.1, (n_items, dim))
    item_bias = np.zeros(n_items)
    user_factors, user_bias = np.zeros((n_users, dim)), np.zeros(n_users)
    ones = lambda n: np.ones((n, 1))   # noqa: E731 - the constant feature that carries the bias
    for _ in range(iterations):
        solved = _ridge_rows(user_rows, item_rows, ratings - mu - item_bias[item_rows],
                             np.hstack([item_factors, ones(n_items)]), n_users, reg)
        user_factors, user_bias = solved[:, :dim], solved[:, dim]
        solved = _ridge_rows(item_rows, user_rows, ratings - mu - user_bias[user_rows],
                             np.hstack([user_factors, ones(n_users)]), n_items, reg)
        item_factors, item_bias = solved[:, :dim], solved[:, dim]
    return TruePreferences(mu, user_bias, item_bias, user_factors, item_factors, tuple(user_ids), tuple(item_ids))


def rmse(prefs: TruePreferences, user_rows: np.ndarray, item_rows: np.ndarray, ratings: np.ndarray) -> float:
    """Root mean squared error of the (clipped) predictions on the given ratings."""
    err = prefs.predict(np.asarray(user_rows), np.asarray(item_rows)) - np.asarray(ratings, dtype=np.float64)
    return float(np.sqrt(np.mean(err ** 2)))


def encode_ids(user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    """Integer rows for string ids (sorted, so the mapping does not depend on event order)."""
    users, user_rows = np.unique(np.asarray(user_ids, dtype=str), return_inverse=True)
    items, item_rows = np.unique(np.asarray(item_ids, dtype=str), return_inverse=True)
    return user_rows, item_rows, tuple(users.tolist()), tuple(items.tolist())


def fit_dataset(dataset, *, dim: int = 16, reg: float = 0.1, iterations: int = 12, seed: int = 0,
                catalogue: tuple[str, ...] | None = None) -> TruePreferences:
    """Fit on every rating of a :class:`harness.datasets.Dataset`.

    ``catalogue`` (default: the dataset's items) fixes the item rows, so items nobody rated
    still get a row (bias and factors 0: the global mean).
    """
    users, user_rows = np.unique(np.asarray(dataset.user_ids, dtype=str), return_inverse=True)
    catalogue = tuple(catalogue or sorted({i.item_id for i in dataset.items} | set(map(str, dataset.item_ids))))
    row_of = {item_id: row for row, item_id in enumerate(catalogue)}
    item_rows = np.fromiter((row_of[str(i)] for i in dataset.item_ids), dtype=np.int64, count=len(dataset))
    return fit_preferences(user_rows, item_rows, dataset.values, len(users), len(catalogue), dim=dim, reg=reg,
                           iterations=iterations, seed=seed, user_ids=tuple(users.tolist()), item_ids=catalogue)


def data_hash(dataset, **params) -> str:
    """A short hash of the ratings (users, items, values) and the fit's parameters."""
    h = hashlib.sha256()
    for column in (dataset.user_ids, dataset.item_ids):
        h.update("\x1f".join(map(str, column)).encode())
    h.update(np.asarray(dataset.values, dtype=np.float64).tobytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:16]


def load_or_fit(dataset, cache_dir: Path, *, dim: int = 16, reg: float = 0.1, iterations: int = 12,
                seed: int = 0) -> tuple[TruePreferences, Path, bool]:
    """The fitted preferences of ``dataset``, from ``cache_dir`` when this exact fit was made before.

    Returns ``(preferences, cache_path, loaded_from_cache)``.
    """
    key = data_hash(dataset, dim=dim, reg=reg, iterations=iterations, seed=seed)
    path = Path(cache_dir) / f"preferences-{dataset.name}-{key}.npz"
    if path.exists():
        return TruePreferences.load(path), path, True
    prefs = fit_dataset(dataset, dim=dim, reg=reg, iterations=iterations, seed=seed)
    prefs.save(path)
    return prefs, path, False
