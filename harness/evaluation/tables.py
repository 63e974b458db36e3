"""A results document as a Markdown report, and its per-window metrics as CSV.

``streamrec evaluate`` (and ``streamrec report``) write, beside ``<stem>.json``:

- ``<stem>.md``: when and with what command the run was made; the run's description (the
  dataset's load report: rows read, kept and rejected by reason, users, items, event
  types, the span in dates; then the protocol); accuracy with 95% intervals; cold and
  warm requests apart; every method against the best baseline, with paired intervals;
  exposure and diversity; the re-ranking sweep when there is one;
- ``<stem>-windows.csv``: one row per window of requests (``window`` from 1; the stream
  positions of its first and last request, ``events`` the stream events they span,
  ``requests`` the scored ones; their times in ISO 8601 UTC), then one column per method
  and metric, named ``<method>:<metric>``.

Intervals are written ``value [low, high]``; a difference is the method minus the best
baseline. Exposure and diversity metrics are statistics of the whole run (not means over
requests), so they carry no interval.

Examples
--------
>>> with_interval(0.19553, [0.1872, 0.2041])
'0.1955 [0.1872, 0.2041]'
>>> with_interval(0.012, [-0.003, 0.027], signed=True)
'+0.0120 [-0.0030, +0.0270]'
>>> compact(0.19553, [0.1872, 0.2041])
'0.1955 [0.187, 0.204]'
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from harness.datasets.report import LoadReport, iso_utc
from harness.evaluation import metrics

EXPOSURE = ("coverage", "gini", "entropy", "ild", "novelty")
WINDOW_COLUMNS = ["window", "first_event", "last_event", "events", "requests", "first_time", "last_time"]


def label(key: str, k) -> str:
    """What a table calls metric ``key`` for lists of length ``k``."""
    return metrics.LABELS[key].replace("@k", f"@{k}")


def _number(value, signed: bool = False, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def with_interval(value, interval, signed: bool = False) -> str:
    """``value [low, high]``, or the value alone when there is no finite interval."""
    text = _number(value, signed)
    if interval and all(v is not None and math.isfinite(v) for v in interval):
        text += f" [{_number(interval[0], signed)}, {_number(interval[1], signed)}]"
    return text


def compact(value, interval, signed: bool = False) -> str:
    """``value [low, high]``, the bounds of a mean to three places (a difference's to four):
    the summary's shorter form."""
    text, digits = _number(value, signed), 4 if signed else 3
    if interval and all(v is not None and math.isfinite(v) for v in interval):
        text += f" [{_number(interval[0], signed, digits)}, {_number(interval[1], signed, digits)}]"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def describe_run(doc: dict) -> list[str]:
    """The run's description as Markdown list items: the data as read, then the protocol."""
    lines = []
    if doc.get("load_report"):
        report = LoadReport.from_dict(doc["load_report"])
        lines += [("  - " if line.startswith("  ") else "- ") + line.strip() for line in report.lines()]
        if report.first_time is not None and report.last_time is not None:
            days = (report.last_time - report.first_time) / 86400
            lines.append(f"- span: {iso_utc(report.first_time)[:10]} to {iso_utc(report.last_time)[:10]} "
                         f"({days:,.0f} days)")
    p = doc.get("protocol", {})
    lines.append(f"- protocol: top-{p.get('k')} over the full catalogue ({p.get('catalogue', 0):,} items), "
                 f"excluding each user's earlier items; {p.get('scored', 0):,} of {p.get('events', 0):,} "
                 f"events scored (warm-up {p.get('warmup', 0):,}, {p.get('repeats', 0):,} re-consumptions "
                 f"learned, not scored); requests answered in blocks of up to {p.get('block')} events of "
                 f"distinct users")
    for key in ("relevance", "cold"):
        if key in p:
            lines.append(f"- {p[key]}")
    boot = p.get("bootstrap")
    if boot:
        lines.append(f"- 95% intervals: percentile bootstrap over the {boot['users']:,} users "
                     f"({boot['resamples']:,} resamples of users, seed {boot['seed']}); differences paired "
                     "(the same users drawn for both methods)")
    return lines + [""]


def _summary_rows(doc: dict) -> dict[str, dict]:
    """Each method's results (and each sweep point that served every request, as a method)."""
    rows = {name: {**r["overall"], "intervals": r.get("intervals", {}), "segments": r.get("segments", {})}
            for name, r in doc["methods"].items()}
    scored = doc.get("protocol", {}).get("scored")
    for name, points in (doc.get("sweeps") or {}).items():
        for point in points:
            if point.get("requests") == scored:
                rows[f"{name} (diversity {point['diversity_weight']:g})"] = point
    return rows


SUMMARY = ("hr", "ndcg", "recall", "map")


def _against_reference(diffs: dict, name: str) -> str:
    if name == diffs["reference"]:
        return "(the baseline)"
    d = diffs["methods"].get(name, {}).get("overall", {}).get("hr")
    return compact(d["difference"], d["interval"], signed=True) if d else "—"


def summary_section(doc: dict) -> list[str]:
    """One line per method: the headline metrics with their intervals, cold and warm HR@k,
    and the difference in HR@k from the best baseline (paired interval)."""
    k = doc.get("protocol", {}).get("k", "k")
    diffs = doc.get("differences") or {}
    header = (["method"] + [label(key, k) for key in SUMMARY] + [f"{label('hr', k)} {seg}" for seg in ("cold", "warm")]
              + ([f"Δ {label('hr', k)} vs {diffs['reference']}"] if diffs else []))
    rows = []
    for name, r in _summary_rows(doc).items():
        segments = r.get("segments", {})
        row = [name] + [compact(r.get(key), r.get("intervals", {}).get(key)) for key in SUMMARY]
        row += [compact(segments.get(seg, {}).get("hr"), segments.get(seg, {}).get("intervals", {}).get("hr"))
                for seg in ("cold", "warm")]
        rows.append(row + ([_against_reference(diffs, name)] if diffs else []))
    return ["## Summary", ""] + _table(header, rows)


def _accuracy_rows(results: dict) -> list[list[str]]:
    return [[name] + [with_interval(r.get(key), r.get("intervals", {}).get(key)) for key in metrics.ACCURACY]
            for name, r in results.items()]


def accuracy_section(doc: dict) -> list[str]:
    """Accuracy with intervals, overall and for cold and warm requests apart."""
    k, p = doc.get("protocol", {}).get("k", "k"), doc.get("protocol", {})
    header = ["method"] + [label(key, k) for key in metrics.ACCURACY]
    overall = {name: {**r["overall"], "intervals": r.get("intervals", {})} for name, r in doc["methods"].items()}
    lines = ["## Accuracy", ""] + _table(header, _accuracy_rows(overall))
    for segment in ("cold", "warm"):
        rows = {name: r["segments"][segment] for name, r in doc["methods"].items() if "segments" in r}
        if rows:
            first = next(iter(rows.values()))
            lines += [f"### {segment.capitalize()} requests ({first['requests']:,} requests of "
                      f"{first['users']:,} users; cold: fewer than {p.get('cold_events')} earlier events)", ""]
            lines += _table(header, _accuracy_rows(rows))
    return lines


def differences_section(doc: dict) -> list[str]:
    """Every method minus the best baseline, overall, cold and warm, with paired intervals."""
    diffs = doc.get("differences")
    if not diffs:
        return []
    k = doc.get("protocol", {}).get("k", "k")
    lines = [f"## Against the best baseline ({diffs['reference']}, by {label(diffs['chosen_by'], k)})", ""]
    header = ["method"] + [f"Δ {label(key, k)}" for key in metrics.ACCURACY]
    for segment in ("overall", "cold", "warm"):
        rows = [[name] + [with_interval(by_segment[segment][key]["difference"], by_segment[segment][key]["interval"],
                                        signed=True) for key in metrics.ACCURACY]
                for name, by_segment in diffs["methods"].items()]
        lines += [f"{segment.capitalize()}:", ""] + _table(header, rows)
    return lines


def exposure_section(doc: dict) -> list[str]:
    header = ["method"] + [label(key, None) for key in EXPOSURE] + ["wall s"]
    rows = [[name] + [_number(r["overall"].get(key), digits=3) for key in EXPOSURE]
            + [_number(r.get("timing", {}).get("wall_s"), digits=0)] for name, r in doc["methods"].items()]
    return ["## Exposure and diversity (whole run; entropy and novelty in bits)", ""] + _table(header, rows)


def sweep_section(doc: dict) -> list[str]:
    k = doc.get("protocol", {}).get("k", "k")
    lines = []
    for name, points in (doc.get("sweeps") or {}).items():
        keys = [key for key in (*metrics.ACCURACY, *EXPOSURE) if key in points[0]]
        header = ["diversity weight", "requests"] + [label(key, k) for key in keys]
        rows = [[f"{pt['diversity_weight']:g}", f"{pt.get('requests', 0):,}"]
                + [with_interval(pt.get(key), pt.get("intervals", {}).get(key)) for key in keys] for pt in points]
        lines += [f"## {name}: re-ranking diversity weight sweep (same run, same requests per weight)", ""]
        lines += _table(header, rows)
    return lines


def markdown(doc: dict) -> str:
    """The whole Markdown report of a results document."""
    created = doc.get("created", "")
    head = [f"# Prequential evaluation: {doc.get('dataset', '?')}", "",
            f"{created[:10] or 'undated'}, `{doc.get('command', 'streamrec evaluate')}`"
            + (f", {doc['wall_time_s']:,.0f} s" if "wall_time_s" in doc else ""), "", "## The run", ""]
    body = (describe_run(doc) + summary_section(doc) + accuracy_section(doc) + differences_section(doc)
            + exposure_section(doc) + sweep_section(doc))
    return "\n".join(head + body)


def _rounded(value):
    return round(value, 6) if isinstance(value, float) else value


def window_rows(doc: dict) -> tuple[list[str], list[list]]:
    """The header and rows of the per-window CSV (the windows are the same for every method)."""
    methods = doc["methods"]
    first = next(iter(methods.values()), {}).get("windows", [])
    keys = [key for key in metrics.LABELS if first and key in first[0]]
    header = WINDOW_COLUMNS + [f"{name}:{key}" for name in methods for key in keys]
    rows = []
    for i, w in enumerate(first):
        spanned = w["last_event"] - w["first_event"] + 1 if "first_event" in w else ""
        rows.append([i + 1, w.get("first_event", ""), w.get("last_event", ""), spanned, w["end"] - w["start"],
                     iso_utc(w.get("t_start")), iso_utc(w.get("t_end"))]
                    + [_rounded(methods[name]["windows"][i].get(key)) for name in methods for key in keys])
    return header, rows


def write_tables(doc: dict, json_path: Path) -> list[Path]:
    """Write ``<stem>.md`` and ``<stem>-windows.csv`` next to ``json_path``; return both paths."""
    json_path = Path(json_path)
    md_path = json_path.with_suffix(".md")
    md_path.write_text(markdown(doc))
    csv_path = json_path.with_name(f"{json_path.stem}-windows.csv")
    header, rows = window_rows(doc)
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return [md_path, csv_path]
