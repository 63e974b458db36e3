"""Reading the events file of a description into validated events, file order kept.

Each row becomes the JSON object the ``events`` topic would carry and goes through the
event contract's own :func:`~streamrec.contracts.events.validate`, so a dataset holds
exactly the events the streams worker would accept: a row it would dead-letter is
rejected here, under the contract's reason (``unknown_event_type``, ``bad_id``,
``timestamp_out_of_range``...). Reading adds three reasons of its own: ``missing_field``
for an empty cell, ``bad_timestamp`` and ``bad_value`` for cells that are not a time or a
number.

Examples
--------
>>> import tempfile
>>> from harness.datasets.description import DatasetDescription, Source
>>> path = Path(tempfile.mkdtemp()) / "log.csv"
>>> _ = path.write_text("who,what,when,action\\nu1,a,1700000000,pv\\nu2,b,1700000060,buy\\nu3,c,1700000099,x\\n")
>>> d = DatasetDescription("log", Source(path), user_col="who", item_col="what", time_col="when",
...                        type_col="action", type_map={"pv": "view", "buy": "purchase"})
>>> events, report = read_events(d)
>>> events.types, events.values, dict(report.rejected)
(['view', 'purchase'], [1.0, 1.0], {'unknown_event_type': 1})
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.datasets.description import DatasetDescription, key_label
from harness.datasets.errors import DatasetError
from harness.datasets.readers import Table, open_table
from harness.datasets.report import FileReport
from harness.datasets.times import time_parser
from streamrec.contracts.events import InvalidEvent, validate
from streamrec.settings import Settings


@dataclass
class Events:
    """Kept events, as columns, in file order."""

    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


class RowRejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def column(table: Table, name: str | None, key: str, default: str | None = None) -> str | None:
    """The column ``name`` (given under ``key``, a :func:`key_label`), or ``default`` if the file has it.

    A column the description names but the file lacks is an error naming the columns found.
    """
    if name is None:
        return default if default is not None and default in table.columns else None
    if name not in table.columns:
        raise DatasetError(f"{table.source.path} has no column {name!r} ({key}); its columns: "
                           f"{', '.join(table.columns) or '(none found)'}")
    return name


def _text(cell: Any, what: str) -> Any:
    """The cell, stripped if text; an empty cell rejects the row."""
    if isinstance(cell, str):
        cell = cell.strip()
    if cell is None or cell == "":
        raise RowRejected("missing_field", f"{what} is empty")
    return cell


def _value(cell: Any, what: str) -> float:
    cell = _text(cell, what)
    if isinstance(cell, bool):
        raise RowRejected("bad_value", f"{what} {cell!r} is not a number")
    try:
        return float(cell)
    except (TypeError, ValueError):
        raise RowRejected("bad_value", f"{what} {str(cell)[:60]!r} is not a number") from None


def _type(cell: Any, what: str, type_map: dict[str, str]) -> str:
    """The event type a type cell stands for; the contract then refuses one it does not know."""
    raw = str(_text(cell, what))
    return type_map.get(raw, raw)


def _time(parse_time, cell: Any) -> float:
    try:
        return parse_time(cell)
    except ValueError as exc:
        raise RowRejected("bad_timestamp", str(exc)) from None


def read_events(description: DatasetDescription, settings: Settings | None = None,
                now: float | None = None) -> tuple[Events, FileReport]:
    """The valid events of the description's events file, in file order, and the file's report."""
    d = description
    table = open_table(d.source)
    user, item = column(table, d.user_col, key_label("user_col")), column(table, d.item_col, key_label("item_col"))
    stamp = column(table, d.time_col, key_label("time_col"))
    kind = column(table, d.type_col, key_label("type_col"), default="event_type")
    value = column(table, d.value_col, key_label("value_col"), default="value")
    wanted = [user, item, stamp] + [c for c in (kind, value) if c is not None]
    default_type = d.default_type or ("rating" if value else "click")
    parse_time, settings = time_parser(d.time_format), settings or Settings()
    now = time.time() if now is None else now
    report, out = FileReport(str(d.source.path), table.unit), Events()
    for where, cells in table.rows(wanted, report):
        cell = dict(zip(wanted, cells))
        try:
            doc = {"user_id": _text(cell[user], user), "item_id": _text(cell[item], item),
                   "event_type": _type(cell[kind], kind, d.type_map) if kind else default_type,
                   "timestamp": _time(parse_time, _text(cell[stamp], stamp)),
                   "value": _value(cell[value], value) if value else 1.0}
            event = validate(doc, settings, now)
        except RowRejected as exc:
            report.reject(exc.reason, where, exc.detail)
            continue
        except InvalidEvent as exc:
            hint = (" (map it with --type-map / type_map, give --default-type / default_type, or declare it in "
                    "STREAMREC_EVENT_WEIGHTS)") if exc.reason == "unknown_event_type" else ""
            report.reject(exc.reason, where, exc.detail + hint)
            continue
        out.users.append(event.user_id)
        out.items.append(event.item_id)
        out.times.append(event.timestamp)
        out.types.append(event.event_type)
        out.values.append(event.value)
    return out, report
