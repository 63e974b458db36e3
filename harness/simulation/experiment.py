"""``streamrec simulate --experiment NAME``: every arm on one live system, as a real experiment runs.

Without the flag each arm gets a system of its own (its topics, processes and model). With
it, one system runs with an admin token; the simulator creates experiment ``NAME`` through
serving's admin API (``POST /admin/experiments``) with the ``--arms`` as its arms, equal
shares, so serving splits the simulated users between the arms by the experiment's hash
(:mod:`streamrec.contracts.experiments`). Each round asks for every user *without* options:
the arm answers with its own. The simulator splits its population with the same contract
function (:func:`split_population`), checks that every answer names the arm it expects
(``wrong_arm`` in each round's figures, 0 when all is well) and scores each arm's users
separately; at the end it reads serving's own per-arm online figures (``GET
/admin/experiments/NAME``: HR@10, NDCG@10, exposure) and reports them beside its own.

What differs from one system per arm: the arms share one model and one learner, as arms of a
live experiment do, so the choices made under one arm train the model every arm answers from
(interference the per-system mode does not have), and each arm sees only its share of the
users.
"""
from __future__ import annotations

import json
import urllib.request

from harness.simulation.system import ArmSystem
from streamrec.contracts.experiments import parse_spec


def experiment_spec(name: str, arms) -> dict:
    """The admin API body: ``arms`` (:class:`harness.simulation.loop.Arm`) with equal shares."""
    share = 1.0 / len(arms)
    out = []
    for arm in arms:
        entry = {"name": arm.name, "share": share, "diversity": arm.diversity, "exploration": arm.exploration}
        if arm.cooccurrence_weight is not None:
            entry["cooccurrence_weight"] = arm.cooccurrence_weight
        out.append(entry)
    return {"name": name, "description": "streamrec simulate", "arms": out}


def split_population(population, name: str, arms) -> dict:
    """Each arm's simulated users, by the experiment's own assignment (ValueError when an arm gets none)."""
    experiment = parse_spec(experiment_spec(name, arms), max_arms=len(arms))
    rows: dict[str, list[int]] = {arm.name: [] for arm in arms}
    for j, user_id in enumerate(population.user_ids):
        arm = experiment.arm_for(user_id)
        if arm is not None:   # shares summing to 1 within float rounding: a user may fall just past
            rows[arm.name].append(j)
    empty = [arm for arm, members in rows.items() if not members]
    if empty:
        raise ValueError(f"experiment {name!r}: arm {empty[0]!r} got none of the {len(population.user_ids)} "
                         "simulated users; simulate more --users")
    return {arm: population.subset(members) for arm, members in rows.items()}


def _admin(system: ArmSystem, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        system.procs["serve"].url + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {system.settings.serving_admin_token}",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from None


def create_experiment(system: ArmSystem, name: str, arms) -> dict:
    """Create the experiment on ``system``'s serving; its answer (the experiment as listed)."""
    return _admin(system, "POST", "/admin/experiments", experiment_spec(name, arms))


def serving_figures(system: ArmSystem, name: str) -> dict[str, dict]:
    """Serving's own online figures of each arm (HR@10, NDCG@10, exposure, requests, scored lists)."""
    shown = _admin(system, "GET", f"/admin/experiments/{name}")
    return {arm["name"]: arm.get("metrics", {}) for arm in shown["arms"]}
