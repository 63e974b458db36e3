"""Arguments and entry of ``streamrec bench streams`` (see :mod:`harness.bench.streams`)."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from streamrec.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--out", type=Path, default=Path("results/bench-streams.json"), help="JSON output")


def format_table(result: dict) -> str:
    lines = ["streams ingest (same topic, same run): streams worker vs a raw aiokafka consumer",
             f"{'events/message':>14} {'users':>9} {'events':>9} {'raw ev/s':>11} {'streams ev/s':>13} {'ratio':>7}"]
    for r in result["ingest"]:
        lines.append(f"{r['pack']:>14} {r['users']:>9,} {r['events']:>9,} {r['raw_consumer_events_per_s']:>11,} "
                     f"{r['streams_events_per_s']:>13,} {r['ratio']:>7.2%}")
    f = result["freshness"]
    lines += ["", f"freshness at {f['rate_per_s']:,.0f} events/s (ack -> user state on its changelog): "
                  f"p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms ({f['observed']:,}/{f['events']:,} observed)",
              "", "memory per user (in-process batch processor, 3 events per user)",
              f"{'users':>10} {'state B/user':>13} {'RSS B/user':>12} {'in-process ev/s':>16}"]
    for m in result["memory"]:
        lines.append(f"{m['users']:>10,} {m['state_bytes_per_user']:>13,} {m['rss_bytes_per_user']:>12,} "
                     f"{m['in_process_events_per_s']:>16,}")
    lines.append("target: ingest >= 25% of the raw consumer; freshness p99 < 100 ms at 1,000 events/s")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from harness.bench.plots import write_bench_plot
    from harness.bench.streams import run as run_bench

    settings = settings.replace(topic_prefix=f"bench{int(time.time())}-",
                                state_dir=Path(settings.state_dir) / "bench")
    result = run_bench(settings, quick=args.quick)
    result["date"] = time.strftime("%Y-%m-%d")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(format_table(result))
    print(f"written to {args.out} and {write_bench_plot(result, args.out)}")
    return 0
