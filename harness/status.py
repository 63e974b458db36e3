"""``streamrec status``: a live terminal dashboard of the whole system, read from ``/metrics``.

Every refresh scrapes each process's ``/metrics`` and ``/readyz`` (streams, learner, serving;
URLs from the port settings or ``--streams-url`` / ``--learner-url`` / ``--serving-url``,
each repeatable or comma-separated for replicas) and shows: which endpoints are up and ready;
rates computed from counter increases between two refreshes; consumer lag; freshness;
model version and age; training loss, gate decisions and replay-buffer fill; online HR@10 /
NDCG@10 and exposure diversity, overall and per live experiment arm; and errors. Anything missing shows "—" and a process that
does not answer shows "down", so the view works while parts of the system are starting.

Figures are found by words in the metric names (``find("events applied")``) rather than by
exact names, so the view keeps working when a metric gains a unit suffix or a new label.

``--once`` prints one snapshot and exits 0 when every endpoint answered, 1 otherwise (rates
need two scrapes, so they show "—" there). ``--metrics-table`` prints the Markdown table of
every metric the processes export (:func:`metric_table`), which docs/operations.md carries.

Examples
--------
>>> main(["--once", "--serving-url", "http://127.0.0.1:9"])   # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from typing import Callable

from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness.metric_catalogue import metric_table  # noqa: F401  (re-exported: harness.status.metric_table)
from harness.metrics_scrape import SystemView, scrape_all
from streamrec.settings import Settings

DASH = "—"
ROLES = ("streams", "learner", "serving")
_ERROR_WORDS = ("error", "rejected", "fail", "dlq", "dead_letter", "crash")


# --- formatting ------------------------------------------------------------------------------

def fmt_number(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{suffix}{unit}"
    return f"{x:.0f}{unit}" if float(x).is_integer() else f"{x:.3g}{unit}"


def fmt_rate(x: float | None) -> str:
    return DASH if x is None else fmt_number(x, "/s")


def fmt_seconds(x: float | None) -> str:
    if x is None or math.isnan(x):
        return DASH
    if x < 1:
        return f"{x * 1000:.3g} ms"
    if x < 120:
        return f"{x:.3g} s"
    if x < 7200:
        return f"{x / 60:.3g} min"
    if x < 2 * 86400:
        return f"{x / 3600:.3g} h"
    return f"{x / 86400:.3g} d"


def fmt_ratio(x: float | None) -> str:
    return DASH if x is None or math.isnan(x) else f"{x:.4g}"


def fmt_breakdown(parts: dict[str, float], fmt: Callable[[float], str] = fmt_rate, top: int = 4) -> str:
    shown = sorted(((k, v) for k, v in parts.items() if v), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k or '?'} {fmt(v)}" for k, v in shown)


# --- the figures -----------------------------------------------------------------------------

def _model_age(view: SystemView, role: str) -> float | None:
    age = view.maximum(role, view.find(role, "model age"))
    if age is not None:
        return age
    created = view.maximum(role, view.find(role, "model created timestamp", "model created"))
    return None if not created else max(0.0, time.time() - created)


def _lag(view: SystemView, role: str) -> str:
    name = view.find(role, "consumer lag", "lag messages")
    total = view.total(role, name)
    if total is None:
        return DASH
    by_partition = [v for s in view.endpoints(role) if s.up for _, v in s.samples.get(name, ())]
    return f"{fmt_number(total)} msgs (worst partition {fmt_number(max(by_partition))})"


def _counted(view: SystemView, role: str, name: str | None) -> str:
    total = view.total(role, name)
    return DASH if total is None else f"{fmt_rate(view.rate(role, name))}  (total {fmt_number(total)})"


def _with_breakdown(view: SystemView, role: str, name: str | None, label: str) -> str:
    rate = view.rate(role, name)
    parts = fmt_breakdown(view.rate_by_label(role, name, label)) if rate else ""
    total = view.total(role, name)
    text = f"{fmt_rate(rate)}  (total {fmt_number(total)})" if total is not None else DASH
    return f"{text}  {parts}" if parts else text


def _latency(view: SystemView, role: str, *patterns: str) -> str:
    name = view.find(role, *patterns)
    if name is None:
        return DASH
    base = name.rsplit("_", 1)[0]  # strip _bucket/_sum/_count
    return f"p50 {fmt_seconds(view.quantile(role, base, 0.5))}  p99 {fmt_seconds(view.quantile(role, base, 0.99))}"


def streams_rows(v: SystemView) -> list[tuple[str, str]]:
    r = "streams"
    return [
        ("events consumed", _counted(v, r, v.find(r, "events consumed total"))),
        ("events applied", _counted(v, r, v.find(r, "events applied total"))),
        ("rejected (DLQ)", _with_breakdown(v, r, v.find(r, "rejected total"), "reason")),
        ("skipped (dup/replay)", _with_breakdown(v, r, v.find(r, "skipped total"), "cause")),
        ("consumer lag", _lag(v, r)),
        ("append → applied", _latency(v, r, "apply latency seconds bucket", "applied seconds bucket")),
        ("event time → applied", _latency(v, r, "event time lag seconds bucket")),
        ("users held", fmt_number(v.total(r, v.find(r, "users")))),
        ("model version", fmt_number(v.maximum(r, v.find(r, "model version")))),
    ]


def learner_rows(v: SystemView) -> list[tuple[str, str]]:
    r = "learner"
    gate = v.find(r, "gate decisions total", "gate total")
    gate_totals = v.by_label(r, gate, _first_label(v, r, gate, ("decision", "outcome", "result")))
    fill = v.find(r, "buffer fill ratio", "buffer fill")
    fills = v.by_label(r, fill, _first_label(v, r, fill, ("store",)))
    return [
        ("model version", fmt_number(v.maximum(r, v.find(r, "model version")))),
        ("model age", fmt_seconds(_model_age(v, r))),
        ("training loss", fmt_number(v.maximum(r, v.find(r, "training loss", "train loss")))),
        ("gate decisions", fmt_breakdown(gate_totals, fmt_number) or DASH),
        ("replay buffer fill", ", ".join(f"{k or 'all'} {fmt_ratio(x)}" for k, x in fills.items()) or DASH),
        ("held-out NDCG@10", fmt_ratio(v.maximum(r, v.find(r, "newest version ndcg", "candidate ndcg")))),
        ("live HR@10", fmt_ratio(v.maximum(r, v.find(r, "live hr", "live hit")))),
        ("events consumed", _counted(v, r, v.find(r, "events consumed total", "events total"))),
        ("consumer lag", _lag(v, r)),
    ]


def serving_rows(v: SystemView) -> list[tuple[str, str]]:
    r = "serving"

    def find(*patterns: str) -> str | None:   # the overall figures, not their per-arm twins
        return v.find(r, *patterns, skip=(_ARM_WORD,))

    return [
        ("requests", _with_breakdown(v, r, find("requests total"), "outcome")),
        ("latency", _latency(v, r, "request latency seconds bucket", "request seconds bucket")),
        ("online HR@10", fmt_ratio(v.maximum(r, find("online hit", "hit rate", "hr10")))),
        ("online NDCG@10", fmt_ratio(v.maximum(r, find("online ndcg", "ndcg")))),
        ("exposure entropy", fmt_number(v.maximum(r, find("entropy")), " bits")),
        ("exposure Gini", fmt_ratio(v.maximum(r, find("gini")))),
        ("catalogue coverage", fmt_ratio(v.maximum(r, find("coverage")))),
        ("model version", fmt_number(v.maximum(r, find("model version")))),
        ("model age", fmt_seconds(_model_age(v, r))),
        ("state freshness", fmt_seconds(v.maximum(r, find("freshness lag last", "freshness")))),
        ("cold-start answers", fmt_rate(v.rate(r, find("cold start total")))),
        *_shard_rows(v),
    ]


_ARM_WORD = "experiment"
_ARM_LABELS = ("experiment", "arm")
# (column, words of the per-arm gauge, format); the values are averaged over serving replicas.
ARM_COLUMNS = (("HR@10", "online hit", fmt_ratio), ("NDCG@10", "online ndcg", fmt_ratio),
               ("scored lists", "scored lists", fmt_number), ("entropy", "entropy", lambda x: fmt_number(x, " bits")),
               ("Gini", "gini", fmt_ratio), ("coverage", "coverage", fmt_ratio))


def arm_rows(v: SystemView) -> list[tuple[str, ...]]:
    """One row per live experiment arm: experiment, arm, requests, then :data:`ARM_COLUMNS`."""
    r = "serving"
    requests = v.find(r, f"{_ARM_WORD} requests total")
    gauges = [(v.by_labels(r, v.find(r, f"{_ARM_WORD} {words}"), _ARM_LABELS), fmt) for _, words, fmt in ARM_COLUMNS]
    counted = v.by_labels(r, requests, _ARM_LABELS)
    rows = []
    for key in sorted(set(counted).union(*(values for values, _ in gauges))):
        where = dict(zip(_ARM_LABELS, key))
        cells = [f"{fmt_rate(v.rate(r, requests, where))}  (total {fmt_number(sum(counted.get(key, [0.0])))})"]
        for values, fmt in gauges:
            finite = [x for x in values.get(key, []) if not math.isnan(x)]
            cells.append(fmt(sum(finite) / len(finite)) if finite else DASH)
        rows.append((*key, *cells))
    return rows


def _shard_rows(v: SystemView) -> list[tuple[str, str]]:
    """Sharded serving: each instance's share of the events and of the users (in URL order)."""
    r = "serving"
    instances = sorted((s for s in v.endpoints(r) if s.up), key=lambda s: s.url)
    if len(instances) < 2:
        return []

    def each(*patterns: str) -> str:
        name = v.find(r, *patterns)
        return " / ".join(fmt_number(sum(x for _, x in s.samples.get(name, ()))) if name else DASH
                          for s in instances)

    return [("applied per instance", each("events applied total")),
            ("item-side only", each("item side only total")),
            ("users per instance", each("replica users")),
            ("forwarded", _with_breakdown(v, r, v.find(r, "forwarded total"), "outcome"))]


def _first_label(v: SystemView, role: str, name: str | None, candidates: tuple[str, ...]) -> str:
    labels = {k for s in v.endpoints(role) if s.up and name for lbl, _ in s.samples.get(name, ()) for k in lbl}
    return next((c for c in candidates if c in labels), next(iter(sorted(labels)), ""))


def error_rows(v: SystemView) -> list[tuple[str, str, str]]:
    """Every counter whose name says error/rejected/failed, plus serving's failed outcomes."""
    rows = []
    for role in ROLES:
        for name in v.names(role):
            if (name.startswith(f"streamrec_{role}_") and name.endswith("_total")
                    and any(w in name for w in _ERROR_WORDS)):
                total = v.total(role, name)
                if total:
                    rows.append((role, name, f"{fmt_number(total)}  now {fmt_rate(v.rate(role, name))}"))
    requests = v.find("serving", "requests total")
    for outcome in ("error", "shed", "timeout"):
        total = v.total("serving", requests, {"outcome": outcome})
        if total:
            rate = v.rate("serving", requests, {"outcome": outcome})
            rows.append(("serving", f"{requests}{{outcome={outcome}}}", f"{fmt_number(total)}  now {fmt_rate(rate)}"))
    return rows


# --- the view --------------------------------------------------------------------------------

def _figure_table(title: str, rows: list[tuple[str, str]], up: bool) -> Table:
    table = Table(title=title if up else f"{title} [red](down)[/]", show_header=False,
                  title_justify="left", expand=False)
    table.add_column("figure", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for figure, value in rows:
        table.add_row(figure, value if up else DASH)
    return table


def _arm_table(view: SystemView) -> Table | None:
    """The live experiment arms side by side (None when serving runs none)."""
    rows = arm_rows(view)
    if not rows:
        return None
    table = Table(title="experiments (per arm)", title_justify="left")
    for column in ("experiment", "arm", "requests", *(c for c, _, _ in ARM_COLUMNS)):
        table.add_column(column, justify="left" if column in _ARM_LABELS else "right")
    for row in rows:
        table.add_row(*row)
    return table


def render(view: SystemView) -> Group:
    endpoints = Table(title="endpoints", title_justify="left")
    for col in ("process", "url", "state", "detail"):
        endpoints.add_column(col)
    for s in sorted(view.endpoints(), key=lambda s: (ROLES.index(s.role) if s.role in ROLES else 9, s.url)):
        if not s.up:
            state, detail = Text("down", style="bold red"), s.error
        elif s.ready is False:
            state, detail = Text("not ready", style="yellow"), "; ".join(s.reasons)
        else:
            state, detail = Text("up", style="green"), "ready" if s.ready else "; ".join(s.reasons)
        endpoints.add_row(s.role, s.url, state, detail)

    def up(role: str) -> bool:
        return any(s.up for s in view.endpoints(role))

    n_up = sum(s.up for s in view.endpoints())
    header = Text(f"streamrec status  {time.strftime('%H:%M:%S')}  "
                  f"{n_up}/{len(view.endpoints())} endpoints up", style="bold")
    panels = Columns([_figure_table("streams", streams_rows(view), up("streams")),
                      _figure_table("learner", learner_rows(view), up("learner")),
                      _figure_table("serving", serving_rows(view), up("serving"))])
    arms = _arm_table(view)
    parts = [header, endpoints, panels] + ([arms] if arms is not None else [])
    errors = Table(title="errors", title_justify="left", show_header=False)
    errors.add_column("process")
    errors.add_column("counter")
    errors.add_column("total / rate")
    for row in error_rows(view) or [("", "none", "")]:
        errors.add_row(*row)
    return Group(*parts, errors)


# --- command line ----------------------------------------------------------------------------

def default_targets(settings: Settings) -> dict[str, list[str]]:
    """Each process's URLs: those the running ``up`` of the state directory names (every sharded
    serving instance among them), else the port settings."""
    from streamrec.kafka.runfile import running_system

    host = settings.http_host if settings.http_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    targets = {"streams": [f"http://{host}:{settings.streams_web_port}"],
               "learner": [f"http://{host}:{settings.learner_port}"],
               "serving": [f"http://{host}:{settings.http_port}"]}
    named = (running_system(settings.state_dir) or {}).get("urls") or {}
    for role in ROLES:
        urls = [url for name, url in named.items() if name == role or name.startswith(f"{role}-")]
        targets[role] = urls or targets[role]
    return targets


def _split(values: list[str] | None) -> list[str]:
    return [u.strip() for v in values or [] for u in v.split(",") if u.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="streamrec status", description=__doc__.split("\n\n")[0])
    for role in ROLES:
        p.add_argument(f"--{role}-url", action="append", metavar="URL",
                       help=f"{role} base URL (repeatable or comma-separated; default from settings)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an endpoint (default 2)")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit (1 if an endpoint is down)")
    p.add_argument("--expand-dns", action="store_true",
                   help="scrape every address a host name resolves to (Docker service replicas)")
    p.add_argument("--metrics-table", action="store_true",
                   help="print the Markdown table of every exported metric and exit")
    return p.parse_args(argv)


async def _run(args: argparse.Namespace, targets: list[tuple[str, str]], console: Console) -> int:
    view = SystemView()
    view.update(await scrape_all(targets, args.timeout, args.expand_dns))
    if args.once:
        console.print(render(view))
        return 0 if all(s.up for s in view.endpoints()) else 1
    with Live(render(view), console=console, refresh_per_second=4, screen=False) as live:
        while True:
            await asyncio.sleep(args.interval)
            view.update(await scrape_all(targets, args.timeout, args.expand_dns))
            live.update(render(view))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.metrics_table:
        print(metric_table())
        return 0
    defaults = default_targets(Settings.from_env())
    targets = [(role, url) for role in ROLES
               for url in (_split(getattr(args, f"{role}_url")) or defaults[role])]
    console = Console() if sys.stdout.isatty() else Console(width=180)
    try:
        return asyncio.run(_run(args, targets, console))
    except KeyboardInterrupt:
        return 0
