"""``streamrec chaos``: the long fault-injection scenarios, with a loss/duplication table.

Each scenario injects faults into the real processes on the embedded broker (or the
configured cluster) and returns one row: scenario, faults injected, events in, applied,
lost, applied twice, requests failed. Scenarios live next to what they break
(``harness.chaos.<area>``) and are listed in :data:`SCENARIOS`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

from harness.chaos.broker import run_outage, run_outage_data_loss, run_start_late
from harness.chaos.hostile import run_bad_input, run_misrouted
from harness.chaos.learner import run_learner
from harness.chaos.models import run_forged
from harness.chaos.restart import run_restart_kept_state
from harness.chaos.serving import run_overload, run_restart
from harness.chaos.streams import dataset_docs, streams_crash
from harness.datasets import load_dataset
from streamrec.settings import Settings

Scenario = Callable[[Settings, argparse.Namespace], dict]


def run_streams(settings: Settings, args: argparse.Namespace) -> dict:
    dataset = load_dataset("ml-100k", settings.data_dir)
    docs = dataset_docs(dataset, args.limit)
    return streams_crash(settings.replace(topic_prefix=f"chaos-streams-{int(time.time())}-"), docs,
                         kills=args.kills, seed=args.seed, timeout=600)


# name -> (scenario, help)
SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "streams": (run_streams, "SIGKILL the streams worker 3+ times during a MovieLens replay"),
    "learner": (run_learner, "SIGKILL the learner inside a cycle, a version write and a checkpoint write"),
    "serving-restart": (run_restart, "restart serving under client load"),
    "serving-overload": (run_overload, "twice the capacity for 60 s"),
    "broker-outage": (run_outage, "freeze the broker for 30 s mid-run"),
    "broker-data-loss": (run_outage_data_loss,
                         "restart the in-memory broker empty for 30 s: loss must be reported, not hidden"),
    "broker-late": (run_start_late, "start the processes 30 s before the broker"),
    "bad-input": (run_bad_input, "null, megabyte, overflowing, deeply nested, mis-partitioned and retried "
                                 "messages into streams, serving and the learner"),
    "misrouted": (run_misrouted, "two streams workers; a third of the events keyless, a third on a wrong partition"),
    "restart-kept-state": (run_restart_kept_state,
                           "stop `up` with its embedded broker, start it on the same state dir, send new events"),
    "forged-models": (run_forged,
                      "forged model announcements (path outside, FIFO, oversized, unsigned, bad HMAC, huge version)"),
}
COLUMNS = ("scenario", "faults_injected", "events_in", "applied", "lost", "applied_twice", "dead_lettered",
           "requests_failed", "seconds")


def format_table(rows: list[dict]) -> str:
    widths = {c: max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    for r in rows:
        lines.append("  ".join(_cell(r.get(c)).ljust(widths[c]) for c in COLUMNS))
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main(argv: list[str]) -> int:
    from streamrec.kafka.runtime import embedded_or_configured

    parser = argparse.ArgumentParser(prog="streamrec chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", choices=[[], *SCENARIOS], metavar="SCENARIO",
                        help=f"which to run (default: all): {', '.join(SCENARIOS)}")
    parser.add_argument("--limit", type=int, help="events replayed by the streams scenario (default: all 100,000)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs in the streams scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/chaos.json"))
    args = parser.parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    rows = []
    with embedded_or_configured(Settings.from_env()) as settings:
        settings = settings.replace(state_dir=Path(settings.state_dir) / "chaos")
        for name in names:
            fn = SCENARIOS[name][0]
            print(f"running {name}…", flush=True)
            try:
                rows.append(fn(settings, args))
            except Exception as exc:  # a failed scenario is a result, not a crash of the report
                rows.append({"scenario": name, "error": f"{type(exc).__name__}: {exc}"})
    print(format_table(rows))
    for r in rows:
        if "error" in r:
            print(f"{r['scenario']}: {r['error']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    bad = [r for r in rows if "error" in r or r.get("lost") or r.get("applied_twice")]
    return 1 if bad else 0
