"""``streamrec evaluate``: prequential evaluation of every method in one run, same event order.

Runs the fast in-process path of :mod:`harness.evaluation.prequential` over a dataset,
prints the tables, and writes ``<out>/evaluate-<dataset>.json``, beside it the Markdown
report and per-window CSV of :mod:`harness.evaluation.tables`, and the PNG plots of
:mod:`harness.evaluation.report`. Methods are the baselines of
:data:`streamrec.baselines.BASELINES` and, where they can be built, the system variants.
``--next-items``, ``--cold-events`` and ``--bootstrap`` choose what recall, precision and
MAP count as relevant, which requests are cold, and how many resamples of users stand
behind each 95% interval (:mod:`harness.evaluation.analysis`).

Examples
--------
::

    streamrec evaluate --dataset ml-100k                       # everything, full data
    streamrec evaluate --dataset ml-100k --limit 20000 --methods popular,item-knn
    streamrec evaluate --dataset interactions.csv --user-col visitor --time-format iso
    streamrec evaluate --path real --limit 2000          # through Kafka, streams and serving

``--path real`` replays the slice through the running system instead
(:mod:`harness.evaluation.real_path`): an embedded broker unless ``KAFKA_BOOTSTRAP_SERVERS``
is set, a streams worker and serving (and the learner for ``system-full``) as child
processes, one event at a time. Its methods are the real systems
(``system-online-vectors``, the default, and ``system-full``); the fast path's
``system-online-vectors`` runs on the same slice beside it and the JSON records how far the
two agree (``agreement``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from harness.datasets import Dataset
from harness.datasets.flags import add_dataset_arguments, dataset_from_args
from harness.evaluation import report, tables
from harness.evaluation.methods import available_methods, default_methods
from harness.evaluation.prequential import prequential
from streamrec.settings import Settings


# The evaluation's whole-number settings, each a flag: (flag, Settings field, what it sets).
EVAL_FLAGS = [
    ("--k", "eval_k", "list length"),
    ("--warmup", "eval_warmup", "events learned before scoring starts"),
    ("--block", "eval_block", "max consecutive distinct-user requests answered together"),
    ("--windows", "eval_windows", "time windows for the per-window metrics"),
    ("--next-items", "eval_next_items", "the user's next N new items are relevant for recall, precision and MAP"),
    ("--cold-events", "eval_cold_events", "requests of users with fewer earlier events are cold"),
    ("--bootstrap", "eval_bootstrap", "resamples of users behind the 95%% intervals; 0: none"),
]


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamrec evaluate", description=__doc__.split("\n")[0])
    add_dataset_arguments(p)
    p.add_argument("--data-dir", type=Path, default=settings.data_dir, help="where datasets live")
    p.add_argument("--limit", type=int, default=None, help="replay only the first N events")
    p.add_argument("--methods", default=None,
                   help="comma-separated method names (default: all available but system-full-norerank; see --list)")
    p.add_argument("--list", action="store_true", help="list the available methods and exit")
    for flag, field, meaning in EVAL_FLAGS:
        p.add_argument(flag, type=int, default=getattr(settings, field), help=f"{meaning} (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed handed to every method's factory")
    p.add_argument("--out", type=Path, default=settings.eval_out_dir, help="output directory (default %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--path", choices=("fast", "real"), default="fast",
                   help="fast: in-process replay (default); real: through Kafka, streams, serving (and learner)")
    return p


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    args = build_parser(settings).parse_args(argv)
    if args.path == "real":
        return _main_real(args, settings, argv)
    factories = available_methods()
    if args.list:
        print("\n".join(factories))
        return 0
    names = _chosen(args, factories, default_methods(), "streamrec evaluate: unknown method(s)")
    dataset = _dataset(args, settings) if names is not None else None
    if dataset is None:
        return 2
    progress = _progress_printer()
    started = dt.datetime.now(dt.timezone.utc)
    methods = {name: factories[name](seed=args.seed) for name in names}
    doc = prequential(dataset, methods, k=args.k, limit=args.limit, warmup=args.warmup, block=args.block,
                      windows=args.windows, progress=progress, semantics=settings.semantics,
                      **_analysis_args(args))
    doc["seed"] = args.seed
    path = _write(doc, dataset, args, argv, started, f"evaluate-{dataset.name}")
    report.render_table(doc, report.wide_console())
    for name, reason in doc.get("skipped", {}).items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    _finish(doc, args, path)
    return 0


def _main_real(args: argparse.Namespace, settings: Settings, argv: list[str] | None) -> int:
    from harness.evaluation.real_path import REAL_SYSTEMS, evaluate_real
    from streamrec.kafka.runtime import embedded_or_configured

    if args.list:
        print("\n".join(REAL_SYSTEMS))
        return 0
    names = _chosen(args, REAL_SYSTEMS, ["system-online-vectors"],
                    "streamrec evaluate --path real: unknown system(s)")
    dataset = _dataset(args, settings) if names is not None else None
    if dataset is None:
        return 2
    progress = _progress_printer()
    started = dt.datetime.now(dt.timezone.utc)
    with embedded_or_configured(settings) as settings:
        doc = evaluate_real(dataset, settings, systems=tuple(names), k=args.k, limit=args.limit,
                            warmup=args.warmup, windows=args.windows, progress=progress, **_analysis_args(args))
    path = _write(doc, dataset, args, argv, started, f"evaluate-real-{dataset.name}")
    report.render_table(doc, report.wide_console())
    for name, result in doc["methods"].items():
        if "real_path" in result:
            print(f"{name}: {result['real_path']}")
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2%}"

    for name, agreed in (doc.get("agreement") or {}).items():
        print(f"{name} real vs fast: same hit/miss on {pct(agreed['same_hit'])} of {agreed['requests']} requests, "
              f"identical lists on {pct(agreed['same_list_warm'])} of {agreed['warm_requests']} warm requests; "
              f"HR {agreed['hr'][0]:.4f} (real) vs {agreed['hr'][1]:.4f} (fast)")
    _finish(doc, args, path)
    return 0


def _analysis_args(args: argparse.Namespace) -> dict:
    """What the flags choose of :class:`~harness.evaluation.analysis.RequestAnalysis`."""
    return {"next_items": args.next_items, "cold_events": args.cold_events, "bootstrap": args.bootstrap}


def _chosen(args: argparse.Namespace, known, default, complaint: str) -> list[str] | None:
    """The names ``--methods`` gives (``default`` without it); None, said on stderr, if one is unknown."""
    names = list(default) if not args.methods else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in known]
    if unknown:
        print(f"{complaint} {', '.join(unknown)}; available: {', '.join(known)}", file=sys.stderr)
        return None
    return names


def _dataset(args: argparse.Namespace, settings: Settings) -> Dataset | None:
    """The dataset ``--dataset`` names, its load report on stderr; None, said there, if it cannot be loaded."""
    return dataset_from_args(args, "streamrec evaluate", settings, args.data_dir)


def _progress_printer():
    """A progress callback that prints at most every 5 s (and at the end of each method)."""
    console = Console(stderr=True)
    last = {"t": 0.0}

    def progress(name: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last["t"] > 5 or done == total:
            last["t"] = now
            console.print(f"  {name}: {done}/{total} events", highlight=False)
    return progress


def _write(doc: dict, dataset: Dataset, args: argparse.Namespace, argv: list[str] | None, started, stem: str):
    doc["created"] = started.isoformat(timespec="seconds")
    doc["command"] = "streamrec evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    # What was read and what was rejected, so a result is never read without its data's caveats.
    if dataset.report is not None:
        doc["load_report"] = dataset.report.to_dict()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stem}.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def _finish(doc: dict, args: argparse.Namespace, path) -> None:
    print(f"wrote {path}")
    for written in tables.write_tables(doc, path):
        print(f"wrote {written}")
    if not args.no_plots:
        for plot in report.write_plots(doc, args.out, path.stem):
            print(f"wrote {plot}")
