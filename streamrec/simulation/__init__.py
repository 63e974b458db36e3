"""Closed-loop simulation of long-term effects: ``streamrec simulate``.

* :mod:`~streamrec.simulation.preferences` — the users' true preferences (biased MF, ALS);
* :mod:`~streamrec.simulation.choice` — how a user chooses from a list (position bias,
  outside option);
* :mod:`~streamrec.simulation.system` — one arm's live processes, fed and queried as a
  client would;
* :mod:`~streamrec.simulation.loop` — the rounds and the protocol;
* :mod:`~streamrec.simulation.round_metrics` — utility, exposure and homogenisation per round;
* :mod:`~streamrec.simulation.plots` and :mod:`~streamrec.simulation.cli` — output.
"""
from streamrec.simulation.choice import NO_CHOICE, ChoiceModel
from streamrec.simulation.loop import Arm, SimulationConfig, run_simulation
from streamrec.simulation.preferences import TruePreferences, fit_dataset, fit_preferences, load_or_fit, rmse
from streamrec.simulation.round_metrics import jaccard_overlap, round_summary, sample_pairs

__all__ = ["NO_CHOICE", "ChoiceModel", "Arm", "SimulationConfig", "run_simulation", "TruePreferences",
           "fit_dataset", "fit_preferences", "load_or_fit", "rmse", "jaccard_overlap", "round_summary",
           "sample_pairs"]
