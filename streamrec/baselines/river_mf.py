"""River's ``reco.BiasedMF`` and ``reco.FunkMF`` behind the recommender contract.

River models learn one ``(user, item, y)`` at a time and predict one pair at a time
(``predict_one``); ranking a 1,682-film catalogue with ``Ranker.rank`` would be 1,682
Python calls per request. Instead this wrapper mirrors the learned item factors into a
numpy matrix and scores the whole catalogue with one matrix-vector product. The mirror is
exact: River's SGD step only changes the factors of the pair it just learned, so after
each ``learn_one`` the wrapper copies that item's latent vector (and bias) from the model.
Items River has not touched yet get their initial factors from a seeded draw with River's
default initialiser (River would draw them lazily on first access).

The user bias and the global mean are the same for every item of one request, so they
do not change the ranking and are left out of the score. The target is the event's
``value`` (the MovieLens rating) by default, as River's own MovieLens examples use it;
``target="implicit"`` learns ``y = 1`` for every event instead. Either way these are
rating-prediction models ranked by predicted value, which is exactly the mismatch a
top-k evaluation is meant to expose.

Examples
--------
>>> from streamrec.contracts.events import Event
>>> rec = RiverBiasedMF(seed=1)
>>> rec.set_catalogue(["a", "b", "c"])
>>> rec.learn_many([Event("u", "a", "rating", 1.0, 5.0), Event("v", "b", "rating", 2.0, 1.0)])
>>> len(rec.recommend("u", k=2, exclude={"a"}))
2
>>> s = rec.score_many(["u"])[0]
>>> bool(abs(s[0] - (rec.model.i_biases["a"] + rec.model.u_latents["u"] @ rec.model.i_latents["a"])) < 1e-9)
True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from river import optim, reco

from streamrec.contracts.events import Event
from streamrec.ranking.recommender import Recommender
from streamrec.state.item_rows import grow_rows


class RiverMF(Recommender):
    """Shared mirror of a River factorisation model's item factors (and biases).

    Parameters
    ----------
    model
        A ``river.reco`` model with ``u_latents`` / ``i_latents`` (and optionally
        ``i_biases``) dictionaries.
    target
        ``"value"``: learn the event's value (1 when absent); ``"implicit"``: always 1.
    init_sigma
        Standard deviation of the initial factors of items the model has not seen yet.
    """

    def __init__(self, model, target: str = "value", init_sigma: float = 0.1, seed: int | None = None):
        super().__init__()
        if target not in ("value", "implicit"):
            raise ValueError("target must be 'value' or 'implicit'")
        self.model = model
        self.target = target
        self.n_factors = int(model.n_factors)
        self._rng = np.random.default_rng(seed)
        self.init_sigma = init_sigma
        self.item_factors = np.zeros((0, self.n_factors), dtype=np.float64)
        self.item_bias = np.zeros(0, dtype=np.float64)
        self._biased = hasattr(model, "i_biases")

    def _on_catalogue(self) -> None:
        old = len(self.item_factors)
        n = len(self.item_ids)
        if n > old:
            self.item_factors = grow_rows(self.item_factors, n)
            self.item_bias = grow_rows(self.item_bias, n)
            size = len(self.item_factors)
            self.item_factors[old:size] = self._rng.normal(0.0, self.init_sigma, (size - old, self.n_factors))

    def learn_one(self, event: Event) -> None:
        y = 1.0 if self.target == "implicit" or event.value is None else float(event.value)
        row = self.row(event.item_id)
        self.model.learn_one(user=event.user_id, item=event.item_id, y=y)
        self.item_factors[row] = self.model.i_latents[event.item_id]
        if self._biased:
            self.item_bias[row] = self.model.i_biases[event.item_id]

    def score_many(self, user_ids: Sequence[str]) -> np.ndarray:
        n = len(self.item_ids)
        latents = self.model.u_latents
        users = np.zeros((len(user_ids), self.n_factors), dtype=np.float64)
        for r, user_id in enumerate(user_ids):
            vector = latents.get(user_id)   # .get: a defaultdict would create the user
            if vector is not None:
                users[r] = vector
        return users @ self.item_factors[:n].T + self.item_bias[:n]


class RiverBiasedMF(RiverMF):
    """``river.reco.BiasedMF`` with the hyper-parameters of River's MovieLens example."""

    name = "river-biasedmf"

    def __init__(self, n_factors: int = 10, lr_bias: float = 0.025, lr_latent: float = 0.05,
                 l2_bias: float = 0.0, l2_latent: float = 0.0, target: str = "value", seed: int | None = 0):
        model = reco.BiasedMF(
            n_factors=n_factors, bias_optimizer=optim.SGD(lr_bias), latent_optimizer=optim.SGD(lr_latent),
            l2_bias=l2_bias, l2_latent=l2_latent,
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed), seed=seed)
        super().__init__(model, target=target, seed=seed)


class RiverFunkMF(RiverMF):
    """``river.reco.FunkMF`` with the hyper-parameters of River's MovieLens example."""

    name = "river-funkmf"

    def __init__(self, n_factors: int = 10, lr: float = 0.05, l2: float = 0.1, target: str = "value",
                 seed: int | None = 0):
        model = reco.FunkMF(
            n_factors=n_factors, optimizer=optim.SGD(lr), l2=l2,
            initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed), seed=seed)
        super().__init__(model, target=target, seed=seed)
