"""PNG plots of a simulation: each metric per round, one line per arm (matplotlib, Agg backend).

Examples
--------
>>> import tempfile
>>> doc = {"arms": {"a": [{"round": 0, "jaccard": 0.1}, {"round": 1, "jaccard": 0.2}]}}
>>> [p.name for p in plot_results(doc, Path(tempfile.mkdtemp()), metrics=("jaccard",))]
['simulate-overview.png', 'simulate-jaccard.png']
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (key, title) in the order they are drawn.
METRICS = (
    ("utility_chosen", "true utility of chosen items"),
    ("utility_list", "true utility of served slots"),
    ("choice_rate", "choice rate (1 - outside option)"),
    ("coverage", "catalogue coverage (round)"),
    ("coverage_cumulative", "catalogue coverage (so far)"),
    ("entropy", "exposure entropy (bits)"),
    ("gini", "exposure Gini"),
    ("jaccard", "homogenisation (mean Jaccard)"),
    ("ild", "intra-list diversity (taste space)"),
)


def _series(rounds: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for stats in rounds:
        value = stats.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            xs.append(int(stats["round"]) + 1)
            ys.append(float(value))
    return xs, ys


def plot_metric(doc: dict, key: str, title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for arm, rounds in doc["arms"].items():
        ax.plot(*_series(rounds, key), marker=".", label=arm)
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_overview(doc: dict, path: Path, metrics=METRICS) -> Path:
    cols = 3
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, (key, title) in zip(axes.flat, metrics):
        for arm, rounds in doc["arms"].items():
            ax.plot(*_series(rounds, key), marker=".", label=arm)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_results(doc: dict, out_dir: Path, metrics=None) -> list[Path]:
    """Write ``simulate-overview.png`` and one ``simulate-<metric>.png`` per metric; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [(k, t) for k, t in METRICS if metrics is None or k in metrics] or \
        [(k, k) for k in (metrics or ())]
    paths = [plot_overview(doc, out_dir / "simulate-overview.png", chosen)]
    for key, title in chosen:
        paths.append(plot_metric(doc, key, title, out_dir / f"simulate-{key}.png"))
    return paths
