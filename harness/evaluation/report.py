"""Tables and plots from an evaluation results file (``streamrec report RESULTS.json``).

The results document is what :func:`harness.evaluation.prequential.prequential` returns
(and ``streamrec evaluate`` writes): per method an ``overall`` metric dict, a list of
per-window dicts and timings; optionally ``sweeps`` — per method a list of points, each a
metric dict with the ``diversity_weight`` of the re-ranking that produced it.

Plots (matplotlib, Agg backend, PNG), each method with its own colour, marker and line
style (the system's variants dashed), the legend outside the axes:

- ``<stem>-over-time.png``: HR@k, recall@k, coverage, Gini, ILD and novelty per window,
  against the events replayed (each window at the middle of the events it spans);
- ``<stem>-accuracy-diversity.png``: HR@k against intra-list diversity along each sweep,
  when the results hold one.

``streamrec report`` also rewrites the Markdown report and per-window CSV of
:mod:`harness.evaluation.tables`.

Examples
--------
>>> doc = {"dataset": "toy", "protocol": {"k": 10, "events": 2, "scored": 2},
...        "methods": {"m": {"overall": {"requests": 2, "hr": 0.5, "ndcg": 0.5, "mrr": 0.5,
...                                      "coverage": 0.1, "gini": 0.9, "entropy": 1.0},
...                          "windows": [], "timing": {"wall_s": 0.1}}}}
>>> print(table_rows(doc)[0][:4])
['m', '0.5000', '—', '0.5000']
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from harness.evaluation import metrics, tables  # noqa: E402

# The terminal table leaves out precision@k and entropy (the Markdown report has them).
COLUMNS = [(key, label) for key, label in metrics.LABELS.items() if key not in ("precision", "entropy")]
OVER_TIME = [("hr", "HR@k"), ("recall", "recall@k (next items)"), ("coverage", "catalogue coverage"),
             ("gini", "exposure Gini"), ("ild", "intra-list diversity"), ("novelty", "novelty (bits)")]
MARKERS = "osD^vP*Xh<>p"


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _span(interval) -> str:
    return f"{interval[0]:.4f}–{interval[1]:.4f}" if interval else "—"


def table_rows(doc: dict) -> list[list[str]]:
    """One row per method: HR@k and its 95% interval, the other overall metrics, then wall
    seconds and µs per request."""
    rows = []
    for name, result in doc["methods"].items():
        o, timing = result["overall"], result.get("timing", {})
        hr_interval = _span(result.get("intervals", {}).get("hr"))
        rows.append([name, _fmt(o.get("hr")), hr_interval] + [_fmt(o.get(key)) for key, _ in COLUMNS[1:]]
                    + [f"{timing.get('wall_s', float('nan')):.1f}",
                       f"{timing.get('recommend_us_per_request', float('nan')):.0f}"])
    return rows


def wide_console(**kwargs) -> Console:
    """A console that does not squeeze the table to 80 columns when output is redirected."""
    console = Console(**kwargs)
    return console if console.is_terminal else Console(width=150, **kwargs)


def render_table(doc: dict, console: Console | None = None) -> Table:
    p = doc.get("protocol", {})
    k = p.get("k", "k")
    title = (f"{doc.get('dataset', '?')}: prequential top-{k}, {p.get('scored', '?')} scored of "
             f"{p.get('events', '?')} events, block {p.get('block', '?')}, warm-up {p.get('warmup', 0)}")
    console = console or wide_console()
    table = Table(title=title, caption="entropy and novelty in bits; ILD: mean pairwise content distance")
    table.add_column("method")
    table.add_column(f"HR@{k}", justify="right")
    table.add_column(f"HR@{k} 95%", justify="right")
    for key, _ in COLUMNS[1:]:
        table.add_column(tables.label(key, k), justify="right")
    table.add_column("wall s", justify="right")
    table.add_column("µs/req", justify="right")
    best = max((r["overall"].get("hr") or 0.0 for r in doc["methods"].values()), default=None)
    for row, result in zip(table_rows(doc), doc["methods"].values()):
        style = "bold green" if result["overall"].get("hr") == best else None
        table.add_row(*row, style=style)
    console.print(table)
    _render_differences(doc, console)
    for name, points in (doc.get("sweeps") or {}).items():
        sweep = Table(title=f"{name}: re-ranking diversity weight sweep (same run, same requests per weight)")
        for label in ("diversity weight", "requests", f"HR@{k}", f"NDCG@{k}", "coverage", "Gini", "ILD", "novelty"):
            sweep.add_column(label, justify="right")
        for p in points:
            sweep.add_row(f"{p['diversity_weight']:g}", str(p.get("requests", "")),
                          *[_fmt(p.get(key)) for key in ("hr", "ndcg", "coverage", "gini", "ild", "novelty")])
        console.print(sweep)
    if "wall_time_s" in doc:
        console.print(f"total wall time {doc['wall_time_s']:.1f} s")
    return table


def _render_differences(doc: dict, console: Console) -> None:
    diffs = doc.get("differences")
    if not diffs:
        return
    k = doc.get("protocol", {}).get("k", "k")
    table = Table(title=f"against the best baseline, {diffs['reference']} (method minus it; paired 95% intervals "
                        "over users)")
    shown = [("overall", "hr"), ("cold", "hr"), ("warm", "hr"), ("overall", "map")]
    table.add_column("method")
    for segment, key in shown:
        table.add_column(f"Δ {tables.label(key, k)}" + ("" if segment == "overall" else f" {segment}"),
                         justify="right")
    for name, by_segment in diffs["methods"].items():
        table.add_row(name, *[tables.with_interval(by_segment[s][key]["difference"], by_segment[s][key]["interval"],
                                                   signed=True) for s, key in shown])
    console.print(table)


def method_style(j: int, name: str) -> dict:
    """The ``j``-th method's line: its own colour and marker; the system's variants dashed."""
    colours = plt.get_cmap("tab20").colors
    return {"color": colours[(2 * j) % 20 + (j >= 10)], "marker": MARKERS[j % len(MARKERS)],
            "linestyle": "--" if name.startswith("system") else "-"}


def window_positions(windows: list[dict]) -> tuple[list[float], str]:
    """Where each window goes on the x axis: the middle of the events it spans (older
    results files without stream positions: the window's number)."""
    if windows and all("first_event" in w for w in windows):
        return [(w["first_event"] + w["last_event"]) / 2 + 1 for w in windows], "events replayed"
    return list(range(1, len(windows) + 1)), "time window (equal numbers of requests)"


def over_time_figure(doc: dict) -> plt.Figure:
    """The per-window metrics of every method, one panel per metric, one legend outside them."""
    fig, axes = plt.subplots(2, 3, figsize=(16, 8), layout="constrained")
    for ax, (key, label) in zip(axes.flat, OVER_TIME):
        xlabel = ""
        for j, (name, result) in enumerate(doc["methods"].items()):
            windows = result.get("windows") or []
            values = [w.get(key) for w in windows]
            if values and all(v is not None for v in values):
                xs, xlabel = window_positions(windows)
                ax.plot(xs, values, ms=4, label=name, **method_style(j, name))
        ax.set_title(label.replace("@k", f"@{doc.get('protocol', {}).get('k', 'k')}"))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    fig.suptitle(f"{doc.get('dataset', '')}: metrics over time")
    return fig


def plot_over_time(doc: dict, path: Path) -> Path:
    fig = over_time_figure(doc)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy_diversity(doc: dict, path: Path) -> Path | None:
    sweeps = doc.get("sweeps") or {}
    if not sweeps:
        return None
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    for j, (name, points) in enumerate(sweeps.items()):
        xs, ys = [p["ild"] for p in points], [p["hr"] for p in points]
        ax.plot(xs, ys, label=name, **method_style(j, name))
        for p in points:
            ax.annotate(f"{p['diversity_weight']:g}", (p["ild"], p["hr"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    for name, result in doc["methods"].items():
        o = result["overall"]
        if o.get("ild") is not None and name not in sweeps:
            ax.scatter([o["ild"]], [o["hr"]], marker="x", color="grey")
            ax.annotate(name, (o["ild"], o["hr"]), fontsize=7, color="grey")
    ax.set_xlabel("intra-list diversity (content distance)")
    ax.set_ylabel(f"HR@{doc.get('protocol', {}).get('k', 'k')}")
    ax.set_title("accuracy-diversity trade-off (labels: re-ranking diversity weight)")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(doc: dict, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [plot_over_time(doc, out_dir / f"{stem}-over-time.png")]
    curve = plot_accuracy_diversity(doc, out_dir / f"{stem}-accuracy-diversity.png")
    return paths + ([curve] if curve else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamrec report", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a JSON file written by `streamrec evaluate` or `streamrec bench`")
    parser.add_argument("--out", type=Path, default=None, help="where to write the PNGs (default: next to it)")
    args = parser.parse_args(argv)
    doc = json.loads(args.results.read_text())
    if "benchmark" in doc:   # a `streamrec bench` result: its one figure
        from harness.bench.plots import write_bench_plot

        print(f"wrote {write_bench_plot(doc, args.results, args.out)}")
        return 0
    render_table(doc)
    out = args.out or args.results.parent
    for path in write_plots(doc, out, args.results.stem) + tables.write_tables(doc, out / args.results.name):
        print(f"wrote {path}")
    return 0
