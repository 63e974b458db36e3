"""Baseline recommenders, all behind :class:`streamrec.ranking.recommender.Recommender`.

:data:`BASELINES` maps a method name to a factory ``factory(seed=0) -> Recommender``; the
evaluation harness and the shared conformance tests iterate over it, and
:mod:`harness.evaluation.system_variants` registers the system's own variants next to
it, so a new method is evaluated and tested by adding one entry.
"""
from __future__ import annotations

from typing import Callable

from streamrec.baselines.decayed_popular import DecayedPopular
from streamrec.baselines.isgd import ISGD
from streamrec.baselines.item_knn import ItemKNN
from streamrec.baselines.popular import MostPopular
from streamrec.baselines.river_mf import RiverBiasedMF, RiverFunkMF
from streamrec.ranking.recommender import Recommender

Factory = Callable[..., Recommender]

BASELINES: dict[str, Factory] = {
    "popular": lambda seed=0: MostPopular(seed=seed),
    "decayed-popular": lambda seed=0: DecayedPopular(seed=seed),
    "item-knn": lambda seed=0: ItemKNN(seed=seed),
    "river-biasedmf": lambda seed=0: RiverBiasedMF(seed=seed),
    "river-funkmf": lambda seed=0: RiverFunkMF(seed=seed),
    "isgd": lambda seed=0: ISGD(seed=seed),
}

__all__ = ["BASELINES", "DecayedPopular", "ISGD", "ItemKNN", "MostPopular", "RiverBiasedMF",
           "RiverFunkMF"]
