"""How a simulated user chooses among a recommended list: position bias plus a no-choice option.

The model, per user and round, for a list of ``k`` items with true utilities ``u_1..u_k``
(best-ranked first):

1. **Examination (position bias).** The item at 1-based rank ``r`` is examined with
   probability ``e(r) = 1 / log2(r + 1)`` (the DCG discount: rank 1 always, rank 2 with
   0.63, rank 10 with 0.29), independently of the others. ``position_bias="cascade"``
   instead examines top-down and stops after each item with probability ``stop``
   (``e(r) = (1 - stop)^(r - 1)``); ``"none"`` examines everything.
2. **Choice (multinomial logit with an outside option).** Among the examined items and the
   outside option "choose nothing", the user takes item ``i`` with probability
   ``exp(s u_i) / (exp(s u_0) + sum_examined exp(s u_j))``, where ``s`` is the
   ``sensitivity`` (per rating point) and ``u_0`` the ``outside_utility``. With the default
   ``u_0 = 3.5`` an examined item the user would rate 3.5 is as likely to be taken as
   nothing at all; worse lists lose users to the outside option, so "the user chose
   nothing" is an outcome the recommender is charged for.

Draws use the Gumbel-max trick on one ``numpy.random.Generator``: the same generator state
gives the same choices, and users are drawn in one vectorised step.

Examples
--------
>>> model = ChoiceModel(sensitivity=1.0, outside_utility=3.5)
>>> model.examination(3).round(3).tolist()
[1.0, 0.631, 0.5]
>>> u = np.array([[5.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
>>> picky = ChoiceModel(sensitivity=5.0, outside_utility=3.5)
>>> picky.choose(u, np.random.default_rng(0)).tolist()    # -1: the outside option
[0, -1]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_CHOICE = -1
POSITION_BIASES = ("log", "cascade", "none")


@dataclass(frozen=True)
class ChoiceModel:
    """Position-biased examination, then a logit choice with an outside option (see module doc)."""

    sensitivity: float = 1.0
    outside_utility: float = 3.5
    position_bias: str = "log"
    stop: float = 0.15          # cascade only: probability of stopping after each examined item

    def __post_init__(self) -> None:
        if self.position_bias not in POSITION_BIASES:
            raise ValueError(f"position_bias must be one of {POSITION_BIASES}, not {self.position_bias!r}")
        if not 0.0 <= self.stop < 1.0:
            raise ValueError("stop must be in [0, 1)")

    def examination(self, k: int) -> np.ndarray:
        """Probability that the item at each rank 1..k is examined (marginal, per rank)."""
        ranks = np.arange(1, k + 1, dtype=np.float64)
        if self.position_bias == "log":
            return 1.0 / np.log2(ranks + 1.0)
        if self.position_bias == "cascade":
            return (1.0 - self.stop) ** (ranks - 1.0)
        return np.ones(k)

    def examine(self, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
        """An ``(n, k)`` boolean draw of which positions each user examines."""
        if self.position_bias == "cascade":
            # Top-down: rank r is examined iff the user did not stop after any of ranks 1..r-1.
            go_on = rng.random((n, k)) >= self.stop
            return np.concatenate([np.ones((n, 1), bool), np.cumprod(go_on[:, :-1], axis=1).astype(bool)], axis=1)
        return rng.random((n, k)) < self.examination(k)[None, :]

    def probabilities(self, utilities: np.ndarray, examined: np.ndarray) -> np.ndarray:
        """Choice probabilities given the examined set: ``(n, k + 1)``, the last column no-choice.

        Unexamined or padded (NaN-utility) positions get probability 0.
        """
        logits = self._logits(np.asarray(utilities, dtype=np.float64), examined)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def choose(self, utilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each user (row), the chosen position (0-based) or :data:`NO_CHOICE`.

        ``utilities`` is ``(n, k)``: the true utility of each recommended item, NaN where the
        list was shorter than ``k``.
        """
        utilities = np.asarray(utilities, dtype=np.float64)
        n, k = utilities.shape
        examined = self.examine(n, k, rng)
        logits = self._logits(utilities, examined)
        gumbel = -np.log(-np.log(rng.random((n, k + 1)) * (1 - 1e-12) + 1e-12))
        pick = np.argmax(logits + gumbel, axis=1)
        return np.where(pick == k, NO_CHOICE, pick)

    def _logits(self, utilities: np.ndarray, examined: np.ndarray) -> np.ndarray:
        available = np.asarray(examined, bool) & np.isfinite(utilities)
        items = np.where(available, self.sensitivity * np.nan_to_num(utilities), -np.inf)
        outside = np.full((len(utilities), 1), self.sensitivity * self.outside_utility)
        return np.concatenate([items, outside], axis=1)
