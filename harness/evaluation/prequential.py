"""Prequential ("test, then train") evaluation, in process, over a dataset's event stream.

The protocol
------------
Events are replayed in timestamp order (the dataset's order, stable on ties). Every method
is first given the full catalogue (:meth:`Recommender.set_catalogue`). Then, for each event
``e = (u, i, t)`` after the warm-up:

1. the method is asked for ``u``'s top ``k`` over the full catalogue, excluding every item
   ``u`` had before ``e`` (the harness tracks that, identically for every method);
2. ``e`` is a hit when ``i`` is in the list; its 0-based position is its rank;
3. the method learns ``e``.

Event semantics (:mod:`streamrec.contracts.semantics`, the deployment's settings) change
three things, for every method alike. The repeat policy ``allow`` excludes only the items
``u`` rejected (below) instead of every item ``u`` had, so re-consumption is recommended and
scored. A negative event (``dislike``, a rating under the value rule's threshold) is a
request for nothing: it is never scored, and its item joins ``u``'s rejected items, never
recommended back (a later positive event takes it out), under both policies. Methods that do
not know negative events (``Recommender.learns_negative_events`` false: the baselines) learn
only the others, so a dislike is no interaction to them; the system's variants learn all.

Events whose item the policy excludes (under ``exclude``, an item the user already had;
MovieLens 100K has none) cannot be hit, so they are learned but not scored; the numbers
are reported (``repeats``: events on items the user had; ``negative``). Warm-up events are
learned, never scored. With the default semantics no event is negative and nothing changes.

HR@k, NDCG@k and MRR score the list on the event's item; recall@k, precision@k and MAP@k
on the user's next new items, that one first (:mod:`harness.evaluation.analysis`, which
also splits cold from warm requests and draws the users the 95% intervals resample).

Batching. Requests are answered in *blocks* of consecutive events of pairwise different
users (at most ``block`` events, never straddling the warm-up boundary): all of a
block's requests are made, then its events are learned in order. So every request sees
all of its own user's earlier events, as in the one-at-a-time protocol, but may miss up
to ``block - 1`` just-preceding events of *other* users — exactly the staleness a serving
tier that batches requests would have. ``block=1`` is the strict one-event protocol.
Methods are independent, so they are run one after another over the same plan and order.

Examples
--------
>>> from harness.datasets import load_movielens_100k
>>> from streamrec.baselines import MostPopular
>>> ds = load_movielens_100k().head(2000)                       # doctest: +SKIP
>>> result = prequential(ds, {"popular": MostPopular()})        # doctest: +SKIP
>>> result["methods"]["popular"]["overall"]["hr"] > 0           # doctest: +SKIP
True
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from harness.datasets import Dataset
from harness.evaluation import metrics
from harness.evaluation.analysis import RequestAnalysis, best_baseline
from streamrec.baselines import BASELINES
from streamrec.contracts.events import Event
from streamrec.contracts.semantics import EventSemantics
from streamrec.ranking.recommender import Recommender
from streamrec.settings import Settings
from streamrec.state.user_state import note_reaction


@dataclass
class StreamPlan:
    """Everything about the event order that is the same for every method."""

    events: list[Event]
    catalogue: list[str]
    item_rows: np.ndarray          # catalogue row of each event's item
    user_codes: np.ndarray         # dense user number of each event
    prior: np.ndarray              # distinct items the user had before the event
    scored: np.ndarray             # bool: the event is a request to score
    blocks: list[tuple[int, int]]  # [start, end) event ranges answered together
    user_rows: list[np.ndarray]    # per user code: distinct item rows in first-seen order
    warmup: int
    repeats: int
    timestamps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    negative: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))   # per event
    allow_repeats: bool = False
    # allow_repeats: per scored event with any, the rows its user had rejected before it
    rejected_before: dict[int, np.ndarray] = field(default_factory=dict)
    earlier: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # user's earlier events

    @property
    def n_scored(self) -> int:
        return int(self.scored.sum())

    @property
    def n_negative(self) -> int:
        return int(self.negative[self.warmup:].sum())

    def exclusions(self, j: int) -> np.ndarray:
        """The catalogue rows event ``j``'s request leaves out: what its user had before it, or
        under ``allow`` only what they had rejected (a rejected item is in what they had)."""
        if self.allow_repeats:
            return self.rejected_before.get(j, _NONE)
        return self.user_rows[self.user_codes[j]][: self.prior[j]]

    def learned_by(self, rec: Recommender, start: int, end: int) -> list[Event]:
        """Events ``start:end`` as ``rec`` learns them: all, or without the negative ones for a
        method that does not know them."""
        events = self.events[start:end]
        if rec.learns_negative_events or not self.negative[start:end].any():
            return events
        return [e for e, negative in zip(events, self.negative[start:end]) if not negative]


_NONE = np.zeros(0, dtype=np.int64)


def plan_stream(dataset: Dataset, limit: int | None = None, warmup: int = 0, block: int = 64,
                semantics: EventSemantics | None = None) -> StreamPlan:
    """Fix the event order, exclusions and request blocks of a run (``semantics``: the
    deployment's, from the environment when None)."""
    if block < 1:
        raise ValueError("block must be at least 1")
    semantics = Settings.from_env().semantics if semantics is None else semantics
    ds = dataset.head(limit) if limit is not None else dataset
    n = len(ds)
    warmup = min(max(int(warmup), 0), n)
    catalogue = list(dict.fromkeys([it.item_id for it in ds.items] + list(map(str, ds.item_ids))))
    index = {item_id: r for r, item_id in enumerate(catalogue)}
    item_rows = np.fromiter((index[i] for i in ds.item_ids), dtype=np.int64, count=n)
    _, user_codes = np.unique(ds.user_ids, return_inverse=True)
    user_codes = user_codes.astype(np.int64)
    events = ds.events
    weights = semantics.weights_of(events)
    histories: list[list[int]] = [[] for _ in range(int(user_codes.max(initial=-1)) + 1)]
    seen: list[set[int]] = [set() for _ in histories]
    rejected: dict[int, dict[int, None]] = {}
    nothing: dict[int, None] = {}
    rejected_before: dict[int, np.ndarray] = {}
    prior = np.zeros(n, dtype=np.int64)
    earlier = np.zeros(n, dtype=np.int64)
    events_so_far = np.zeros(len(histories), dtype=np.int64)
    scored = np.zeros(n, dtype=bool)
    repeats = 0
    allow = semantics.allow_repeats
    for j, weight in enumerate(weights.tolist()):
        u, row = user_codes[j], item_rows[j]
        prior[j] = len(histories[u])
        earlier[j] = events_so_far[u]
        events_so_far[u] += 1
        had, refused = row in seen[u], rejected.get(u, nothing)
        repeats += had and j >= warmup
        scored[j] = j >= warmup and weight >= 0 and row not in refused and (allow or not had)
        if scored[j] and refused and allow:
            rejected_before[j] = np.fromiter(refused, dtype=np.int64, count=len(refused))
        if weight < 0 or refused:
            note_reaction(rejected.setdefault(u, {}), row, weight, n)
        if not had:
            seen[u].add(row)
            histories[u].append(row)
    blocks, start, users = [], 0, set()
    for j in range(n):
        if j > start and (j - start >= block or user_codes[j] in users or j == warmup):
            blocks.append((start, j))
            start, users = j, set()
        users.add(user_codes[j])
    if n:
        blocks.append((start, n))
    return StreamPlan(events=events, catalogue=catalogue, item_rows=item_rows, user_codes=user_codes,
                      prior=prior, scored=scored, blocks=blocks,
                      user_rows=[np.asarray(h, dtype=np.int64) for h in histories], warmup=warmup,
                      repeats=repeats, timestamps=np.asarray(ds.timestamps, dtype=np.float64),
                      negative=weights < 0, allow_repeats=semantics.allow_repeats, rejected_before=rejected_before,
                      earlier=earlier)


@dataclass
class MethodRun:
    """What one method served: ranks and lists of the scored requests, and its time."""

    name: str
    ranks: np.ndarray
    lists: np.ndarray
    learn_s: float
    recommend_s: float


class MethodSkipped(Exception):
    """A method refused the dataset's catalogue (the reason is the message)."""


def record(lists: np.ndarray, ranks: np.ndarray, request: int, rows: np.ndarray, target: int) -> None:
    """Store the list served for ``request`` and the rank of ``target`` (the next item) in it."""
    lists[request, : len(rows)] = rows
    hit = np.flatnonzero(rows == target)
    if len(hit):
        ranks[request] = hit[0]


def run_method(rec: Recommender, plan: StreamPlan, k: int = 10, name: str | None = None,
               items: list | None = None, progress: Callable[[int, int], None] | None = None) -> MethodRun:
    """Replay ``plan`` through one recommender under the prequential protocol.

    Raises :class:`MethodSkipped` when the method cannot hold the catalogue.
    """
    try:
        rec.set_catalogue(plan.catalogue, items)
    except ValueError as exc:   # e.g. a dense matrix's size cap: the other methods still run
        raise MethodSkipped(str(exc)) from exc
    n_scored = plan.n_scored
    ranks = np.full(n_scored, metrics.MISS, dtype=np.int64)
    lists = np.full((n_scored, k), -1, dtype=np.int64)
    learn_s = recommend_s = 0.0
    out = 0
    events = plan.events
    for b, (start, end) in enumerate(plan.blocks):
        requests = np.flatnonzero(plan.scored[start:end]) + start
        if len(requests):
            t0 = time.perf_counter()
            served = rec.recommend_rows([events[j].user_id for j in requests], k,
                                        [plan.exclusions(j) for j in requests])
            recommend_s += time.perf_counter() - t0
            for j, rows in zip(requests, served):
                record(lists, ranks, out, np.asarray(rows, dtype=np.int64)[:k], plan.item_rows[j])
                out += 1
        t0 = time.perf_counter()
        rec.learn_many(plan.learned_by(rec, start, end))
        learn_s += time.perf_counter() - t0
        if progress is not None and (b % 200 == 0 or end == len(events)):
            progress(end, len(events))
    # Items appended during learning (not in the catalogue) are not in the plan's rows.
    return MethodRun(name or rec.name, ranks, lists, learn_s, recommend_s)


def item_content_vectors(dataset: Dataset, catalogue: list[str]) -> np.ndarray:
    """Multi-hot tag (genre) vectors per catalogue row: the content space for diversity."""
    tags = {it.item_id: it.tags for it in dataset.items}
    vocabulary = sorted({t for ts in tags.values() for t in ts})
    column = {t: c for c, t in enumerate(vocabulary)}
    out = np.zeros((len(catalogue), max(len(vocabulary), 1)), dtype=np.float32)
    for r, item_id in enumerate(catalogue):
        for t in tags.get(item_id, ()):
            out[r, column[t]] = 1.0
    return out


def item_probability(plan: StreamPlan) -> np.ndarray:
    """Share of users who interacted with each item in the replayed stream (add-one smoothed)."""
    n_users = len(plan.user_rows)
    users_per_item = np.bincount(np.concatenate(plan.user_rows) if plan.user_rows else np.zeros(0, int),
                                 minlength=len(plan.catalogue))
    return (users_per_item + 1.0) / (n_users + 1.0)


def summarise_run(run: MethodRun, plan: StreamPlan, windows: int, item_vectors: np.ndarray,
                  probability: np.ndarray, analysis: RequestAnalysis) -> dict:
    """One method's results: overall metrics with their intervals, cold and warm requests
    apart, per-window metrics (with where each window starts and ends in the stream), timing."""
    n_items = len(plan.catalogue)
    kwargs = dict(item_vectors=item_vectors, item_probability=probability)
    per_window = metrics.per_window(run.ranks, run.lists, n_items, windows, relevant=analysis.relevant, **kwargs)
    times = plan.timestamps[plan.scored]
    positions = np.flatnonzero(plan.scored)      # stream position of each scored request
    for w in per_window:
        w["t_start"], w["t_end"] = float(times[w["start"]]), float(times[w["end"] - 1])
        w["first_event"], w["last_event"] = int(positions[w["start"]]), int(positions[w["end"] - 1])
    n = max(len(run.ranks), 1)
    overall = metrics.summarise(run.ranks, run.lists, n_items, relevant=analysis.relevant, **kwargs)
    return {"overall": overall, **analysis.describe(analysis.accuracy(run.ranks, run.lists)), "windows": per_window,
            "timing": {"learn_s": run.learn_s, "recommend_s": run.recommend_s,
                       "recommend_us_per_request": 1e6 * run.recommend_s / n}}


def sweep_point(lists: list[tuple[int, np.ndarray]], plan: StreamPlan, k: int, item_vectors: np.ndarray,
                probability: np.ndarray, analysis: RequestAnalysis) -> tuple[dict, np.ndarray]:
    """The metrics of lists a method computed on the side, ``(request number, rows)`` pairs
    (request numbers count the scored requests from 0 in stream order), with intervals;
    and their per-request accuracy (:meth:`RequestAnalysis.accuracy`, NaN where not served)."""
    served = np.full((len(lists), k), -1, dtype=np.int64)
    for r, (_, rows) in enumerate(lists):
        served[r, : len(rows)] = rows[:k]
    requests = np.array([j for j, _ in lists], dtype=np.int64)
    targets = plan.item_rows[plan.scored][requests]
    hits = served == targets[:, None]
    ranks = np.where(hits.any(axis=1), hits.argmax(axis=1), metrics.MISS)
    accuracy = analysis.accuracy(ranks, served, requests)
    point = metrics.summarise(ranks, served, len(plan.catalogue), relevant=analysis.relevant[requests],
                              item_vectors=item_vectors, item_probability=probability)
    return {**point, **analysis.describe(accuracy)}, accuracy


def prequential(dataset: Dataset, methods: Mapping[str, Recommender], k: int = 10, limit: int | None = None,
                warmup: int = 0, block: int = 64, windows: int = 10, next_items: int = 10, cold_events: int = 5,
                bootstrap: int = 1000, progress: Callable[[str, int, int], None] | None = None,
                semantics: EventSemantics | None = None) -> dict:
    """Run every method over the same plan; return the JSON-ready results document.

    ``semantics`` is the deployment's (from the environment when None). ``next_items``,
    ``cold_events`` and ``bootstrap`` (resamples of users; 0: no intervals) are
    :class:`~harness.evaluation.analysis.RequestAnalysis`'s choices. Every method that is
    not a baseline (:data:`streamrec.baselines.BASELINES`), and every other baseline, is
    compared with the best baseline by HR@k under ``differences``.
    """
    started = time.perf_counter()
    semantics = Settings.from_env().semantics if semantics is None else semantics
    plan = plan_stream(dataset, limit=limit, warmup=warmup, block=block, semantics=semantics)
    analysis = RequestAnalysis.of(plan, next_items=next_items, cold_events=cold_events, resamples=bootstrap)
    vectors = item_content_vectors(dataset, plan.catalogue)
    probability = item_probability(plan)
    results: dict = {}
    accuracies: dict[str, np.ndarray] = {}
    sweeps: dict = {}
    skipped: dict[str, str] = {}
    for name, rec in methods.items():
        t0 = time.perf_counter()
        report = None if progress is None else (lambda done, total, _n=name: progress(_n, done, total))
        try:
            run = run_method(rec, plan, k=k, name=name, items=dataset.items, progress=report)
        except MethodSkipped as exc:
            skipped[name] = str(exc)
            continue
        results[name] = summarise_run(run, plan, windows, vectors, probability, analysis)
        results[name]["timing"]["wall_s"] = time.perf_counter() - t0
        accuracies[name] = analysis.accuracy(run.ranks, run.lists)
        if getattr(rec, "cycles", None):
            results[name]["learner_cycles"] = rec.cycles
        for weight, lists in (getattr(rec, "sweep_lists", None) or {}).items():
            point, accuracy = sweep_point(lists, plan, k, vectors, probability, analysis)
            sweeps.setdefault(name, []).append({"diversity_weight": weight, **point})
            if len(lists) == plan.n_scored:   # a point that served every request is compared like a method
                accuracies[f"{name} (diversity {weight:g})"] = accuracy
    reference = best_baseline(results, BASELINES)
    excluded = "the items the user rejected" if plan.allow_repeats else "the user's earlier items"
    return {
        "dataset": dataset.name,
        "protocol": {**plan_protocol(plan, k, limit, block, windows), **analysis.protocol(),
                     "negative": plan.n_negative, "semantics": semantics.to_dict(),
                     "description": "prequential: before each event, top-k over the full catalogue excluding "
                                    f"{excluded}; then learn the event. Requests batched in blocks of "
                                    "distinct users (see harness.evaluation.prequential)."},
        "methods": results,
        **({"differences": {"reference": reference, "chosen_by": "hr",
                            "methods": analysis.differences(accuracies, reference)}}
           if reference is not None and len(results) > 1 else {}),
        **({"skipped": skipped} if skipped else {}),
        **({"sweeps": sweeps} if sweeps else {}),
        "wall_time_s": time.perf_counter() - started,
    }


def plan_protocol(plan: StreamPlan, k: int, limit: int | None, block: int, windows: int) -> dict:
    """The part of a results document's ``protocol`` that the plan fixes (both paths share it)."""
    return {"k": k, "limit": limit, "warmup": plan.warmup, "block": block, "windows": windows,
            "events": len(plan.events), "scored": plan.n_scored, "repeats": plan.repeats,
            "blocks": len(plan.blocks), "catalogue": len(plan.catalogue), "users": len(plan.user_rows),
            "diversity_space": "genre multi-hot, cosine distance",
            "novelty": "-log2 share of users who interacted with the item (add-one smoothed)"}
