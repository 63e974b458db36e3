"""Arguments and entry of ``streamrec bench serving`` (see :mod:`harness.bench.serving`)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from streamrec.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=500.0, help="HTTP requests per second (fixed rate)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of HTTP load")
    parser.add_argument("--topic-rate", type=float, default=200.0, help="topic requests per second")
    parser.add_argument("--topic-duration", type=float, default=5.0, help="seconds of topic load")
    parser.add_argument("--items", type=int, default=10_000, help="catalogue size of the synthetic model")
    parser.add_argument("--users", type=int, default=2_000, help="users with history")
    parser.add_argument("--event-rate", type=float, default=1000.0, help="events per second for event-to-visible")
    parser.add_argument("--events", type=int, default=3000, help="events measured for event-to-visible")
    parser.add_argument("--overload-factor", type=float, default=2.0,
                        help="overload row: this many times the measured sustainable HTTP rate")
    parser.add_argument("--overload-duration", type=float, default=10.0, help="seconds of overload")
    parser.add_argument("--instances", type=int, default=1,
                        help="sharded serving: run N instances instead (each one's share of the events, "
                             "event-to-visible on the owner, local and forwarded answers at --rate, "
                             "N real serve processes; "
                             "harness.bench.sharded_serving)")
    parser.add_argument("--out", type=Path, default=Path("results/bench-serving.json"), help="JSON output")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from harness.bench.plots import write_bench_plot
    from harness.bench.serving import format_table, run_serving_bench

    logging.basicConfig(level=logging.WARNING)
    if args.instances > 1:
        from harness.bench.sharded_serving import format_table as sharded_table, run_sharded_bench

        result = run_sharded_bench(settings, instances=args.instances, event_rate=args.event_rate,
                                   n_events=args.events, http_rate=args.rate, n_items=args.items,
                                   n_users=args.users, out=args.out)
        print(sharded_table(result))
        print(f"written to {args.out} and {write_bench_plot(result, args.out)}")
        return 0
    result = run_serving_bench(settings, rate=args.rate, duration_s=args.duration, topic_rate=args.topic_rate,
                               topic_duration_s=args.topic_duration, n_items=args.items, n_users=args.users,
                               event_rate=args.event_rate, n_events=args.events,
                               overload_factor=args.overload_factor, overload_duration_s=args.overload_duration,
                               out=args.out)
    print(format_table(result))
    print(f"written to {args.out} and {write_bench_plot(result, args.out)}")
    return 0
