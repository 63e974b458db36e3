"""The closed loop: the live system recommends, simulated users choose, choices flow back.

Protocol (:func:`run_simulation`):

1. **True preferences.** A biased matrix factorisation fitted to *every* rating of the
   dataset (:mod:`harness.simulation.preferences`), cached under the state directory.
2. **Systems.** One live system per arm (:class:`harness.simulation.system.ArmSystem`),
   all started at once on the same broker, each under its own topic prefix; or, with
   ``experiment``, one system whose serving runs the arms as an experiment and splits the
   users between them (:mod:`harness.simulation.experiment`).
3. **Warm-up.** Each arm gets the same first ``warmup_fraction`` of the events in timestamp
   order (catalogue included) through Kafka, then the simulator waits until serving shows
   them and (with the learner) until a trained model version is live.
4. **Users.** ``users`` MovieLens users with at least ``min_history`` warm-up events, drawn
   with the seed. Each keeps the set of items consumed (warm-up history plus choices): a
   consumed item is never chosen again (people rarely re-watch a film because it was
   recommended twice) but still counts as served.
5. **Rounds.** In round ``r`` every arm is asked ``POST /recommendations`` for every user
   with the arm's ``diversity`` and ``exploration`` options (in an experiment: for each of
   its users, with no options, the arm answering with its own); each user chooses by
   :class:`harness.simulation.choice.ChoiceModel` with a generator seeded by
   ``(seed, r)`` — the same random numbers in every arm (common random numbers: differences
   between arms come from the lists, not from the dice). Each choice is published as a
   ``click`` event at event time ``warm-up end + (r + 1) * round_seconds`` (plus a
   millisecond per user), with a unique ``event_id``. Before round ``r + 1`` the simulator
   waits until serving shows every user's newest event and the learner has consumed them.
6. **Metrics per round and arm** (:func:`harness.simulation.round_metrics.round_summary`):
   mean true utility of the chosen items and of the served slots, the choice rate (the
   complement is the outside option), exposure coverage / Gini / entropy of the round's
   lists, homogenisation (mean Jaccard between users' lists), intra-list diversity in
   true-taste space, and the oracle's utility (best ``k`` unconsumed items) as reference.
   Cumulative coverage (share of the catalogue shown at least once so far) too.
"""
from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from streamrec.settings import Settings
from harness.simulation.choice import ChoiceModel
from harness.simulation.experiment import create_experiment, serving_figures, split_population
from harness.simulation.preferences import load_or_fit
from harness.simulation.round_metrics import round_summary, sample_pairs
from harness.simulation.system import ArmSystem


@dataclass(frozen=True)
class Arm:
    """A named configuration, e.g. ``diverse:diversity=0.5,exploration=0.2``.

    ``diversity`` and ``exploration`` are request options; ``cooccurrence_weight`` (None:
    serving's default) is the arm's system's setting, or, with ``--experiment``, the arm's.
    """

    name: str
    diversity: float = 0.0
    exploration: float = 0.0
    cooccurrence_weight: float | None = None

    @classmethod
    def parse(cls, spec: str) -> "Arm":
        name, _, options = spec.partition(":")
        if not name or len(name) > 32 or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"arm {spec!r}: the name must be 1-32 letters, digits, - or _")
        values: dict[str, float] = {}
        for part in filter(None, options.split(",")):
            key, _, raw = part.partition("=")
            key = key.strip()
            if key not in ("diversity", "exploration", "cooccurrence_weight"):
                raise ValueError(f"arm {spec!r}: unknown option {key!r} (diversity, exploration, "
                                 "cooccurrence_weight)")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"arm {spec!r}: {key} must be a number") from None
            if not 0.0 <= value <= (1.0 if key != "cooccurrence_weight" else 100.0):
                raise ValueError(f"arm {spec!r}: {key} must be in [0, 1] ([0, 100] for cooccurrence_weight)")
            values[key] = value
        return cls(name, **values)

    def request_options(self) -> dict[str, float]:
        return {"diversity": self.diversity, "exploration": self.exploration}


@dataclass
class SimulationConfig:
    users: int = 200
    rounds: int = 30
    k: int = 10
    seed: int = 0
    arms: list[Arm] = field(default_factory=lambda: [Arm("plain", 0.0, 0.0), Arm("diverse", 0.5, 0.2)])
    warmup_fraction: float = 0.5
    min_history: int = 5
    round_seconds: float = 86_400.0
    learner: bool = True
    streams: bool = True
    learn_every: int = 0            # learner cycle every this many events (0: users, ~one per 1-2 rounds)
    experiment: str | None = None   # every arm on one system, as arms of this experiment (harness.simulation.experiment)
    choice: ChoiceModel = field(default_factory=ChoiceModel)
    max_pairs: int = 5_000
    visible_timeout: float = 30.0
    first_model_timeout: float = 240.0
    pref_dim: int = 16
    pref_reg: float = 0.1

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["arms"] = [dataclasses.asdict(a) for a in self.arms]
        return out


class Population:
    """The simulated users: who they are, their true utilities, and what they have consumed."""

    def __init__(self, prefs, dataset, warm: int, config: SimulationConfig):
        user_row = {u: r for r, u in enumerate(prefs.user_ids)}
        self.item_row = {i: r for r, i in enumerate(prefs.item_ids)}
        warm_users = np.asarray(dataset.user_ids[:warm], dtype=str)
        ids, counts = np.unique(warm_users, return_counts=True)
        eligible = ids[counts >= config.min_history]
        if len(eligible) < config.users:
            raise ValueError(f"only {len(eligible)} users have {config.min_history}+ warm-up events "
                             f"(asked for {config.users})")
        rng = np.random.default_rng([config.seed, 1])
        self.user_ids = sorted(rng.choice(eligible, size=config.users, replace=False).tolist(), key=int_or_str)
        self.utilities = prefs.utilities(np.array([user_row[u] for u in self.user_ids]))
        self.consumed = np.zeros_like(self.utilities, dtype=bool)
        position = {u: j for j, u in enumerate(self.user_ids)}
        for u, i in zip(warm_users, np.asarray(dataset.item_ids[:warm], dtype=str)):
            j = position.get(u)
            if j is not None and i in self.item_row:
                self.consumed[j, self.item_row[i]] = True

    def subset(self, members: list[int]) -> "Population":
        """These users alone (positions in :attr:`user_ids`), consuming on their own from now on."""
        part = object.__new__(Population)
        part.__dict__.update(self.__dict__)
        part.user_ids = [self.user_ids[j] for j in members]
        part.utilities, part.consumed = self.utilities[members], self.consumed[members].copy()
        return part

    def rows(self, item_ids: list[list[str]], k: int) -> np.ndarray:
        out = np.full((len(item_ids), k), -1, dtype=np.int64)
        for j, items in enumerate(item_ids):
            for p, item_id in enumerate(items[:k]):
                out[j, p] = self.item_row.get(item_id, -1)
        return out

    def oracle(self, k: int) -> np.ndarray:
        """Mean true utility of each user's best ``k`` items not consumed yet."""
        free = np.where(self.consumed, -np.inf, self.utilities)
        best = -np.partition(-free, k - 1, axis=1)[:, :k]
        return np.where(np.isfinite(best), best, np.nan).mean(axis=1)


def int_or_str(value: str):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def play_round(system: ArmSystem, arm: Arm, population: Population, config: SimulationConfig, round_index: int,
               t_round: float, pairs: np.ndarray, item_vectors: np.ndarray) -> tuple[dict, dict[str, float]]:
    """Ask, choose, publish. Returns the round's metrics and ``{user: newest event time}``."""
    started = time.monotonic()
    # In an experiment the arm answers with its own options: the request names none.
    options = {} if config.experiment else arm.request_options()
    responses = [system.recommend(u, config.k, **options) for u in population.user_ids]
    ask_s = time.monotonic() - started
    lists = population.rows([[i["item_id"] for i in r["items"]] for r in responses], config.k)
    valid = lists >= 0
    users = np.arange(len(lists))[:, None]
    utilities = np.where(valid, population.utilities[users, np.where(valid, lists, 0)], np.nan)
    repeat = valid & population.consumed[users, np.where(valid, lists, 0)]
    oracle = population.oracle(config.k)
    rng = np.random.default_rng([config.seed, 2, round_index])   # the same in every arm
    chosen = config.choice.choose(np.where(repeat, np.nan, utilities), rng)
    stats = round_summary(lists, utilities, chosen, len(population.item_row), pairs, oracle, item_vectors)
    events, newest = [], {}
    for j in np.flatnonzero(chosen >= 0):
        row = lists[j, chosen[j]]
        population.consumed[j, row] = True
        user_id = population.user_ids[j]
        stamp = t_round + j * 1e-3
        events.append({"user_id": user_id, "item_id": responses[j]["items"][chosen[j]]["item_id"],
                       "event_type": "click", "timestamp": stamp,
                       "event_id": f"sim-{arm.name}-{config.seed}-{round_index}-{user_id}"})
        newest[user_id] = stamp
    system.publish(events)
    versions = [r.get("model_version", 0) for r in responses]
    stats.update(round=round_index, events=len(events), repeat_share=float(repeat[valid].mean()) if valid.any() else 0.0,
                 model_version_min=int(min(versions)), model_version_max=int(max(versions)),
                 ask_seconds=round(ask_s, 3), lists=lists)
    if config.experiment:
        stats["wrong_arm"] = sum(r.get("experiment") != config.experiment or r.get("arm") != arm.name
                                 for r in responses)
    return stats, newest


def run_simulation(config: SimulationConfig, settings: Settings, dataset, run_dir: Path,
                   progress: Callable[[str], None] = lambda message: None) -> dict:
    """Run every arm through ``config.rounds`` rounds; returns the JSON-ready results."""
    started = time.monotonic()
    prefs, cache_path, cached = load_or_fit(dataset, Path(settings.state_dir) / "simulation",
                                            dim=config.pref_dim, reg=config.pref_reg, seed=config.seed)
    progress(f"true preferences: {'loaded' if cached else 'fitted'} ({cache_path})")
    warm = int(len(dataset) * config.warmup_fraction)
    population = Population(prefs, dataset, warm, config)
    everyone = list(range(len(population.user_ids)))
    populations = (split_population(population, config.experiment, config.arms) if config.experiment
                   else {arm.name: population.subset(everyone) for arm in config.arms})
    pairs = {name: sample_pairs(len(part.user_ids), config.max_pairs, np.random.default_rng([config.seed, 3]))
             for name, part in populations.items()}
    systems: dict[str, ArmSystem] = {}   # arm -> the system answering it (one for all arms in an experiment)
    history: dict[str, list[dict]] = {arm.name: [] for arm in config.arms}
    serving_arms = None
    try:
        _start_systems(systems, config, settings, run_dir, progress)
        t_warm = _warm_up(systems, dataset, warm, population, config, progress)
        for r in range(config.rounds):
            _play_and_sync(systems, populations, history, config, r, t_warm + (r + 1) * config.round_seconds,
                           pairs, prefs.item_factors)
            progress("round {}/{}: ".format(r + 1, config.rounds) + ", ".join(
                f"{a.name} utility {history[a.name][-1]['utility_chosen']:.3f} jaccard {history[a.name][-1]['jaccard']:.3f}"
                for a in config.arms))
        if config.experiment:
            serving_arms = serving_figures(systems[config.arms[0].name], config.experiment)
    finally:
        logs = {name: system.logs() for name, system in _stacks(systems).items()}
        for system in _stacks(systems).values():
            system.stop()
    _add_cumulative_coverage(history, len(prefs.item_ids))
    doc = {"config": config.to_dict(), "preferences": {"cache": str(cache_path), "loaded_from_cache": cached},
           "warmup_events": warm, "user_ids": population.user_ids, "arms": history, "logs": logs,
           "topic_prefixes": {name: system.settings.topic_prefix for name, system in systems.items()},
           "seconds": round(time.monotonic() - started, 1)}
    if config.experiment:
        doc["experiment"] = {"name": config.experiment, "serving": serving_arms,
                             "users": {name: part.user_ids for name, part in populations.items()}}
    return doc


def _stacks(systems: dict[str, ArmSystem]) -> dict[str, ArmSystem]:
    """Each distinct system once, by its name (arms of an experiment share one)."""
    return {system.name: system for system in systems.values()}


def _start_systems(systems: dict[str, ArmSystem], config: SimulationConfig, settings: Settings, run_dir: Path,
                   progress: Callable[[str], None]) -> None:
    """Start one system per arm, or one for the experiment, into ``systems`` (filled as they
    start, so the caller stops those that did if a later one fails), then wait until every
    one is ready; with an experiment, create it on its system."""
    learn_every = config.learn_every or config.users

    def system(name: str, **changes) -> ArmSystem:
        own = settings.replace(topic_prefix=f"{settings.topic_prefix}sim-{run_dir.name}-{name}-",
                               state_dir=run_dir / "state" / name, learner_train_every_s=0.0,
                               learner_train_every_events=learn_every, **changes)
        return ArmSystem(name, own, learner=config.learner, streams=config.streams).start()

    if config.experiment:
        shared = system(config.experiment, serving_admin_token=secrets.token_urlsafe(24))
        systems.update({arm.name: shared for arm in config.arms})
    else:
        for arm in config.arms:
            weight = {} if arm.cooccurrence_weight is None else {"cooccurrence_weight": arm.cooccurrence_weight}
            systems[arm.name] = system(arm.name, **weight)
    for name, started in _stacks(systems).items():
        started.wait_ready()
        progress(f"{name}: processes ready ({', '.join(started.procs)})")
    if config.experiment:
        created = create_experiment(systems[config.arms[0].name], config.experiment, config.arms)
        progress(f"experiment {config.experiment} created: " + ", ".join(
            f"{a['name']} {a['share']:.3g}" for a in created["arms"]))


def _warm_up(systems: dict[str, ArmSystem], dataset, warm: int, population: Population, config: SimulationConfig,
             progress: Callable[[str], None]) -> float:
    """Feed every system the first ``warm`` events; wait until serving shows the simulated users'
    and a first model is live. Returns the event time the warm-up ends at."""
    for system in _stacks(systems).values():
        system.warm_up(dataset, warm)
    simulated = set(population.user_ids)
    last_warm = {u: float(t) for u, t in zip(np.asarray(dataset.user_ids[:warm], dtype=str),
                                              dataset.timestamps[:warm]) if u in simulated}
    for name, system in _stacks(systems).items():
        missing = system.wait_visible(last_warm, config.visible_timeout * 4)
        version = system.wait_first_model(config.first_model_timeout)
        progress(f"{name}: warmed up with {warm} events ({missing} users not visible), model version {version}")
    return float(dataset.timestamps[warm - 1])


def _play_and_sync(systems: dict[str, ArmSystem], populations: dict[str, Population], history: dict[str, list[dict]],
                   config: SimulationConfig, round_index: int, t_round: float, pairs: dict[str, np.ndarray],
                   item_vectors: np.ndarray) -> None:
    """One round in every arm, appended to ``history``; then wait until every system has taken
    in the round's choices (serving shows them, the learner has consumed them)."""
    newest_by_system: dict[str, dict[str, float]] = {}
    for arm in config.arms:
        stats, newest = play_round(systems[arm.name], arm, populations[arm.name], config, round_index, t_round,
                                   pairs[arm.name], item_vectors)
        newest_by_system.setdefault(systems[arm.name].name, {}).update(newest)
        history[arm.name].append(stats)
    synced = {}
    for name, system in _stacks(systems).items():
        t0 = time.monotonic()
        not_visible = system.wait_visible(newest_by_system.get(name, {}), config.visible_timeout)
        learner = system.sync_learner(config.visible_timeout)
        synced[name] = {"not_visible": not_visible, "sync_seconds": round(time.monotonic() - t0, 3),
                        "learner_cycles": int(learner.get("cycles", 0))}
    for arm in config.arms:
        history[arm.name][-1].update(synced[systems[arm.name].name])


def _add_cumulative_coverage(history: dict[str, list[dict]], n_items: int) -> None:
    """Replace each round's ``lists`` by the share of the catalogue shown in that arm so far."""
    for rounds in history.values():
        shown = np.zeros(n_items, dtype=bool)
        for stats in rounds:
            lists = stats.pop("lists")
            shown[lists[lists >= 0]] = True
            stats["coverage_cumulative"] = float(shown.mean())
