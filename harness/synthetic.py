"""``streamrec generate``: a synthetic event stream with power-law popularity and drifting interests.

Items belong to ``topics`` latent topics; item popularity within the catalogue follows a
Zipf law (exponent ``alpha``). Each user has a current topic; every event, with probability
``drift`` the user moves to another topic, so interests drift over time. A user's next item
is drawn from their current topic with probability ``focus`` and from the whole catalogue
otherwise, both by popularity. Users are active with Zipf-distributed rates too, so a few
users produce many events, as in real logs. Everything is vectorised and seeded.

Examples
--------
>>> ds = generate(users=100, items=50, events=1000, seed=1)
>>> len(ds), len(ds.items), bool((ds.timestamps[1:] >= ds.timestamps[:-1]).all())
(1000, 50, True)
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from harness.datasets import Dataset
from streamrec.contracts.items import Item


def _zipf_weights(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** alpha
    rng.shuffle(w)
    return w / w.sum()


def generate(users: int = 10_000, items: int = 2_000, events: int = 100_000, topics: int = 20,
             alpha: float = 1.0, focus: float = 0.8, drift: float = 0.01, seed: int = 0,
             start: float = 1.7e9, span_s: float = 30 * 86400.0) -> Dataset:
    rng = np.random.default_rng(seed)
    item_topic = rng.integers(0, topics, items)
    item_pop = _zipf_weights(items, alpha, rng)
    # Per-topic sampling tables: item ids of the topic and their popularity CDF.
    topic_items = [np.flatnonzero(item_topic == t) for t in range(topics)]
    topic_cdf = [np.cumsum(item_pop[ix]) / item_pop[ix].sum() if len(ix) else None for ix in topic_items]
    global_cdf = np.cumsum(item_pop)

    user_rate = _zipf_weights(users, 0.8, rng)
    who = rng.choice(users, size=events, p=user_rate)
    times = np.sort(rng.uniform(start, start + span_s, events))
    # Interest drift: at a "move" event the user's topic changes for that and later events.
    moves = rng.random(events) < drift
    new_topics = rng.integers(0, topics, events)
    current = _topic_at_each_event(who, moves, new_topics, users, topics, seed)
    focused = rng.random(events) < focus
    chosen = np.empty(events, dtype=np.int64)
    u = rng.random(events)
    chosen[~focused] = np.minimum(np.searchsorted(global_cdf, u[~focused]), items - 1)
    for t in range(topics):
        mask = focused & (current == t)
        if mask.any() and topic_cdf[t] is not None:
            pos = np.minimum(np.searchsorted(topic_cdf[t], u[mask]), len(topic_items[t]) - 1)
            chosen[mask] = topic_items[t][pos]
        elif mask.any():
            chosen[mask] = np.minimum(np.searchsorted(global_cdf, u[mask]), items - 1)
    catalogue = [Item(item_id=f"s{i}", title=f"synthetic item {i}", text=f"topic {item_topic[i]}",
                      tags=(f"topic-{item_topic[i]}",)) for i in range(items)]
    return Dataset("synthetic", np.array([f"u{x}" for x in who]), np.array([f"s{x}" for x in chosen]),
                   times, np.ones(events, dtype=np.float32), catalogue)


def _topic_at_each_event(who, moves, new_topics, users, topics, seed) -> np.ndarray:
    """The topic each event's user held at that event: initial topic, then each move's topic."""
    initial = np.random.default_rng(seed + 1).integers(0, topics, users)
    order = np.lexsort((np.arange(len(who)), who))       # events grouped by user, in time order
    w, m, nt = who[order], moves[order], new_topics[order]
    out = np.empty(len(who), dtype=np.int64)
    # Within each user's run, the topic is the last move's topic so far, else the initial one.
    idx = np.where(m, np.arange(len(w)), -1)
    run_start = np.r_[0, np.flatnonzero(w[1:] != w[:-1]) + 1]
    run_id = np.repeat(np.arange(len(run_start)), np.diff(np.r_[run_start, len(w)]))
    idx = np.maximum(idx, np.repeat(run_start - 1, np.diff(np.r_[run_start, len(w)])))
    last = np.maximum.accumulate(idx)
    from_move = last >= run_start[run_id]
    out_sorted = np.where(from_move, nt[np.clip(last, 0, None)], initial[w])
    out[order] = out_sorted
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streamrec generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=1.0, help="Zipf exponent of item popularity")
    parser.add_argument("--drift", type=float, default=0.01, help="chance per event that a user's topic moves")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="-", help="JSON-lines file of events (default: stdout)")
    args = parser.parse_args(argv)
    ds = generate(args.users, args.items, args.events, args.topics, args.alpha, drift=args.drift, seed=args.seed)
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    for u, i, t in zip(ds.user_ids, ds.item_ids, ds.timestamps):
        out.write(json.dumps({"user_id": u, "item_id": i, "event_type": "click", "timestamp": float(t)}) + "\n")
    if out is not sys.stdout:
        out.close()
    return 0
