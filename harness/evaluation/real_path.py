"""Prequential evaluation through the real system: Kafka, the streams worker, serving, the learner.

The fast path (:mod:`harness.evaluation.prequential`) replays the system's logic in one
process. This module replays the same :class:`~harness.evaluation.prequential.StreamPlan`
through the running processes instead, strictly one event at a time:

1. before event ``e = (u, i, t)``, ask serving over HTTP (``POST /recommendations``) for
   ``u``'s top ``k`` over the full catalogue; serving itself leaves out the items ``u``
   already had (its default; under the repeat policy ``allow``, only those ``u`` rejected),
   and the harness counts any served item the plan excludes (``exclusion_violations``,
   expected 0);
2. score hit and rank with the fast path's metric functions (same plan, same rows);
3. publish ``e`` to ``events`` (acknowledged by the broker), then poll ``GET /users/{u}``
   until serving's replica shows it applied (``events_applied``), so the next request — of
   any user, since trending depends on every event — sees every earlier event.

Systems (:data:`REAL_SYSTEMS`), each on its own topics (a fresh topic prefix) so runs never
see each other's events:

``system-online-vectors``
    streams worker + serving, no learner. Requests pass ``diversity=0`` and
    ``exploration=0``, so the list is the exact ranking by the inner product of the user's
    online vector (:class:`~streamrec.state.user_state.UserState`) with the deterministic item
    vectors, blended with serving's online co-occurrence scores
    (:mod:`streamrec.state.cooccurrence`): the real counterpart of the fast variant of the same
    name, and the two must agree.
``system-full``
    streams worker + serving + learner, serving's default re-ranking. Its numbers depend on
    *when* the learner publishes versions relative to the replay (wall-clock training
    triggers, training speed), so unlike the fast path they are not reproducible run to
    run; the versions served are recorded (``real_path.model_versions``).

Examples
--------
>>> from harness.datasets import load_movielens_100k                 # doctest: +SKIP
>>> doc = evaluate_real(load_movielens_100k(), Settings.from_env(bootstrap_servers="127.0.0.1:9092"),
...                     limit=500)                                       # doctest: +SKIP
>>> doc["agreement"]["system-online-vectors"]["same_list_warm"]         # doctest: +SKIP
1.0
"""
from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from streamrec.client import RecClient, RecRequestError
from harness.datasets import Dataset
from harness.evaluation import metrics
from harness.evaluation.analysis import RequestAnalysis
from harness.evaluation.prequential import (MethodRun, StreamPlan, item_content_vectors, item_probability,
                                              plan_protocol, plan_stream, record, run_method, summarise_run)
from streamrec.kafka.config import ensure_topics
from harness.processes import Proc
from harness.replay import EventPublisher, publish_items
from streamrec.settings import Settings

# system name -> (runs the learner, request options). None options = serving's defaults.
REAL_SYSTEMS: dict[str, tuple[bool, dict]] = {
    "system-online-vectors": (False, {"diversity": 0.0, "exploration": 0.0}),
    "system-full": (True, {}),
}


@dataclass
class RealRun(MethodRun):
    """A :class:`MethodRun` plus what only the real path can observe."""

    exclusion_violations: int = 0          # served items the user already had
    short_lists: int = 0                   # answers with fewer than k items
    model_versions: Counter = field(default_factory=Counter)   # version -> requests it answered
    cold_requests: int = 0                 # answered with no state for the user (trending)

    def diagnostics(self) -> dict:
        return {"exclusion_violations": self.exclusion_violations, "short_lists": self.short_lists,
                "cold_requests": self.cold_requests,
                "model_versions": {str(v): n for v, n in sorted(self.model_versions.items())}}


class ApplyTimeout(RuntimeError):
    """Serving did not show a published event in time: the real system lost or stalled it."""


@contextlib.contextmanager
def running_system(settings: Settings, dataset: Dataset, *, learner: bool,
                   ready_timeout: float = 120.0) -> Iterator[str]:
    """Create the topics, publish the catalogue, run streams + serving (+ learner); yield serving's URL.

    Returns only once serving's index holds every catalogue item, so the first request is
    already over the full catalogue.
    """
    ensure_topics(settings)
    publish_items(settings, dataset.items)
    names = [("streams", "streams_web_port"), ("serve", "http_port")] + ([("learner", "learner_port")] if learner else [])
    procs: list[Proc] = []
    try:
        for command, port_field in names:
            procs.append(Proc(command, settings, port_field).start())
        for proc in procs:
            proc.wait_ready(ready_timeout)
        serving = procs[1]
        wait_for_catalogue(RecClient(serving.url, timeout=5.0), [it.item_id for it in dataset.items],
                           ready_timeout)
        yield serving.url
    finally:
        for proc in reversed(procs):
            proc.stop()


def wait_for_catalogue(client: RecClient, item_ids: list[str], timeout: float) -> None:
    """Poll ``GET /items/{id}`` until every id is in serving's index."""
    deadline = time.monotonic() + timeout
    missing = list(item_ids)
    while missing:
        still = []
        for item_id in missing:
            try:
                in_index = client._call("GET", f"/items/{item_id}").get("in_index")
            except RecRequestError:      # 404: not even in the catalogue yet
                in_index = False
            if not in_index:
                still.append(item_id)
        missing = still
        if missing:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} catalogue items not in serving's index after {timeout}s")
            time.sleep(0.2)


def wait_applied(client: RecClient, user_id: str, applied: int, timeout: float) -> None:
    """Poll ``GET /users/{user_id}`` until serving's replica has applied ``applied`` of its events."""
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        try:
            if client.user(user_id)["events_applied"] >= applied:
                return
        except RecRequestError:          # 404: the user's first event is not there yet
            pass
        if time.monotonic() > deadline:
            raise ApplyTimeout(f"serving did not apply event {applied} of user {user_id!r} within {timeout}s")
        time.sleep(pause)
        pause = min(2 * pause, 0.02)


def replay_through_serving(plan: StreamPlan, url: str, settings: Settings, *, k: int = 10,
                           options: dict | None = None, name: str = "real",
                           apply_timeout: float = 10.0,
                           progress: Callable[[int, int], None] | None = None) -> RealRun:
    """Replay ``plan`` through a running system one event at a time (see the module docstring)."""
    client = RecClient(url, timeout=max(settings.serving_request_timeout_s, 10.0))
    publisher = EventPublisher(settings, pack=1)
    row_of = {item_id: r for r, item_id in enumerate(plan.catalogue)}
    n_scored = plan.n_scored
    ranks = np.full(n_scored, metrics.MISS, dtype=np.int64)
    lists = np.full((n_scored, k), -1, dtype=np.int64)
    run = RealRun(name, ranks, lists, 0.0, 0.0)
    applied: Counter = Counter()
    out = 0
    for j, event in enumerate(plan.events):
        user = event.user_id
        if plan.scored[j]:
            t0 = time.perf_counter()
            answer = client.recommend(user, k=k, **(options or {}))
            run.recommend_s += time.perf_counter() - t0
            rows = np.array([row_of.get(i["item_id"], -1) for i in answer["items"]][:k], dtype=np.int64)
            run.exclusion_violations += int(np.isin(rows, plan.exclusions(j)).sum())
            run.short_lists += len(rows) < k
            run.cold_requests += answer.get("state_time") is None
            run.model_versions[answer.get("model_version")] += 1
            record(lists, ranks, out, rows, plan.item_rows[j])
            out += 1
        t0 = time.perf_counter()
        publisher.publish([event])
        publisher.flush(apply_timeout)
        applied[user] += 1
        wait_applied(client, user, applied[user], apply_timeout)
        run.learn_s += time.perf_counter() - t0
        if progress is not None and (j % 200 == 0 or j + 1 == len(plan.events)):
            progress(j + 1, len(plan.events))
    return run


def fast_equivalent(plan: StreamPlan, dataset: Dataset, settings: Settings, k: int = 10) -> MethodRun:
    """The fast path's ``system-online-vectors`` over the same plan (no re-ranking)."""
    from harness.evaluation.system_variants import OnlineVectorsVariant

    variant = OnlineVectorsVariant(settings=settings, diversity=0.0, exploration=0.0, cooccurrence=True)
    return run_method(variant, plan, k=k, name="system-online-vectors (fast)", items=dataset.items)


def agreement(a: MethodRun, b: MethodRun, plan: StreamPlan) -> dict:
    """How far two runs over the same plan agree, overall and on warm requests (user had history)."""
    warm = plan.prior[plan.scored] > 0
    same_hit = (a.ranks >= 0) == (b.ranks >= 0)
    same_rank = a.ranks == b.ranks
    same_list = (a.lists == b.lists).all(axis=1)

    def share(mask: np.ndarray, where: np.ndarray) -> float | None:
        return float(mask[where].mean()) if where.any() else None

    everything = np.ones(len(a.ranks), dtype=bool)
    return {"requests": int(len(a.ranks)), "warm_requests": int(warm.sum()),
            "same_hit": share(same_hit, everything), "same_hit_warm": share(same_hit, warm),
            "same_hit_cold": share(same_hit, ~warm), "same_rank_warm": share(same_rank, warm),
            "same_list_warm": share(same_list, warm), "same_list_cold": share(same_list, ~warm),
            "hr": [metrics.hit_rate(a.ranks), metrics.hit_rate(b.ranks)],
            "hr_warm": [metrics.hit_rate(a.ranks[warm]), metrics.hit_rate(b.ranks[warm])]}


def isolated(settings: Settings, run_dir: Path | None = None) -> Settings:
    """``settings`` with topics and state of their own: every real run starts from empty."""
    tag = uuid.uuid4().hex[:8]
    state = Path(run_dir or settings.state_dir) / f"eval-real-{tag}"
    return settings.replace(topic_prefix=f"{settings.topic_prefix}eval{tag}-", state_dir=state,
                            learner_group_id=f"{settings.learner_group_id}-{tag}")


def evaluate_real(dataset: Dataset, settings: Settings, *, systems: tuple[str, ...] = ("system-online-vectors",),
                  k: int = 10, limit: int | None = None, warmup: int = 0, windows: int = 10,
                  next_items: int = 10, cold_events: int = 5, bootstrap: int = 1000, compare_fast: bool = True,
                  apply_timeout: float = 10.0,
                  progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run every named real system over the same plan; return the results document.

    The document has the shape of :func:`~harness.evaluation.prequential.prequential`'s (so
    ``streamrec report`` draws it), methods named ``"<system> (real)"``; with ``compare_fast``
    it also holds the fast path's ``system-online-vectors`` on the same plan and, under
    ``agreement``, how far the two agree. ``settings`` must name a reachable broker.
    """
    unknown = [s for s in systems if s not in REAL_SYSTEMS]
    if unknown:
        raise ValueError(f"no real-path system {unknown}; known: {', '.join(REAL_SYSTEMS)}")
    started = time.perf_counter()
    plan = plan_stream(dataset, limit=limit, warmup=warmup, block=1, semantics=settings.semantics)
    vectors, probability = item_content_vectors(dataset, plan.catalogue), item_probability(plan)
    analysis = RequestAnalysis.of(plan, next_items=next_items, cold_events=cold_events, resamples=bootstrap)
    results: dict = {}
    runs: dict[str, MethodRun] = {}
    for system in systems:
        learner, options = REAL_SYSTEMS[system]
        name = f"{system} (real)"
        run_settings = isolated(settings)
        t0 = time.perf_counter()
        report = None if progress is None else (lambda done, total, _n=name: progress(_n, done, total))
        with running_system(run_settings, dataset, learner=learner) as url:
            run = replay_through_serving(plan, url, run_settings, k=k, options=options, name=name,
                                         apply_timeout=apply_timeout, progress=report)
        results[name] = summarise_run(run, plan, windows, vectors, probability, analysis)
        results[name]["timing"]["wall_s"] = time.perf_counter() - t0
        results[name]["real_path"] = {"request_options": options or "serving defaults", **run.diagnostics()}
        runs[system] = run
    extra: dict = {}
    if compare_fast:
        t0 = time.perf_counter()
        fast = fast_equivalent(plan, dataset, settings, k)
        results[fast.name] = summarise_run(fast, plan, windows, vectors, probability, analysis)
        results[fast.name]["timing"]["wall_s"] = time.perf_counter() - t0
        if "system-online-vectors" in runs:
            extra["agreement"] = {"system-online-vectors": agreement(runs["system-online-vectors"], fast, plan)}
    return {
        "dataset": dataset.name,
        "protocol": {
            "path": "real", **plan_protocol(plan, k, limit, 1, windows), **analysis.protocol(),
            "negative": plan.n_negative, "semantics": settings.semantics.to_dict(),
            "description": "prequential through the real system: before each event, serving's top-k over "
                           "HTTP (serving excludes the user's seen items, or under the repeat policy allow "
                           "the ones they rejected); then the event is published to "
                           "Kafka and the next request waits until serving has applied it "
                           "(see harness.evaluation.real_path).",
        },
        "methods": results,
        **extra,
        "wall_time_s": time.perf_counter() - started,
    }
