"""Every method the harness can evaluate: the baselines plus the system's own variants.

:func:`available_methods` merges :data:`streamrec.baselines.BASELINES` with
:data:`harness.evaluation.system_variants.SYSTEM_VARIANTS`. Each value is a factory
``factory(seed=0) -> Recommender``. The command line and the shared conformance tests both
read this, so a new method is evaluated and tested by registering it once.

Examples
--------
>>> methods = available_methods()
>>> "item-knn" in methods and "popular" in methods
True
"""
from __future__ import annotations

from streamrec.baselines import BASELINES, Factory


def available_methods() -> dict[str, Factory]:
    # Imported when called: the system's variants load torch, which importing this module need not.
    from harness.evaluation.system_variants import SYSTEM_VARIANTS

    return {**BASELINES, **SYSTEM_VARIANTS}


# Evaluated only when asked for by name: the full system's diversity-0 sweep point already
# gives these numbers in the same run, without training the learner a second time.
ON_REQUEST_ONLY = frozenset({"system-full-norerank"})


def default_methods() -> dict[str, Factory]:
    """What ``streamrec evaluate`` runs when no ``--methods`` are named."""
    return {name: f for name, f in available_methods().items() if name not in ON_REQUEST_ONLY}
