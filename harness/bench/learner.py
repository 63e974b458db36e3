"""``streamrec bench learner``: learner cycle time, from trigger to a version swapped in serving.

Runs a real learner and a real serving process on the broker, replays MovieLens 100K, and
for every version the learner publishes records: the cycle's own duration (train + gate,
from the learner's histogram), the announcement's creation time, and the moment serving's
``/metrics`` first reports that version. Trigger-to-swap is the cycle duration plus the time
from announcement to swap.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from harness.bench.plots import write_bench_plot
from harness.datasets import load_dataset
from streamrec.kafka.config import ensure_topics
from harness.polling import wait_until
from harness.processes import Proc
from harness.replay import replay_dataset
from streamrec.settings import Settings


def _gauge(url: str, name: str) -> float | None:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=1) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
    except Exception:
        return None
    return None


def run_learner_bench(settings: Settings, limit: int | None = None, settle_s: float = 20.0) -> dict:
    ensure_topics(settings)
    dataset = load_dataset("ml-100k", settings.data_dir)
    swaps: dict[int, float] = {}
    stop = threading.Event()
    with Proc("learner", settings, "learner_port") as learner, Proc("serve", settings, "http_port") as serving:
        serving.wait_ready(120)
        learner.wait_ready(180)

        def watch() -> None:  # when serving first answers with each version
            while not stop.is_set():
                v = _gauge(serving.url, "streamrec_serving_model_version")
                if v is not None and int(v) not in swaps:
                    swaps[int(v)] = time.time()
                time.sleep(0.02)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.time()
        replay = replay_dataset(settings, dataset, limit=limit, progress=False)
        # Until the learner has trained on everything and gone quiet.
        wait_until(lambda: (_gauge(learner.url, "streamrec_learner_events_total") or 0) >= replay["events"], 600,
                   interval=0.5)
        time.sleep(settle_s)
        stop.set()
        watcher.join()
        metrics = urllib.request.urlopen(learner.url + "/metrics", timeout=2).read().decode()
    announcements = _announcements(settings)
    cycles = {k: v for k, v in _histogram(metrics, "streamrec_learner_cycle_duration_seconds").items()}
    mean_cycle = cycles["sum"] / cycles["count"] if cycles.get("count") else None
    swapped_after = {a["version"]: swaps[a["version"]] - a["created_at"] for a in announcements if a["version"] in swaps}
    delays = list(swapped_after.values())
    per_version = [{"version": a["version"], "announced_after_s": round(a["created_at"] - started, 2),
                    "announce_to_swap_ms": round(swapped_after[a["version"]] * 1000, 1)
                    if a["version"] in swapped_after else None} for a in announcements]
    return {
        "benchmark": "learner", "per_version": per_version,
        "events": replay["events"], "replay_s": replay["seconds"], "wall_s": round(time.time() - started, 1),
        "versions_published": len(announcements), "versions_seen_by_serving": len(delays),
        "cycles": int(cycles.get("count", 0)), "mean_cycle_s": round(mean_cycle, 3) if mean_cycle else None,
        "announce_to_swap_p50_ms": round(float(np.percentile(delays, 50)) * 1000, 1) if delays else None,
        "announce_to_swap_max_ms": round(float(max(delays)) * 1000, 1) if delays else None,
        "trigger_to_swap_mean_s": round(mean_cycle + float(np.mean(delays)), 3) if delays and mean_cycle else None,
    }


def _histogram(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"{name}_{part} "):
                out[part] = float(line.rsplit(" ", 1)[1])
    return out


def _announcements(settings: Settings) -> list[dict]:
    import asyncio

    from streamrec.kafka.changelog import read_topic
    from streamrec.contracts.topics import MODEL_UPDATES

    return [json.loads(m.value) for m in asyncio.run(read_topic(settings, settings.topic(MODEL_UPDATES)))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="events to replay (default: all 100,000)")
    parser.add_argument("--out", type=Path, default=Path("results/bench-learner.json"), help="JSON output")


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.replace(topic_prefix=f"benchl{int(time.time())}-",
                                state_dir=Path(settings.state_dir) / f"bench-learner-{int(time.time())}")
    result = run_learner_bench(settings, args.limit)
    result["date"] = time.strftime("%Y-%m-%d")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        if key != "per_version":
            print(f"{key:28} {value}")
    print("target: a learner cycle under 30 s on MovieLens 100K")
    print(f"written to {args.out} and {write_bench_plot(result, args.out)}")
    return 0
