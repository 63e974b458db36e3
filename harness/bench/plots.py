"""PNG plots of the benchmark results, drawn from their JSON alone.

Each ``streamrec bench NAME`` writes ``bench-NAME.json`` and, next to it, ``bench-NAME.png``
drawn by :func:`write_bench_plot`; ``streamrec report bench-NAME.json`` redraws it from the
file. Every panel marks its target (dashed) so a reader sees at a glance where we stand.

* ``streams``: ingest rate of the streams worker and of a raw aiokafka consumer on the same
  topic, per message shape (log scale, ratio printed, the 25% target drawn); the freshness
  latency distribution (ack to user state on its changelog) against the 100 ms target;
  memory per user and in-process rate as the number of users grows.
* ``serving``: latency distribution (CDF, log scale) of each path against its target (the
  overload row: accepted and shed answers apart).
* ``learner``: per published version, when it was announced during the replay and how long
  serving took to answer with it; the mean cycle time against the 30 s target.

Latency distributions are stored as the 0th..100th percentiles (``quantiles_ms``, see
:func:`latency_quantiles`), which is what a CDF needs and keeps the JSON small.

Examples
--------
>>> latency_quantiles([1.0, 2.0, 3.0])[50]
2.0
>>> latency_quantiles([]) is None
True
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

PERCENTS = np.arange(101)


def latency_quantiles(values_ms: Sequence[float]) -> list[float] | None:
    """The 0th, 1st, ..., 100th percentiles of ``values_ms`` (None when there are none)."""
    if len(values_ms) == 0:
        return None
    return [round(float(v), 3) for v in np.percentile(np.asarray(values_ms, dtype=np.float64), PERCENTS)]


def _cdf(ax, quantiles: list[float] | None, label: str) -> None:
    if quantiles:
        ax.plot(quantiles, PERCENTS / 100.0, label=label)


def _target(ax, value: float, label: str, vertical: bool = True) -> None:
    (ax.axvline if vertical else ax.axhline)(value, color="grey", linestyle="--", linewidth=1)
    if vertical:
        ax.annotate(label, (value, 0.02), rotation=90, fontsize=8, color="grey", ha="right")
    else:
        ax.annotate(label, (0.0, value), xycoords=("axes fraction", "data"), fontsize=8, color="grey",
                    va="bottom")


def plot_streams(result: dict, path: Path) -> Path:
    fig, (ingest, fresh, memory) = plt.subplots(1, 3, figsize=(16, 4.8))
    rows = result["ingest"]
    x = np.arange(len(rows))
    raw = np.array([r["raw_consumer_events_per_s"] for r in rows], dtype=float)
    ours = np.array([r["streams_events_per_s"] for r in rows], dtype=float)
    ingest.bar(x - 0.2, raw, 0.4, label="raw aiokafka consumer")
    ingest.bar(x + 0.2, ours, 0.4, label="streams worker")
    ingest.scatter(x + 0.2, raw * 0.25, marker="_", s=400, color="grey", label="target: 25% of raw")
    for j, r in enumerate(rows):
        ingest.annotate(f"{r['ratio']:.2%}", (j + 0.2, ours[j]), ha="center", va="bottom", fontsize=8)
    ingest.set_xticks(x, [f"{r['pack']} ev/msg\n{r['users']:,} users" for r in rows], fontsize=8)
    ingest.set_yscale("log")
    ingest.set_ylabel("events/s")
    ingest.set_title("ingest, same topic, same run")
    ingest.legend(fontsize=8)

    f = result["freshness"]
    _cdf(fresh, f.get("quantiles_ms"), f"{f['rate_per_s']:,.0f} events/s")
    _target(fresh, 100.0, "target p99 100 ms")
    fresh.axhline(0.99, color="lightgrey", linewidth=1)
    fresh.set_xlabel("ack -> user state on its changelog, ms")
    fresh.set_ylabel("share of events")
    fresh.set_title(f"freshness: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms")
    fresh.legend(fontsize=8)

    mem = result["memory"]
    users = [m["users"] for m in mem]
    memory.plot(users, [m["state_bytes_per_user"] for m in mem], "o-", label="encoded state, B/user")
    memory.plot(users, [m["rss_bytes_per_user"] for m in mem], "s-", label="resident memory, B/user")
    memory.set_xscale("log")
    memory.set_xlabel("users")
    memory.set_ylabel("bytes per user")
    memory.set_ylim(bottom=0)
    rate = memory.twinx()
    rate.plot(users, [m["in_process_events_per_s"] for m in mem], "^:", color="tab:green",
              label="in-process events/s")
    rate.set_ylabel("in-process events/s")
    rate.set_ylim(bottom=0)
    lines = memory.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    memory.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower left")
    memory.set_title("growth with users")
    return _save(fig, path, f"streamrec bench streams ({result.get('date', '')})")


def plot_serving(result: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for row in result["rows"]:
        accepted = " accepted (200)" if "shed_quantiles_ms" in row else ""
        _cdf(ax, row.get("quantiles_ms"), f"{row['path']} at {row['target_rate']:,.0f}/s{accepted}")
        if "shed_quantiles_ms" in row:
            _cdf(ax, row["shed_quantiles_ms"], f"{row['path']} at {row['target_rate']:,.0f}/s shed (503)")
    targets = result.get("targets", {})
    for key, what in (("overload_accepted_p99_ms", "overload accepted"), ("overload_shed_p99_ms", "overload shed")):
        if key in targets:
            _target(ax, targets[key], f"{what} p99 target {targets[key]:.0f} ms")
    if "http_p99_ms" in targets:
        _target(ax, targets["http_p99_ms"], f"HTTP p99 target {targets['http_p99_ms']:.0f} ms")
    if "event_to_visible_p99_ms" in targets:
        _target(ax, targets["event_to_visible_p99_ms"],
                f"event-to-visible p99 target {targets['event_to_visible_p99_ms']:.0f} ms")
    ax.axhline(0.99, color="lightgrey", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms")
    ax.set_ylabel("share of requests / events")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"{result.get('items', 0):,} items ({result.get('index', '')} index), "
                 f"{result.get('users', 0):,} users")
    return _save(fig, path, f"streamrec bench serving ({result.get('date', '')})")


def plot_learner(result: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.8))
    versions = result.get("per_version") or []
    seen = [v for v in versions if v.get("announce_to_swap_ms") is not None]
    ax.bar([v["version"] for v in seen], [v["announce_to_swap_ms"] for v in seen], color="tab:blue",
           label="announcement -> serving answers with it, ms")
    ax.set_xlabel("model version")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("ms")
    when = ax.twinx()
    when.plot([v["version"] for v in versions], [v["announced_after_s"] for v in versions], "o-",
              color="tab:orange", label="announced, s after the replay started")
    when.set_ylabel("s after the replay started")
    lines = ax.get_legend_handles_labels()[0] + when.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper left")
    mean = result.get("mean_cycle_s")
    ax.set_title(f"{result.get('cycles', 0)} cycles, mean cycle {mean} s (target under 30 s); "
                 f"{result.get('versions_seen_by_serving', 0)}/{result.get('versions_published', 0)} versions served")
    return _save(fig, path, f"streamrec bench learner ({result.get('date', '')})")


def _save(fig, path: Path, title: str) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


PLOTTERS = {"streams": plot_streams, "serving": plot_serving, "learner": plot_learner}


def write_bench_plot(result: dict, json_path: Path, out_dir: Path | None = None) -> Path:
    """Draw ``result`` (a ``streamrec bench`` JSON document) next to ``json_path`` as PNG."""
    kind = result.get("benchmark")
    if kind not in PLOTTERS:
        raise ValueError(f"not a streamrec bench result (benchmark={kind!r}; known: {', '.join(PLOTTERS)})")
    return PLOTTERS[kind](result, (out_dir or json_path.parent) / f"{json_path.stem}.png")


__all__ = ["latency_quantiles", "plot_learner", "plot_serving", "plot_streams", "write_bench_plot"]
