"""Every method the harness can evaluate: the baselines plus the system's own variants.

:func:`available_methods` merges :data:`streamrec.baselines.BASELINES` with
``harness.evaluation.system_variants.SYSTEM_VARIANTS`` when that module can be imported
(its dependencies — the learner, serving re-ranking — may not be built yet). Each value is
a factory ``factory(seed=0) -> Recommender``. The command line and the shared conformance
tests both read this, so a new method is evaluated and tested by registering it once.

Examples
--------
>>> methods = available_methods()
>>> "item-knn" in methods and "popular" in methods
True
"""
from __future__ import annotations

import importlib
import logging

from streamrec.baselines import BASELINES, Factory

log = logging.getLogger(__name__)


def system_variants() -> dict[str, Factory]:
    """The system's variants, or an empty dict when they cannot be built in this checkout."""
    try:
        module = importlib.import_module("harness.evaluation.system_variants")
    except ImportError as exc:   # the learner or re-ranking is not there yet
        log.info("system variants unavailable: %s", exc)
        return {}
    return dict(module.SYSTEM_VARIANTS)


def available_methods() -> dict[str, Factory]:
    return {**BASELINES, **system_variants()}


# Evaluated only when asked for by name: the full system's diversity-0 sweep point already
# gives these numbers in the same run, without training the learner a second time.
ON_REQUEST_ONLY = frozenset({"system-full-norerank"})


def default_methods() -> dict[str, Factory]:
    """What ``streamrec evaluate`` runs when no ``--methods`` are named."""
    return {name: f for name, f in available_methods().items() if name not in ON_REQUEST_ONLY}
