"""Serving's experiments: the records of the ``experiments`` topic, who is in which arm, per-arm metrics.

Why a topic. Experiments must be the same on every serving instance and survive restarts,
and serving already follows its other control topic (``model-updates``) the same way. So the
admin API (:mod:`serving.experiments_api`) does not change anything itself: it writes a
record to the compacted, single-partition ``experiments`` topic, and every serving instance,
the writer included, reads that topic from the beginning (:mod:`serving.replica_feeds`) and
applies each record here, in topic order, with the same rules. Instances therefore hold the
same experiments, a restarted one reads them back, and no file has to be shared between
machines. (A file in the state directory would be simpler for one instance and wrong for two.)

What a record must pass (each outcome is counted in
``streamrec_serving_experiment_records_total`` and every refusal is logged; none stops the feed):

* ``invalid``: :func:`~streamrec.contracts.experiments.decode_record` refuses it, or its key
  is not its name;
* ``unsigned`` / ``bad_signature``: with ``STREAMREC_MODEL_SIGNING_KEY`` set, records need the
  writer's HMAC, as model announcements do (anyone who can produce to the topic could
  otherwise start an experiment);
* ``stale``: older (``updated_at``) than the record held for that name, so a replayed old
  record cannot undo a stop;
* ``over_capacity``: it would make more than ``STREAMREC_SERVING_MAX_EXPERIMENTS`` live;
* ``applied``: it replaces the record of its name. Stopped experiments stay listed (the
  newest :data:`KEEP_STOPPED`).

A pinned model version is loaded in the background (:meth:`ModelHolder.pin`) with every check
of a model announcement; until it is, ``/readyz`` says so and the arm's users are answered
from the current version (the answer's ``model_version`` always says which one answered).
One that cannot be loaded is logged, counted (``pin_failed``) and shown in ``/readyz``'s notes
and on ``GET /admin/experiments``.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict

from serving import metrics
from serving.model_holder import ModelHolder
from streamrec.contracts.experiments import Arm, Experiment, SpecError, assign, decode_record, precedence
from streamrec.observability.arm_quality import ArmKey, QualityByArm
from streamrec.settings import Settings

log = logging.getLogger(__name__)

KEEP_STOPPED = 100      # stopped experiments still listed
KEEP_VERDICTS = 1000    # outcomes of the latest records, by offset (what the admin API waits for)
APPLIED = "applied"

Placement = tuple[Experiment, Arm]


class ExperimentRegistry:
    """Every experiment serving knows, the live ones in the order they claim users, and their arms' windows."""

    def __init__(self, settings: Settings, holder: ModelHolder, arm_quality: QualityByArm):
        self.settings = settings
        self.holder = holder
        self.arm_quality = arm_quality
        self.experiments: dict[str, Experiment] = {}
        self.ordered: list[Experiment] = []          # live, oldest first (streamrec.contracts.experiments.precedence)
        self.position = -1                           # offset of the last record applied or refused
        self.verdicts: OrderedDict[int, str] = OrderedDict()
        self.requests: dict[ArmKey, int] = {}
        self.problems: dict[ArmKey, str] = {}
        self._loading: dict[ArmKey, int] = {}        # arm -> pinned version being loaded
        self._tasks: set[asyncio.Task] = set()

    # --- requests ---------------------------------------------------------------------------
    def assign(self, user_id: str) -> Placement | None:
        """The live experiment and arm answering ``user_id`` (None: serving's defaults)."""
        return assign(self.ordered, user_id) if self.ordered else None

    def served(self, placement: Placement, user_id: str, items: list[str], catalogue_size: int) -> None:
        """Count one answer of an arm and remember its list for the arm's online metrics."""
        key = (placement[0].name, placement[1].name)
        quality = self.arm_quality.get(key)
        if quality is None:       # stopped between the assignment and now
            return
        quality.set_catalogue_size(catalogue_size)
        quality.served(user_id, items)
        self.requests[key] = self.requests.get(key, 0) + 1
        metrics.ARM_REQUESTS.labels(*key).inc()

    # --- records ----------------------------------------------------------------------------
    def apply_record(self, offset: int, key: bytes | str | None, raw: bytes | None) -> str:
        """Apply one record of the ``experiments`` topic; returns its outcome (see the module doc)."""
        outcome, experiment = self._check(key, raw)
        if outcome == APPLIED:
            self._install(experiment)
        self.position = max(self.position, offset)
        self.verdicts[offset] = outcome
        while len(self.verdicts) > KEEP_VERDICTS:
            self.verdicts.popitem(last=False)
        metrics.EXPERIMENT_RECORDS.labels(outcome).inc()
        return outcome

    def _check(self, key: bytes | str | None, raw: bytes | None) -> tuple[str, Experiment | None]:
        try:
            experiment = decode_record(raw, self.settings.serving_max_arms)
        except SpecError as exc:
            log.warning("experiments: record refused (invalid, %s)", exc)
            return "invalid", None
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if name != experiment.name:
            log.warning("experiments: record for %r under key %r refused (invalid)", experiment.name, str(name)[:64])
            return "invalid", None
        problem = experiment.signature_problem(self.settings.model_signing_key)
        if problem is not None:
            log.warning("experiments: record for %r refused (%s)", experiment.name, problem)
            return problem, None
        held = self.experiments.get(experiment.name)
        if held is not None and experiment.updated_at < held.updated_at:
            log.warning("experiments: record for %r older than the one held: ignored (stale)", experiment.name)
            return "stale", None
        live = [e for e in self.ordered if e.name != experiment.name]
        if experiment.live and len(live) >= self.settings.serving_max_experiments:
            log.warning("experiments: %r refused: %d live already (over_capacity)", experiment.name, len(live))
            return "over_capacity", None
        return APPLIED, experiment

    def _install(self, experiment: Experiment) -> None:
        before = self._live_arms()
        self.experiments[experiment.name] = experiment
        stopped = sorted((e for e in self.experiments.values() if not e.live), key=lambda e: e.updated_at)
        for old in stopped[: max(0, len(stopped) - KEEP_STOPPED)]:
            del self.experiments[old.name]
        self.ordered = precedence(self.experiments.values())
        after = self._live_arms()
        for key in before.keys() - after.keys():
            self._forget(key)
        for key, arm in after.items():
            if key not in before or before[key] != arm:
                self._forget(key)
                self._watch(key)
                self._start_pin(key, arm)
        self.holder.keep_pinned(self.needed_versions())
        metrics.EXPERIMENTS_LIVE.set(len(self.ordered))
        log.info("experiment %r %s: %s", experiment.name, "live" if experiment.live else "stopped",
                 ", ".join(f"{a.name} {a.share:g} {a.options()}" for a in experiment.arms))

    def _live_arms(self) -> dict[ArmKey, Arm]:
        return {(e.name, a.name): a for e in self.ordered for a in e.arms}

    def needed_versions(self) -> set[int]:
        """Model versions live arms pin."""
        return {a.model_version for e in self.ordered for a in e.arms if a.model_version is not None}

    # --- per-arm metrics ----------------------------------------------------------------------
    def _watch(self, key: ArmKey) -> None:
        quality = self.arm_quality.add(key)
        quality.bind(hit_rate=metrics.ARM_HIT_RATE.labels(*key), ndcg=metrics.ARM_NDCG.labels(*key),
                     entropy=metrics.ARM_ENTROPY.labels(*key), gini=metrics.ARM_GINI.labels(*key),
                     coverage=metrics.ARM_COVERAGE.labels(*key))
        metrics.ARM_SCORED.labels(*key).set_function(lambda: quality.accuracy.count)
        metrics.ARM_REQUESTS.labels(*key)   # the series exists (at 0) from the start
        self.requests.setdefault(key, 0)

    def _forget(self, key: ArmKey) -> None:
        self.arm_quality.remove(key)
        self.requests.pop(key, None)
        self.problems.pop(key, None)
        self._loading.pop(key, None)
        for series in metrics.ARM_SERIES:
            try:
                series.remove(*key)
            except KeyError:
                pass

    def arm_figures(self, key: ArmKey) -> dict:
        """The arm's online figures now (None where a window is still empty)."""
        quality = self.arm_quality.get(key)
        if quality is None:
            return {}
        figures = {"requests": self.requests.get(key, 0), "scored_lists": quality.accuracy.count,
                   "hit_rate": quality.accuracy.hit_rate, "ndcg": quality.accuracy.ndcg,
                   "exposure_entropy_bits": quality.exposure.entropy(), "exposure_gini": quality.exposure.gini(),
                   "catalogue_coverage": quality.exposure.coverage()}
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in figures.items()}

    # --- pinned versions ----------------------------------------------------------------------
    def _start_pin(self, key: ArmKey, arm: Arm) -> None:
        if arm.model is None or arm.model_version in self.holder.pinned:
            return
        self._loading[key] = arm.model_version
        task = asyncio.ensure_future(self._pin(key, arm))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pin(self, key: ArmKey, arm: Arm) -> None:
        try:
            await self.holder.pin(arm.model)
        except Exception as exc:
            if self._loading.get(key) == arm.model_version:
                self.problems[key] = f"model version {arm.model_version} cannot be loaded: {exc}"
                log.error("experiment %r arm %r: %s; answering from the current version", *key, self.problems[key])
                metrics.EXPERIMENT_RECORDS.labels("pin_failed").inc()
        finally:
            if self._loading.get(key) == arm.model_version:
                del self._loading[key]
            self.holder.keep_pinned(self.needed_versions())

    def not_ready(self) -> list[str]:
        return [f"experiment {e!r} arm {a!r}: loading pinned model version {v}" for (e, a), v in self._loading.items()]

    def notes(self) -> list[str]:
        return [f"experiment {e!r} arm {a!r}: {problem}" for (e, a), problem in self.problems.items()]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- views --------------------------------------------------------------------------------
    def view(self, experiment: Experiment) -> dict:
        """What the admin API shows of one experiment: its spec, status and each arm's figures."""
        arms = []
        for arm in experiment.arms:
            key = (experiment.name, arm.name)
            entry = {"name": arm.name, "share": arm.share, **arm.options()}
            if experiment.live:
                if arm.model_version is not None:
                    entry["model_loaded"] = arm.model_version in self.holder.pinned
                if key in self.problems:
                    entry["problem"] = self.problems[key]
                entry["metrics"] = self.arm_figures(key)
            arms.append(entry)
        return {"name": experiment.name, "description": experiment.description,
                "status": "live" if experiment.live else "stopped", "created_at": experiment.created_at,
                "updated_at": experiment.updated_at, "stopped_at": experiment.stopped_at,
                "enrolled_share": experiment.enrolled_share, "arms": arms}

    def listing(self) -> dict:
        ordered = self.ordered + sorted((e for e in self.experiments.values() if not e.live),
                                        key=lambda e: -e.updated_at)
        return {"experiments": [self.view(e) for e in ordered], "live": len(self.ordered),
                "limits": {"live_experiments": self.settings.serving_max_experiments,
                           "arms": self.settings.serving_max_arms}}
