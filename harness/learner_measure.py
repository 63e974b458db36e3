"""Prequential measurement of the continual trainer against popularity, same events, same order.

Each batch of MovieLens 100K events is first ranked by the current model and by a popularity
baseline (counts of everything before the batch), both over the full catalogue excluding the
items the user already had, then trained on. Only events whose user has a history count
(the sequence model needs one). Prints a table; the numbers it produced, with their date,
are in docs/evaluation.md.

    python -m harness.learner_measure --events 20000 --loss softmax --text
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from harness.datasets import load_movielens_100k
from streamrec.contracts.events import Event
from streamrec.settings import Settings
from learner.trainer import ContinualTrainer


def popularity_hits(counts: np.ndarray, seen: dict[str, set[int]], users, rows) -> tuple[int, int]:
    hits = scored = 0
    for user, row in zip(users, rows):
        had = seen.get(user)
        if not had:
            continue
        scored += 1
        c = counts[row]
        excluded = [s for s in had if s != row]
        rank = int((counts >= c).sum()) - 1 - int((counts[excluded] >= c).sum())
        hits += rank < 10
    return hits, scored


def run(events: int, loss: str, text: bool, every: int, batch: int, seed: int, batches: int) -> dict:
    ds = load_movielens_100k().head(events)
    settings = Settings(learner_use_text=text, learner_loss=loss, learner_train_every_events=every,
                        learner_train_every_s=0.0, learner_drift_delta=0.0, learner_seed=seed,
                        learner_batches_per_cycle=batches, state_dir=Settings().state_dir)
    trainer = ContinualTrainer(settings, ds.items)
    index = {item.item_id: k for k, item in enumerate(ds.items)}
    counts = np.zeros(len(ds.items), np.float64)
    seen: dict[str, set[int]] = {}
    model_hits = model_scored = pop_hits = pop_scored = 0
    cycle_times = []
    started = time.monotonic()
    for start in range(0, len(ds), batch):
        users, items = ds.user_ids[start:start + batch], ds.item_ids[start:start + batch]
        rows = np.array([index[i] for i in items])
        h, s = popularity_hits(counts, seen, users, rows)
        pop_hits, pop_scored = pop_hits + h, pop_scored + s
        result = trainer.observe([Event(u, i, "rating", float(t)) for u, i, t in
                                  zip(users, items, ds.timestamps[start:start + batch])])
        model_hits, model_scored = model_hits + result.hits, model_scored + result.scored
        np.add.at(counts, rows, 1.0)
        for u, r in zip(users, rows):
            seen.setdefault(u, set()).add(int(r))
        if trainer.should_train():
            cycle = trainer.train_cycle()
            cycle_times.append(cycle.duration_s)
    return {"loss": loss, "text": text, "events": len(ds), "model_hr10": model_hits / max(model_scored, 1),
            "popularity_hr10": pop_hits / max(pop_scored, 1), "scored": model_scored,
            "cycles": len(cycle_times), "mean_cycle_s": float(np.mean(cycle_times)) if cycle_times else 0.0,
            "wall_s": time.monotonic() - started,
            "last_gate": trainer.last_result.candidate if trainer.last_result else {}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.learner_measure", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--loss", action="append", choices=("softmax", "sampled", "bpr"))
    p.add_argument("--text", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--every", type=int, default=2000, help="train every N events")
    p.add_argument("--batch", type=int, default=500, help="events per observe call")
    p.add_argument("--batches", type=int, default=60, help="mini-batches per cycle")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print("| loss | text | events | scored | model HR@10 | popularity HR@10 | cycles | mean cycle s | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for loss in args.loss or ["softmax"]:
        r = run(args.events, loss, args.text, args.every, args.batch, args.seed, args.batches)
        print(f"| {r['loss']} | {r['text']} | {r['events']} | {r['scored']} | {r['model_hr10']:.4f} | "
              f"{r['popularity_hr10']:.4f} | {r['cycles']} | {r['mean_cycle_s']:.2f} | {r['wall_s']:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
