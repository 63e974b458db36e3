"""The load report: what reading a dataset's files kept, what it rejected, and why.

No row is dropped without being counted here: every rejected row adds one to its reason's
count, and the first few of each reason are kept as examples with their line (or row)
number, so a user can open the file at that line and see what is wrong.

Examples
--------
>>> events = FileReport("interactions.csv")
>>> events.read(4)
>>> events.reject("bad_timestamp", 4, "'yesterday' is not epoch seconds")
>>> report = LoadReport(events)
>>> report.summarise(["u1", "u2"], ["a", "a"], [1.7e9, 1.7e9 + 3600], ["click", "view"], set())
>>> print("\\n".join(report.lines()))
interactions.csv: 4 rows read, 3 kept, 1 rejected
  bad_timestamp: 1 (line 4: 'yesterday' is not epoch seconds)
2 events: 2 users, 1 items, types click 1, view 1; 2023-11-14T22:13:20Z .. 2023-11-14T23:13:20Z
>>> report.to_dict()["events"]["rejected"]
{'bad_timestamp': 1}
>>> LoadReport.from_dict(report.to_dict()).lines() == report.lines()
True
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

EXAMPLES = 3   # examples kept per reason


@dataclass
class FileReport:
    """Rows read from one file and the rejected ones, by reason, with a few examples each."""

    source: str
    unit: str = "line"            # what the numbers in the examples count: "line" or "row"
    rows: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def read(self, n: int = 1) -> None:
        self.rows += n

    def reject(self, reason: str, where: int, detail: str) -> None:
        """Count one rejected row (already counted as read); keep it as an example if few are yet."""
        self.rejected[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES:
            kept.append((where, detail[:200]))

    @property
    def kept(self) -> int:
        return self.rows - sum(self.rejected.values())

    def lines(self) -> list[str]:
        n_rejected = sum(self.rejected.values())
        out = [f"{self.source}: {self.rows:,} rows read, {self.kept:,} kept, {n_rejected:,} rejected"]
        for reason, count in self.rejected.most_common():
            shown = "; ".join(f"{self.unit} {where}: {detail}" for where, detail in self.examples[reason])
            out.append(f"  {reason}: {count:,} ({shown})")
        return out

    def rejections(self) -> str:
        """The reasons on one line, each with its count and first example."""
        return "; ".join(f"{reason} {count:,} ({self.unit} {self.examples[reason][0][0]}: "
                         f"{self.examples[reason][0][1]})" for reason, count in self.rejected.most_common())

    def to_dict(self) -> dict:
        return {"source": self.source, "rows": self.rows, "kept": self.kept, "rejected": dict(self.rejected),
                "examples": {reason: [{self.unit: where, "detail": detail} for where, detail in kept]
                             for reason, kept in self.examples.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "FileReport":
        """The report :meth:`to_dict` wrote (a results file's ``load_report``)."""
        unit, examples = "line", {}
        for reason, kept in data.get("examples", {}).items():
            for example in kept:        # {"line": 6, "detail": "..."} (or "row" for Parquet)
                unit = next(key for key in example if key != "detail")
                examples.setdefault(reason, []).append((example[unit], example["detail"]))
        return cls(data["source"], unit, data["rows"], Counter(data.get("rejected", {})), examples)


@dataclass
class LoadReport:
    """The report of one dataset: its events file, its items file, and what the events hold."""

    events: FileReport
    items: FileReport | None = None
    n_events: int = 0
    users: int = 0
    n_items: int = 0
    items_without_metadata: int = 0     # items events name that the items file does not describe
    event_types: dict[str, int] = field(default_factory=dict)
    first_time: float | None = None
    last_time: float | None = None

    def summarise(self, user_ids: Iterable[str], item_ids: Iterable[str], timestamps, event_types,
                  described: set[str] | None) -> None:
        """Fill the counts from the kept events; ``described``: the item ids the items file has."""
        distinct_items = set(item_ids)
        self.users, self.n_items = len(set(user_ids)), len(distinct_items)
        self.n_events = len(timestamps)
        self.items_without_metadata = len(distinct_items - described) if described is not None else 0
        self.event_types = dict(sorted(Counter(event_types).items()))
        self.first_time = float(min(timestamps)) if len(timestamps) else None
        self.last_time = float(max(timestamps)) if len(timestamps) else None

    def lines(self) -> list[str]:
        out = self.events.lines()
        if self.items is not None:
            out += self.items.lines()
        types = ", ".join(f"{t} {n:,}" for t, n in self.event_types.items())
        span = f"; {iso_utc(self.first_time)} .. {iso_utc(self.last_time)}" if self.first_time is not None else ""
        unknown = (f" ({self.items_without_metadata:,} not in the items file)"
                   if self.items is not None and self.items_without_metadata else "")
        out.append(f"{self.n_events:,} events: {self.users:,} users, {self.n_items:,} items{unknown}, "
                   f"types {types or '-'}{span}")
        return out

    def to_dict(self) -> dict:
        return {"events": self.events.to_dict(), "items": self.items.to_dict() if self.items else None,
                "n_events": self.n_events, "users": self.users, "n_items": self.n_items,
                "items_without_metadata": self.items_without_metadata, "event_types": self.event_types,
                "first_time": self.first_time, "last_time": self.last_time}

    @classmethod
    def from_dict(cls, data: dict) -> "LoadReport":
        """The report :meth:`to_dict` wrote, so a results file's ``load_report`` reads as it printed."""
        return cls(FileReport.from_dict(data["events"]),
                   FileReport.from_dict(data["items"]) if data.get("items") else None,
                   data.get("n_events", 0), data.get("users", 0), data.get("n_items", 0),
                   data.get("items_without_metadata", 0), dict(data.get("event_types", {})),
                   data.get("first_time"), data.get("last_time"))


def iso_utc(t: float | None) -> str:
    """Epoch seconds as an ISO 8601 UTC time to the second (``?`` for none)."""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else "?"
