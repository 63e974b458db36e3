"""``streamrec simulate``: closed-loop simulation of long-term effects (filter bubbles).

Simulated MovieLens users with true preferences fitted to the whole dataset choose among
what the live system recommends (position bias, an outside option); their choices go back
through Kafka as click events; over many rounds the run reports utility, exposure
concentration and homogenisation per arm (request options such as diversity re-ranking
and exploration). Each arm runs on a live system of its own, or, with ``--experiment NAME``,
all arms run on one system as arms of a serving experiment that splits the users between
them (:mod:`harness.simulation.experiment`). See :mod:`harness.simulation.loop` for the protocol.

Prints one table per arm (first round, last round, change), the arms side by side (and, with
``--experiment``, serving's own per-arm online metrics), writes ``simulate.json`` and PNG
plots to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streamrec.contracts.experiments import NAME
from streamrec.settings import Settings
from harness.datasets.flags import add_dataset_arguments, dataset_from_args
from harness.simulation.choice import POSITION_BIASES, ChoiceModel
from harness.simulation.loop import Arm, SimulationConfig, run_simulation
from harness.simulation.plots import METRICS, plot_results

TABLE_METRICS = METRICS + (("utility_oracle", "oracle utility (best k unconsumed)"),
                           ("repeat_share", "served items already consumed"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamrec simulate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = SimulationConfig()
    p.add_argument("--users", type=int, default=d.users, help="simulated users")
    p.add_argument("--rounds", type=int, default=d.rounds, help="recommend-choose-publish rounds")
    p.add_argument("--k", type=int, default=d.k, help="list length")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds users, choices and the preference fit")
    p.add_argument("--arms", nargs="+", default=["plain:diversity=0,exploration=0",
                                                   "diverse:diversity=0.5,exploration=0.2"],
                   help="NAME:diversity=D,exploration=E[,cooccurrence_weight=W] per arm")
    p.add_argument("--experiment", metavar="NAME",
                   help="run the arms on one live system as arms of experiment NAME (created through serving's "
                        "admin API, equal shares: serving splits the users between them) instead of one system "
                        "per arm")
    p.add_argument("--out", type=Path, default=Path("results") / "simulate", help="JSON and plots go here")
    add_dataset_arguments(p)
    p.add_argument("--data-dir", help="dataset folder (else STREAMREC_DATA_DIR, else ../shared/data)")
    p.add_argument("--warmup-fraction", type=float, default=d.warmup_fraction,
                   help="share of the events (timestamp order) replayed before the rounds")
    p.add_argument("--min-history", type=int, default=d.min_history, help="warm-up events a simulated user needs")
    p.add_argument("--round-seconds", type=float, default=d.round_seconds, help="event time between rounds")
    p.add_argument("--no-learner", action="store_true",
                   help="no learner process: serving keeps the pre-model (deterministic, content-free) item "
                        "vectors and online user vectors, so the lists do not reflect learned preferences")
    p.add_argument("--no-streams", action="store_true", help="no streams worker (serving still applies events)")
    p.add_argument("--learn-every", type=int, default=0,
                   help="learner cycle every this many events (0: one per --users events)")
    p.add_argument("--sensitivity", type=float, default=d.choice.sensitivity,
                   help="choice model: logit sensitivity per rating point")
    p.add_argument("--outside-utility", type=float, default=d.choice.outside_utility,
                   help="choice model: utility of choosing nothing (rating scale)")
    p.add_argument("--position-bias", choices=POSITION_BIASES, default=d.choice.position_bias,
                   help="choice model: log (1/log2(rank+1)), cascade or none")
    p.add_argument("--bootstrap-servers", help="Kafka cluster (else KAFKA_BOOTSTRAP_SERVERS, else embedded)")
    return p


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def arm_table(name: str, arm: Arm | dict, rounds: list[dict], users: int | None = None) -> Table:
    options = arm if isinstance(arm, dict) else arm.__dict__
    weight = options.get("cooccurrence_weight")
    title = f"{name} (diversity={options['diversity']}, exploration={options['exploration']}" + (
        f", cooccurrence_weight={weight})" if weight is not None else ")")
    table = Table(title=title + (f", {users} users" if users is not None else ""))
    for column in ("metric", "round 1", f"round {len(rounds)}", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    first, last = rounds[0], rounds[-1]
    for key, title in TABLE_METRICS:
        a, b = first.get(key), last.get(key)
        change = b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        table.add_row(title, _fmt(a), _fmt(b), (f"{change:+.4f}" if change is not None and not math.isnan(change)
                                                 else "–"))
    return table


def mean_table(doc: dict) -> Table:
    """Every arm side by side, each metric averaged over all rounds."""
    table = Table(title="mean over all rounds")
    table.add_column("metric")
    for name in doc["arms"]:
        table.add_column(name, justify="right")
    for key, title in TABLE_METRICS:
        row = []
        for rounds in doc["arms"].values():
            values = [r[key] for r in rounds if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
            row.append(_fmt(sum(values) / len(values)) if values else "–")
        table.add_row(title, *row)
    return table


SERVING_FIGURES = (("requests", "requests answered"), ("scored_lists", "lists scored (window)"),
                   ("hit_rate", "HR@10"), ("ndcg", "NDCG@10"), ("exposure_entropy_bits", "exposure entropy (bits)"),
                   ("exposure_gini", "exposure Gini"), ("catalogue_coverage", "catalogue coverage"))


def serving_table(experiment: dict) -> Table:
    """Serving's own online figures per arm (``--experiment``), side by side."""
    table = Table(title=f"serving's online metrics per arm of experiment {experiment['name']}")
    table.add_column("metric")
    arms = experiment.get("serving") or {}
    for name in arms:
        table.add_column(name, justify="right")
    for key, title in SERVING_FIGURES:
        table.add_row(title, *(_fmt(figures.get(key)) for figures in arms.values()))
    return table


def print_report(doc: dict, console: Console | None = None) -> None:
    console = console or Console(width=120)
    arms = {a["name"]: a for a in doc["config"]["arms"]}
    experiment = doc.get("experiment")
    for name, rounds in doc["arms"].items():
        if rounds:
            users = len(experiment["users"][name]) if experiment else None
            console.print(arm_table(name, arms[name], rounds, users))
    console.print(mean_table(doc))
    if experiment:
        console.print(serving_table(experiment))
    console.print(f"{doc['config']['users']} users, {len(next(iter(doc['arms'].values())))} rounds, "
                  f"k={doc['config']['k']}, seed {doc['config']['seed']}, learner "
                  f"{'on' if doc['config']['learner'] else 'off'}; {doc['seconds']} s")


def _experiment_problem(name: str | None, arms: list[Arm], max_arms: int) -> str | None:
    """Why ``--experiment`` cannot run these arms (None: it can, or it is not asked for)."""
    if name is None:
        return None
    if not NAME.match(name):
        return f"--experiment {name!r}: 1-64 letters, digits, '_', '.' or '-'"
    if not 2 <= len(arms) <= max_arms:
        return f"--experiment needs 2 to {max_arms} --arms (STREAMREC_SERVING_MAX_ARMS)"
    return None


def main(argv: list[str]) -> int:
    from streamrec.kafka.runtime import embedded_or_configured

    args = build_parser().parse_args(argv)
    try:
        arms = [Arm.parse(spec) for spec in args.arms]
    except ValueError as exc:
        print(f"streamrec simulate: {exc}", file=sys.stderr)
        return 2
    if len({a.name for a in arms}) != len(arms):
        print("streamrec simulate: arm names must differ", file=sys.stderr)
        return 2
    config = SimulationConfig(users=args.users, rounds=args.rounds, k=args.k, seed=args.seed, arms=arms,
                              warmup_fraction=args.warmup_fraction, min_history=args.min_history,
                              round_seconds=args.round_seconds, learner=not args.no_learner,
                              streams=not args.no_streams, learn_every=args.learn_every,
                              experiment=args.experiment,
                              choice=ChoiceModel(args.sensitivity, args.outside_utility, args.position_bias))
    # The children's INFO logs (one line per request) would cost CPU the rounds need.
    settings = Settings.from_env(bootstrap_servers=args.bootstrap_servers, data_dir=args.data_dir,
                                 log_level=os.environ.get("STREAMREC_LOG_LEVEL") or "WARNING")
    problem = _experiment_problem(args.experiment, arms, settings.serving_max_arms)
    if problem:
        print(f"streamrec simulate: {problem}", file=sys.stderr)
        return 2
    dataset = dataset_from_args(args, "streamrec simulate", settings, settings.data_dir)
    if dataset is None:
        return 2
    out = Path(args.out)
    run_dir = Path(settings.state_dir) / "simulate" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    console = Console(width=120, stderr=True)
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with embedded_or_configured(settings, log_file=log_dir / "broker.log") as live:
        doc = run_simulation(config, live, dataset, run_dir, progress=lambda m: console.log(m))
    doc["dataset"] = dataset.name
    doc["load_report"] = dataset.report.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    (out / "simulate.json").write_text(json.dumps(doc, indent=1, default=float))
    plots = plot_results(doc, out)
    print_report(doc)
    print(f"results: {out / 'simulate.json'}; plots: {', '.join(p.name for p in plots[:1])} and "
          f"{len(plots) - 1} per-metric PNGs in {out}")
    return 0
