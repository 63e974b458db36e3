"""Closed-loop simulation of long-term effects: ``streamrec simulate``.

* :mod:`~harness.simulation.preferences` — the users' true preferences (biased MF, ALS);
* :mod:`~harness.simulation.choice` — how a user chooses from a list (position bias,
  outside option);
* :mod:`~harness.simulation.system` — one arm's live processes, fed and queried as a
  client would;
* :mod:`~harness.simulation.loop` — the rounds and the protocol;
* :mod:`~harness.simulation.experiment` — ``--experiment``: every arm on one system, as
  arms of a serving experiment;
* :mod:`~harness.simulation.round_metrics` — utility, exposure and homogenisation per round;
* :mod:`~harness.simulation.plots` and :mod:`~harness.simulation.cli` — output.
"""
from harness.simulation.choice import NO_CHOICE, ChoiceModel
from harness.simulation.loop import Arm, SimulationConfig, run_simulation
from harness.simulation.preferences import TruePreferences, fit_dataset, fit_preferences, load_or_fit, rmse
from harness.simulation.round_metrics import jaccard_overlap, round_summary, sample_pairs

__all__ = ["NO_CHOICE", "ChoiceModel", "Arm", "SimulationConfig", "run_simulation", "TruePreferences",
           "fit_dataset", "fit_preferences", "load_or_fit", "rmse", "jaccard_overlap", "round_summary",
           "sample_pairs"]
